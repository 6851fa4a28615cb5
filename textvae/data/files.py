"""Local data files: text, label_text, csv, tsv, json/jsonl and parquet, named by path or glob pattern.

Line formats (text, label_text) are read by :mod:`textvae.data.line_formats`; tables go through
a ``datasets`` builder, and when one fails :func:`~textvae.data.diagnosis.diagnose` says which
file broke and why. An entry of ``data.train_files`` may be a glob pattern (``data/*.txt``,
``**`` for subfolders).
"""

from __future__ import annotations

import csv
import difflib
import glob
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

from datasets import Dataset, Features, Value, load_dataset

from textvae.config import DataConfig
from textvae.data.columns import Loaded, standardize
from textvae.data.diagnosis import diagnose
from textvae.data.line_formats import Read, read_label_text, read_text
from textvae.data.lines import check_encoding, read_bytes
from textvae.data.options import RECIPE_KEYS, OptionNames
from textvae.errors import DataError

FORMATS = ("text", "label_text", "csv", "tsv", "json", "jsonl", "parquet")
"""The values of ``data.format`` (``jsonl`` is read as ``json``); see :class:`DataConfig`."""
EXTENSIONS = {".txt": "text", ".text": "text", ".csv": "csv", ".tsv": "tsv",
              ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
LINE_READERS: dict[str, Callable[..., Read]] = {"text": read_text, "label_text": read_label_text}
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


def _load_split(files: Sequence[str], split: str, cfg: DataConfig,
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
        read_bytes(path, key)  # missing and empty files get their own message
    builder = "csv" if fmt == "tsv" else fmt
    try:
        dataset = load_dataset(builder, data_files={split: [str(p) for p in paths]}, split=split,
                               **_builder_kwargs(fmt, cfg.encoding))
    except Exception as err:  # noqa: BLE001 - the builders raise many types; each becomes one message
        raise DataError(diagnose(paths, fmt, cfg.encoding, err, names, key)) from err
    dataset, dropped = standardize(dataset, cfg.text_column, cfg.label_column, origin, names)
    return dataset, dropped, []


def load_files(cfg: DataConfig, names: OptionNames = RECIPE_KEYS) -> Loaded:
    """The splits that ``cfg.train_files`` / ``valid_files`` / ``test_files`` give.

    Raises:
        DataError: an unknown encoding or format; a missing, empty, undecodable or malformed file;
            a directory or a pattern matching nothing; a missing column.
    """
    check_encoding(cfg.encoding, names)
    given = {"train": cfg.train_files, "validation": cfg.valid_files, "test": cfg.test_files}
    splits, dropped, notes = {}, {}, {}
    for split, files in given.items():
        if files:
            splits[split], dropped[split], notes[split] = _load_split(files, split, cfg, names)
    return splits, dropped, notes
