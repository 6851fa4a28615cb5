"""Where a run directory keeps its models, and which of them still read back.

    runs/qs/
      recipe.yaml                    marks a run directory
      model/  best/                  model directories (config.json + model.safetensors + tokenizer/
                                     + generation_config.json)
      checkpoints/step-NNNNNNNN/     model directories with a trainer state

Plain paths and file headers only (no torch, no training imports), so that
``TextVAE.from_pretrained`` can take a run directory as the CLI does.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Optional

RUN_RECIPE_NAME = "recipe.yaml"
MODEL_DIR = "model"
BEST_DIR = "best"
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_PREFIX = "step-"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
GENERATION_CONFIG_NAME = "generation_config.json"
"""Decoding defaults of a model directory (:mod:`textvae.inference.generation_config`); optional."""
_STEP_NAME = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")


def is_run_dir(path: Path) -> bool:
    """A directory written by ``textvae train`` (it holds the resolved ``recipe.yaml``)."""
    return (Path(path) / RUN_RECIPE_NAME).is_file()


def run_dir_of(model_dir: Path) -> Optional[Path]:
    """The run directory whose ``model/``, ``best/`` or ``checkpoints/step-N/`` ``model_dir`` is."""
    model_dir = Path(model_dir)
    if model_dir.name in (MODEL_DIR, BEST_DIR) and is_run_dir(model_dir.parent):
        return model_dir.parent
    if (_STEP_NAME.match(model_dir.name) and model_dir.parent.name == CHECKPOINTS_DIR
            and is_run_dir(model_dir.parent.parent)):
        return model_dir.parent.parent
    return None


def step_checkpoints(run_dir: Path) -> list[Path]:
    """``checkpoints/step-N`` folders (finished or not), oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP_NAME.match(p.name) and p.is_dir()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def looks_intact(model_dir: Path) -> bool:
    """Whether a model directory's files are whole: config.json is a JSON object and the
    safetensors header is complete and accounts for the file's exact size, generation_config.json
    (where there is one) is a JSON object, and the tokenizer's JSON files parse.

    Reads a few kilobytes, not the weights: it catches missing, truncated and garbled files,
    not a changed byte inside the tensors (a checkpoint's trainer state records their SHA-256).
    """
    model_dir = Path(model_dir)
    try:
        meta = json.loads((model_dir / CONFIG_NAME).read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or "model" not in meta:
            return False
        weights = model_dir / WEIGHTS_NAME
        size = weights.stat().st_size
        with open(weights, "rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            if header_len > size - 8:
                return False
            header = json.loads(fh.read(header_len))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        if 8 + header_len + max(ends, default=0) != size:
            return False
        generation = model_dir / GENERATION_CONFIG_NAME
        if generation.exists() and not isinstance(json.loads(generation.read_text(encoding="utf-8")), dict):
            return False
        tokenizer = model_dir / TOKENIZER_DIR
        if tokenizer.is_dir():  # its JSON files parse (tokenizer_config.json at least)
            json.loads((tokenizer / "tokenizer_config.json").read_text(encoding="utf-8"))
            for path in tokenizer.glob("*.json"):
                json.loads(path.read_text(encoding="utf-8"))
        return True
    except (OSError, ValueError, struct.error, KeyError, TypeError, IndexError):
        return False


def intact_models(run_dir: Path, skip: Optional[Path] = None) -> list[Path]:
    """The run's model directories that :func:`looks_intact` accepts, in the order to try them:
    ``best/``, ``model/``, then the checkpoints, newest first. ``skip`` (the damaged one) is left out."""
    run_dir = Path(run_dir)
    candidates = [run_dir / BEST_DIR, run_dir / MODEL_DIR, *reversed(step_checkpoints(run_dir))]
    skip = Path(skip).resolve() if skip is not None else None
    return [c for c in candidates if c.is_dir() and c.resolve() != skip and looks_intact(c)]


def intact_models_sentence(run_dir: Path, skip: Optional[Path] = None) -> str:
    """One sentence naming the run's intact models (or saying there is none), to end an error with."""
    found = intact_models(run_dir, skip)
    if not found:
        return (f"No other model of the run {run_dir} is intact (best/ and checkpoints/step-*/ are missing or "
                "damaged too): train the run again.")
    names = ", ".join(str(p) for p in found)
    return f"Intact models of this run: {names} (TextVAE.from_pretrained and every textvae command take each)."
