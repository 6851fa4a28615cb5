"""Text-level metrics: corpus BLEU (nltk), exact match, distinct-n and self-BLEU."""

from __future__ import annotations

from typing import Sequence

from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

_SMOOTH = SmoothingFunction().method1


def bleu(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU-4 × 100 of token lists against one reference each (smoothed for short text)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        return 0.0
    return 100.0 * corpus_bleu([[r] for r in references], list(hypotheses), smoothing_function=_SMOOTH)


def exact_match(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> float:
    """Share of hypotheses identical to their reference."""
    if not hypotheses:
        return 0.0
    return sum(list(h) == list(r) for h, r in zip(hypotheses, references)) / len(hypotheses)


def distinct_n(sentences: Sequence[Sequence[str]], n: int) -> float:
    """Distinct n-grams / all n-grams over a set of sentences (Li et al. 2016)."""
    grams = [tuple(s[i:i + n]) for s in sentences for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def self_bleu(sentences: Sequence[Sequence[str]]) -> float:
    """Mean BLEU of each sentence against all the others (Zhu et al. 2018); lower = more diverse."""
    if len(sentences) < 2:
        return 0.0
    refs = [[s for j, s in enumerate(sentences) if j != i] for i in range(len(sentences))]
    return 100.0 * corpus_bleu(refs, list(sentences), smoothing_function=_SMOOTH)
