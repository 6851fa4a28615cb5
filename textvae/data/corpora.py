"""Sentence corpora as a ``datasets.DatasetDict``: shipped corpora, local files, or the hub.

Every source ends in the same shape: splits ``train``, ``validation`` and (when there is one)
``test``, a ``text`` column of stripped, non-blank strings and, when the data has labels, a
``label`` column of type :class:`datasets.ClassLabel`. Its ``names`` are the label mapping:
label values are numbered in sorted order of the training labels (ints numerically, strings
alphabetically), so integer labels ``0..K-1`` keep their values. :func:`label_names` reads it.

Text files are read here rather than by the ``datasets`` text builder, because that builder
opens files in universal-newline mode and so splits lines on a lone ``\\r``; Python's
``str.splitlines`` would also split on U+0085, U+2028, ``\\x0b`` and ``\\x0c``. A sentence here
ends at ``\\n`` and nowhere else.

What loading drops (blank lines, label-only lines) is counted in :attr:`Corpus.dropped`;
:func:`corpus_report` turns sizes, labels and those counts into a few printable lines.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, load_dataset

from textvae.config import DataConfig
from textvae.errors import TextVAEError

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
DATA_DIR_ENV = "TEXTVAE_DATA_DIR"


class DataError(TextVAEError, ValueError):
    """Data that cannot be used as given; the message names the file and the fix."""


class Corpus(DatasetDict):
    """A ``DatasetDict`` that also remembers what loading dropped.

    ``dropped[split]`` maps a reason (``blank``: empty or whitespace-only line or cell;
    ``no_text``: a labelled line with nothing after the label) to a count. ``DatasetDict``
    methods such as ``map`` return plain ``DatasetDict`` objects without it.
    """

    def __init__(self, splits: dict[str, Dataset], dropped: Optional[dict[str, dict[str, int]]] = None):
        super().__init__(splits)
        self.dropped: dict[str, dict[str, int]] = dropped or {}


# --------------------------------------------------------------------------- shipped corpora


@dataclass(frozen=True)
class ShippedCorpus:
    """A corpus in the repository's ``data/`` folder (see ``data/README.md``)."""

    folder: str
    files: dict[str, tuple[str, ...]]
    """Split → file names. A split that is absent here is carved from train."""
    reader: str = "plain"
    """Key of :data:`SHIPPED_READERS`: how lines (and labels) are read."""
    label_names: tuple[str, ...] = ()


SHIPPED_CORPORA: dict[str, ShippedCorpus] = {
    "ptb": ShippedCorpus(
        "ptb", {"train": ("ptb.train.txt",), "validation": ("ptb.valid.txt",), "test": ("ptb.test.txt",)}),
    # The Shen et al. train split is not shipped: dev is the training set, test stays the test set.
    "yelp": ShippedCorpus(
        "yelp_sentiment_shen",
        {"train": ("sentiment.dev.0", "sentiment.dev.1"), "test": ("sentiment.test.0", "sentiment.test.1")},
        reader="suffix_label", label_names=("negative", "positive")),
    # yahoo.train.txt is not shipped either: the valid file trains, the test file tests.
    "yahoo": ShippedCorpus("yahoo_yang", {"train": ("yahoo.valid.txt",), "test": ("yahoo.test.txt",)}),
    "sst2": ShippedCorpus(
        "sentence_classification",
        {"train": ("stsa.binary.train",), "validation": ("stsa.binary.dev",), "test": ("stsa.binary.test",)},
        reader="prefix_label", label_names=("negative", "positive")),
}


def data_root() -> Path:
    """The folder holding the shipped corpora: ``$TEXTVAE_DATA_DIR`` or the repository's ``data/``."""
    root = Path(os.environ.get(DATA_DIR_ENV) or Path(__file__).resolve().parents[2] / "data")
    if not root.is_dir():
        raise DataError(
            f"The shipped corpora folder {root} does not exist. Set {DATA_DIR_ENV} to the folder that "
            "holds ptb/, yelp_sentiment_shen/, yahoo_yang/ and sentence_classification/, or use your own "
            "files with data.train_files=... (and data.valid_files=..., data.test_files=...).")
    return root


# --------------------------------------------------------------------------- text files


