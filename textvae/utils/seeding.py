"""Every stochastic choice takes a seed: the two ways textvae turns one into randomness."""

from __future__ import annotations

import random
from typing import Optional

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (a run's own stream)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def seeded_generator(device: torch.device | str, seed: Optional[int]) -> Optional[torch.Generator]:
    """A private generator on ``device`` seeded with ``seed``, or None (torch's global one) when
    ``seed`` is None; drawing from it never moves the global stream."""
    return torch.Generator(device=device).manual_seed(seed) if seed is not None else None
