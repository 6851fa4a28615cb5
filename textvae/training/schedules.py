"""Learning-rate schedules as multipliers of ``train.lr`` (used through LambdaLR)."""

from __future__ import annotations

import math
from typing import Callable

from textvae.config import TrainConfig


def lr_multiplier(cfg: TrainConfig) -> Callable[[int], float]:
    """step → lr factor: linear warm-up, then constant, linear decay or cosine decay to min_lr_ratio."""

    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "constant":
            return 1.0
        progress = min((step - cfg.warmup_steps) / max(cfg.max_steps - cfg.warmup_steps, 1), 1.0)
        if cfg.lr_schedule == "warmup_linear":
            shape = 1.0 - progress
        else:  # warmup_cosine
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * shape

    return factor