def read_text_lines(path: Path, encoding: str = "utf-8") -> tuple[list[str], int]:
    """Read the non-blank lines of a text file, stripped, and count the blank ones.

    Lines end at ``\\n`` only (``\\r\\n`` works too: the ``\\r`` is stripped); U+0085, U+2028,
    ``\\x0b`` and ``\\x0c`` stay inside their line.

    Raises:
        DataError: the file is missing, empty, only blank lines, or not valid ``encoding``.
    """
    lines = _stripped_lines(path, encoding)
    kept = [line for line in lines if line]
    return kept, len(lines) - len(kept)


def _stripped_lines(path: Path, encoding: str) -> list[str]:
    """Every line of a text file (blank ones too), stripped; fails if none has text."""
    text = _decode(_read_bytes(path), path, encoding)
    lines = text.split("\n")
    if lines[-1] == "":  # the newline that ends the last line does not start another
        lines.pop()
    lines = [line.strip() for line in lines]
    if not any(lines):
        raise DataError(f"{path} has only blank lines; it holds no sentences. Check that it is the right file.")
    return lines


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative paths are read from {Path.cwd()})"
        raise DataError(f"Data file {path} does not exist{where}. Check the path in data.train_files / "
                        "data.valid_files / data.test_files.")
    raw = path.read_bytes()
    if not raw:
        raise DataError(f"Data file {path} is empty (0 bytes). Point the recipe at a file with one sentence per line.")
    return raw


def _decode(raw: bytes, path: Path, encoding: str) -> str:
    """Decode a whole file, naming the line and column of the first invalid byte."""
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        bad = raw[err.start:err.end]
        raise DataError(
            f"{path}, line {line} (column {column}): byte {bad!r} is not valid {encoding}. The file is in "
            "another encoding; Windows files are often cp1252: set data.encoding=cp1252 "
            "(or data.encoding=latin-1, which accepts every byte).") from err
    return text.removeprefix("\ufeff")  # a UTF-8 byte-order mark is not part of the first sentence


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError as err:
        raise DataError(f"data.encoding={encoding!r} is not an encoding Python knows; "
                        "use e.g. utf-8, cp1252 or latin-1.") from err


# --------------------------------------------------------------------------- shipped readers


def _read_plain(paths: Sequence[Path]) -> tuple[dict[str, list], dict[str, int]]:
    texts: list[str] = []
    blank = 0
    for path in paths:
        lines, n_blank = read_text_lines(path)
        texts += lines
        blank += n_blank
    return {"text": texts}, {"blank": blank}


def _read_suffix_label(paths: Sequence[Path]) -> tuple[dict[str, list], dict[str, int]]:
    """Yelp (Shen): the label is the file suffix, ``.0`` or ``.1``."""
    texts: list[str] = []
    labels: list[int] = []
    blank = 0
    for path in paths:
        lines, n_blank = read_text_lines(path)
        texts += lines
        labels += [int(path.suffix[1:])] * len(lines)
        blank += n_blank
    return {"text": texts, "label": labels}, {"blank": blank}


def _read_prefix_label(paths: Sequence[Path]) -> tuple[dict[str, list], dict[str, int]]:
    """SST-2: ``<label> <sentence>`` per line. A line with a label and no sentence is dropped."""
    texts: list[str] = []
    labels: list[int] = []
    blank = no_text = 0
    for path in paths:
        for number, line in enumerate(_stripped_lines(path, "utf-8"), 1):
            if not line:
                blank += 1
                continue
            head, *rest = line.split(maxsplit=1)
            if not head.isdigit():
                raise DataError(f"{path}, line {number}: {line[:40]!r} does not start with an integer label; "
                                "expected '<label> <sentence>'.")
            if not rest:
                no_text += 1
                continue
            texts.append(rest[0])
            labels.append(int(head))
    return {"text": texts, "label": labels}, {"blank": blank, "no_text": no_text}


SHIPPED_READERS: dict[str, Callable[[Sequence[Path]], tuple[dict[str, list], dict[str, int]]]] = {
    "plain": _read_plain,
    "suffix_label": _read_suffix_label,
    "prefix_label": _read_prefix_label,
}


def _load_shipped(name: str) -> tuple[dict[str, Dataset], dict[str, dict[str, int]]]:
    spec = SHIPPED_CORPORA[name]
    folder = data_root() / spec.folder
    features = Features({"text": Value("string")})
    if spec.label_names:
        features["label"] = ClassLabel(names=list(spec.label_names))
    splits, dropped = {}, {}
    for split, names in spec.files.items():
        columns, dropped[split] = SHIPPED_READERS[spec.reader]([folder / n for n in names])
        splits[split] = Dataset.from_dict(columns, features=features)
    return splits, dropped


