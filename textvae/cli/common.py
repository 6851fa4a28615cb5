"""Helpers shared by the commands that read a trained model and a corpus.

Every command that reads data takes the same flags (:func:`textvae.cli.args.add_data_arguments`),
and its data errors name those flags (``--encoding cp1252``) rather than recipe keys.
"""

from __future__ import annotations

import argparse
import glob
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

from textvae.cli.args import data_options
from textvae.config import DataConfig, Recipe, load_recipe
from textvae.data import OptionNames, corpus_notes
from textvae.errors import ConfigError
from textvae.training.checkpoint import TRAINING_RECIPE_NAME


def resolve_model_dir(path: str | Path, which: str = "model") -> tuple[Path, Optional[Recipe]]:
    """A run directory (→ its ``model/`` or ``best/``) or a model directory, and its recipe if known."""
    path = Path(path)
    if (path / "recipe.yaml").is_file() and (path / which).is_dir():
        # Even without its config.json: loading it then names the missing file and the run's
        # intact models, which says more than "no finished model".
        return path / which, load_recipe(path / "recipe.yaml")
    if (path / "config.json").is_file():
        recipe_path = path / TRAINING_RECIPE_NAME
        return path, (load_recipe(recipe_path) if recipe_path.is_file() else None)
    if (path / "recipe.yaml").is_file():
        from textvae.utils.layout import intact_models_sentence

        raise ConfigError(f"{path} is a run directory without a finished {which}/ model; "
                           f"train it to the end (or resume it), or point at one of its checkpoints/step-*/. "
                           f"{intact_models_sentence(path)}")
    raise ConfigError(f"{path} is neither a textvae run directory (recipe.yaml + model/) nor a model "
                       "directory (config.json + model.safetensors).")


# --------------------------------------------------------------------------- reading data

DATA_FLAG_NAMES = OptionNames.flags({split: "--data" for split in ("train", "validation", "test")})
"""Option names for data errors of the commands whose data comes from ``--data``."""


# The columns of every shipped corpus: naming them is not a mistake.
_SHIPPED_COLUMNS = {"text_column": "text", "label_column": "label"}


def refuse_file_flags(options: dict[str, Any], what: str, allowed: tuple[str, ...] = ()) -> None:
    """Stop when flags that read files are given for data that is not a file (``what``)."""
    given = [f"--{key.replace('_', '-')}" for key, value in options.items()
             if key not in allowed and value != _SHIPPED_COLUMNS.get(key)]
    if given:
        raise ConfigError(f"{' and '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to data files, but "
                           f"{what} is read in its own format; leave {'it' if len(given) == 1 else 'them'} out.")


def is_file_source(data: str) -> bool:
    """A path that exists, or a glob pattern (``dir/*.txt``), rather than a corpus name."""
    return Path(data).exists() or glob.has_magic(data)


def not_a_source(data: str, shipped: bool = True) -> ConfigError:
    """The error for ``--data DATA`` that is no file, no pattern and (when ``shipped`` names are
    accepted) no shipped corpus."""
    from textvae.data import SHIPPED_CORPORA
    from textvae.data.shipped import shipped_name_hint

    where = "" if Path(data).is_absolute() else f" (relative paths are read from {Path.cwd()})"
    if not shipped:
        return ConfigError(f"--data {data}: no such file{where}. Give a data file, or a glob pattern in quotes "
                            "(--data 'data/*.txt').")
    close = shipped_name_hint(data)
    return ConfigError((f"Did you mean --data {close}? " if close else "")
                        + f"--data {data} is neither a file nor a shipped corpus ({', '.join(SHIPPED_CORPORA)})"
                        f"{where}. Give a data file, a glob pattern in quotes "
                        "(--data 'data/*.txt'), or a shipped corpus name.")


