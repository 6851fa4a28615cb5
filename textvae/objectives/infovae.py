"""The InfoVAE objective (Zhao, Song, Ermon 2019) as a pure function of tensors.

    loss = rec + (1−α)·β_t·KL(q(z|x)‖p(z)) + (α+λ−1)·MMD(q(z)‖p(z))

Every term comes back as a *sum over sentences* with the counts beside it; the caller divides
last, so gradient accumulation and data parallelism average over the right number.

With short-run inference and an energy-based prior (``model.inference``, ``model.prior``):

- ``langevin`` has no q(z|x): the loss is rec at the chain's z (maximum likelihood by posterior
  samples), with no KL; the MMD is measured between the chain's z and the prior, never weighted.
- ``amortized+langevin``: rec is scored at the refined z (the decoder's term) and ``rec_encoder``
  at the encoder's sample (the encoder's, through a fixed decoder); KL and MMD are the encoder's.
- ``ebm`` prior: KL(q‖p_α) = E_q[log q − f_α − log N] + log Z = KL(q‖N(0, I)) − E_q[f_α] + log Z.
  The loss takes KL(q‖N) in closed form minus f_α at the one sample z (``tilt``, whose gradient
  reaches the encoder, not the energy) and leaves out log Z, a constant for the encoder and the
  decoder: the ``kl`` of :class:`LossTerms` is therefore KL from p_α *less log Z*. The energy
  learns by its own maximum-likelihood term (:func:`~textvae.objectives.energy.energy_ml_loss`),
  added to the loss with weight 1 whatever the KL weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from textvae.config import ObjectiveConfig
from textvae.objectives.energy import energy_ml_loss
from textvae.objectives.kl import free_bits_kl, gaussian_kl
from textvae.objectives.mmd import mmd


@dataclass
class LossTerms:
    """One batch's objective. Sums over sentences unless said; all fp32 scalars."""

    loss: Tensor
    """What to backpropagate (a sum: divide by the sentence count of the step). With a gathered
    MMD (``mmd_z``) its MMD part counts every rank's sentences, so summed over ranks it holds
    that part once per rank; rec, kl and mmd are this batch's shares and sum over ranks as they are."""
    rec: Tensor
    """Σ −log p(x|z) over sentences (tokens and EOS)."""
    kl: Tensor
    """Σ KL(q(z|x)‖p(z)) over sentences, before free bits and weights (energy-based prior: less
    log Z, see the module docstring; ``langevin``: 0, there is no q)."""
    kl_per_dim: Optional[Tensor]
    """(D,) Σ over sentences of the per-dimension KL."""
    mmd: Tensor
    """MMD²(q(z), p(z)) of this batch × sentence count (so /sentences gives the batch MMD)."""
    n_sentences: int
    n_tokens: Tensor
    """Predicted tokens (words/subwords + EOS)."""
    kl_beta: float = 1.0
    rec_encoder: Optional[Tensor] = None
    """``amortized+langevin``: Σ −log p(x|z) at the encoder's samples (``rec`` is at the refined z)."""
    energy: Optional[Tensor] = None
    """Energy-based prior: Σ over sentences of f_α(z⁺) − mean f_α(z⁻), the gap between the energy on
    posterior and on prior samples that maximum likelihood drives to 0 (detached)."""

    def detached(self) -> dict[str, float | int]:
        """Plain numbers for logging (this syncs with the device: call it off the hot path)."""
        out = {"loss": self.loss.item(), "rec": self.rec.item(), "kl": self.kl.item(),
               "mmd": self.mmd.item(), "n_sentences": self.n_sentences,
               "n_tokens": int(self.n_tokens.item())}
        out.update({key: getattr(self, key).item() for key in ("rec_encoder", "energy")
                    if getattr(self, key) is not None})
        return out