# --------------------------------------------------------------------------- local files


FORMATS = ("text", "csv", "tsv", "json", "parquet")
EXTENSIONS = {".txt": "text", ".text": "text", ".csv": "csv", ".tsv": "tsv",
              ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
FILE_KEYS = {"train": "data.train_files", "validation": "data.valid_files", "test": "data.test_files"}


def _file_format(path: Path, configured: Optional[str]) -> str:
    if configured:
        fmt = "json" if configured == "jsonl" else configured
        if fmt not in FORMATS:
            raise DataError(f"data.format={configured!r} is not a known format; use one of "
                            f"{', '.join(FORMATS)} (or jsonl).")
        return fmt
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"Cannot tell the format of {path} from its extension {path.suffix!r}; set "
                        f"data.format to one of {', '.join(FORMATS)} (e.g. data.format=text for one "
                        "sentence per line).")
    return fmt


def _builder_kwargs(fmt: str, encoding: str) -> dict[str, Any]:
    """Keyword arguments of ``load_dataset`` for a packaged builder."""
    if fmt in ("csv", "tsv"):
        # na_filter off: a sentence "NA" or "null" stays text instead of becoming a missing value.
        kwargs: dict[str, Any] = {"encoding": encoding, "na_filter": False}
        if fmt == "tsv":  # TSV corpora do not quote fields; a leading '"' is part of the sentence
            kwargs.update(delimiter="\t", quoting=csv.QUOTE_NONE)
        return kwargs
    if fmt == "json":
        return {"encoding": encoding}
    return {}


def _load_local_split(files: Sequence[str], split: str, cfg: DataConfig) -> tuple[Dataset, dict[str, int]]:
    paths = [Path(f) for f in files]
    formats = {_file_format(p, cfg.format) for p in paths}
    if len(formats) > 1:
        raise DataError(f"{FILE_KEYS[split]} mixes formats {sorted(formats)} ({', '.join(map(str, paths))}); "
                        "use one format per split.")
    fmt = formats.pop()
    if fmt == "text":
        if cfg.label_column:
            raise DataError(f"data.label_column={cfg.label_column!r} is not a column of the text files "
                            f"{', '.join(map(str, paths))}: text files have only the column 'text'. Use a "
                            "csv/tsv/json/parquet file for labelled data, or set data.label_column=null.")
        texts: list[str] = []
        blank = 0
        for path in paths:
            lines, n_blank = read_text_lines(path, cfg.encoding)
            texts += lines
            blank += n_blank
        return Dataset.from_dict({"text": texts}, features=Features({"text": Value("string")})), {"blank": blank}
    for path in paths:
        _read_bytes(path)  # missing and empty files get their own message
    builder = "csv" if fmt == "tsv" else fmt
    try:
        dataset = load_dataset(builder, data_files={split: [str(p) for p in paths]}, split=split,
                               **_builder_kwargs(fmt, cfg.encoding))
    except Exception as err:  # noqa: BLE001 - the builders raise many types; each becomes one message
        raise DataError(_diagnose(paths, fmt, cfg.encoding, err)) from err
    return _standardize(dataset, cfg.text_column, cfg.label_column, ", ".join(map(str, paths)))


def one_line(err: BaseException) -> str:
    """An exception's message with its line breaks folded, to sit inside a one-paragraph error."""
    return " ".join(str(err).split())


def _root_cause(err: BaseException) -> BaseException:
    while err.__cause__ is not None:
        err = err.__cause__
    return err


def _diagnose(paths: Sequence[Path], fmt: str, encoding: str, err: Exception) -> str:
    """Find which file broke a ``load_dataset`` call, and why, in one paragraph."""
    for path in paths:
        if fmt == "parquet":
            continue
        raw = _read_bytes(path)
        if not raw.strip():
            return f"{path} has only blank lines; it holds no rows. Check that it is the right file."
        text = _decode(raw, path, encoding)  # raises with file, line and the encoding hint
        problem = _CHECKERS[fmt](text)
        if problem:
            return f"{path}: {problem}"
    cause = _root_cause(err)
    return (f"Could not read {', '.join(map(str, paths))} as {fmt}: {type(cause).__name__}: {one_line(cause)}. "
            f"Check the file format (data.format={fmt}) and that every row has the same columns.")


