"""The run-directory contract: what may be written where, when a run may resume, and what to
tell the user when a write fails.

    runs/qs/
      recipe.yaml  data_stats.json  metrics.jsonl  summary.json  report.md  tb/
      checkpoints/step-NNNNNNNN/     model files + trainer_state.pt (see checkpoint.py)
      model/  best/                  the final and the best model directories

A directory holding files is never mixed with a new run: it is resumed (same recipe, bar the
keys in :data:`RESUMABLE_CHANGES`), replaced (``--overwrite``, only when it looks like a run) or
refused. Space is checked before training, not at the first checkpoint.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from textvae.config import Recipe, read_yaml, recipe_from_dict
from textvae.errors import RunError, TextVAEError
from textvae.training.checkpoint import (checkpoint_dirs, first_sentence, load_checkpoint, load_trainer_state,
                                         set_aside)
from textvae.utils.io import DISK_FULL, probe_writable
from textvae.utils.layout import BEST_DIR, CHECKPOINTS_DIR, MODEL_DIR
from textvae.utils.layout import RUN_RECIPE_NAME as RECIPE_NAME

__all__ = ["BEST_DIR", "CHECKPOINTS_DIR", "MODEL_DIR", "RECIPE_NAME", "RESUMABLE_CHANGES", "check_free_space",
           "prepare_run_dir", "recorded_numerics", "resume_command", "search_checkpoints", "writing"]

# Keys that may differ when resuming: extending a run is a normal thing to do.
RESUMABLE_CHANGES = {("train", "max_steps"), ("train", "patience"), ("train", "eval_every"),
                     ("train", "save_every"), ("train", "log_every"), ("train", "keep_checkpoints"),
                     ("train", "tensorboard"), ("train", "compile"), ("train", "flush_denormal"),
                     # The stopping rule, like patience: a run may be continued under a longer one.
                     ("train", "lr_decay"), ("train", "max_lr_decays"), ("train", "restart_optimizer")}


def resume_command(run_dir: Path) -> str:
    return f"textvae train {run_dir / RECIPE_NAME} --output {run_dir} --resume"


def prepare_run_dir(run_dir: Path, recipe: Recipe, resume: bool, overwrite: bool) -> None:
    """Refuse to mix two runs in one directory unless told to resume or overwrite."""
    if resume and overwrite:
        raise RunError("--resume and --overwrite contradict each other; pass one of them.")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"--output {run_dir} is a file, not a directory; choose another --output.")
    recipe_path = run_dir / RECIPE_NAME
    if resume:
        if not recipe_path.is_file() or not checkpoint_dirs(run_dir):
            raise RunError(f"--resume: {run_dir} holds no checkpoint to resume from "
                              f"(no {CHECKPOINTS_DIR}/step-*/). Drop --resume to start a new run there.")
        saved = recipe_from_dict(read_yaml(recipe_path)).to_dict()
        changed = _diff(saved, recipe.to_dict())
        blocking = [k for k in changed if tuple(k.split(".")[:2]) not in RESUMABLE_CHANGES]
        if blocking:
            raise RunError(
                f"--resume: the recipe differs from the one {run_dir} was trained with in "
                f"{', '.join(blocking)}; resuming would mix two experiments. Use the same recipe "
                "(only train.max_steps, the stopping rule — patience, lr_decay, max_lr_decays, restart_optimizer — and logging intervals may change) or a new --output.")
        _check_writable(run_dir)
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise RunError(
                f"{run_dir} already holds files (a previous run?). Pass --resume to continue it, "
                "--overwrite to replace it, or choose another --output.")
        if not (recipe_path.is_file() or (run_dir / CHECKPOINTS_DIR).is_dir()):
            raise RunError(f"--overwrite: {run_dir} is not empty and does not look like a textvae run "
                              "(no recipe.yaml); refusing to delete it. Choose another --output.")
        try:
            shutil.rmtree(run_dir)
        except OSError as err:
            raise RunError(f"--overwrite: could not delete the previous run in {run_dir} "
                              f"({err.strerror or err}: {err.filename}). Fix its permissions or choose "
                              "another --output.") from err
    _check_writable(run_dir)


def _check_writable(run_dir: Path) -> None:
    """Create ``run_dir`` and a file in it now, rather than fail at the first checkpoint."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe_writable(run_dir)
    except OSError as err:
        raise RunError(f"cannot write to the output directory {run_dir} ({err.strerror or err}"
                       f"{': ' + str(err.filename) if err.filename and Path(err.filename) != run_dir else ''}). "
                       "Choose another --output, or make that directory writable.") from err


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.append(f"{prefix}{k}")
    return keys


# --------------------------------------------------------------------------- space


def _size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} TiB"  # pragma: no cover


