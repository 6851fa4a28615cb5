"""The diagonal Gaussian posterior q(z|x) and the standard normal prior."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

LOG_2PI = math.log(2.0 * math.pi)


class MeanBatchNorm(nn.Module):
    """BN-VAE's batch normalisation of μ (Zhu et al. 2020): γ·BN(μ) + β per dimension.

    γ is fixed (a buffer, not a parameter) and β is learned. Over a training batch BN gives each
    μ_d batch mean β_d and variance γ², so E_batch[μ_d²] = γ² + β_d² ≥ γ²: the μ part of the
    closed-form KL, μ_d²/2, averages at least γ²/2 per dimension and the KL cannot vanish.
    In ``eval()`` mode the running statistics are used, so a sentence's μ does not depend on the
    other sentences of its batch.

    Args:
        latent_dim: D.
        scale: γ > 0.
    """

    def __init__(self, latent_dim: int, scale: float):
        super().__init__()
        self.norm = nn.BatchNorm1d(latent_dim, affine=False)  # running statistics for eval()
        self.shift = nn.Parameter(torch.zeros(latent_dim))  # β
        # Not persistent: γ is model.posterior_batchnorm in config.json, the one place it lives.
        self.register_buffer("scale", torch.tensor(float(scale)), persistent=False)

    def forward(self, mu: Tensor) -> Tensor:
        """μ (B, D) → γ·BN(μ) + β (B, D), fp32."""
        # fp32 even under autocast: the batch variance of bf16/fp16 values is too coarse to hold
        # the floor E[μ²] ≥ γ² that is the point of BN-VAE, and the running statistics are fp32.
        mu = mu.float()
        if self.training and mu.shape[0] < 2:
            # A batch of one has no variance (BatchNorm1d raises): the last, short batch of an
            # epoch or one process's share of it. Normalise with the running statistics instead
            # and leave them as they are.
            normed = nn.functional.batch_norm(mu, self.norm.running_mean, self.norm.running_var,
                                              training=False, eps=self.norm.eps)
        else:
            normed = self.norm(mu)
        return self.scale * normed + self.shift


class GaussianHead(nn.Module):
    """Encoder features (B, F) → μ, log σ² (B, D) each.

    Args:
        in_dim: F.
        latent_dim: D.
        min_logvar: floor on log σ² (``model.min_logvar``).
        init_logvar: initial log σ² (``model.init_logvar``).
        batchnorm_scale: γ of BN-VAE's batch normalisation of μ (``model.posterior_batchnorm``);
            None for none. μ is then fp32 even under autocast.
    """

    def __init__(self, in_dim: int, latent_dim: int, min_logvar: Optional[float] = None,
                 init_logvar: float = 0.0, batchnorm_scale: Optional[float] = None):
        super().__init__()
        self.proj = nn.Linear(in_dim, 2 * latent_dim)
        self.min_logvar = min_logvar
        if init_logvar:
            with torch.no_grad():
                self.proj.bias[latent_dim:].fill_(init_logvar)
        self.mu_norm = MeanBatchNorm(latent_dim, batchnorm_scale) if batchnorm_scale is not None else None

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.proj(features).chunk(2, dim=-1)  # (B, D) each
        if self.mu_norm is not None:
            mu = self.mu_norm(mu)
        if self.min_logvar is not None:
            # A floor keeps q(z|x) a real distribution when no KL term holds σ up (α = 1).
            logvar = logvar.clamp_min(self.min_logvar)
        return mu, logvar


def sample_gaussian(mu: Tensor, logvar: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """z = μ + σ·ε, reparameterised (gradients flow to μ and log σ²)."""
    eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
    return mu + (0.5 * logvar).exp() * eps


def gaussian_log_prob(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; μ, σ²) summed over the last dimension, fp32. Broadcasts."""
    z, mu, logvar = z.float(), mu.float(), logvar.float()
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last dimension, fp32."""
    z = z.float()
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)
