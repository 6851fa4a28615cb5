"""Maximum mean discrepancy between samples of q(z) and of the prior: kernels and the estimator."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

IMQ_SCALES: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def _sq_dists(a: Tensor, b: Tensor) -> Tensor:
    # ‖a‖² + ‖b‖² − 2ab is fast but can go slightly negative; clamp keeps kernels ≤ 1.
    d = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1).unsqueeze(0) - 2.0 * a @ b.T
    return d.clamp_min(0.0)


def rbf_kernel(a: Tensor, b: Tensor, bandwidth: Optional[float] = None) -> Tensor:
    """k(a, b) = exp(−‖a−b‖² / bandwidth), bandwidth = 2σ² (default 2·dim z). (N, M)."""
    bandwidth = 2.0 * a.shape[1] if bandwidth is None else bandwidth
    return torch.exp(-_sq_dists(a, b) / bandwidth)


def imq_kernel(a: Tensor, b: Tensor, bandwidth: Optional[float] = None,
               scales: Sequence[float] = IMQ_SCALES) -> Tensor:
    """Inverse multiquadratic kernel summed over scales (Tolstikhin et al., WAE):
    k(a, b) = Σ_s C_s / (C_s + ‖a−b‖²), C_s = bandwidth·s, bandwidth defaulting to 2·dim z. (N, M)."""
    base = 2.0 * a.shape[1] if bandwidth is None else bandwidth
    d = _sq_dists(a, b)
    return sum(base * s / (base * s + d) for s in scales)


KERNELS: dict[str, Callable[..., Tensor]] = {"rbf": rbf_kernel, "imq": imq_kernel}


def mmd(x: Tensor, y: Tensor, kernel: str = "imq", bandwidth: Optional[float] = None) -> Tensor:
    """Unbiased MMD² U-statistic between samples x (n, D) and y (m, D), in fp32.

    Can come out slightly negative when the distributions match. Needs n, m >= 2.
    """
    if kernel not in KERNELS:
        raise ValueError(f"unknown MMD kernel {kernel!r}; choose one of {sorted(KERNELS)}")
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples on each side, got {n} and {m}")
    k = KERNELS[kernel]
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, y = x.float(), y.float()
        kxx, kyy, kxy = k(x, x, bandwidth), k(y, y, bandwidth), k(x, y, bandwidth)
        # U-statistic: the diagonal (i = i') is left out of the within-sample means.
        sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        return sxx + syy - 2.0 * kxy.mean()