def _disk_usage(path: Path) -> int:
    """Bytes used by the files under ``path`` (0 when it does not exist)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def check_free_space(run_dir: Path, model: torch.nn.Module, recipe: Recipe) -> None:
    """Stop before training when the disk clearly cannot hold the checkpoints this run writes.

    Rough size: weights W (float32 on disk), optimizer state (AdamW: 2·W of the trainable ones),
    ``keep_checkpoints`` checkpoints plus the one being written, and model/ + best/ (+ a copy
    of best/ being replaced). What the run directory already holds is written over.
    """
    cfg = recipe.train
    # parameters() and buffers() list a tied tensor once, as safetensors stores it.
    weights = sum(t.numel() * 4 for t in [*model.parameters(), *model.buffers()])
    trainable = sum(p.numel() * 4 for p in model.parameters() if p.requires_grad)
    moments = 2 if cfg.optimizer == "adamw" else (1 if cfg.momentum else 0)
    checkpoint = weights + moments * trainable
    needed = (cfg.keep_checkpoints + 1) * checkpoint + 3 * weights
    needed -= sum(_disk_usage(run_dir / name) for name in (CHECKPOINTS_DIR, MODEL_DIR, BEST_DIR))
    free = shutil.disk_usage(run_dir).free
    if free < needed:
        raise RunError(
            f"the disk holding {run_dir} has {_size(free)} free, but this run needs about "
            f"{_size(needed)} more: {cfg.keep_checkpoints} checkpoint(s) of {_size(checkpoint)} "
            f"(train.keep_checkpoints), one being written, and model/ and best/. Free some space, lower "
            "train.keep_checkpoints, or choose an --output on another disk.")


# --------------------------------------------------------------------------- resuming


def search_checkpoints(run_dir: Path, device: torch.device,
                       say: Callable[[str], None]) -> tuple[Path, tuple[dict[str, Any], Any]]:
    """Newest first, the first checkpoint that reads back whole, and its (trainer state, model).

    A damaged checkpoint (truncated or altered weights, unreadable trainer state) is renamed
    ``damaged-step-N`` with a warning and the one before it is tried: resuming from an older
    checkpoint costs some steps, stopping costs the whole run.
    """
    problems = []
    for checkpoint in reversed(checkpoint_dirs(run_dir)):
        try:
            return checkpoint, load_checkpoint(checkpoint, device=device)
        except Exception as err:  # noqa: BLE001 - any failure to read it makes it unusable
            moved = set_aside(checkpoint)
            why = (" ".join(str(err).split()) if isinstance(err, TextVAEError)
                   else f"{type(err).__name__}: {first_sentence(err)}")
            problems.append(f"{checkpoint.name}: {why}")
            say(f"warning: --resume: {checkpoint} is damaged and was moved to {moved}: {why} "
                "Trying the checkpoint before it.")
    raise RunError(
        f"--resume: no checkpoint in {run_dir / CHECKPOINTS_DIR} can be read, so there is nothing to "
        f"resume from ({'; '.join(problems)}). Each was moved to damaged-step-N. Start the run again "
        "with --overwrite, or with a new --output.")


def recorded_numerics(run_dir: Path) -> dict[str, Any]:
    """The thread count, precision and CPU the newest readable checkpoint was trained with
    ({} before this was recorded, or when no checkpoint reads: the search then says why)."""
    for checkpoint in reversed(checkpoint_dirs(run_dir)):
        try:
            return load_trainer_state(checkpoint).get("numerics", {})
        except Exception:  # noqa: BLE001 - search_checkpoints reports and sets it aside
            continue
    return {}


# --------------------------------------------------------------------------- failed writes


@contextmanager
def writing(run_dir: Path, target: Path, step: int) -> Iterator[None]:
    """Turn a failed write of ``target`` (full disk, no permission) into a RunError that
    says what was kept and how to go on."""
    try:
        yield
    except OSError as err:
        raise RunError(write_failed_message(run_dir, target, err, step)) from err


def write_failed_message(run_dir: Path, target: Path, err: OSError, step: int) -> str:
    last = checkpoint_dirs(run_dir)
    if err.errno in DISK_FULL:
        why = f"the disk is full ({err.strerror})"
        fix = "Free some space (or lower train.keep_checkpoints, or move the run to a bigger disk)"
    else:
        why = f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")
        fix = "Fix that"
    if last:
        kept = f"The newest complete checkpoint is {last[-1]}."
        then = f"then resume with: {resume_command(run_dir)}"
    else:
        kept = "No checkpoint had been written yet."
        then = "then start again with --overwrite"
    return (f"could not write {target} at step {step}: {why}. Nothing half-written was left in "
            f"its place. {kept} {fix}, {then}.")


def nonfinite_message(run_dir: Path, step: int, count: int, lr: float) -> str:
    last = checkpoint_dirs(run_dir)
    kept = f"The last good checkpoint is {last[-1]}." if last else "No checkpoint had been written yet."
    return (f"training stopped at step {step}: {count} steps in a row had a non-finite loss or "
            f"gradient. Likely causes: a learning rate too high (train.lr={lr}), no "
            "gradient clipping (train.clip_norm), fp16 overflow (try bf16), or an objective weight that "
            f"explodes (objective.lam). {kept} Change the recipe and train again into a new --output (or "
            "with --overwrite); --resume continues only the same recipe.")