def infovae_loss(rec: Tensor, n_tokens: Tensor, mu: Optional[Tensor], logvar: Optional[Tensor],
                 z: Optional[Tensor], cfg: ObjectiveConfig, kl_beta: float = 1.0,
                 prior_z: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
                 mmd_z: Optional[Tensor] = None, *, tilt: Optional[Tensor] = None,
                 energy_data: Optional[Tensor] = None, energy_prior: Optional[Tensor] = None,
                 rec_encoder: Optional[Tensor] = None, energy_l2: float = 0.0) -> LossTerms:
    """Combine a batch's terms into the InfoVAE loss.

    Args:
        rec: (B,) per-sentence −log p(x|z), fp32.
        n_tokens: scalar count of predicted tokens.
        mu, logvar, z: (B, D) posterior parameters and the sample fed to the decoder
            (None for a language model; mu and logvar None with ``langevin`` inference, z the
            chain's sample).
        cfg: the objective (α, λ, kernel, free bits).
        kl_beta: β_t, the annealing multiplier on the KL term.
        prior_z: (M, D) samples of p(z) for the MMD; drawn here (as many as the MMD's
            samples of q(z)) when None.
        generator: RNG for those prior samples.
        mmd_z: (N, D) the samples of q(z) the MMD compares with the prior, when they are more
            than this batch's z: under data parallelism, every rank's z of the global batch
            (``all_gather_with_grad``, this rank's rows with their graph, N = Σ_r B_r). The MMD
            then is the single-process one of the global batch, and ``loss`` counts it N times
            (see below). Default: ``z``.
        tilt: (B,) energy-based prior: f_α(z), differentiable in z only; enters the KL as −f.
        energy_data, energy_prior: (B,), (M,) energy-based prior: f_α at posterior and prior
            samples, for the energy's maximum-likelihood term.
        energy_l2: γ of that term's energy-magnitude penalty (``model.ebm.l2``).
        rec_encoder: (B,) ``amortized+langevin``: the encoder's reconstruction term, added to the loss.
    Returns:
        :class:`LossTerms`.
    """
    rec = rec.float()
    n = rec.shape[0]
    rec_sum = rec.sum()
    zero = rec_sum.new_zeros(())
    if z is None:  # language model: no latent terms
        return LossTerms(rec_sum, rec_sum, zero, None, zero, n, n_tokens, kl_beta)

    loss = rec_sum
    rec_encoder_sum = None
    if rec_encoder is not None:
        rec_encoder_sum = rec_encoder.float().sum()
        loss = loss + rec_encoder_sum
    kl_sum, kl_per_dim = zero, None
    if mu is not None:  # an encoder: its KL (``langevin`` inference has none)
        kl_dims = gaussian_kl(mu, logvar)  # (B, D) fp32
        kl_sum, kl_per_dim = kl_dims.sum(), kl_dims.sum(0)
        kl_term = free_bits_kl(kl_dims, cfg.free_bits, cfg.free_bits_mode)
        if tilt is not None:  # KL from p_α, less log Z: KL(q‖N) − f_α(z)
            tilt_sum = tilt.float().sum()
            kl_sum, kl_term = kl_sum - tilt_sum, kl_term - tilt_sum
        kl_w = cfg.kl_weight * kl_beta
        if kl_w != 0.0:
            loss = loss + kl_w * kl_term
    energy = None
    if energy_data is not None:
        loss = loss + energy_ml_loss(energy_data, energy_prior, energy_l2)
        energy = (energy_data.float().sum() - n * energy_prior.float().mean()).detach()

    mmd_w = cfg.mmd_weight
    mmd_sum = zero
    samples = z if mmd_z is None else mmd_z
    if samples.shape[0] >= 2:
        if prior_z is None:
            prior_z = torch.randn(samples.shape, device=z.device, generator=generator)
        # Always measured (it is a metric too); only enters the loss when its weight is non-zero.
        value = mmd(samples, prior_z, cfg.kernel, cfg.bandwidth)
        mmd_sum = value * n  # this batch's share: summed over ranks, MMD × global count
        if mmd_w != 0.0:
            # The loss counts the MMD once per sentence it was measured on: n in one process, the
            # global count N under data parallelism. There each rank's loss reaches only its own
            # rows of mmd_z, so the ranks' gradients add up to N·∂MMD/∂(all z): the single-process
            # gradient of the global batch (with the trainer's rescaling, see Trainer.fit).
            loss = loss + mmd_w * (value * samples.shape[0])
    return LossTerms(loss, rec_sum, kl_sum, kl_per_dim, mmd_sum if mmd_w != 0.0 else mmd_sum.detach(),
                     n, n_tokens, kl_beta, None if rec_encoder_sum is None else rec_encoder_sum.detach(), energy)
