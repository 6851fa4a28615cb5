"""KL(q(z|x) ‖ N(0, I)) for a diagonal Gaussian, and free bits."""

from __future__ import annotations

import torch
from torch import Tensor


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """Closed-form KL of N(μ, σ²) from N(0, 1), per dimension, in fp32.

    Args:
        mu, logvar: (B, D) posterior parameters.
    Returns:
        (B, D) KL in nats; sum over D for the per-sentence KL.
    """
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def free_bits_kl(kl_per_dim: Tensor, free_bits: float, mode: str = "dim") -> Tensor:
    """The KL sum that enters the loss, with a free-bits floor on the batch mean.

    ``dim`` (Kingma et al. 2016): each dimension's batch-mean KL is floored at ``free_bits``
    nats, so dimensions below the floor get no gradient pushing them to the prior.
    ``batch``: the batch-mean total KL is floored at ``free_bits`` (a target rate).
    Returns a *sum over sentences* (mean × B) so that division by the sentence count
    happens last, as for every other term.

    Args:
        kl_per_dim: (B, D) per-sentence, per-dimension KL.
    """
    n = kl_per_dim.shape[0]
    if free_bits <= 0:
        return kl_per_dim.sum()
    if mode == "dim":
        return n * torch.clamp(kl_per_dim.mean(0), min=free_bits).sum()
    if mode == "batch":
        return n * torch.clamp(kl_per_dim.sum(1).mean(), min=free_bits)
    raise ValueError(f"free bits mode must be 'dim' or 'batch', got {mode!r}")
