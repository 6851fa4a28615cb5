"""A text file as its lines: its bytes, their decoding, and where a line ends.

Text files are read here rather than by the ``datasets`` text builder, because that builder
opens files in universal-newline mode and so splits lines on a lone ``\\r``; Python's
``str.splitlines`` would also split on U+0085, U+2028, ``\\x0b`` and ``\\x0c``. A sentence here
ends at ``\\n`` and nowhere else. :func:`read_lines` is the one place that splits a file into
lines; every line format (:mod:`textvae.data.line_formats`) reads through it.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


from textvae.data.options import RECIPE_KEYS, OptionNames
from textvae.errors import DataError


@dataclass
class FileLines:
    """The non-blank lines of one text file, stripped, and where each stood."""

    path: Path
    lines: list[str]
    numbers: list[int]
    """The 1-based line number in the file of each of ``lines`` (blank lines count too)."""
    blank: int
    """Lines left out because they are empty or whitespace only."""


def read_lines(path: Path, encoding: str = "utf-8", names: OptionNames = RECIPE_KEYS,
               key: Optional[str] = None) -> FileLines:
    """Read the non-blank lines of a text file, stripped, with their line numbers.

    Lines end at ``\\n`` only (``\\r\\n`` works too: the ``\\r`` is stripped); U+0085, U+2028,
    ``\\x0b`` and ``\\x0c`` stay inside their line. ``names`` and ``key`` (the key or flag that
    gave the file) word the errors.

    Raises:
        DataError: the file is missing, empty, only blank lines, or not valid ``encoding``.
    """
    text = decode(read_bytes(path, key or names.file_key("")), path, encoding, names)
    lines = text.split("\n")
    if lines[-1] == "":  # the newline that ends the last line does not start another
        lines.pop()
    kept = [(number, line.strip()) for number, line in enumerate(lines, 1) if line.strip()]
    if not kept:
        raise DataError(f"{path} has only blank lines; it holds no sentences. Check that it is the right file.")
    return FileLines(path, [line for _, line in kept], [number for number, _ in kept], len(lines) - len(kept))


def read_files(paths: Sequence[Path], encoding: str = "utf-8", names: OptionNames = RECIPE_KEYS,
               key: Optional[str] = None) -> list[FileLines]:
    """:func:`read_lines` of each of ``paths``, in order."""
    return [read_lines(path, encoding, names, key) for path in paths]


def read_text_lines(path: Path, encoding: str = "utf-8", names: OptionNames = RECIPE_KEYS,
                    key: Optional[str] = None) -> tuple[list[str], int]:
    """The non-blank lines of a text file, stripped, and the count of blank ones (see :func:`read_lines`).

    Raises:
        DataError: the file is missing, empty, only blank lines, or not valid ``encoding``.
    """
    read = read_lines(path, encoding, names, key)
    return read.lines, read.blank


def read_bytes(path: Path, key: str) -> bytes:
    """The bytes of a data file; ``key`` (the key or flag that gave it) words the errors.

    Raises:
        DataError: ``path`` is a directory, missing, or empty.
    """
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


def decode(raw: bytes, path: Path, encoding: str, names: OptionNames = RECIPE_KEYS) -> str:
    """Decode a whole file, naming the line and column of the first invalid byte.

    Raises:
        DataError: ``raw`` is not valid ``encoding``.
    """
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


def check_encoding(encoding: str, names: OptionNames = RECIPE_KEYS) -> None:
    """Refuse an encoding name Python does not know, before any file is read.

    Raises:
        DataError: an unknown encoding.
    """
    try:
        codecs.lookup(encoding)
    except LookupError as err:
        raise DataError(f"{names.set('encoding', encoding)} is not an encoding Python knows; "
                        f"use e.g. utf-8, cp1252 or latin-1 ({names.set('encoding', 'cp1252')}).") from err
