"""The corpora shipped in the repository's ``data/`` folder (see ``data/README.md``), and reading them."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from datasets import ClassLabel, Dataset, Features, Value

from textvae.data.columns import Loaded
from textvae.data.line_formats import Read, read_label_text, read_suffix_label, read_text
from textvae.data.options import RECIPE_KEYS
from textvae.errors import DataError

DATA_DIR_ENV = "TEXTVAE_DATA_DIR"
_SHIPPED_FILES = "the shipped corpora folder (data/, or $TEXTVAE_DATA_DIR)"


@dataclass(frozen=True)
class ShippedCorpus:
    """A corpus in the repository's ``data/`` folder (see ``data/README.md``)."""

    folder: str
    files: dict[str, tuple[str, ...]]
    """Split → file names. A split that is absent here is carved from train."""
    reader: str = "plain"
    """Key of :data:`SHIPPED_READERS`: how lines (and labels) are read."""
    label_names: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    """Two sentences of its test split that the commands printed after training use (reconstruct,
    interpolate); for a labelled corpus, one of the first class and one of the second."""


SHIPPED_CORPORA: dict[str, ShippedCorpus] = {
    "ptb": ShippedCorpus(
        "ptb", {"train": ("ptb.train.txt",), "validation": ("ptb.valid.txt",), "test": ("ptb.test.txt",)},
        examples=("trading volume was only modestly higher than normal", "now producers hope prices have hit bottom")),
    # The Shen et al. train split is not shipped: dev is the training set, test stays the test set.
    "yelp": ShippedCorpus(
        "yelp_sentiment_shen",
        {"train": ("sentiment.dev.0", "sentiment.dev.1"), "test": ("sentiment.test.0", "sentiment.test.1")},
        reader="suffix_label", label_names=("negative", "positive"),
        examples=("the service was terrible .", "the food was good and the bartender was even better .")),
    # yahoo.train.txt is not shipped either: the valid file trains, the test file tests.
    "yahoo": ShippedCorpus("yahoo_yang", {"train": ("yahoo.valid.txt",), "test": ("yahoo.test.txt",)}),
    "sst2": ShippedCorpus(
        "sentence_classification",
        {"train": ("stsa.binary.train",), "validation": ("stsa.binary.dev",), "test": ("stsa.binary.test",)},
        reader="label_text", label_names=("negative", "positive")),
}

SHIPPED_READERS: dict[str, Callable[..., Read]] = {
    "plain": read_text,
    "suffix_label": read_suffix_label,
    "label_text": read_label_text,
}
"""How the lines of a shipped corpus are read: ``reader(paths, encoding, names, key)``."""


def data_root() -> Path:
    """The folder holding the shipped corpora: ``$TEXTVAE_DATA_DIR`` or the repository's ``data/``."""
    root = Path(os.environ.get(DATA_DIR_ENV) or Path(__file__).resolve().parents[2] / "data")
    if not root.is_dir():
        raise DataError(
            f"The shipped corpora folder {root} does not exist. Set {DATA_DIR_ENV} to the folder that "
            "holds ptb/, yelp_sentiment_shen/, yahoo_yang/ and sentence_classification/, or use your own "
            "files with data.train_files=... (and data.valid_files=..., data.test_files=...).")
    return root


def shipped_name_hint(name: str) -> Optional[str]:
    """The shipped corpus a mistyped ``name`` probably means (``pbt`` → ``ptb``), else None."""
    close = difflib.get_close_matches(str(name).lower(), list(SHIPPED_CORPORA), n=1)
    return close[0] if close else None


def load_shipped(name: str) -> Loaded:
    """The splits of the shipped corpus ``name``, with their dropped counts and notes.

    Raises:
        DataError: the shipped corpora folder or one of its files is missing.
    """
    spec = SHIPPED_CORPORA[name]
    folder = data_root() / spec.folder
    features = Features({"text": Value("string")})
    if spec.label_names:
        features["label"] = ClassLabel(names=list(spec.label_names))
    splits, dropped, notes = {}, {}, {}
    for split, files in spec.files.items():
        columns, dropped[split], notes[split] = SHIPPED_READERS[spec.reader](
            [folder / n for n in files], "utf-8", RECIPE_KEYS, _SHIPPED_FILES)
        splits[split] = Dataset.from_dict(columns, features=features)
    return splits, dropped, notes
