"""Run-directory checkpoints: model files + trainer state, written atomically, pruned, resumed."""

from __future__ import annotations

from textvae.errors import RunError, TextVAEError

import hashlib
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from textvae.inference.api import TextVAE
from textvae.modeling.vae import WEIGHTS_NAME
from textvae.utils.io import atomic_write, fsync_dir, os_error_of
from textvae.utils.layout import CHECKPOINT_PREFIX as PREFIX, CHECKPOINTS_DIR

STATE_NAME = "trainer_state.pt"
TRAINING_RECIPE_NAME = "training_recipe.yaml"
DAMAGED_PREFIX = "damaged-"
"""A checkpoint that --resume could not read is renamed ``damaged-step-N``: kept, but out of the way."""
_STEP_NAME = re.compile(rf"^{PREFIX}(\d+)$")
# What a crash can leave behind: write_model_dir's ".NAME.tmp-PID" / ".NAME.old-PID" folders,
# save_checkpoint's ".step-N.deleting-PID" and atomic_write's ".NAME.XXXXXXXX.tmp" files.
_LEFTOVER_DIR = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old|deleting)-\d+$")
_LEFTOVER_FILE = re.compile(r"^\..+\.tmp$")


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
    ``target``, so a crash leaves the previous one intact. The trainer state records the
    SHA-256 of the weights, so that --resume notices weights changed after they were written.

    Raises:
        OSError: a write failed (full disk, no permission); ``target`` keeps its previous content
            and no temporary folder is left behind.
    """
    target = Path(target)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    for leftover in (tmp, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    try:
        model.save_pretrained(tmp)
        if recipe_text is not None:
            atomic_write(tmp / TRAINING_RECIPE_NAME, lambda path: path.write_text(recipe_text, encoding="utf-8"))
        if extra is not None:
            extra = {**extra, "files": {WEIGHTS_NAME: file_sha256(tmp / WEIGHTS_NAME)}}
            atomic_write(tmp / STATE_NAME, lambda path: _torch_save(extra, path))
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException as err:
        if old.exists() and not target.exists():  # interrupted between the two renames
            os.replace(old, target)
        shutil.rmtree(tmp, ignore_errors=True)
        cause = os_error_of(err)
        if cause is not None and cause is not err:
            raise OSError(cause.errno, cause.strerror, str(target)) from err
        raise
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)
    return target


def _torch_save(obj: Any, path: Path) -> None:
    # Through a Python file object, so that a full disk surfaces as an OSError (torch.save on a
    # path reports it as an opaque RuntimeError from its C++ writer).
    with open(path, "wb") as fh:
        torch.save(obj, fh)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def clean_leftovers(run_dir: Path) -> list[Path]:
    """Remove what an interrupted write left in a run directory; return what was removed.

    A crash between write_model_dir's two renames leaves ``target`` missing and its previous
    version in ``.target.old-PID``: that one is put back rather than removed.
    """
    removed = []
    for root in (Path(run_dir), Path(run_dir) / CHECKPOINTS_DIR):
        if not root.is_dir():
            continue
        for path in sorted(root.iterdir()):
            match = _LEFTOVER_DIR.match(path.name)
            if match and path.is_dir():
                original = root / match["name"]
                if match["kind"] == "old" and not original.exists():
                    os.replace(path, original)
                    continue
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            elif _LEFTOVER_FILE.match(path.name) and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Finished step checkpoints, oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP_NAME.match(p.name) and p.is_dir() and (p / STATE_NAME).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def save_checkpoint(model: TextVAE, state: dict[str, Any], run_dir: Path, step: int, keep: int,
                    recipe_text: Optional[str] = None) -> Path:
    """Write ``checkpoints/step-NNNNNNNN`` and keep only the ``keep`` newest."""
    path = write_model_dir(model, Path(run_dir) / CHECKPOINTS_DIR / f"{PREFIX}{step:08d}", state, recipe_text)
    for old in checkpoint_dirs(run_dir)[:-keep]:
        # Renamed out of the listing first: a crash during the delete leaves a hidden leftover
        # (removed by clean_leftovers), never a half-deleted step-N that --resume could pick.
        doomed = old.with_name(f".{old.name}.deleting-{os.getpid()}")
        os.replace(old, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    return path


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """Read a trainer state with ``weights_only=True`` (tensors and plain containers, no code)."""
    path = Path(checkpoint) / STATE_NAME
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for damaged files
        raise RunError(f"{path} cannot be read ({type(err).__name__}: {first_sentence(err)}); the "
                              "file is missing, truncated or altered.") from err


def first_sentence(err: BaseException, limit: int = 160) -> str:
    """The start of an exception's message, on one line: library messages can run to paragraphs."""
    text = " ".join(str(err).split())
    end = text.find(". ")
    text = text[:end + 1] if 0 < end < limit else text
    return text if len(text) <= limit else text[:limit - 1] + "…"


def load_checkpoint(checkpoint: Path, device: str | torch.device = "cpu") -> tuple[dict[str, Any], TextVAE]:
    """Read and check a whole checkpoint: trainer state, weights (against their recorded
    SHA-256), config and tokenizer.

    Raises:
        RunError: any part is missing, unreadable or altered; the message says which.
    """
    checkpoint = Path(checkpoint)
    state = load_trainer_state(checkpoint)
    expected = state.get("files", {}).get(WEIGHTS_NAME) if isinstance(state, dict) else None
    weights = checkpoint / WEIGHTS_NAME
    if expected is not None and weights.is_file() and file_sha256(weights) != expected:
        raise RunError(f"{weights} is not the file that was saved (its SHA-256 differs from the one "
                              f"recorded in {STATE_NAME}): it was truncated or altered afterwards.")
    try:
        model = TextVAE.from_pretrained(checkpoint, device=device)
    except TextVAEError as err:
        raise RunError(str(err)) from err
    if model.tokenizer is None:
        raise RunError(f"{checkpoint} has no tokenizer/ folder; a checkpoint needs the exact tokenizer "
                              "its run started with.")
    return state, model


def set_aside(checkpoint: Path) -> Path:
    """Rename a damaged checkpoint ``step-N`` to ``damaged-step-N`` (kept for inspection, never
    resumed from or pruned) and return the new path."""
    checkpoint = Path(checkpoint)
    target = checkpoint.with_name(DAMAGED_PREFIX + checkpoint.name)
    if target.exists():
        shutil.rmtree(target)
    os.replace(checkpoint, target)
    return target