def _check_csv(text: str, delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL) -> Optional[str]:
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    header = next(rows, None)
    if header is None:
        return None
    for row in rows:
        if len(row) > len(header):
            return (f"line {rows.line_num} has {len(row)} fields but the header has {len(header)} "
                    f"({header}). Quote fields that contain the delimiter {delimiter!r}, or fix the row.")
    return None


def _check_tsv(text: str) -> Optional[str]:
    return _check_csv(text, "\t", csv.QUOTE_NONE)


def _check_json(text: str) -> Optional[str]:
    """JSON Lines are checked line by line; a single JSON document as a whole."""
    lines = text.split("\n")
    first = next((line for line in lines if line.strip()), "")
    try:
        json.loads(first)
        looks_like_lines = True
    except json.JSONDecodeError:
        looks_like_lines = False
    if looks_like_lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    json.loads(line)
                except json.JSONDecodeError as err:
                    return (f"line {number} is not valid JSON ({err.msg}): {line[:60]!r}. Each line of a "
                            "JSON Lines file must be one JSON object.")
        return None
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        return f"not valid JSON at line {err.lineno}, column {err.colno}: {err.msg}."
    return None


_CHECKERS: dict[str, Callable[[str], Optional[str]]] = {"csv": _check_csv, "tsv": _check_tsv, "json": _check_json}


def _load_local(cfg: DataConfig) -> tuple[dict[str, Dataset], dict[str, dict[str, int]]]:
    _check_encoding(cfg.encoding)
    given = {"train": cfg.train_files, "validation": cfg.valid_files, "test": cfg.test_files}
    splits, dropped = {}, {}
    for split, files in given.items():
        if files:
            splits[split], dropped[split] = _load_local_split(files, split, cfg)
    return splits, dropped


# --------------------------------------------------------------------------- columns and labels


def _standardize(dataset: Dataset, text_column: str, label_column: Optional[str],
                 origin: str) -> tuple[Dataset, dict[str, int]]:
    """Keep the text (and label) column as ``text`` (and ``label``); drop blank texts."""
    columns = dataset.column_names
    for key, column in (("data.text_column", text_column), ("data.label_column", label_column)):
        if column is not None and column not in columns:
            raise DataError(f"{origin} has no column {column!r} ({key}); its columns are {columns}. "
                            f"Set {key} to one of them.")
    if label_column is not None and label_column == text_column:
        raise DataError(f"data.text_column and data.label_column are both {text_column!r}; they must differ.")
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


def _encode_labels(splits: dict[str, Dataset], origins: dict[str, str]) -> dict[str, Dataset]:
    """Turn raw label values into a ``ClassLabel`` column numbered by sorted train values."""
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


# --------------------------------------------------------------------------- the hub


def _load_hub(cfg: DataConfig) -> tuple[dict[str, Dataset], dict[str, dict[str, int]]]:
    kwargs: dict[str, Any] = {}
    if cfg.revision:
        kwargs["revision"] = cfg.revision
    if cfg.trust_remote_code:  # only ever passed when the recipe asks for it
        kwargs["trust_remote_code"] = True
    try:
        loaded = load_dataset(cfg.name, cfg.hub_config, **kwargs)
    except Exception as err:  # noqa: BLE001 - offline, unknown name, bad config: all end the same way
        close = difflib.get_close_matches(str(cfg.name), list(SHIPPED_CORPORA), n=1)
        raise DataError(
            (f"Did you mean data.name={close[0]}? " if close else "") +
            f"The dataset {cfg.name!r} is not a shipped corpus and could not be loaded from the Hugging Face "
            f"hub (offline? {type(err).__name__}: {one_line(err)}). Use a shipped corpus "
            f"(data.name={' / '.join(SHIPPED_CORPORA)}) or local files: data.train_files=path/train.txt "
            "(plus data.valid_files=..., data.test_files=...; for csv/json/parquet also "
            "data.text_column=... and data.label_column=...).") from err
    wanted = {"train": cfg.train_split, "validation": cfg.valid_split, "test": cfg.test_split}
    if cfg.train_split not in loaded:
        raise DataError(f"The hub dataset {cfg.name!r} has no split {cfg.train_split!r} (data.train_split); "
                        f"its splits are {list(loaded)}.")
    splits, dropped = {}, {}
    for split, hub_split in wanted.items():
        if hub_split is None or hub_split not in loaded:
            if hub_split is not None and split != "test":
                logger.info("hub dataset %s has no split %r; carving validation from train", cfg.name, hub_split)
            continue
        origin = f"hub dataset {cfg.name!r} split {hub_split!r}"
        splits[split], dropped[split] = _standardize(loaded[hub_split], cfg.text_column, cfg.label_column, origin)
    return splits, dropped


