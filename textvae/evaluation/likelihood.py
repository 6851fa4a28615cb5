"""Importance-weighted log-likelihood: the tightest number a VAE reports about p(x)."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from textvae.modeling import TextVAEModel
from textvae.objectives import gaussian_kl
from textvae.modeling.posterior import gaussian_log_prob, sample_gaussian, standard_normal_log_prob


@torch.no_grad()
def iw_log_likelihood(model: TextVAEModel, ids: Tensor, lengths: Tensor, num_samples: int = 500,
                      chunk_rows: int = 512, generator: Optional[torch.Generator] = None) -> dict[str, Tensor]:
    """log p(x) ≥ log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x), per sentence.

    The K samples of a sentence are scored together: the batch is repeated so that one decoder
    pass covers ``chunk_rows`` (sentence, sample) rows. The log-sum-exp runs in fp32.

    Args:
        ids, lengths: one batch of sentences (B, T), (B,).
        num_samples: K (500 in He et al. 2019).
        chunk_rows: rows per decoder pass (memory ∝ chunk_rows · T · vocab).
    Returns:
        ``iw_ll`` (B,) the bound, ``elbo`` (B,) the single-sample-average ELBO over the same
        samples (E_q[log p(x|z)] − KL, with KL in closed form), ``elbo_mc`` (B,) the mean of the
        log weights (the Monte-Carlo ELBO of the same samples: ``iw_ll`` ≥ ``elbo_mc`` exactly,
        by Jensen), ``rec`` (B,) mean −log p(x|z), ``kl`` (B,) the closed-form KL, and the
        posterior ``mu`` / ``logvar`` (B, D) the samples were drawn from.
    """
    if num_samples < 1:
        raise ValueError(f"the number of importance samples must be >= 1, got {num_samples}.")
    b = ids.shape[0]
    mu, logvar = model.posterior(ids, lengths)
    per_chunk = max(1, chunk_rows // b)  # samples per pass for the whole batch
    log_w, log_px_z = [], []
    for start in range(0, num_samples, per_chunk):
        k = min(per_chunk, num_samples - start)
        mu_k, logvar_k = mu.repeat(k, 1), logvar.repeat(k, 1)  # (k·B, D), sample-major
        z = sample_gaussian(mu_k, logvar_k, generator)
        ll, _ = model.reconstruction_nll(ids.repeat(k, 1), lengths.repeat(k), z)
        ll = -ll  # log p(x|z), fp32
        w = ll + standard_normal_log_prob(z) - gaussian_log_prob(z, mu_k, logvar_k)
        log_w.append(w.view(k, b))
        log_px_z.append(ll.view(k, b))
    log_w_all, log_px_z_all = torch.cat(log_w), torch.cat(log_px_z)  # (K, B)
    iw_ll = torch.logsumexp(log_w_all.float(), dim=0) - math.log(num_samples)
    kl = gaussian_kl(mu, logvar).sum(-1)
    rec = -log_px_z_all.mean(0)
    return {"iw_ll": iw_ll, "elbo": -rec - kl, "elbo_mc": log_w_all.float().mean(0), "rec": rec, "kl": kl,
            "mu": mu, "logvar": logvar}
