"""Statistics of the latent code: mutual information I_q(x; z) and active units."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from textvae.modeling.posterior import LOG_2PI


def log_q_z_given_each_x(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log q(z_i | x_j) for every pair: z (N, D), μ/log σ² (M, D) → (N, M), fp32."""
    z, mu, logvar = z.float(), mu.float(), logvar.float()
    dev = z.unsqueeze(1) - mu.unsqueeze(0)  # (N, M, D)
    return -0.5 * ((dev.pow(2) / logvar.exp().unsqueeze(0)).sum(-1)
                   + mu.shape[1] * LOG_2PI + logvar.sum(-1).unsqueeze(0))


def mutual_information(mu: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
    """Minibatch estimate of I_q(x; z) (Hoffman & Johnson 2016; He et al. 2019).

    I = E_x E_q(z|x)[log q(z|x)] − E_q(z)[log q(z)], with log q(z_i) the log-mean-exp of
    log q(z_i|x_j) over the batch's posteriors. He et al.'s code takes the first term in closed
    form; here it is read off the same samples z_i. Both have the same expectation, but this one
    is exactly 0 when every posterior is the same and never exceeds log N (the own term of the
    log-mean-exp bounds each summand), so its noise cannot leave [·, log N].

    Args:
        mu, logvar: (N, D) posteriors of N sentences; z: (N, D) one sample from each.
    Returns:
        () tensor, nats.
    """
    return mutual_information_full(mu, logvar, z, chunk=z.shape[0])


def mutual_information_full(mu: Tensor, logvar: Tensor, z: Tensor, chunk: int = 512) -> Tensor:
    """I_q(x; z) with the aggregate posterior taken over all N posteriors given (a whole split).

    Same estimator as :func:`mutual_information`; computed in chunks of z so memory stays
    O(chunk · N · D).
    """
    n = mu.shape[0]
    total = torch.zeros((), dtype=torch.float32, device=mu.device)
    for start in range(0, n, chunk):
        block = log_q_z_given_each_x(z[start:start + chunk], mu, logvar)  # (c, N)
        own = block.diagonal(offset=start)  # log q(z_i | x_i)
        total = total + (own - torch.logsumexp(block, dim=1) + math.log(n)).sum()
    return total / n


def active_units(mu: Tensor, threshold: float = 0.01) -> int:
    """Number of dimensions d with Cov_x(E_q(z|x)[z_d]) > threshold (Burda et al. 2016). mu: (N, D)."""
    if mu.shape[0] < 2:
        return 0
    return int((mu.float().var(dim=0) > threshold).sum().item())
