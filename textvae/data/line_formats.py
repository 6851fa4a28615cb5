"""The formats read line by line: text, label_text (``<label> <sentence>``) and suffix labels.

Each reader takes ``(paths, encoding, names, key)`` and returns a :data:`Read`: the columns, what
it dropped (by reason, see :attr:`~textvae.data.corpora.Corpus.dropped`) and one-line notes for
the user (label-only lines; a text file whose lines all start with a number).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Optional


from textvae.data.lines import FileLines, read_files
from textvae.data.options import RECIPE_KEYS, OptionNames
from textvae.errors import DataError

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


def _texts(files: Sequence[FileLines]) -> list[str]:
    return [line for read in files for line in read.lines]


def _blank(files: Sequence[FileLines]) -> int:
    return sum(read.blank for read in files)


def read_text(paths: Sequence[Path], encoding: str = "utf-8", names: OptionNames = RECIPE_KEYS,
              key: Optional[str] = None) -> Read:
    """One sentence per line. Notes a file whose lines all start with an integer label."""
    files = read_files(paths, encoding, names, key)
    notes = [note for note in (_looks_labelled(read.path, read.lines, names) for read in files) if note]
    return {"text": _texts(files)}, {"blank": _blank(files)}, notes


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


def read_label_text(paths: Sequence[Path], encoding: str = "utf-8", names: OptionNames = RECIPE_KEYS,
                    key: Optional[str] = None) -> Read:
    """``<label> <sentence>`` per line: the label is the first word, the sentence the rest.

    Integer labels are read as ints (so ``0..K-1`` keep their values), others (TREC's
    ``DESC:manner``) as strings. A line that holds only a label is dropped, counted as
    ``no_text`` and named in a note.

    Raises:
        DataError: a line without an integer label in a file whose labels are integers.
    """
    files = read_files(paths, encoding, names, key)
    texts: list[str] = []
    heads: list[str] = []
    where: list[tuple[Path, int, str]] = []
    no_text = 0
    notes = []
    for read in files:
        label_only = []
        for number, line in zip(read.numbers, read.lines):
            head, *rest = line.split(maxsplit=1)
            if not rest:
                label_only.append(number)
                continue
            texts.append(rest[0])
            heads.append(head)
            where.append((read.path, number, line))
        if label_only:
            no_text += len(label_only)
            notes.append(f"{read.path}: {len(label_only)} line(s) hold only a label and no sentence "
                         f"({_line_list(label_only)}); they are left out.")
    dropped = {"blank": _blank(files), "no_text": no_text}
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


def read_suffix_label(paths: Sequence[Path], encoding: str = "utf-8", names: OptionNames = RECIPE_KEYS,
                      key: Optional[str] = None) -> Read:
    """Yelp (Shen): the label is the file suffix, ``.0`` or ``.1``."""
    files = read_files(paths, encoding, names, key)
    labels = [int(read.path.suffix[1:]) for read in files for _ in read.lines]
    return {"text": _texts(files), "label": labels}, {"blank": _blank(files)}, []