def data_config(recipe: Optional[Recipe], data: Optional[str], text_column: Optional[str] = None,
                label_column: Optional[str] = None, **options: Any) -> DataConfig:
    """The corpus to read: ``--data`` (a shipped name, a hub name, a file or a glob pattern) or the
    run's own data; ``text_column``, ``label_column`` and ``options`` (``format``, ``encoding``)
    override the recipe's values.

    Raises:
        ConfigError: file flags given for a shipped corpus, or no data at all.
    """
    from textvae.data import SHIPPED_CORPORA

    base = recipe.data if recipe is not None else DataConfig()
    options = {key: value for key, value in {"text_column": text_column, "label_column": label_column,
                                             **options}.items() if value is not None}
    if data is None:
        if recipe is None:
            raise ConfigError("this model directory does not record its training data; pass --data "
                               "(a shipped name such as ptb, a hub dataset name, or a file).")
        cfg = base
        if not base.train_files and base.name in SHIPPED_CORPORA:
            refuse_file_flags(options, f"the run's data, the shipped corpus {base.name!r},")
    elif is_file_source(data):
        files = [data]
        cfg = replace(base, name=None, train_files=files, valid_files=files, test_files=files,
                      max_train_examples=None, max_eval_examples=None)
    else:
        if data in SHIPPED_CORPORA:
            refuse_file_flags(options, f"the shipped corpus {data!r}")
        else:  # a hub dataset has its own columns, but no file format or encoding to choose
            refuse_file_flags(options, f"the hub dataset {data!r}", allowed=("text_column", "label_column"))
        cfg = replace(base, name=data, train_files=None, valid_files=None, test_files=None)
    return replace(cfg, **options)


@dataclass
class Texts:
    """The sentences a command reads, with their labels when the data has them."""

    texts: list[str]
    labels: Optional[list[int]] = None
    label_names: Optional[list[str]] = None


def read_texts(command: str, args: argparse.Namespace, data: str, split: str = "train",
               shipped: bool = True) -> Texts:
    """The sentences of ``--data``: a file or a glob pattern (every non-blank row, in file order;
    ``split`` is ignored) or, when ``shipped``, a shipped corpus split. What loading left out or
    noticed is printed on stderr as ``textvae COMMAND: note: ...``.

    Raises:
        ConfigError / DataError: no such file or corpus, file flags for a shipped corpus, and
            every data error, worded with this command's flags.
    """
    from textvae.data import SHIPPED_CORPORA, label_names, load_corpus

    options = data_options(args)
    if not is_file_source(data):
        if not shipped or data not in SHIPPED_CORPORA:
            raise not_a_source(data, shipped)
        refuse_file_flags(options, f"the shipped corpus {data!r}")
        from textvae.inference.features import load_texts

        texts, labels, names = load_texts(data, split)
        return Texts(texts, labels, names)
    # Giving the files as the validation split too stops load_corpus from carving a random
    # part out of them, so rows stay complete and in file order.
    cfg = DataConfig(name=None, train_files=[data], valid_files=[data], **options)
    corpus = load_corpus(cfg, names=DATA_FLAG_NAMES)
    print_notes(command, corpus_notes(corpus, ["train"], {"train": f"--data {data}"}))
    dataset = corpus["train"]
    labels = list(dataset["label"]) if "label" in dataset.column_names else None
    return Texts(list(dataset["text"]), labels, label_names(corpus) if labels is not None else None)


def print_notes(command: str, notes: list[str], kind: str = "note") -> None:
    """Each note as one ``textvae COMMAND: note: ...`` line on stderr."""
    for note in notes:
        print(f"textvae {command}: {kind}: {note}", file=sys.stderr)


def load_model(args: argparse.Namespace) -> Any:
    """The model of ``MODEL_DIR`` (a model directory, or a run directory: its model/), in eval mode."""
    from textvae.inference.api import TextVAE
    from textvae.utils.precision import resolve_device

    model_dir, _ = resolve_model_dir(args.model_dir)
    return TextVAE.from_pretrained(model_dir, device=resolve_device(args.device)).eval()
