"""β_t schedules for the KL weight (annealing), as pure functions of the step."""

from __future__ import annotations

import math

from textvae.config import KLScheduleConfig


def _constant(cfg: KLScheduleConfig, step: int, max_steps: int) -> float:
    return cfg.end


def _linear(cfg: KLScheduleConfig, step: int, max_steps: int) -> float:
    t = min(step / cfg.warmup_steps, 1.0)
    return cfg.start + (cfg.end - cfg.start) * t


def _logistic(cfg: KLScheduleConfig, step: int, max_steps: int) -> float:
    # Bowman et al. 2016: a sigmoid centred at warmup_steps / 2, nearly flat at both ends.
    mid = cfg.warmup_steps / 2
    k = 10.0 / cfg.warmup_steps
    return cfg.start + (cfg.end - cfg.start) / (1.0 + math.exp(-k * (step - mid)))


def _cyclical(cfg: KLScheduleConfig, step: int, max_steps: int) -> float:
    # Fu et al. 2019: `cycles` equal periods; each ramps linearly from start to end over
    # `ratio` of the period, then holds end.
    period = max_steps / cfg.cycles
    phase = (step % period) / period
    return cfg.start + (cfg.end - cfg.start) * min(phase / cfg.ratio, 1.0)


SCHEDULES = {"constant": _constant, "linear": _linear, "logistic": _logistic, "cyclical": _cyclical}


def warmup_end(cfg: KLScheduleConfig, max_steps: int) -> int:
    """The step from which β_t stays at its final value: 0 (constant), ``warmup_steps`` (linear,
    logistic), ``max_steps`` (cyclical: every cycle ramps again). Until then a worse validation
    −ELBO is the schedule at work, not overfitting, so ``train.patience`` does not count it."""
    return {"constant": 0, "linear": cfg.warmup_steps, "logistic": cfg.warmup_steps}.get(cfg.kind, max_steps)


def kl_beta(cfg: KLScheduleConfig, step: int, max_steps: int) -> float:
    """β_t at optimizer step ``step`` (0-based) of a run of ``max_steps`` steps."""
    return SCHEDULES[cfg.kind](cfg, step, max_steps)
