"""Why a ``datasets`` builder could not read csv, tsv, json or parquet files, in one paragraph.

The builders raise many exception types, often about an internal step (``Instruction "train"
corresponds to no data!``). :func:`diagnose` reads the files again to find the one that broke and
why: undecodable bytes, a row with more fields than the header, a line that is not JSON, a table
with a header but no rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

from textvae.data.lines import decode, read_bytes
from textvae.data.options import RECIPE_KEYS, OptionNames
from textvae.utils.text import one_line, root_cause


def diagnose(paths: Sequence[Path], fmt: str, encoding: str, err: Exception, names: OptionNames = RECIPE_KEYS,
             key: str = "data.train_files") -> str:
    """Find which file broke a ``load_dataset`` call, and why, in one paragraph.

    Raises:
        DataError: a file that is not valid ``encoding`` (named with its line and column).
    """
    empty = []
    for path in paths:
        if fmt == "parquet":
            empty.append(_parquet_rows(path) == 0)
            continue
        raw = read_bytes(path, key)
        if not raw.strip():
            return f"{path} has only blank lines; it holds no rows. Check that it is the right file."
        text = decode(raw, path, encoding, names)  # raises with file, line and the encoding hint
        problem = _CHECKERS[fmt](text)
        if problem:
            return f"{path}: {problem}"
        empty.append(_ROW_COUNTERS[fmt](text) == 0)
    if all(empty):  # the builders say 'Instruction "train" corresponds to no data!'
        what = "a header but no rows under it" if fmt in ("csv", "tsv") else "no rows (records)"
        files = str(paths[0]) if len(paths) == 1 else f"each of {', '.join(map(str, paths))} ({key})"
        return (f"{files} has {what}: there are no sentences to read. Check that it is the right file, and "
                "that it was written completely.")
    cause = root_cause(err)
    return (f"Could not read {', '.join(map(str, paths))} as {fmt}: {type(cause).__name__}: {one_line(cause)}. "
            f"Check the file format ({names.set('format', fmt)}) and that every row has the same columns.")


def _parquet_rows(path: Path) -> Optional[int]:
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path).num_rows
    except Exception:  # noqa: BLE001 - not parquet at all: the builder's error says more
        return None


def _csv_reader(text: str, delimiter: str, quoting: int):  # csv has no public type for its reader
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)


def _check_csv(text: str, delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL) -> Optional[str]:
    rows = _csv_reader(text, delimiter, quoting)
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
    rows = _csv_reader(text, delimiter, quoting)
    next(rows, None)
    return sum(1 for row in rows if any(cell.strip() for cell in row))


def _tsv_rows(text: str) -> int:
    return _csv_rows(text, "\t", csv.QUOTE_NONE)


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
_ROW_COUNTERS: dict[str, Callable[[str], int]] = {"csv": _csv_rows, "tsv": _tsv_rows, "json": _json_rows}
