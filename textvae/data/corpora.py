"""Sentence corpora as a ``datasets.DatasetDict``: :func:`load_corpus` picks the source and finishes the splits.

The sources are local files (:mod:`textvae.data.files`), the shipped corpora
(:mod:`textvae.data.shipped`) and the Hugging Face hub (:mod:`textvae.data.hub`). Every one ends in
the same shape (:mod:`textvae.data.columns`): splits ``train``, ``validation`` and (when there is
one) ``test``, a ``text`` column of stripped, non-blank strings and, when the data has labels, a
``label`` column of type :class:`datasets.ClassLabel`.

What loading drops (blank lines, label-only lines) is counted in :attr:`Corpus.dropped`, and what
the user should know about it (which lines held only a label; a text file that looks labelled) is
said in :attr:`Corpus.notes`; :func:`~textvae.data.report.corpus_report` turns them into printable
lines. Error messages name the recipe key of each option (``data.encoding=cp1252``) or, given an
:class:`~textvae.data.options.OptionNames` of flags, the command-line flag (``--encoding cp1252``).
"""

from __future__ import annotations

import numpy as np
from typing import Optional

from datasets import Dataset, DatasetDict

from textvae.config import DataConfig
from textvae.data.columns import encode_labels
from textvae.data.files import load_files
from textvae.data.hub import load_hub
from textvae.data.options import RECIPE_KEYS, OptionNames
from textvae.data.shipped import SHIPPED_CORPORA, load_shipped
from textvae.errors import DataError

SPLITS = ("train", "validation", "test")


class Corpus(DatasetDict):
    """A ``DatasetDict`` that also remembers what loading dropped, and what to tell the user.

    ``dropped[split]`` maps a reason (``blank``: empty or whitespace-only line or cell;
    ``no_text``: a labelled line with nothing after the label) to a count. ``notes[split]`` is a
    list of one-line remarks naming files and lines (label-only lines; a text file whose lines
    all start with a number). ``DatasetDict`` methods such as ``map`` return plain
    ``DatasetDict`` objects without them.
    """

    def __init__(self, splits: dict[str, Dataset], dropped: Optional[dict[str, dict[str, int]]] = None,
                 notes: Optional[dict[str, list[str]]] = None):
        super().__init__(splits)
        self.dropped: dict[str, dict[str, int]] = dropped or {}
        self.notes: dict[str, list[str]] = notes or {}


def load_corpus(cfg: DataConfig, seed: int = 0, names: OptionNames = RECIPE_KEYS) -> Corpus:
    """Load the corpus a recipe names, with splits train / validation / (test).

    Sources, in order: ``cfg.train_files`` (local files or glob patterns), a shipped name
    (``ptb``, ``yelp``, ``yahoo``, ``sst2``), else a hub dataset (a name close to a shipped one
    is refused as a typo first). Without a validation split, ``cfg.valid_fraction`` of train is
    held out by a split seeded with ``seed``. Then ``max_train_examples`` /
    ``max_eval_examples`` keep N sentences of each split drawn at random (seeded with ``seed``), in
    the split's order: the head of a split could be one class (the shipped Yelp files list every
    negative sentence first) or one topic.

    Args:
        names: how the user sets each option, for the errors: recipe keys (the default) or a
            command's flags (:meth:`OptionNames.flags`).
    Returns:
        a :class:`Corpus` (a ``DatasetDict``) with columns ``text`` and, if labelled, ``label``,
        and what loading dropped (``dropped``) and noticed (``notes``).

    Raises:
        DataError: a missing, empty, undecodable or malformed file; a directory or a pattern
            matching nothing; a missing column; labels in validation/test that train lacks; a
            mistyped shipped name; a hub dataset that cannot be loaded.
    """
    if cfg.train_files:
        splits, dropped, notes = load_files(cfg, names)
        origins = {s: ", ".join(f) for s, f in
                   (("train", cfg.train_files), ("validation", cfg.valid_files), ("test", cfg.test_files)) if f}
    elif cfg.name in SHIPPED_CORPORA:
        splits, dropped, notes = load_shipped(cfg.name)
        origins = {s: f"shipped corpus {cfg.name!r}" for s in splits}
    else:
        splits, dropped, notes = load_hub(cfg, names)
        origins = {s: f"hub dataset {cfg.name!r}" for s in splits}
    for split, dataset in splits.items():
        if len(dataset) == 0:
            label_only = dropped.get(split, {}).get("no_text")
            raise DataError(f"{origins[split]} ({split}) holds no sentences after dropping blank ones."
                            + (f" Its {label_only:,} line(s) that hold only a label were dropped too; check that "
                               "it is the right file." if label_only else ""))
    splits = encode_labels(splits, origins)
    if "validation" not in splits:
        splits["train"], splits["validation"] = _carve(splits["train"], cfg.valid_fraction, seed, origins["train"])
        dropped["validation"] = {}
    splits = _limit(splits, cfg.max_train_examples, cfg.max_eval_examples, seed)
    ordered = {split: splits[split] for split in SPLITS if split in splits}
    return Corpus(ordered, {split: dropped.get(split, {}) for split in ordered},
                  {split: notes.get(split, []) for split in ordered})


def _carve(train: Dataset, fraction: float, seed: int, origin: str) -> tuple[Dataset, Dataset]:
    """Hold out ``fraction`` of train for validation, by a split seeded with ``seed``."""
    if len(train) < 2:
        raise DataError(f"{origin} has {len(train)} training sentence(s); at least 2 are needed to hold some "
                        "out for validation. Add data or give data.valid_files.")
    parts = train.train_test_split(test_size=fraction, seed=seed, shuffle=True)
    return parts["train"], parts["test"]


def _limit(splits: dict[str, Dataset], max_train: Optional[int], max_eval: Optional[int],
           seed: int) -> dict[str, Dataset]:
    limited = {}
    for split, dataset in splits.items():
        limit = max_train if split == "train" else max_eval
        if limit is None or limit >= len(dataset):
            limited[split] = dataset
            continue
        keep = np.random.default_rng([seed, SPLITS.index(split) if split in SPLITS else len(SPLITS)])
        limited[split] = dataset.select(np.sort(keep.choice(len(dataset), size=limit, replace=False)))
    return limited
