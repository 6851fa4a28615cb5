"""LSTM encoder and decoder (Bowman et al. 2016; He et al. 2019 sizes)."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from textvae.config import DecoderConfig, EncoderConfig, ModelConfig
from textvae.modeling.outputs import VocabSpec
from textvae.utils.cpu import lstm_bf16_supported


def run_lstm(lstm: nn.LSTM, x: Any, state: Any = None) -> tuple[Any, Any]:
    """``lstm(x, state)``, in fp32 where CPU bf16 autocast has no LSTM kernel.

    oneDNN's bf16 LSTM needs AVX-512; on other CPUs (AVX2 laptops and cloud cores) it raises
    instead of computing. There the recurrence runs in fp32 with autocast off, and the layers
    around it stay in bf16 (autocast casts the fp32 output back on the next matmul), so
    ``precision: bf16`` trains on every CPU with the recurrence at fp32 accuracy.
    """
    if (x.data.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16 and not lstm_bf16_supported()):
        with torch.autocast("cpu", enabled=False):
            if isinstance(x, PackedSequence):
                x = x._replace(data=x.data.float())
            else:
                x = x.float()
            if state is not None:
                state = tuple(s.float() for s in state)
            return lstm(x, state)
    return lstm(x, state)


class LSTMEncoder(nn.Module):
    """Token ids → a sentence vector: the last layer's final state (both directions)."""

    def __init__(self, cfg: EncoderConfig, model_cfg: ModelConfig, vocab: VocabSpec):
        super().__init__()
        self.embed = nn.Embedding(vocab.vocab_size, cfg.embed_dim, padding_idx=vocab.pad_id)
        self.embed_dropout = nn.Dropout(model_cfg.embed_dropout)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden_dim, cfg.num_layers, batch_first=True,
                            bidirectional=cfg.bidirectional,
                            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        self.output_dim = cfg.hidden_dim * (2 if cfg.bidirectional else 1)
        self.bidirectional = cfg.bidirectional

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """ids (B, T), lengths (B,) → features (B, output_dim)."""
        x = self.embed_dropout(self.embed(ids))  # (B, T, E)
        if not self.bidirectional:
            # Right padding comes after every real step, so the state at step length−1 of an
            # unpacked run is the packed run's final state: read it there. Unpacked is the fast
            # path (oneDNN/cuDNN over the whole padded block, no host sync for the lengths).
            out, _ = run_lstm(self.lstm, x)  # (B, T, H), the last layer
            last = (lengths - 1).to(out.device).view(-1, 1, 1).expand(-1, 1, out.shape[-1])
            return out.gather(1, last).squeeze(1)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = run_lstm(self.lstm, packed)  # h: (layers·dirs, B, H), in the original batch order
        if self.bidirectional:
            return torch.cat([h[-2], h[-1]], dim=-1)
        return h[-1]


class LSTMDecoder(nn.Module):
    """An LSTM language model conditioned on z through its initial state and/or its inputs."""

    def __init__(self, cfg: DecoderConfig, model_cfg: ModelConfig, vocab: VocabSpec):
        super().__init__()
        latent = model_cfg.latent_dim if model_cfg.mode == "vae" else 0
        self.num_layers, self.hidden_dim = cfg.num_layers, cfg.hidden_dim
        self.z_concat = cfg.z_concat and latent > 0
        self.embed = nn.Embedding(vocab.vocab_size, cfg.embed_dim, padding_idx=vocab.pad_id)
        self.embed_dropout = nn.Dropout(model_cfg.embed_dropout)
        self.lstm = nn.LSTM(cfg.embed_dim + (latent if self.z_concat else 0), cfg.hidden_dim,
                            cfg.num_layers, batch_first=True,
                            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        self.z_to_state = nn.Linear(latent, 2 * cfg.num_layers * cfg.hidden_dim) \
            if cfg.z_to_init and latent > 0 else None
        self.output_dropout = nn.Dropout(cfg.dropout)
        self.output = nn.Linear(cfg.hidden_dim, vocab.vocab_size)
        if cfg.tie_embeddings:
            self.output.weight = self.embed.weight

    def init_state(self, z: Optional[Tensor], batch_size: int) -> Optional[tuple[Tensor, Tensor]]:
        """The LSTM's (h0, c0), each (layers, B, H), from z; None means zeros."""
        if self.z_to_state is None or z is None:
            return None
        h, c = self.z_to_state(z).view(batch_size, 2, self.num_layers, self.hidden_dim).permute(1, 2, 0, 3)
        return torch.tanh(h).contiguous(), c.contiguous()

    def forward(self, ids: Tensor, z: Optional[Tensor], lengths: Optional[Tensor] = None,
                state: Any = None) -> tuple[Tensor, Any]:
        """Run the decoder over input ids (B, T).

        Args:
            ids: (B, T) decoder inputs (BOS first).
            z: (B, D) latent or None.
            lengths: (B,) true lengths, for scoring padded batches. Outputs at real positions
                never depend on the right padding after them, so the LSTM runs over the whole
                padded block (the fast oneDNN/cuDNN path, no host sync) and no state is returned.
            state: recurrent state from a previous call (incremental decoding); when None it
                is built from z.
        Returns:
            hidden (B, T, H) and the state after the last step (None when ``lengths`` is given:
            rows end at different steps; decode incrementally without ``lengths``).
        """
        x = self.embed_dropout(self.embed(ids))  # (B, T, E)
        if self.z_concat:
            x = torch.cat([x, z.unsqueeze(1).expand(-1, x.shape[1], -1).to(x.dtype)], dim=-1)
        if state is None:
            state = self.init_state(z, ids.shape[0])
        out, state = run_lstm(self.lstm, x, state)
        return self.output_dropout(out), (state if lengths is None else None)

    def project(self, hidden: Tensor) -> Tensor:
        """hidden (..., H) → logits (..., V)."""
        return self.output(hidden)

    def output_layer(self) -> nn.Linear:
        """The vocabulary projection that :meth:`project` applies (scored fused in training)."""
        return self.output

    @staticmethod
    def reorder_state(state: Any, index: Tensor) -> Any:
        """Select/reorder batch rows of a state (beam search)."""
        if state is None:
            return None
        return tuple(s.index_select(1, index) for s in state)