# --------------------------------------------------------------------------- the entry point


def load_corpus(cfg: DataConfig, seed: int = 0) -> Corpus:
    """Load the corpus a recipe names, with splits train / validation / (test).

    Sources, in order: ``cfg.train_files`` (local files), a shipped name (``ptb``, ``yelp``,
    ``yahoo``, ``sst2``), else a hub dataset. Without a validation split, ``cfg.valid_fraction``
    of train is held out by a split seeded with ``seed``. Then ``max_train_examples`` /
    ``max_eval_examples`` keep the first N sentences of each split.

    Returns:
        a :class:`Corpus` (a ``DatasetDict``) with columns ``text`` and, if labelled, ``label``.

    Raises:
        DataError: a missing, empty, undecodable or malformed file; a missing column; labels
            in validation/test that train lacks; a hub dataset that cannot be loaded.
    """
    if cfg.train_files:
        splits, dropped = _load_local(cfg)
        origins = {s: ", ".join(f) for s, f in
                   (("train", cfg.train_files), ("validation", cfg.valid_files), ("test", cfg.test_files)) if f}
    elif cfg.name in SHIPPED_CORPORA:
        splits, dropped = _load_shipped(cfg.name)
        origins = {s: f"shipped corpus {cfg.name!r}" for s in splits}
    else:
        splits, dropped = _load_hub(cfg)
        origins = {s: f"hub dataset {cfg.name!r}" for s in splits}
    for split, dataset in splits.items():
        if len(dataset) == 0:
            raise DataError(f"{origins[split]} ({split}) holds no sentences after dropping blank ones.")
    splits = _encode_labels(splits, origins)
    if "validation" not in splits:
        splits["train"], splits["validation"] = _carve(splits["train"], cfg.valid_fraction, seed, origins["train"])
        dropped["validation"] = {}
    splits = _limit(splits, cfg.max_train_examples, cfg.max_eval_examples)
    ordered = {split: splits[split] for split in SPLITS if split in splits}
    return Corpus(ordered, {split: dropped.get(split, {}) for split in ordered})


def _carve(train: Dataset, fraction: float, seed: int, origin: str) -> tuple[Dataset, Dataset]:
    """Hold out ``fraction`` of train for validation, by a split seeded with ``seed``."""
    if len(train) < 2:
        raise DataError(f"{origin} has {len(train)} training sentence(s); at least 2 are needed to hold some "
                        "out for validation. Add data or give data.valid_files.")
    parts = train.train_test_split(test_size=fraction, seed=seed, shuffle=True)
    return parts["train"], parts["test"]


def _limit(splits: dict[str, Dataset], max_train: Optional[int], max_eval: Optional[int]) -> dict[str, Dataset]:
    limited = {}
    for split, dataset in splits.items():
        limit = max_train if split == "train" else max_eval
        limited[split] = dataset.select(range(limit)) if limit is not None and limit < len(dataset) else dataset
    return limited


def corpus_report(dsd: DatasetDict, stats: Optional[dict[str, dict[str, int]]] = None) -> str:
    """A few lines: sentences per split, label counts, what loading dropped and, given the
    statistics of :func:`textvae.data.batching.tokenize_corpus`, what tokenization dropped."""
    names = label_names(dsd)
    dropped = getattr(dsd, "dropped", {})
    lines = []
    for split, dataset in dsd.items():
        parts = [f"{split}: {len(dataset):,} sentences"]
        if names is not None and "label" in dataset.column_names:
            counts = np.bincount(dataset.with_format("arrow")["label"].to_numpy(), minlength=len(names))
            parts.append("labels " + ", ".join(f"{n} {c:,}" for n, c in zip(names, counts)))
        skipped = {k: v for k, v in dropped.get(split, {}).items() if v}
        if skipped:
            parts.append("dropped on load " + ", ".join(f"{v:,} {k}" for k, v in skipped.items()))
        if stats and split in stats:
            s = stats[split]
            parts.append(f"tokens {s['tokens']:,}; dropped {s['filtered']:,} too long, {s['empty']:,} empty; "
                         f"truncated {s['truncated']:,}")
        lines.append("; ".join(parts))
    return "\n".join(lines)
