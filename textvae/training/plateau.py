"""What one validation means for the run: a new best, one more without, a restart at a lower
learning rate (``train.lr_decay``), or the stop (``train.patience``).

Kept apart from the loop as a pure function of the counters, so the rule a benchmark states is
the rule tested.
"""

from __future__ import annotations

from typing import Literal

from textvae.config.schema import TrainConfig
from textvae.training.state import TrainerState

Action = Literal["best", "wait", "decay", "stop"]


def plateau_action(state: TrainerState, value: float, cfg: TrainConfig, counts: bool) -> Action:
    """Update ``state`` for a validation ``value`` of ``cfg.monitor`` at ``state.step`` and say what follows.

    ``counts``: whether a validation without improvement counts toward ``patience`` (not during a
    KL warm-up, where the bound is still moving for reasons of its own).

    - ``best``: a new best (the caller writes ``best/``); the count of bad validations restarts.
    - ``wait``: no better, and patience not yet run out.
    - ``decay``: a plateau with restarts left: the caller reloads ``best/`` and lowers the rate;
      ``state.lr_decays`` is already counted and the bad validations cleared.
    - ``stop``: a plateau with no restart left (or no ``lr_decay``).
    """
    if value < state.best_loss:
        state.best_loss, state.best_step, state.bad_evals = value, state.step, 0
        return "best"
    if counts:
        state.bad_evals += 1
    if cfg.patience is None or state.bad_evals < cfg.patience:
        return "wait"
    if cfg.lr_decay is not None and state.lr_decays < cfg.max_lr_decays:
        state.lr_decays += 1
        state.bad_evals = 0
        return "decay"
    return "stop"


def decay_factor(cfg: TrainConfig, state: TrainerState) -> float:
    """The factor the plateaus so far put on the scheduled learning rate."""
    return cfg.lr_decay ** state.lr_decays if cfg.lr_decay is not None else 1.0
