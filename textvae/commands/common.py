"""Helpers shared by the commands that read a trained model and a corpus."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

from textvae.config import DataConfig, Recipe, load_recipe
from textvae.errors import TextVAEError
from textvae.training.checkpoint import TRAINING_RECIPE_NAME


class CommandError(ValueError, TextVAEError):
    """A command-line argument that cannot be used; the message says what to pass."""


def resolve_model_dir(path: str | Path, which: str = "model") -> tuple[Path, Optional[Recipe]]:
    """A run directory (→ its ``model/`` or ``best/``) or a model directory, and its recipe if known."""
    path = Path(path)
    if (path / "recipe.yaml").is_file() and (path / which / "config.json").is_file():
        return path / which, load_recipe(path / "recipe.yaml")
    if (path / "config.json").is_file():
        recipe_path = path / TRAINING_RECIPE_NAME
        return path, (load_recipe(recipe_path) if recipe_path.is_file() else None)
    if (path / "recipe.yaml").is_file():
        raise CommandError(f"{path} is a run directory without a finished {which}/ model; "
                           "train it to the end (or resume it), or point at one of its checkpoints/step-*/.")
    raise CommandError(f"{path} is neither a textvae run directory (recipe.yaml + model/) nor a model "
                       "directory (config.json + model.safetensors).")


def data_config(recipe: Optional[Recipe], data: Optional[str], text_column: Optional[str] = None,
                label_column: Optional[str] = None) -> DataConfig:
    """The corpus to read: ``--data`` (a shipped name, a hub name or a file) or the run's own data."""
    base = recipe.data if recipe is not None else DataConfig()
    if data is None:
        if recipe is None:
            raise CommandError("this model directory does not record its training data; pass --data "
                               "(a shipped name such as ptb, a hub dataset name, or a file).")
        cfg = base
    elif Path(data).exists():
        files = [data]
        cfg = replace(base, name=None, train_files=files, valid_files=files, test_files=files,
                      max_train_examples=None, max_eval_examples=None)
    else:
        cfg = replace(base, name=data, train_files=None, valid_files=None, test_files=None)
    if text_column is not None:
        cfg = replace(cfg, text_column=text_column)
    if label_column is not None:
        cfg = replace(cfg, label_column=label_column)
    return cfg
