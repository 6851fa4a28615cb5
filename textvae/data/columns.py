"""The shape every source ends in: a ``text`` column and, for labelled data, a ``ClassLabel`` ``label``.

Tables (csv, tsv, json, parquet, hub datasets) keep their text (and label) column, renamed to
``text`` (and ``label``), with blank texts dropped. Label values are numbered in sorted order of
the training labels (ints numerically, strings alphabetically), so integer labels ``0..K-1`` keep
their values; the ``ClassLabel``'s ``names`` are the label mapping, read by :func:`label_names`.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value


from textvae.data.options import RECIPE_KEYS, OptionNames
from textvae.errors import DataError

Loaded = tuple[dict[str, Dataset], dict[str, dict[str, int]], dict[str, list[str]]]
"""What each source returns, by split: datasets, dropped counts by reason, notes."""


def standardize(dataset: Dataset, text_column: str, label_column: Optional[str], origin: str,
                names: OptionNames = RECIPE_KEYS) -> tuple[Dataset, dict[str, int]]:
    """Keep the text (and label) column as ``text`` (and ``label``); drop blank texts.

    Raises:
        DataError: a named column is missing, or text and label name the same column.
    """
    columns = dataset.column_names
    for key, column in ((names.text_column, text_column), (names.label_column, label_column)):
        if column is not None and column not in columns:
            raise DataError(f"{origin} has no column {column!r} ({key}); its columns are {columns}. "
                            f"Set {key} to one of them.")
    if label_column is not None and label_column == text_column:
        raise DataError(f"{names.text_column} and {names.label_column} are both {text_column!r}; they must differ.")
    keep = [text_column] + ([label_column] if label_column else [])
    dataset = dataset.select_columns(keep)
    # Two steps, so that e.g. text_column=sentence with label_column=text cannot collide.
    temporary = {c: f"__textvae_{i}" for i, c in enumerate(keep)}
    dataset = dataset.rename_columns(temporary)
    dataset = dataset.rename_columns({temporary[text_column]: "text",
                                      **({temporary[label_column]: "label"} if label_column else {})})
    before = len(dataset)
    dataset = dataset.map(_clean_texts, batched=True, features=_text_as_string(dataset.features))
    dataset = dataset.filter(_non_blank, batched=True, input_columns="text")
    return dataset, {"blank": before - len(dataset)}


def _text_as_string(features: Features) -> Features:
    features = features.copy()
    features["text"] = Value("string")
    return features


def _clean_texts(batch: dict[str, list]) -> dict[str, list]:
    # Texts read by pandas can be numbers or None; a sentence is a stripped string.
    return {"text": ["" if t is None else str(t).strip() for t in batch["text"]]}


def _non_blank(texts: list[str]) -> list[bool]:
    return [bool(t) for t in texts]


def _label_sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def _is_missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and np.isnan(value))


def encode_labels(splits: dict[str, Dataset], origins: dict[str, str]) -> dict[str, Dataset]:
    """Turn raw label values into a ``ClassLabel`` column numbered by sorted train values.

    Raises:
        DataError: a row without a label, or a validation/test label that train lacks.
    """
    train = splits["train"]
    if "label" not in train.column_names or isinstance(train.features["label"], ClassLabel):
        return splits
    values: dict[str, list] = {}
    for split, dataset in splits.items():
        values[split] = dataset.unique("label")
        missing = [v for v in values[split] if _is_missing(v)]
        if missing:
            raise DataError(f"{origins[split]} ({split}) has rows without a label (value {missing[0]!r}). "
                            "Fill in every label, or drop those rows.")
    ordered = sorted(values["train"], key=_label_sort_key)
    mapping = {v: i for i, v in enumerate(ordered)}
    names = [str(v) for v in ordered]
    for split in splits:
        unseen = sorted(set(values[split]) - set(mapping), key=_label_sort_key)
        if unseen:
            raise DataError(f"{origins[split]} ({split}) has labels {unseen} that never occur in train "
                            f"(train labels: {names}). A classifier trained on train cannot predict them; "
                            "fix the labels or add examples of them to train.")
    features = train.features.copy()
    features["label"] = ClassLabel(names=names)
    return {split: dataset.map(_map_labels, batched=True, fn_kwargs={"mapping": mapping}, features=features)
            for split, dataset in splits.items()}


def _map_labels(batch: dict[str, list], mapping: dict[Any, int]) -> dict[str, list]:
    return {"label": [mapping[v] for v in batch["label"]]}


def label_names(dsd: DatasetDict) -> Optional[list[str]]:
    """The label names in id order (the label mapping), or None for unlabelled data."""
    feature = dsd["train"].features.get("label")
    return list(feature.names) if isinstance(feature, ClassLabel) else None
