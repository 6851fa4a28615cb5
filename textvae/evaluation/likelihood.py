"""Importance-weighted log-likelihood: the tightest number a VAE reports about p(x).

The proposal is the model's :meth:`~textvae.modeling.TextVAEModel.posterior`: the encoder's
q(z|x), or, with short-run inference, the diagonal Gaussian fitted to each sentence's short-run
samples. Either has an exact density, so the estimate of p(x) is unbiased and its negative log an
upper bound on −log p(x) in expectation. With an energy-based prior, log p(z) = f_α(z) +
log N(z; 0, I) − log Z, with log Z estimated beforehand (:func:`~textvae.modeling.prior.estimate_log_z`).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor

from textvae.modeling import TextVAEModel
from textvae.objectives import gaussian_kl
from textvae.modeling.posterior import gaussian_log_prob, sample_gaussian


def importance_log_weights(log_joint: Callable[[Tensor], Tensor], mu: Tensor, logvar: Tensor, k: int,
                           generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """k draws z ~ N(μ, σ²) per row and their log weights log p(x, z) − log N(z; μ, σ²).

    Args:
        log_joint: z (k·B, D), sample-major (row j is sentence j mod B) → log p(x, z) (k·B,).
        mu, logvar: (B, D) the proposal.
    Returns:
        z (k·B, D) and the log weights (k, B), fp32.
    """
    b = mu.shape[0]
    mu_k, logvar_k = mu.repeat(k, 1), logvar.repeat(k, 1)  # (k·B, D), sample-major
    z = sample_gaussian(mu_k, logvar_k, generator)
    return z, (log_joint(z).float() - gaussian_log_prob(z, mu_k, logvar_k)).view(k, b)


def iw_bound(log_w: Tensor) -> Tensor:
    """log (1/K) Σ_k w_k per row: log weights (K, B) → (B,), fp32."""
    return torch.logsumexp(log_w.float(), dim=0) - math.log(log_w.shape[0])


@torch.no_grad()
def iw_log_likelihood(model: TextVAEModel, ids: Tensor, lengths: Tensor, num_samples: int = 500,
                      chunk_rows: int = 512, generator: Optional[torch.Generator] = None,
                      log_z: float = 0.0) -> dict[str, Tensor]:
    """log p(x) ≥ log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x), per sentence.

    The K samples of a sentence are scored together: the batch is repeated so that one decoder
    pass covers ``chunk_rows`` (sentence, sample) rows. The log-sum-exp runs in fp32.

    Args:
        ids, lengths: one batch of sentences (B, T), (B,).
        num_samples: K (500 in He et al. 2019).
        chunk_rows: rows per decoder pass (memory ∝ chunk_rows · T · vocab).
        generator: the samples' stream (and the short-run chains').
        log_z: log Z of an energy-based prior (ignored for N(0, I)).
    Returns:
        ``iw_ll`` (B,) the bound, ``elbo`` (B,) the single-sample-average ELBO over the same
        samples (E_q[log p(x|z)] − KL, with KL in closed form; for an energy-based prior
        KL(q‖N) − mean_k f_α(z_k) + log Z), ``elbo_mc`` (B,) the mean of the
        log weights (the Monte-Carlo ELBO of the same samples: ``iw_ll`` ≥ ``elbo_mc`` exactly,
        by Jensen), ``rec`` (B,) mean −log p(x|z), ``kl`` (B,), and the proposal
        ``mu`` / ``logvar`` (B, D) the samples were drawn from.
    """
    if num_samples < 1:
        raise ValueError(f"the number of importance samples must be >= 1, got {num_samples}.")
    b = ids.shape[0]
    prior = model.prior
    mu, logvar = model.posterior(ids, lengths, generator)
    per_chunk = max(1, chunk_rows // b)  # samples per pass for the whole batch
    log_w, log_px_z, tilts = [], [], []
    for start in range(0, num_samples, per_chunk):
        k = min(per_chunk, num_samples - start)
        scored = {}

        def log_joint(z: Tensor) -> Tensor:
            scored["ll"] = -model.reconstruction_nll(ids.repeat(k, 1), lengths.repeat(k), z)[0]  # log p(x|z), fp32
            if prior.normalized:
                return scored["ll"] + prior.log_density(z)
            scored["tilt"] = prior.tilt(z)
            return scored["ll"] + prior.log_density(z) - log_z

        _, w = importance_log_weights(log_joint, mu, logvar, k, generator)
        log_w.append(w)
        log_px_z.append(scored["ll"].view(k, b))
        if "tilt" in scored:
            tilts.append(scored["tilt"].view(k, b))
    log_w_all, log_px_z_all = torch.cat(log_w), torch.cat(log_px_z)  # (K, B)
    kl = gaussian_kl(mu, logvar).sum(-1)
    if tilts:
        kl = kl - torch.cat(tilts).mean(0) + log_z
    rec = -log_px_z_all.mean(0)
    return {"iw_ll": iw_bound(log_w_all), "elbo": -rec - kl, "elbo_mc": log_w_all.float().mean(0), "rec": rec,
            "kl": kl, "mu": mu, "logvar": logvar}


def proposal_notes(model: TextVAEModel, log_z: float, log_z_se: float) -> dict[str, object]:
    """What ``textvae evaluate`` adds for short-run inference and an energy-based prior: which
    distribution ``kl``, ``mi``, ``mi_full``, ``au`` and the IW proposal are, and log Z with its
    standard error. Empty for an amortized VAE with a Gaussian prior."""
    notes: dict[str, object] = {}
    cfg = model.config
    if cfg.inference != "amortized":
        start = "N(0, I)" if cfg.inference == "langevin" else "a sample of the encoder's q(z|x)"
        notes["proposal"] = (f"diagonal Gaussian fitted to {cfg.langevin.fit_samples} short-run samples per sentence "
                             f"({cfg.langevin.steps} Langevin steps from {start}); kl, mi, mi_full, au and the BLEU "
                             "reconstructions (from its mean) are of this Gaussian")
    if not model.prior.normalized:
        notes.update(log_z=log_z, log_z_se=log_z_se, log_z_samples=cfg.ebm.log_z_samples,
                     prior="energy-based: kl is KL(q‖N(0, I)) − E_q f + log Z and iw_nll uses log p(z) = "
                           "f(z) + log N(z; 0, I) − log Z, log Z by importance sampling from N(0, I)")
    return notes
