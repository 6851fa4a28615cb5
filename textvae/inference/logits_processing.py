"""The rules that shape each decoding step's next-token scores, given what each running sentence
already holds: the Hugging Face ``generate`` options ``min_length``, ``repetition_penalty`` and
``no_repeat_ngram_size``, and the ban of PAD and BOS.

Each takes the whole batch at once: scores (R, V) and ``history`` (R, t), the tokens every row
generated so far (BOS excluded; all rows of a decoding step have the same t, since finished rows
leave the batch). Pure tensor operations, with no host sync, so greedy, sampling and beam search
apply them alike on any device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from textvae.modeling.outputs import VocabSpec


@dataclass(frozen=True)
class StepRules:
    """The rules of one decoding call, with the ids it bans built once (not once per step)."""

    min_length: int
    repetition_penalty: float
    no_repeat_ngram_size: int
    eos_id: int
    never: Tensor
    """Ids never generated: PAD and BOS, never training targets (garbage text if emitted)."""
    never_or_eos: Tensor
    """The same and EOS, banned before ``min_length`` tokens."""

    @classmethod
    def build(cls, vocab: VocabSpec, device: torch.device, min_length: int = 0, repetition_penalty: float = 1.0,
              no_repeat_ngram_size: int = 0) -> "StepRules":
        never = sorted({vocab.pad_id, vocab.bos_id} - {vocab.eos_id})
        return cls(min_length, repetition_penalty, no_repeat_ngram_size, vocab.eos_id,
                   torch.tensor(never, dtype=torch.long, device=device),
                   torch.tensor(sorted({*never, vocab.eos_id}), dtype=torch.long, device=device))

    @property
    def uses_history(self) -> bool:
        """Whether :meth:`scores` reads the tokens generated so far."""
        return self.repetition_penalty != 1.0 or self.no_repeat_ngram_size > 0

    def scores(self, logits: Tensor, t: int, history: Optional[Tensor], log_probs: bool = False) -> Tensor:
        """What step ``t`` chooses the next token by: logits (R, V) under the repetition penalty
        (log-softmaxed with ``log_probs``, for beam search), then −inf at PAD/BOS, at EOS before
        ``min_length`` tokens and at tokens completing a repeated n-gram. A row whose every token
        is banned (a tiny vocabulary under ``no_repeat_ngram_size``) may take EOS: it ends.

        history: (R, t) the tokens each row holds so far (None unless :attr:`uses_history`).
        """
        if history is not None:
            logits = apply_repetition_penalty(logits, history, self.repetition_penalty)
        scores = logits.log_softmax(-1) if log_probs else logits
        ids = self.never_or_eos if t < self.min_length else self.never
        repeated = None if history is None else repeated_ngram_mask(history, self.no_repeat_ngram_size,
                                                                    scores.shape[-1])
        if repeated is None:
            return scores.index_fill(-1, ids, float("-inf"))
        banned = repeated.index_fill(-1, ids, True)  # (R, V)
        banned[:, self.eos_id] &= ~banned.all(-1)
        return scores.masked_fill(banned, float("-inf"))


def apply_repetition_penalty(logits: Tensor, history: Tensor, penalty: float) -> Tensor:
    """CTRL's rule (Keskar et al. 2019), as Hugging Face applies it: the logit of every token its
    row already holds is divided by ``penalty`` where positive and multiplied by it where
    negative, so ``penalty`` > 1 makes repeating less likely. A token counts once however often
    it occurred. logits (R, V), history (R, t) → (R, V); ``penalty`` 1 returns ``logits``.
    """
    if penalty == 1.0 or history.shape[1] == 0:
        return logits
    seen = logits.gather(1, history)  # (R, t); a token held twice is gathered twice, alike
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(1, history, seen)


def repeated_ngram_mask(history: Tensor, n: int, vocab_size: int) -> Tensor | None:
    """(R, V) bool: the tokens that, after a row's last n − 1 tokens, would complete an n-gram the
    row already holds (for n = 1: every token it holds). None when no row can repeat one yet
    (n = 0, or fewer than n tokens so far).
    """
    rows, t = history.shape
    if n < 1 or t < n:
        return None
    windows = history.unfold(1, n, 1)  # (R, W, n): every n-gram so far, W = t − n + 1
    suffix = history[:, t - n + 1:]  # (R, n − 1): what the next token would extend
    match = (windows[..., :-1] == suffix.unsqueeze(1)).all(-1)  # (R, W)
    # Summed, not scattered: a token may close several n-grams, matching and not.
    hits = history.new_zeros(rows, vocab_size).scatter_add_(1, windows[..., -1], match.long())
    return hits > 0
