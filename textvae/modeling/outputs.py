"""What the model's forward passes return, with the shapes of each field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import Tensor


@dataclass(frozen=True)
class VocabSpec:
    """The tokenizer facts a model needs; taken from the tokenizer, never hard-coded."""

    vocab_size: int
    pad_id: int
    bos_id: int
    eos_id: int
    unk_id: Optional[int]


@dataclass
class VAEOutput:
    """One forward pass of :class:`~textvae.modeling.TextVAE`."""

    rec: Tensor
    """(B,) −log p(x|z) per sentence, summed over predicted tokens, fp32."""
    n_tokens: Tensor
    """() number of predicted tokens in the batch (tokens + one EOS per sentence)."""
    mu: Optional[Tensor] = None
    """(B, D) posterior mean (None for a language model)."""
    logvar: Optional[Tensor] = None
    """(B, D) posterior log-variance."""
    z: Optional[Tensor] = None
    """(B, D) the latent fed to the decoder."""
