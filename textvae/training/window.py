"""The training log's window: loss terms summed since the last log row, read only when logging."""

from __future__ import annotations

import math

import torch

from textvae.evaluation.sums import Sums
from textvae.objectives import LossTerms
from textvae.training.distributed import Replicas, all_reduce_sum


class LogWindow:
    """Sums of the loss terms since the last log line; read (synced, and summed over ranks) only
    when logging, so a step costs no host sync."""

    KEYS = ("loss", "rec", "kl", "mmd")
    OPTIONAL_KEYS = ("rec_encoder", "energy")
    """Logged only by the models that have them (``amortized+langevin``; an energy-based prior)."""

    def __init__(self) -> None:
        self.sums = Sums()

    def add(self, terms_list: list[LossTerms]) -> None:
        for t in terms_list:
            self.sums.add(**{key: getattr(t, key).detach() for key in self.KEYS})
            self.sums.add(**{key: getattr(t, key) for key in self.OPTIONAL_KEYS if getattr(t, key) is not None})
            self.sums.add(tokens=t.n_tokens, sentences=t.n_sentences)

    def flush(self, elapsed: float, replicas: Replicas = Replicas(), mmd_weight: float = 0.0) -> dict[str, float]:
        """The window's means per sentence (and PPL per token) over every rank; collective under DDP.

        Args:
            mmd_weight: the objective's α+λ−1. Each rank's loss counts the gathered MMD for the
                whole global batch (see infovae_loss), so summed over W ranks it holds that term W
                times; the logged loss counts it once.
        """
        row: dict[str, float] = {"elapsed": elapsed}
        if "sentences" in self.sums:  # the same on every rank: skipped steps are skipped everywhere
            means = self.KEYS + tuple(k for k in self.OPTIONAL_KEYS if k in self.sums)
            keys = means + ("tokens", "sentences")
            device = self.sums.raw("rec").device
            local = torch.stack([torch.as_tensor(self.sums.raw(k), device=device).to(torch.float64) for k in keys])
            sums = dict(zip(keys, all_reduce_sum(local, replicas).tolist()))
            sums["loss"] -= (replicas.world_size - 1) * mmd_weight * sums["mmd"]
            n = sums["sentences"]
            row.update({k: sums[k] / n for k in means})
            row["tokens"] = int(sums["tokens"])
            row["ppl_rec"] = math.exp(min(sums["rec"] / max(row["tokens"], 1), 50.0))
        self.sums.reset()
        return row
