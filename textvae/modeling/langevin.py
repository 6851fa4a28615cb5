"""Short-run Langevin chains (Pang, Han, Nijkamp, Zhu, Wu 2020; Pang, Nijkamp, Han, Wu 2021):
the step-size and noise schedules, the batched sampler, and the Gaussian fitted to its samples.

A chain starts at z₀ and takes K updates of every row at once,

    z ← z + (s_k / 2)·∇_z log p(z) + τ_k·√s_k·ε,   ε ~ N(0, I),

where log p is any per-row log-density up to a constant (the posterior's log p(x, z), or an
energy-based prior's f(z) − ‖z‖²/2). With τ_k = 1 this is the unadjusted Langevin algorithm,
whose samples approach p as the steps shrink and grow in number; the short-run chains of the
papers keep K small and treat the chain itself as the sampler.

How it runs: z and its updates are fp32 and the log-density is summed in fp32 (the network
passes inside it may run in an autocast dtype); the gradient is taken with respect to z alone
(``torch.autograd.grad``), so no parameter gets a ``.grad`` and the chain's result is detached: no
gradient flows through the chain. The noise comes from the ``torch.Generator`` passed in. The
loop never reads a value back to the host: whether every step stayed finite is read once, after
the last step, and a chain that did not stops with the step size it had and its last finite step.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator, Optional, Sequence

import torch
from torch import Tensor, nn

from textvae.config import ChainScheduleConfig, LangevinConfig
from textvae.errors import RunError

LogDensity = Callable[[Tensor], Tensor]
"""z (N, D) fp32 → log p(z) (N,) up to a constant, differentiable in z."""
Score = Callable[[Tensor], Tensor]
"""z (N, D) fp32 → ∇_z log p(z) (N, D): the chain's gradient written out by hand, when cheaper than autograd."""


def schedule_values(schedule: ChainScheduleConfig, steps: int) -> list[float]:
    """The ``steps`` values of a schedule: ``values`` as given, else ``start`` → ``end`` evenly
    spaced (``linear``) or by a constant ratio (``geometric``), both ends included; ``start``
    throughout when ``end`` is null."""
    if schedule.values is not None:
        if len(schedule.values) != steps:
            raise ValueError(f"a schedule of {len(schedule.values)} values for {steps} steps")
        return [float(v) for v in schedule.values]
    start = float(schedule.start)
    end = start if schedule.end is None else float(schedule.end)
    if steps == 1:
        return [start]
    t = [k / (steps - 1) for k in range(steps)]
    if schedule.kind == "geometric":
        return [start * (end / start) ** u for u in t]
    return [start + (end - start) * u for u in t]


def chain_schedules(cfg: LangevinConfig) -> tuple[list[float], list[float]]:
    """(step sizes s_k, noise scales τ_k) of a chain's config, K = ``cfg.steps`` each."""
    return schedule_values(cfg.step_size, cfg.steps), schedule_values(cfg.noise, cfg.steps)


def langevin_chain(log_density: LogDensity, z0: Tensor, step_sizes: Sequence[float], noise_scales: Sequence[float],
                   generator: Optional[torch.Generator] = None, name: str = "the Langevin chain",
                   score: Optional[Score] = None) -> Tensor:
    """Run K = len(step_sizes) Langevin updates from ``z0`` (N, D); return the final z, detached, fp32.

    Args:
        log_density: z → (N,) log p(z) up to a constant (summed in fp32).
        step_sizes, noise_scales: s_k > 0 and τ_k >= 0, one per step.
        generator: the chain's noise stream (torch's global one when None).
        name: how the error names the chain's settings (a recipe key such as ``model.langevin``).
        score: ∇_z log_density in closed form, used instead of autograd when given (a small MLP's
            chain is bound by per-operation overhead, and the hand-written gradient runs half the
            operations of autograd's graph).
    Raises:
        RunError: some z became non-finite; the message names the step sizes and the last step
            at which every z was finite.
    """
    if len(step_sizes) != len(noise_scales) or not step_sizes:
        raise ValueError(f"{len(step_sizes)} step sizes and {len(noise_scales)} noise scales: one of each per step")
    z = z0.detach().float()
    finite = []
    with torch.enable_grad():
        for s, tau in zip(step_sizes, noise_scales):
            if score is not None:
                grad = score(z)
            else:
                z.requires_grad_(True)
                grad, = torch.autograd.grad(log_density(z).float().sum(), z)
            noise = torch.randn(z.shape, device=z.device, dtype=z.dtype, generator=generator)
            z = (z.detach() + (0.5 * s) * grad + (tau * math.sqrt(s)) * noise).detach()
            finite.append(torch.isfinite(z).all())
    good = torch.stack(finite).long().cumprod(0).sum()  # leading finite steps; read once, after the loop
    if int(good) < len(step_sizes):
        last = int(good)
        raise RunError(
            f"{name} produced non-finite z at step {last + 1} of {len(step_sizes)} (step size "
            f"{step_sizes[last]:g} there, noise scale {noise_scales[last]:g}); the last finite step was "
            f"{last if last else 'none (z0 itself)'}. The chain diverges: lower {name}.step_size (its start and "
            "end, or values), or use fewer steps at the large sizes.")
    return z


def fit_gaussian(samples: Tensor, min_variance: float = 1e-4) -> tuple[Tensor, Tensor]:
    """The diagonal Gaussian fitted to S samples of each row: samples (S, B, D) → μ, log σ² (B, D).

    μ is the sample mean; σ² the unbiased sample variance, floored at ``min_variance``. Its
    density is exact, so importance sampling with it as the proposal gives an unbiased estimate
    of p(x) (a valid bound on −log p(x) in expectation), however well it fits.
    """
    if samples.shape[0] < 2:
        raise ValueError(f"fitting a variance needs at least 2 samples per row, got {samples.shape[0]}")
    samples = samples.float()
    return samples.mean(0), samples.var(0, unbiased=True).clamp_min(min_variance).log()


@contextlib.contextmanager
def input_gradients(module: nn.Module) -> Iterator[None]:
    """Let ``module`` be differentiated with respect to its inputs while in ``eval()`` mode.

    cuDNN computes an RNN's backward only in training mode. An RNN without dropout between layers
    computes the same in either mode, so it is switched to training mode for the chain and back;
    one with such dropout runs the chain with cuDNN off instead. Nothing changes on a CPU.
    """
    rnns = [m for m in module.modules() if isinstance(m, nn.RNNBase) and not m.training]
    on_cuda = any(p.is_cuda for p in module.parameters())
    if not rnns or not on_cuda:
        yield
        return
    if all(m.dropout == 0 or m.num_layers == 1 for m in rnns):
        for m in rnns:
            m.train()
        try:
            yield
        finally:
            for m in rnns:
                m.eval()
    else:
        with torch.backends.cudnn.flags(enabled=False):
            yield
