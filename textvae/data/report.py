"""What loading a corpus kept, dropped and noticed, as lines to print for the user."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np
from datasets import DatasetDict

from textvae.data.columns import label_names

DROP_REASONS = {"blank": "blank line(s) or empty text cell(s)", "no_text": "label-only line(s)"}
"""How each reason of :attr:`~textvae.data.corpora.Corpus.dropped` reads in a sentence."""


def dropped_phrase(counts: dict[str, int]) -> str:
    """``{"blank": 2, "no_text": 1}`` → ``"2 blank line(s) or empty text cell(s) and 1 label-only
    line(s)"``; "" when nothing was dropped."""
    return " and ".join(f"{n:,} {DROP_REASONS.get(reason, reason)}" for reason, n in counts.items() if n)


def corpus_notes(dsd: DatasetDict, splits: Optional[Sequence[str]] = None,
                 origins: Optional[dict[str, str]] = None, counts: bool = True) -> list[str]:
    """What loading left out of ``splits`` (default: all) of a :class:`~textvae.data.corpora.Corpus`
    (with ``counts``) and what it noticed, as one-line notes, each once.

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
    then the notes of :class:`~textvae.data.corpora.Corpus` (label-only lines, a text file that
    looks labelled)."""
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
