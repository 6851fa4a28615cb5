"""SIGINT and SIGTERM during training: the first ends the step and saves, a second stops at once."""

from __future__ import annotations

import signal
from typing import Any, Optional

import torch

from textvae.training.distributed import Replicas, all_reduce_sum

# The shell's status for a process these signals end (128 + the signal's number): a run they
# interrupt is not finished, so `textvae train … && textvae evaluate …` stops there.
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


class StopSignals:
    """Records the first SIGINT/SIGTERM instead of dying on it; the loop asks :meth:`agreed`
    after each step. A second signal raises KeyboardInterrupt (the user will not wait).

    Use as a context manager: the previous handlers come back on exit.
    """

    def __init__(self) -> None:
        self.received: Optional[str] = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        # No printing here: a handler can run in the middle of another write to stdout.
        if self.received:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __enter__(self) -> "StopSignals":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous = {}

    def agreed(self, replicas: Replicas, device: torch.device) -> Optional[str]:
        """The signal this process received, if any; under DDP, if any rank received one, so
        that all stop after the same step."""
        if not replicas.enabled:
            return self.received
        flag = torch.tensor([float(self.received is not None)], device=device)
        if all_reduce_sum(flag, replicas).item() == 0:
            return None
        return self.received or "a stop signal (to another process)"
