"""metrics.jsonl (one JSON object per line) and TensorBoard scalars, written side by side."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

from textvae.utils.io import atomic_write_text

METRICS_NAME = "metrics.jsonl"


class MetricsLogger:
    """Append ``{"step", "split", ...}`` rows to ``run_dir/metrics.jsonl`` and to TensorBoard.

    On resume, rows past the resumed step (written after the checkpoint, before a crash)
    are dropped so each step appears once.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, purge_step: Optional[int] = None):
        self.path = Path(run_dir) / METRICS_NAME
        if purge_step is not None and self.path.is_file():
            # A run killed mid-write can leave a partial last line: it has no step and goes too.
            lines = self.path.read_text(encoding="utf-8").splitlines()
            kept = [line for line in lines if (step := _step_of(line)) is not None and step <= purge_step]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        self.file = open(self.path, "a", encoding="utf-8")
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=purge_step)

    def log(self, step: int, split: str, values: dict[str, Any]) -> None:
        row = {"step": step, "split": split, **values}
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(f"{split}/{key}", value, step)

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.close()


def _step_of(line: str) -> Optional[int]:
    """The step of a metrics row, or None for a line that is not a whole row."""
    try:
        return int(json.loads(line)["step"])
    except (json.JSONDecodeError, TypeError, ValueError, KeyError):
        return None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All rows of a run's metrics.jsonl (an empty list when there is none)."""
    path = Path(run_dir) / METRICS_NAME
    if not path.is_file():
        return []
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if lines and _step_of(lines[-1]) is None:
        lines.pop()  # a run killed while writing its last row
    return [json.loads(line) for line in lines]
