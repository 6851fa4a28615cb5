"""One accumulator for every average textvae reports: sums and counts, divided last.

Validation, ``textvae evaluate`` and the trainer's log window all average per-sentence terms
over batches of different sizes; adding sums and counts and dividing once weighs every sentence
alike, where a mean of batch means would not.
"""

from __future__ import annotations

from typing import Any, Iterable, Union

import torch

Number = Union[float, int, torch.Tensor]


class Sums:
    """Named running sums. A value may be a Python number or a 0-d tensor: tensors are added on
    their device, with no host sync until a total is read.

    >>> s = Sums(); s.add(rec=12.0, sentences=3); s.add(rec=4.0, sentences=1)
    >>> s.means(["rec"])
    {'rec': 4.0}
    """

    def __init__(self) -> None:
        self._sums: dict[str, Number] = {}

    def add(self, **values: Number) -> None:
        for key, value in values.items():
            self._sums[key] = self._sums[key] + value if key in self._sums else value

    def __contains__(self, key: str) -> bool:
        return key in self._sums

    def __getitem__(self, key: str) -> float:
        """The total of ``key`` as a float (0.0 when nothing was added)."""
        value = self._sums.get(key, 0.0)
        return value.item() if isinstance(value, torch.Tensor) else float(value)

    def raw(self, key: str) -> Any:
        """The total of ``key`` as it is held (a tensor stays a tensor)."""
        return self._sums.get(key, 0.0)

    def means(self, keys: Iterable[str], count: str = "sentences") -> dict[str, float]:
        """``total[key] / total[count]`` for each key (a key never added counts 0)."""
        n = self[count]
        return {key: self[key] / n for key in keys}

    def reset(self) -> None:
        self._sums = {}

    def totals(self) -> dict[str, float]:
        """Every total as a Python number (what :meth:`from_totals` takes back, e.g. through JSON)."""
        return {key: value.item() if isinstance(value, torch.Tensor) else value for key, value in self._sums.items()}

    @classmethod
    def from_totals(cls, totals: dict[str, float]) -> "Sums":
        sums = cls()
        sums._sums = dict(totals)
        return sums
