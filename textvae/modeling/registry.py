"""Name → class registries for encoders and decoders (plain dicts: add a line to add a kind)."""

from __future__ import annotations

from torch import nn

from textvae.modeling.lstm import LSTMDecoder, LSTMEncoder
from textvae.modeling.transformer import TransformerDecoder, TransformerEncoder

ENCODERS: dict[str, type[nn.Module]] = {"lstm": LSTMEncoder, "transformer": TransformerEncoder}
DECODERS: dict[str, type[nn.Module]] = {"lstm": LSTMDecoder, "transformer": TransformerDecoder}


def _lookup(table: dict[str, type[nn.Module]], kind: str, what: str) -> type[nn.Module]:
    if kind not in table:
        raise ValueError(f"unknown {what} kind {kind!r}; registered kinds: {', '.join(sorted(table))} "
                         f"(set model.{what}.kind).")
    return table[kind]


def encoder_class(kind: str) -> type[nn.Module]:
    return _lookup(ENCODERS, kind, "encoder")


def decoder_class(kind: str) -> type[nn.Module]:
    return _lookup(DECODERS, kind, "decoder")
