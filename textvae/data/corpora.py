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

Local files are text (one sentence per line), label_text (``<label> <sentence>`` per line, the
format of SST, MR, SUBJ, TREC, CR and MPQA as distributed), csv, tsv, json/jsonl or parquet; an
entry of ``data.train_files`` may be a glob pattern (``data/*.txt``, ``**`` for subfolders).

What loading drops (blank lines, label-only lines) is counted in :attr:`Corpus.dropped`, and what
the user should know about it (which lines held only a label; a text file that looks labelled) is
said in :attr:`Corpus.notes`; :func:`corpus_report` turns sizes, labels, counts and notes into a
few printable lines. Error messages name the recipe key of each option (``data.encoding=cp1252``)
or, given an :class:`OptionNames` of flags, the command-line flag (``--encoding cp1252``).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import difflib
import glob
import io
import json
import logging
import os
import re
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
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


# --------------------------------------------------------------------------- option names


@dataclass(frozen=True)
class OptionNames:
    """How the user sets each data option, so that an error names a fix they can type.

    Recipes (and so ``textvae train``) set keys, ``data.encoding=cp1252``: :data:`RECIPE_KEYS`.
    The other commands take flags, ``--encoding cp1252``: :meth:`flags`.
    """

    name: str = "data.name"
    format: str = "data.format"
    encoding: str = "data.encoding"
    text_column: str = "data.text_column"
    label_column: str = "data.label_column"
    files: dict[str, str] = field(default_factory=lambda: dict(FILE_KEYS))
    """Split → the key or flag that gave its files."""
    flag_style: bool = False
    """``--flag value`` rather than ``key=value``."""
    label_optional: bool = True
    """Whether reading the data without labels is a fix worth suggesting."""

    @classmethod
    def flags(cls, files: dict[str, str], name: str = "--data", label_optional: bool = True) -> "OptionNames":
        """The flags every data-reading command takes; ``files`` names the flag of each split's files."""
        return cls(name=name, format="--format", encoding="--encoding", text_column="--text-column",
                   label_column="--label-column", files=dict(files), flag_style=True,
                   label_optional=label_optional)

    def set(self, option: str, value: Any, quote: bool = True) -> str:
        """What to type to set ``option`` (a field name, or a split for its files) to ``value``;
        ``quote=False`` leaves a flag's value as written (for ``ptb / yelp``-style lists)."""
        key = self.files[option] if option in self.files else getattr(self, option)
        if not self.flag_style:
            return f"{key}={value}"
        return f"{key} {shlex.quote(str(value)) if quote else value}"

    def file_key(self, split: str) -> str:
        return self.files.get(split, " / ".join(dict.fromkeys(self.files.values())))

    def unset_label(self) -> str:
        return f"leave out {self.label_column}" if self.flag_style else f"set {self.label_column}=null"


FILE_KEYS = {"train": "data.train_files", "validation": "data.valid_files", "test": "data.test_files"}
RECIPE_KEYS = OptionNames()
_SHIPPED_FILES = "the shipped corpora folder (data/, or $TEXTVAE_DATA_DIR)"


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
        reader="label_text", label_names=("negative", "positive")),
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


def shipped_name_hint(name: str) -> Optional[str]:
    """The shipped corpus a mistyped ``name`` probably means (``pbt`` → ``ptb``), else None."""
    close = difflib.get_close_matches(str(name).lower(), list(SHIPPED_CORPORA), n=1)
    return close[0] if close else None


# --------------------------------------------------------------------------- text files


def read_text_lines(path: Path, encoding: str = "utf-8", names: OptionNames = RECIPE_KEYS,
                    key: Optional[str] = None) -> tuple[list[str], int]:
    """Read the non-blank lines of a text file, stripped, and count the blank ones.

    Lines end at ``\\n`` only (``\\r\\n`` works too: the ``\\r`` is stripped); U+0085, U+2028,
    ``\\x0b`` and ``\\x0c`` stay inside their line. ``names`` and ``key`` (the key or flag that
    gave the file) word the errors.

    Raises:
        DataError: the file is missing, empty, only blank lines, or not valid ``encoding``.
    """
    lines = _stripped_lines(path, encoding, names, key)
    kept = [line for line in lines if line]
    return kept, len(lines) - len(kept)


def _stripped_lines(path: Path, encoding: str, names: OptionNames = RECIPE_KEYS,
                    key: Optional[str] = None) -> list[str]:
    """Every line of a text file (blank ones too), stripped; fails if none has text."""
    text = _decode(_read_bytes(path, key or names.file_key("")), path, encoding, names)
    lines = text.split("\n")
    if lines[-1] == "":  # the newline that ends the last line does not start another
        lines.pop()
    lines = [line.strip() for line in lines]
    if not any(lines):
        raise DataError(f"{path} has only blank lines; it holds no sentences. Check that it is the right file.")
    return lines


def _read_bytes(path: Path, key: str) -> bytes:
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a data file ({key}). Give one file, or a glob pattern "
                        "for the files in it.")
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative paths are read from {Path.cwd()})"
        raise DataError(f"Data file {path} does not exist{where}. Check the path in {key}.")
    raw = path.read_bytes()
    if not raw:
        raise DataError(f"Data file {path} is empty (0 bytes). Point {key} at a file with one sentence per line.")
    return raw


def _decode(raw: bytes, path: Path, encoding: str, names: OptionNames = RECIPE_KEYS) -> str:
    """Decode a whole file, naming the line and column of the first invalid byte."""
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        bad = raw[err.start:err.end]
        raise DataError(
            f"{path}, line {line} (column {column}): byte {bad!r} is not valid {encoding}. The file is in "
            f"another encoding; Windows files are often cp1252: set {names.set('encoding', 'cp1252')} "
            f"(or {names.set('encoding', 'latin-1')}, which accepts every byte).") from err
    return text.removeprefix("\ufeff")  # a UTF-8 byte-order mark is not part of the first sentence


def _check_encoding(encoding: str, names: OptionNames = RECIPE_KEYS) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError as err:
        raise DataError(f"{names.set('encoding', encoding)} is not an encoding Python knows; "
                        f"use e.g. utf-8, cp1252 or latin-1 ({names.set('encoding', 'cp1252')}).") from err


# --------------------------------------------------------------------------- line readers

# What the readers of line files return: columns, dropped counts, notes.
Read = tuple[dict[str, list], dict[str, int], list[str]]

_INTEGER = re.compile(r"[+-]?\d+")
# A text file whose every line starts with one of at most this many integers looks labelled.
_MAX_LOOKS_LABELLED = 20
# label_text with more distinct string labels than this probably is plain text.
_MANY_LABELS = 100


def _line_list(numbers: Sequence[int], most: int = 5) -> str:
    shown = ", ".join(map(str, numbers[:most]))
    return f"line {shown}" if len(numbers) == 1 else f"lines {shown}" + (", …" if len(numbers) > most else "")


def _read_text(paths: Sequence[Path], encoding: str = "utf-8", names: OptionNames = RECIPE_KEYS,
               key: Optional[str] = None) -> Read:
    """One sentence per line. Notes a file whose lines all start with an integer label."""
    texts: list[str] = []
    blank = 0
    notes = []
    for path in paths:
        lines, n_blank = read_text_lines(path, encoding, names, key)
        texts += lines
        blank += n_blank
        note = _looks_labelled(path, lines, names)
        if note:
            notes.append(note)
    return {"text": texts}, {"blank": blank}, notes


def _looks_labelled(path: Path, lines: Sequence[str], names: OptionNames) -> Optional[str]:
    heads = [line.split(maxsplit=1)[0] for line in lines]
    values = set(heads)
    if len(lines) < 2 or len(values) > _MAX_LOOKS_LABELLED or not all(_INTEGER.fullmatch(h) for h in values):
        return None
    label_only = [i for i, line in enumerate(lines, 1) if line == line.split(maxsplit=1)[0]]
    only = (f"; {len(label_only)} line(s) hold only that number and are read as the sentence "
            f"{', '.join(repr(lines[i - 1]) for i in label_only[:3])}" if label_only else "")
    shown = ", ".join(sorted(values, key=int)[:5])
    return (f"every line of {path} starts with an integer ({shown}), as in '<label> <sentence>' files (SST, MR, "
            f"SUBJ, TREC, CR, MPQA); it is read as text, so the number is the first word of each sentence{only}. "
            f"To read it as the label, set {names.set('format', 'label_text')}.")


def _read_label_text(paths: Sequence[Path], encoding: str = "utf-8", names: OptionNames = RECIPE_KEYS,
                     key: Optional[str] = None) -> Read:
    """``<label> <sentence>`` per line: the label is the first word, the sentence the rest.

    Integer labels are read as ints (so ``0..K-1`` keep their values), others (TREC's
    ``DESC:manner``) as strings. A line that holds only a label is dropped, counted as
    ``no_text`` and named in a note.

    Raises:
        DataError: a line without an integer label in a file whose labels are integers.
    """
    texts: list[str] = []
    heads: list[str] = []
    where: list[tuple[Path, int, str]] = []
    blank = no_text = 0
    notes = []
    for path in paths:
        label_only = []
        for number, line in enumerate(_stripped_lines(path, encoding, names, key), 1):
            if not line:
                blank += 1
                continue
            head, *rest = line.split(maxsplit=1)
            if not rest:
                label_only.append(number)
                continue
            texts.append(rest[0])
            heads.append(head)
            where.append((path, number, line))
        if label_only:
            no_text += len(label_only)
            notes.append(f"{path}: {len(label_only)} line(s) hold only a label and no sentence "
                         f"({_line_list(label_only)}); they are left out.")
    dropped = {"blank": blank, "no_text": no_text}
    integer = [bool(_INTEGER.fullmatch(h)) for h in heads]
    if all(integer):
        return {"text": texts, "label": [int(h) for h in heads]}, dropped, notes
    if sum(integer) * 2 > len(integer):  # integer labels, and a few lines that lack one
        path, number, line = where[integer.index(False)]
        raise DataError(f"{path}, line {number}: {line[:40]!r} does not start with an integer label like the "
                        f"other lines; {names.set('format', 'label_text')} reads '<label> <sentence>' on every "
                        f"line. Fix that line, or read the file as plain sentences ({names.set('format', 'text')}).")
    distinct = sorted(set(heads))
    if len(distinct) > _MANY_LABELS:
        notes.append(f"{', '.join(map(str, paths))}: the first words of the lines, read as labels, take "
                     f"{len(distinct):,} different values (e.g. {', '.join(map(repr, distinct[:3]))}); if the "
                     f"file holds plain sentences, read it with {names.set('format', 'text')}.")
    return {"text": texts, "label": heads}, dropped, notes


def _read_suffix_label(paths: Sequence[Path], encoding: str = "utf-8", names: OptionNames = RECIPE_KEYS,
                       key: Optional[str] = None) -> Read:
    """Yelp (Shen): the label is the file suffix, ``.0`` or ``.1``."""
    texts: list[str] = []
    labels: list[int] = []
    blank = 0
    for path in paths:
        lines, n_blank = read_text_lines(path, encoding, names, key)
        texts += lines
        labels += [int(path.suffix[1:])] * len(lines)
        blank += n_blank
    return {"text": texts, "label": labels}, {"blank": blank}, []


SHIPPED_READERS: dict[str, Callable[..., Read]] = {
    "plain": _read_text,
    "suffix_label": _read_suffix_label,
    "label_text": _read_label_text,
}
"""How the lines of a shipped corpus are read: ``reader(paths, encoding, names, key)``."""


def _load_shipped(name: str) -> tuple[dict[str, Dataset], dict[str, dict[str, int]], dict[str, list[str]]]:
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


# --------------------------------------------------------------------------- local files


FORMATS = ("text", "label_text", "csv", "tsv", "json", "jsonl", "parquet")
"""The values of ``data.format`` (``jsonl`` is read as ``json``); see :class:`DataConfig`."""
EXTENSIONS = {".txt": "text", ".text": "text", ".csv": "csv", ".tsv": "tsv",
              ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
LINE_READERS: dict[str, Callable[..., Read]] = {"text": _read_text, "label_text": _read_label_text}
"""Formats read line by line here; the others go through a ``datasets`` builder."""


def _file_format(path: Path, configured: Optional[str], names: OptionNames = RECIPE_KEYS) -> str:
    if configured:
        if configured not in FORMATS:
            close = difflib.get_close_matches(str(configured), FORMATS, n=1)
            raise DataError(f"{names.set('format', configured)} is not a known format. "
                            + (f"Did you mean {names.set('format', close[0])}? " if close else "")
                            + f"The formats are {', '.join(FORMATS)}.")
        return "json" if configured == "jsonl" else configured
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"Cannot tell the format of {path} from its extension {path.suffix!r}; set "
                        f"{names.format} to one of {', '.join(FORMATS)} (e.g. {names.set('format', 'text')} for "
                        f"one sentence per line, {names.set('format', 'label_text')} for '<label> <sentence>' "
                        "lines).")
    return fmt


def expand_files(files: Sequence[str], key: str) -> list[Path]:
    """The paths of ``files``, each glob pattern (``*``, ``?``, ``[..]``, ``**``) replaced by the
    files it matches, in sorted order; a file named twice is read once.

    Raises:
        DataError: a pattern that matches no file.
    """
    paths: list[Path] = []
    for entry in files:
        if glob.has_magic(str(entry)):
            matches = sorted(p for p in glob.glob(str(entry), recursive=True) if Path(p).is_file())
            if not matches:
                where = "" if Path(entry).is_absolute() else f" (relative patterns are read from {Path.cwd()})"
                raise DataError(f"The pattern {entry!r} ({key}) matches no file{where}. Check the folder and "
                                "the extension; ** matches any number of subfolders.")
            paths += [Path(p) for p in matches]
        else:
            paths.append(Path(entry))
    return list(dict.fromkeys(paths))


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


def _load_local_split(files: Sequence[str], split: str, cfg: DataConfig,
                      names: OptionNames) -> tuple[Dataset, dict[str, int], list[str]]:
    key = names.file_key(split)
    paths = expand_files(files, key)
    for path in paths:
        if path.is_dir():
            inside = sorted({p.suffix for p in path.iterdir() if p.is_file() and p.suffix})
            pattern = path / f"*{inside[0] if len(inside) == 1 else '.txt'}"
            raise DataError(f"{path} is a directory, not a data file ({key}). Name the files in it with a glob "
                            f"pattern, e.g. {names.set(split, pattern)}, or give one file.")
    formats = {_file_format(p, cfg.format, names) for p in paths}
    if len(formats) > 1:
        raise DataError(f"{key} mixes formats {sorted(formats)} ({', '.join(map(str, paths))}); "
                        f"use one format per split (or set {names.format} for all of them).")
    fmt = formats.pop()
    origin = ", ".join(map(str, paths))
    if fmt == "text" and cfg.label_column:
        raise DataError(
            f"{origin} is read as text, and text files have only the column 'text', so there is no label "
            f"column {cfg.label_column!r} ({names.label_column}). For '<label> <sentence>' lines (SST, MR, "
            f"SUBJ, TREC, CR, MPQA) set {names.set('format', 'label_text')}; for labelled tables use a "
            "csv/tsv/json/parquet file" + (f"; for unlabelled sentences {names.unset_label()}."
                                           if names.label_optional else "."))
    if fmt == "label_text" and (cfg.text_column != "text" or cfg.label_column not in (None, "label")):
        raise DataError(
            f"{names.set('format', 'label_text')} reads '<label> <sentence>' lines: the label is the first word "
            f"and the sentence the rest, with no named columns, so {names.text_column} / {names.label_column} "
            f"do not apply to {origin}. Leave them out.")
    if fmt in LINE_READERS:
        columns, dropped, notes = LINE_READERS[fmt](paths, cfg.encoding, names, key)
        features = Features({"text": Value("string")})
        if "label" in columns:
            features["label"] = Value("int64") if all(isinstance(v, int) for v in columns["label"]) \
                else Value("string")
        return Dataset.from_dict(columns, features=features), dropped, notes
    for path in paths:
        _read_bytes(path, key)  # missing and empty files get their own message
    builder = "csv" if fmt == "tsv" else fmt
    try:
        dataset = load_dataset(builder, data_files={split: [str(p) for p in paths]}, split=split,
                               **_builder_kwargs(fmt, cfg.encoding))
    except Exception as err:  # noqa: BLE001 - the builders raise many types; each becomes one message
        raise DataError(_diagnose(paths, fmt, cfg.encoding, err, names, key)) from err
    dataset, dropped = _standardize(dataset, cfg.text_column, cfg.label_column, origin, names)
    return dataset, dropped, []


def one_line(err: BaseException) -> str:
    """An exception's message with its line breaks folded, to sit inside a one-paragraph error."""
    return " ".join(str(err).split())


def _root_cause(err: BaseException) -> BaseException:
    while err.__cause__ is not None:
        err = err.__cause__
    return err


def _diagnose(paths: Sequence[Path], fmt: str, encoding: str, err: Exception, names: OptionNames = RECIPE_KEYS,
              key: str = "data.train_files") -> str:
    """Find which file broke a ``load_dataset`` call, and why, in one paragraph."""
    empty = []
    for path in paths:
        if fmt == "parquet":
            empty.append(_parquet_rows(path) == 0)
            continue
        raw = _read_bytes(path, key)
        if not raw.strip():
            return f"{path} has only blank lines; it holds no rows. Check that it is the right file."
        text = _decode(raw, path, encoding, names)  # raises with file, line and the encoding hint
        problem = _CHECKERS[fmt](text)
        if problem:
            return f"{path}: {problem}"
        empty.append(_ROW_COUNTERS[fmt](text) == 0)
    if all(empty):  # the builders say 'Instruction "train" corresponds to no data!'
        what = "a header but no rows under it" if fmt in ("csv", "tsv") else "no rows (records)"
        files = str(paths[0]) if len(paths) == 1 else f"each of {', '.join(map(str, paths))} ({key})"
        return (f"{files} has {what}: there are no sentences to read. Check that it is the right file, and "
                "that it was written completely.")
    cause = _root_cause(err)
    return (f"Could not read {', '.join(map(str, paths))} as {fmt}: {type(cause).__name__}: {one_line(cause)}. "
            f"Check the file format ({names.set('format', fmt)}) and that every row has the same columns.")


def _parquet_rows(path: Path) -> Optional[int]:
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path).num_rows
    except Exception:  # noqa: BLE001 - not parquet at all: the builder's error says more
        return None


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


def _csv_rows(text: str, delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL) -> int:
    """Rows under the header that hold anything."""
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    next(rows, None)
    return sum(1 for row in rows if any(cell.strip() for cell in row))


def _json_rows(text: str) -> int:
    """Records with at least one field: JSON Lines objects, or the items of a JSON list."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError:  # JSON Lines
        records = [json.loads(line) for line in text.split("\n") if line.strip()]
    else:
        records = document if isinstance(document, list) else [document]
    return sum(1 for r in records if r)


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
_ROW_COUNTERS: dict[str, Callable[[str], int]] = {
    "csv": _csv_rows, "tsv": lambda text: _csv_rows(text, "\t", csv.QUOTE_NONE), "json": _json_rows}


def _load_local(cfg: DataConfig, names: OptionNames
                ) -> tuple[dict[str, Dataset], dict[str, dict[str, int]], dict[str, list[str]]]:
    _check_encoding(cfg.encoding, names)
    given = {"train": cfg.train_files, "validation": cfg.valid_files, "test": cfg.test_files}
    splits, dropped, notes = {}, {}, {}
    for split, files in given.items():
        if files:
            splits[split], dropped[split], notes[split] = _load_local_split(files, split, cfg, names)
    return splits, dropped, notes


# --------------------------------------------------------------------------- columns and labels


def _standardize(dataset: Dataset, text_column: str, label_column: Optional[str], origin: str,
                 names: OptionNames = RECIPE_KEYS) -> tuple[Dataset, dict[str, int]]:
    """Keep the text (and label) column as ``text`` (and ``label``); drop blank texts."""
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


# Loggers that speak while a hub download is tried: connection errors, "Retrying in 1s [Retry 1/5]".
HUB_LOGGERS = ("huggingface_hub", "datasets", "urllib3", "httpx", "httpcore", "fsspec", "filelock")


@contextlib.contextmanager
def held_hub_logs() -> Iterator[None]:
    """Hold back what the hub libraries log while the block runs. If the block fails, the error
    that follows says what happened in one paragraph and the held records (retry noise, offline
    warnings) are dropped; if it succeeds, they are passed on as they would have been."""
    held: list[logging.LogRecord] = []

    class _Hold(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            held.append(record)

    hold = _Hold()
    saved = {}
    for name in HUB_LOGGERS:
        log = logging.getLogger(name)
        saved[name] = (log.handlers[:], log.propagate)
        log.handlers, log.propagate = [hold], False
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        for name, (handlers, propagate) in saved.items():
            log = logging.getLogger(name)
            log.handlers, log.propagate = handlers, propagate
        if succeeded:
            for record in held:
                logging.getLogger(record.name).handle(record)


def _check_not_a_typo(name: str, names: OptionNames) -> None:
    """A name close to a shipped one (``pbt``) is a typo, said at once rather than after the hub's
    retries; a hub dataset of such a name is still reachable by its full ``owner/name``."""
    close = shipped_name_hint(name)
    if close is None or "/" in name or Path(name).exists():
        return
    raise DataError(
        f"Did you mean {names.set('name', close)}? {name!r} is not a shipped corpus (those are "
        f"{', '.join(SHIPPED_CORPORA)}). To load a Hugging Face hub dataset of that name instead, give it with "
        f"its owner, as on its hub page ({names.set('name', 'owner/' + name)}).")


def _load_hub(cfg: DataConfig, names: OptionNames = RECIPE_KEYS
              ) -> tuple[dict[str, Dataset], dict[str, dict[str, int]], dict[str, list[str]]]:
    _check_not_a_typo(str(cfg.name), names)
    kwargs: dict[str, Any] = {}
    if cfg.revision:
        kwargs["revision"] = cfg.revision
    if cfg.trust_remote_code:  # only ever passed when the recipe asks for it
        kwargs["trust_remote_code"] = True
    try:
        with held_hub_logs():
            loaded = load_dataset(cfg.name, cfg.hub_config, **kwargs)
    except Exception as err:  # noqa: BLE001 - offline, unknown name, bad config: all end the same way
        files = names.set("train", "path/train.txt")
        raise DataError(
            f"The dataset {cfg.name!r} is not a shipped corpus and could not be loaded from the Hugging Face "
            f"hub (offline? {type(err).__name__}: {one_line(err)}). Use a shipped corpus "
            f"({names.set('name', ' / '.join(SHIPPED_CORPORA), quote=False)}) or local files: {files}"
            + (f" (for csv/json/parquet also {names.text_column} and {names.label_column})."
               if names.flag_style else " (plus data.valid_files=..., data.test_files=...; for csv/json/parquet "
               "also data.text_column=... and data.label_column=...).")) from err
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
        splits[split], dropped[split] = _standardize(loaded[hub_split], cfg.text_column, cfg.label_column,
                                                     origin, names)
    return splits, dropped, {}


# --------------------------------------------------------------------------- the entry point


def load_corpus(cfg: DataConfig, seed: int = 0, names: OptionNames = RECIPE_KEYS) -> Corpus:
    """Load the corpus a recipe names, with splits train / validation / (test).

    Sources, in order: ``cfg.train_files`` (local files or glob patterns), a shipped name
    (``ptb``, ``yelp``, ``yahoo``, ``sst2``), else a hub dataset (a name close to a shipped one
    is refused as a typo first). Without a validation split, ``cfg.valid_fraction`` of train is
    held out by a split seeded with ``seed``. Then ``max_train_examples`` /
    ``max_eval_examples`` keep the first N sentences of each split.

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
        splits, dropped, notes = _load_local(cfg, names)
        origins = {s: ", ".join(f) for s, f in
                   (("train", cfg.train_files), ("validation", cfg.valid_files), ("test", cfg.test_files)) if f}
    elif cfg.name in SHIPPED_CORPORA:
        splits, dropped, notes = _load_shipped(cfg.name)
        origins = {s: f"shipped corpus {cfg.name!r}" for s in splits}
    else:
        splits, dropped, notes = _load_hub(cfg, names)
        origins = {s: f"hub dataset {cfg.name!r}" for s in splits}
    for split, dataset in splits.items():
        if len(dataset) == 0:
            label_only = dropped.get(split, {}).get("no_text")
            raise DataError(f"{origins[split]} ({split}) holds no sentences after dropping blank ones."
                            + (f" Its {label_only:,} line(s) that hold only a label were dropped too; check that "
                               "it is the right file." if label_only else ""))
    splits = _encode_labels(splits, origins)
    if "validation" not in splits:
        splits["train"], splits["validation"] = _carve(splits["train"], cfg.valid_fraction, seed, origins["train"])
        dropped["validation"] = {}
    splits = _limit(splits, cfg.max_train_examples, cfg.max_eval_examples)
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


def _limit(splits: dict[str, Dataset], max_train: Optional[int], max_eval: Optional[int]) -> dict[str, Dataset]:
    limited = {}
    for split, dataset in splits.items():
        limit = max_train if split == "train" else max_eval
        limited[split] = dataset.select(range(limit)) if limit is not None and limit < len(dataset) else dataset
    return limited


DROP_REASONS = {"blank": "blank line(s) or empty text cell(s)", "no_text": "label-only line(s)"}
"""How each reason of :attr:`Corpus.dropped` reads in a sentence."""


def dropped_phrase(counts: dict[str, int]) -> str:
    """``{"blank": 2, "no_text": 1}`` → ``"2 blank line(s) or empty text cell(s) and 1 label-only
    line(s)"``; "" when nothing was dropped."""
    return " and ".join(f"{n:,} {DROP_REASONS.get(reason, reason)}" for reason, n in counts.items() if n)


def corpus_notes(dsd: DatasetDict, splits: Optional[Sequence[str]] = None,
                 origins: Optional[dict[str, str]] = None, counts: bool = True) -> list[str]:
    """What loading left out of ``splits`` (default: all) of a :class:`Corpus` (with ``counts``)
    and what it noticed, as one-line notes, each once.

    ``origins`` names each split as the user gave it (``--train train.csv``).
    """
    dropped, notes = getattr(dsd, "dropped", {}), getattr(dsd, "notes", {})
    lines = []
    for split in splits or list(dsd):
        phrase = dropped_phrase(dropped.get(split, {})) if counts else ""
        if phrase:
            where = (origins or {}).get(split, f"the {split} split")
            lines.append(f"{where}: {phrase} left out; {len(dsd[split]):,} sentences remain.")
        lines += notes.get(split, [])
    return list(dict.fromkeys(lines))


def corpus_report(dsd: DatasetDict, stats: Optional[dict[str, dict[str, int]]] = None) -> str:
    """A few lines: sentences per split, label counts, what loading dropped and, given the
    statistics of :func:`textvae.data.batching.tokenize_corpus`, what tokenization dropped;
    then the notes of :class:`Corpus` (label-only lines, a text file that looks labelled)."""
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
    lines += [f"note: {note}" for note in corpus_notes(dsd, counts=False)]
    return "\n".join(lines)
