"""The prior p(z): the standard normal, or a latent-space energy-based prior (Pang et al. 2020).

Both answer the same four questions, so the model, the objective and the evaluation never ask
which one they have:

- ``tilt(z)``: f(z), the log-ratio of the prior's unnormalised density to N(0, I) (0 for the
  Gaussian);
- ``log_density(z)``: log N(z; 0, I) + f(z), the log-density up to the constant log Z
  (log Z = 0 for the Gaussian, estimated by :func:`estimate_log_z` for the energy);
- ``sample(n)``: draws (N(0, I) directly; the energy by a short-run Langevin chain from N(0, I));
- ``normalized``: whether ``log_density`` is already the log-density.

The energy-based prior p_α(z) = exp(f_α(z))·N(z; 0, I) / Z(α) has an MLP f_α. Its last layer starts
at zero, so a fresh one *is* N(0, I) (f ≡ 0, Z = 1) and its first samples are the Gaussian's.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from textvae.config import EnergyPriorConfig, ModelConfig
from textvae.modeling.langevin import chain_schedules, langevin_chain
from textvae.modeling.posterior import standard_normal_log_prob

ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "silu": nn.SiLU, "leaky_relu": nn.LeakyReLU}


def _gelu_slope(a: Tensor) -> Tensor:  # d/da a·Φ(a) = Φ(a) + a·φ(a), the exact (erf) GELU of nn.GELU()
    return 0.5 * (1.0 + torch.erf(a * (0.5 ** 0.5))) + a * torch.exp(-0.5 * a * a) * (2 * math.pi) ** -0.5


def _silu_slope(a: Tensor) -> Tensor:  # d/da a·σ(a) = σ(a)·(1 + a·(1 − σ(a)))
    sig = torch.sigmoid(a)
    return sig * (1.0 + a * (1.0 - sig))


def _leaky_relu_slope(a: Tensor) -> Tensor:  # nn.LeakyReLU()'s default negative slope, 0.01
    return torch.where(a > 0, torch.ones_like(a), torch.full_like(a, 0.01))


SLOPES: dict[str, Callable[[Tensor], Tensor]] = {"gelu": _gelu_slope, "silu": _silu_slope,
                                                 "leaky_relu": _leaky_relu_slope}


class GaussianPrior(nn.Module):
    """p(z) = N(0, I). No parameters: a model with it saves the same weights as before priors existed."""

    normalized = True

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim

    def tilt(self, z: Tensor) -> Tensor:
        """f(z) ≡ 0: (N,) fp32 zeros."""
        return z.new_zeros(z.shape[:-1], dtype=torch.float32)

    def log_density(self, z: Tensor) -> Tensor:
        """log N(z; 0, I), (N,) fp32."""
        return standard_normal_log_prob(z)

    def sample(self, n: int, device: torch.device | str, generator: Optional[torch.Generator] = None) -> Tensor:
        """(n, D) draws of N(0, I)."""
        return torch.randn(n, self.latent_dim, device=device, generator=generator)


class EnergyPrior(nn.Module):
    """p_α(z) ∝ exp(f_α(z))·N(z; 0, I) with f_α an MLP (``model.ebm``).

    Args:
        latent_dim: D.
        cfg: the ``model.ebm`` section (hidden widths, activation, prior chain).
    """

    normalized = False

    def __init__(self, latent_dim: int, cfg: EnergyPriorConfig):
        super().__init__()
        self.latent_dim = latent_dim
        widths = [latent_dim, *cfg.hidden_dims]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), ACTIVATIONS[cfg.activation]()]
        last = nn.Linear(widths[-1], 1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)
        self.slope = SLOPES[cfg.activation]
        self.step_sizes, self.noise_scales = chain_schedules(cfg.langevin)

    def tilt(self, z: Tensor) -> Tensor:
        """f_α(z): z (N, D) → (N,), always in fp32 (autocast off: a small MLP whose gradient guides a chain)."""
        with torch.autocast(z.device.type, enabled=False):
            return self.net(z.float()).squeeze(-1)

    def log_density(self, z: Tensor) -> Tensor:
        """f_α(z) + log N(z; 0, I): log p_α(z) + log Z, (N,) fp32."""
        return self.tilt(z) + standard_normal_log_prob(z)

    def score(self, z: Tensor) -> Tensor:
        """∇_z log_density(z) = ∇_z f_α(z) − z, (N, D) fp32, by the chain rule written out: one
        forward pass keeping each layer's input, then back through the weights transposed and the
        activations' slopes (no autograd graph, no parameter gradient). Equal to autograd's to rounding."""
        modules = list(self.net) if isinstance(self.net, nn.Sequential) else [self.net]
        with torch.autocast(z.device.type, enabled=False), torch.no_grad():
            h, inputs = z.float(), []
            for module in modules[:-1]:
                inputs.append(h)
                h = module(h)
            g = modules[-1].weight.float().expand(z.shape[0], -1)  # ∂f/∂(input of the last Linear)
            for module, x in zip(reversed(modules[:-1]), reversed(inputs)):
                g = g @ module.weight.float() if isinstance(module, nn.Linear) else g * self.slope(x)
            return g - z.float()

    def sample(self, n: int, device: torch.device | str, generator: Optional[torch.Generator] = None) -> Tensor:
        """(n, D) short-run samples: the ``model.ebm.langevin`` chain from N(0, I), detached."""
        z0 = torch.randn(n, self.latent_dim, device=device, generator=generator)
        return langevin_chain(self.log_density, z0, self.step_sizes, self.noise_scales, generator,
                              name="model.ebm.langevin", score=self.score)


PRIORS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "gaussian": lambda cfg: GaussianPrior(cfg.latent_dim),
    "ebm": lambda cfg: EnergyPrior(cfg.latent_dim, cfg.ebm),
}


def build_prior(cfg: ModelConfig) -> nn.Module:
    """The prior ``model.prior`` names."""
    return PRIORS[cfg.prior](cfg)


@torch.no_grad()
def estimate_log_z(tilt: Callable[[Tensor], Tensor], latent_dim: int, num_samples: int,
                   device: torch.device | str = "cpu", generator: Optional[torch.Generator] = None,
                   chunk: int = 16384) -> tuple[float, float]:
    """log Z = log E_{z~N(0,I)}[exp f(z)] by importance sampling from N(0, I), and its standard error.

    With w_i = exp(f(z_i)), log Ẑ = log mean(w) (computed stably in float64), and the delta method
    gives its standard error sd(w) / (√M · mean(w)). log Ẑ is consistent but, being a log of a mean,
    low by about se²/2 on average; the standard error says how far to trust it (a large one means
    f is too peaked for N(0, I) proposals and more samples are needed).

    Args:
        tilt: z (n, D) → f(z) (n,).
        num_samples: M >= 2.
    Returns:
        (log Ẑ, standard error), Python floats.
    """
    if num_samples < 2:
        raise ValueError(f"estimating log Z needs at least 2 samples, got {num_samples}")
    parts = []
    for start in range(0, num_samples, chunk):
        z = torch.randn(min(chunk, num_samples - start), latent_dim, device=device, generator=generator)
        parts.append(tilt(z).double())
    f = torch.cat(parts)
    top = f.max()
    w = (f - top).exp()
    mean = w.mean()
    log_z = top + mean.log()
    se = w.std() / (math.sqrt(num_samples) * mean)
    return float(log_z), float(se)


def prior_log_z(prior: nn.Module, num_samples: int, device: torch.device | str,
                generator: Optional[torch.Generator] = None) -> tuple[float, float]:
    """(log Z, its standard error) of ``prior``: (0, 0) for a normalised one, else :func:`estimate_log_z`."""
    if prior.normalized:
        return 0.0, 0.0
    return estimate_log_z(prior.tilt, prior.latent_dim, num_samples, device, generator)
