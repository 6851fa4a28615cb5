"""The diagonal Gaussian posterior q(z|x) and the standard normal prior."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

LOG_2PI = math.log(2.0 * math.pi)


class GaussianHead(nn.Module):
    """Encoder features (B, F) → μ, log σ² (B, D) each."""

    def __init__(self, in_dim: int, latent_dim: int, min_logvar: Optional[float] = None,
                 init_logvar: float = 0.0):
        super().__init__()
        self.proj = nn.Linear(in_dim, 2 * latent_dim)
        self.min_logvar = min_logvar
        if init_logvar:
            with torch.no_grad():
                self.proj.bias[latent_dim:].fill_(init_logvar)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.proj(features).chunk(2, dim=-1)
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
