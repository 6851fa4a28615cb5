"""Run-directory checkpoints: model files + trainer state, written atomically, pruned, resumed."""

from __future__ import annotations

from textvae.errors import TextVAEError

import os
import random
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from textvae.modeling import TextVAE
from textvae.utils.io import atomic_write

STATE_NAME = "trainer_state.pt"
TRAINING_RECIPE_NAME = "training_recipe.yaml"
CHECKPOINTS_DIR = "checkpoints"
PREFIX = "step-"


class CheckpointError(ValueError, TextVAEError):
    """A checkpoint that cannot be used to resume; the message says which one and why."""


def rng_state() -> dict[str, Any]:
    """Every RNG a training step can draw from."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    # numpy's key array travels as a tensor: weights_only loading accepts no numpy objects.
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    # weights_only loading returns the tuples inside RNG states as lists.
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value


def write_model_dir(model: TextVAE, target: Path, extra: Optional[dict[str, Any]] = None,
                    recipe_text: Optional[str] = None) -> Path:
    """Write a complete model directory (plus an optional trainer state and the recipe that
    trained it) and swap it into place.

    Everything goes into a hidden sibling first; only a finished directory is renamed to
    ``target``, so a crash leaves the previous one intact.
    """
    target = Path(target)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    if recipe_text is not None:
        atomic_write(tmp / TRAINING_RECIPE_NAME, lambda path: path.write_text(recipe_text, encoding="utf-8"))
    if extra is not None:
        atomic_write(tmp / STATE_NAME, lambda path: torch.save(extra, path))
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old)
    return target


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Finished step checkpoints, oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / STATE_NAME).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def save_checkpoint(model: TextVAE, state: dict[str, Any], run_dir: Path, step: int, keep: int,
                    recipe_text: Optional[str] = None) -> Path:
    """Write ``checkpoints/step-NNNNNNNN`` and keep only the ``keep`` newest."""
    path = write_model_dir(model, Path(run_dir) / CHECKPOINTS_DIR / f"{PREFIX}{step:08d}", state, recipe_text)
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """Read a trainer state with ``weights_only=True`` (tensors and plain containers, no code)."""
    path = Path(checkpoint) / STATE_NAME
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for damaged files
        raise CheckpointError(
            f"{path} cannot be read ({type(err).__name__}: {err}). The checkpoint is damaged; delete "
            f"{checkpoint} so that --resume takes the one before it.") from err
