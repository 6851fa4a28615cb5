"""What a checkpoint must hold, besides the weights, for resuming to be exact; what a run returns."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


@dataclass
class TrainerState:
    """The loop's counters: where it is in the data and what it has seen.

    Saved in every checkpoint's ``trainer_state.pt`` next to the optimizer, scheduler, scaler and
    RNG states (see :meth:`textvae.training.trainer.Trainer.checkpoint_state`)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    """Batches of ``epoch`` already trained on: resuming skips exactly these."""
    best_loss: float = math.inf
    bad_evals: int = 0
    """Validations in a row without a better loss (``train.patience``)."""
    best_step: Optional[int] = None
    """The step of the best validation so far (what ``best/`` holds)."""
    lr_decays: int = 0
    """Plateaus so far at which the run restarted from ``best/`` at a lower rate (``train.lr_decay``)."""
    nonfinite_total: int = 0
    overflow_total: int = 0
    """fp16 steps the GradScaler skipped (counted apart from non-finite steps)."""
    world_size: int = 1
    aggressive_active: bool = False
    """Aggressive inference training (``objective.aggressive``) is still on: set when a run with it
    enabled starts, cleared for good at a validation whose MI did not rise."""
    previous_valid_mi: Optional[float] = None
    """While aggressive training is on: the last validation's MI, which the next must exceed."""
    aggressive_end_step: Optional[int] = None
    """The step at whose validation aggressive training ended."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainerState":
        """The counters of a checkpoint's state dict; keys added since it was written take their
        defaults (``overflow_total``, ``world_size``, the ``aggressive`` ones, ``best_step``, ``lr_decays``)."""
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})


@dataclass
class TrainResult:
    run_dir: Path
    model_dir: Optional[Path]
    """``run_dir/model``; None when the run was interrupted (its checkpoint is what it left)."""
    best_dir: Optional[Path]
    step: int
    metrics: dict[str, float]
    seconds: float
    interrupted: bool = False
    nonfinite_steps: int = 0
    data_stats: dict[str, Any] = field(default_factory=dict)
    stop_signal: Optional[str] = None
    """``SIGINT`` or ``SIGTERM`` when a signal interrupted the run."""
