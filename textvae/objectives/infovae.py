"""The InfoVAE objective (Zhao, Song, Ermon 2019) as a pure function of tensors.

    loss = rec + (1−α)·β_t·KL(q(z|x)‖p(z)) + (α+λ−1)·MMD(q(z)‖p(z))

Every term comes back as a *sum over sentences* with the counts beside it; the caller divides
last, so gradient accumulation and data parallelism average over the right number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from textvae.config import ObjectiveConfig
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
    """Σ KL(q(z|x)‖p(z)) over sentences, before free bits and weights."""
    kl_per_dim: Optional[Tensor]
    """(D,) Σ over sentences of the per-dimension KL."""
    mmd: Tensor
    """MMD²(q(z), p(z)) of this batch × sentence count (so /sentences gives the batch MMD)."""
    n_sentences: int
    n_tokens: Tensor
    """Predicted tokens (words/subwords + EOS)."""
    kl_beta: float = 1.0

    def detached(self) -> dict[str, float | int]:
        """Plain numbers for logging (this syncs with the device: call it off the hot path)."""
        return {"loss": self.loss.item(), "rec": self.rec.item(), "kl": self.kl.item(),
                "mmd": self.mmd.item(), "n_sentences": self.n_sentences,
                "n_tokens": int(self.n_tokens.item())}


def infovae_loss(rec: Tensor, n_tokens: Tensor, mu: Optional[Tensor], logvar: Optional[Tensor],
                 z: Optional[Tensor], cfg: ObjectiveConfig, kl_beta: float = 1.0,
                 prior_z: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
                 mmd_z: Optional[Tensor] = None) -> LossTerms:
    """Combine a batch's terms into the InfoVAE loss.

    Args:
        rec: (B,) per-sentence −log p(x|z), fp32.
        n_tokens: scalar count of predicted tokens.
        mu, logvar, z: (B, D) posterior parameters and the sample fed to the decoder
            (None for a language model).
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
    Returns:
        :class:`LossTerms`.
    """
    rec = rec.float()
    n = rec.shape[0]
    rec_sum = rec.sum()
    zero = rec_sum.new_zeros(())
    if mu is None:  # language model: no latent terms
        return LossTerms(rec_sum, rec_sum, zero, None, zero, n, n_tokens, kl_beta)

    kl_dims = gaussian_kl(mu, logvar)  # (B, D) fp32
    kl_sum = kl_dims.sum()
    loss = rec_sum
    kl_w = cfg.kl_weight * kl_beta
    if kl_w != 0.0:
        loss = loss + kl_w * free_bits_kl(kl_dims, cfg.free_bits, cfg.free_bits_mode)

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
    return LossTerms(loss, rec_sum, kl_sum, kl_dims.sum(0), mmd_sum if mmd_w != 0.0 else mmd_sum.detach(),
                     n, n_tokens, kl_beta)
