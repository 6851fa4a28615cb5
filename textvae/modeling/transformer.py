"""Transformer encoder (BERT-style) and decoder (GPT-2-style) built on Hugging Face ``transformers``.

Both are drop-in replacements for the LSTM parts: any encoder pairs with any decoder through the
registry, and the objective, trainer, evaluation and generation code see the same interface.

The decoder is a GPT-2 causal LM (``GPT2LMHeadModel``), built from the recipe's sizes or loaded
with ``from_pretrained``. z reaches it in one of three ways (``model.decoder.injection``):

* ``embedding`` — a projection of z is added to every input embedding;
* ``memory``    — z is projected to one extra key and value per layer, which every token attends to
  as if it were a cached token without a position (Optimus, Li et al. 2020; LangVAE);
* ``prefix``    — z is projected to k soft tokens placed before BOS (their outputs are dropped).

Its state is a :class:`TransformerState`: the per-layer key/value cache plus the attention mask
and next position of every row. ``memory`` and ``prefix`` write their z-derived entries into the
cache when decoding starts, so generation continues one token at a time exactly as the full
forward pass computes it.

A part loaded from ``pretrained`` records its Hugging Face config in the model's own config
(``hf_config``); a saved model is rebuilt from that record and its safetensors weights, so
``TextVAE.from_pretrained`` never needs the pretrained files or the hub again.

The Transformer parts have one width: ``hidden_dim`` (``embed_dim`` is an LSTM setting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor, nn
from transformers import BertConfig, BertModel, DynamicCache, GPT2Config, GPT2LMHeadModel
from transformers.activations import NewGELUActivation

from textvae.config import DecoderConfig, EncoderConfig, ModelConfig
from textvae.errors import ModelError
from textvae.modeling.outputs import VocabSpec
from textvae.modeling.pretrained import fit_vocabulary, load_pretrained


def _check_positions(available: int, needed: int, key: str, what: str) -> None:
    if needed > available:
        raise ModelError(
            f"{key} has {available} positions but {what} needs {needed}; lower model.max_positions "
            "(and data.max_length) to fit.")


def fuse_gelu(model: nn.Module) -> int:
    """Replace GPT-2's ``gelu_new`` activations by torch's fused tanh-approximated GELU, in place;
    returns how many were replaced.

    ``gelu_new`` is the same function, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), written as six
    elementwise ops, each a full-size temporary: on a CPU it took half of a PTB Transformer decoder's
    evaluation time (about 4× the fused kernel on the MLP's (rows, 1024) activations). The two agree to
    float rounding (≤ 3e-7 on N(0, 1) inputs); the activation has no weights, so checkpoints are unchanged.
    """
    replaced = 0
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, NewGELUActivation):
                setattr(parent, name, nn.GELU(approximate="tanh"))
                replaced += 1
    return replaced


# --------------------------------------------------------------------------- encoder


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """hidden (B, T, H), mask (B, T) → (B, H): the average over real tokens."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def first_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """hidden (B, T, H) → (B, H): the first token's state (BOS, which plays BERT's [CLS])."""
    return hidden[:, 0]


POOLINGS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"mean": mean_pool, "first": first_pool}


class TransformerEncoder(nn.Module):
    """Token ids → a sentence vector, through a bidirectional BERT-style encoder and pooling."""

    def __init__(self, cfg: EncoderConfig, model_cfg: ModelConfig, vocab: VocabSpec):
        super().__init__()
        dropout = {"hidden_dropout_prob": cfg.dropout, "attention_probs_dropout_prob": cfg.dropout}
        if cfg.hf_config is not None:  # a saved model: architecture recorded, weights come from safetensors
            self.bert = BertModel(BertConfig.from_dict(cfg.hf_config), add_pooling_layer=False)
        elif cfg.pretrained:
            self.bert = load_pretrained(BertModel, cfg.pretrained, "model.encoder.pretrained",
                                        add_pooling_layer=False, **dropout)
            fit_vocabulary(self.bert, vocab, cfg.resize_embeddings, "model.encoder.pretrained")
            _check_positions(self.bert.config.max_position_embeddings, model_cfg.max_positions,
                             "model.encoder.pretrained", "model.max_positions")
            cfg.hf_config = self.bert.config.to_dict()
        else:
            self.bert = BertModel(BertConfig(
                vocab_size=vocab.vocab_size, hidden_size=cfg.hidden_dim, num_hidden_layers=cfg.num_layers,
                num_attention_heads=cfg.num_heads, intermediate_size=cfg.ffn_dim,
                max_position_embeddings=model_cfg.max_positions, type_vocab_size=1,
                pad_token_id=None, **dropout), add_pooling_layer=False)
        # Padding is excluded by the attention mask, so no id needs a gradient-free embedding row.
        # A pretrained BERT's pad id (0) may be a real token of the run's tokenizer (GPT-2's "!"),
        # and a pretrained tokenizer's pad is often its EOS, which must keep learning.
        self.bert.get_input_embeddings().padding_idx = None
        self.pool = POOLINGS[cfg.pooling]
        self.max_positions = self.bert.config.max_position_embeddings
        self.output_dim = self.bert.config.hidden_size

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """ids (B, T), lengths (B,) → features (B, output_dim)."""
        if ids.shape[1] > self.max_positions:
            raise ValueError(f"the Transformer encoder takes at most {self.max_positions} tokens, got "
                             f"{ids.shape[1]}; raise model.max_positions or lower data.max_length.")
        mask = torch.arange(ids.shape[1], device=ids.device) < lengths.to(ids.device).unsqueeze(1)  # (B, T)
        hidden = self.bert(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (B, T, H)
        return self.pool(hidden, mask)


# --------------------------------------------------------------------------- decoder state


@dataclass
class TransformerState:
    """What a Transformer decoder continues from. Immutable in use: each call returns a new one."""

    kv: tuple[tuple[Tensor, Tensor], ...]
    """Per layer (keys, values), each (B, heads, S, head_dim); empty before any entry exists."""
    mask: Tensor
    """(B, S) bool: which cached entries later tokens may attend to (padding excluded)."""
    next_position: Tensor
    """(B,) the position id of each row's next token (memory entries take none)."""

    @property
    def length(self) -> int:
        return self.mask.shape[1]


def _to_cache(kv: tuple[tuple[Tensor, Tensor], ...], config: GPT2Config) -> DynamicCache:
    """Wrap tensors in a fresh ``DynamicCache`` without copying them.

    The model then appends new keys with ``torch.cat`` into new tensors, so the tensors of the
    state it started from are never modified — an old state stays valid (as with an LSTM).
    """
    cache = DynamicCache(config=config)
    for layer, (keys, values) in zip(cache.layers, kv):
        layer.lazy_initialization(keys, values)
        layer.keys, layer.values = keys, values
    return cache


def _from_cache(cache: DynamicCache) -> tuple[tuple[Tensor, Tensor], ...]:
    return tuple((layer.keys, layer.values) for layer in cache.layers)


# --------------------------------------------------------------------------- z injection


class EmbeddingInjection(nn.Module):
    """z → a vector added to every input embedding."""

    def __init__(self, latent_dim: int, config: GPT2Config, num_prefix_tokens: int):
        super().__init__()
        self.proj = nn.Linear(latent_dim, config.n_embd)

    def shift(self, embeds: Tensor, z: Tensor) -> Tensor:
        """embeds (B, T, E) → embeds + proj(z) at every position."""
        return embeds + self.proj(z).unsqueeze(1).to(embeds.dtype)

    def start(self, decoder: "TransformerDecoder", z: Tensor) -> TransformerState:
        return decoder.empty_state(z.shape[0], z.device)


class MemoryInjection(nn.Module):
    """z → one key and one value per layer and head, placed in the cache before the first token.

    The memory entry has no position embedding and stays visible to every later token through
    the causal mask (it sits at cache index 0). Real tokens keep positions 0, 1, … as in plain
    GPT-2, which matters for a pretrained decoder.
    """

    def __init__(self, latent_dim: int, config: GPT2Config, num_prefix_tokens: int):
        super().__init__()
        self.layers, self.heads = config.n_layer, config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.proj = nn.Linear(latent_dim, self.layers * 2 * config.n_embd)

    def shift(self, embeds: Tensor, z: Tensor) -> Tensor:
        return embeds

    def memory(self, z: Tensor) -> tuple[tuple[Tensor, Tensor], ...]:
        """z (B, D) → per layer (keys, values), each (B, heads, 1, head_dim)."""
        kv = self.proj(z).view(z.shape[0], self.layers, 2, self.heads, 1, self.head_dim)
        return tuple((kv[:, i, 0], kv[:, i, 1]) for i in range(self.layers))

    def start(self, decoder: "TransformerDecoder", z: Tensor) -> TransformerState:
        batch = z.shape[0]
        return TransformerState(kv=self.memory(z), mask=torch.ones(batch, 1, dtype=torch.bool, device=z.device),
                                next_position=torch.zeros(batch, dtype=torch.long, device=z.device))


class PrefixInjection(nn.Module):
    """z → k soft tokens run through the decoder before BOS (positions 0…k−1; BOS gets k)."""

    def __init__(self, latent_dim: int, config: GPT2Config, num_prefix_tokens: int):
        super().__init__()
        self.k, self.width = num_prefix_tokens, config.n_embd
        self.proj = nn.Linear(latent_dim, num_prefix_tokens * config.n_embd)

    def shift(self, embeds: Tensor, z: Tensor) -> Tensor:
        return embeds

    def start(self, decoder: "TransformerDecoder", z: Tensor) -> TransformerState:
        prefix = self.proj(z).view(z.shape[0], self.k, self.width)  # (B, k, E)
        new = torch.ones(z.shape[0], self.k, dtype=torch.bool, device=z.device)
        _, state = decoder.run(prefix, decoder.empty_state(z.shape[0], z.device), new)  # outputs dropped
        return state


INJECTIONS: dict[str, type[nn.Module]] = {
    "embedding": EmbeddingInjection,
    "memory": MemoryInjection,
    "prefix": PrefixInjection,
}  # the names model.decoder.injection accepts: config.TRANSFORMER_INJECTIONS (a test keeps them equal)


# --------------------------------------------------------------------------- decoder


class TransformerDecoder(nn.Module):
    """A GPT-2 language model conditioned on z (see the module docstring for the three ways).

    Same interface as :class:`~textvae.modeling.lstm.LSTMDecoder`: ``forward``, ``project``,
    ``init_state``, ``reorder_state``.
    """

    def __init__(self, cfg: DecoderConfig, model_cfg: ModelConfig, vocab: VocabSpec):
        super().__init__()
        latent = model_cfg.latent_dim if model_cfg.mode == "vae" else 0
        num_prefix = cfg.num_prefix_tokens if cfg.injection == "prefix" and latent else 0
        dropout = {"resid_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout, "embd_pdrop": model_cfg.embed_dropout}
        if cfg.hf_config is not None:  # a saved model: architecture recorded, weights come from safetensors
            self.lm = GPT2LMHeadModel(GPT2Config.from_dict(cfg.hf_config))
        elif cfg.pretrained:
            self.lm = load_pretrained(GPT2LMHeadModel, cfg.pretrained, "model.decoder.pretrained", **dropout)
            fit_vocabulary(self.lm, vocab, cfg.resize_embeddings, "model.decoder.pretrained")
            _check_positions(self.lm.config.n_positions, model_cfg.max_positions + num_prefix,
                             "model.decoder.pretrained", "model.max_positions + prefix tokens")
            cfg.hf_config = self.lm.config.to_dict()
        else:
            self.lm = GPT2LMHeadModel(GPT2Config(
                vocab_size=vocab.vocab_size, n_positions=model_cfg.max_positions + num_prefix,
                n_embd=cfg.hidden_dim, n_layer=cfg.num_layers, n_head=cfg.num_heads, n_inner=cfg.ffn_dim,
                tie_word_embeddings=cfg.tie_embeddings, bos_token_id=vocab.bos_id,
                eos_token_id=vocab.eos_id, pad_token_id=vocab.pad_id, **dropout))
        fuse_gelu(self.lm)
        self.config = self.lm.config
        self.hidden_dim = self.config.n_embd
        self.inject = INJECTIONS[cfg.injection](latent, self.config, cfg.num_prefix_tokens) if latent else None
        # Cache entries a sequence may fill: positions, plus the memory entry, which takes none.
        self.max_cache = self.config.n_positions + (1 if isinstance(self.inject, MemoryInjection) else 0)

    # ------------------------------------------------------------------ state

    def empty_state(self, batch_size: int, device: torch.device) -> TransformerState:
        return TransformerState(kv=(), mask=torch.zeros(batch_size, 0, dtype=torch.bool, device=device),
                                next_position=torch.zeros(batch_size, dtype=torch.long, device=device))

    def init_state(self, z: Optional[Tensor], batch_size: int) -> TransformerState:
        """The state before BOS: empty, or holding z's memory entry / prefix tokens."""
        if self.inject is None:
            return self.empty_state(batch_size, self.lm.device)
        return self.inject.start(self, self._need_z(z))

    @staticmethod
    def reorder_state(state: Optional[TransformerState], index: Tensor) -> Optional[TransformerState]:
        """Select/reorder batch rows of a state (beam search, dropping finished rows)."""
        if state is None:
            return None
        return TransformerState(
            kv=tuple((k.index_select(0, index), v.index_select(0, index)) for k, v in state.kv),
            mask=state.mask.index_select(0, index), next_position=state.next_position.index_select(0, index))

    def _need_z(self, z: Optional[Tensor]) -> Tensor:
        if z is None:
            raise ValueError("this decoder was built for a latent (model.mode=vae): pass z (B, latent_dim).")
        return z

    # ------------------------------------------------------------------ forward

    def run(self, embeds: Tensor, state: TransformerState, new: Tensor) -> tuple[Tensor, TransformerState]:
        """Run GPT-2 on input embeddings after ``state``.

        Args:
            embeds: (B, T, E) input embeddings (positions are added here).
            state: what the inputs follow.
            new: (B, T) bool, False at padding.
        Returns:
            the last layer's states (B, T, E) and the state after these inputs.
        """
        steps = embeds.shape[1]
        if state.length + steps > self.max_cache:
            raise ValueError(f"the Transformer decoder holds at most {self.config.n_positions} positions, got "
                             f"{state.length + steps}; raise model.max_positions or lower data.max_length.")
        mask = torch.cat([state.mask, new], dim=1)  # (B, S + T): the past and these inputs
        positions = state.next_position.unsqueeze(1) + torch.arange(steps, device=embeds.device)  # (B, T)
        # Padding takes positions too (it is masked out); keep them inside the position table.
        positions = positions.clamp_max(self.config.n_positions - 1)
        out = self.lm.transformer(inputs_embeds=embeds, cache=_to_cache(state.kv, self.config),
                                  attention_mask=mask, position_ids=positions, use_cache=True)
        next_position = state.next_position + new.sum(1)
        return out.last_hidden_state, TransformerState(_from_cache(out.cache), mask, next_position)

    def forward(self, ids: Tensor, z: Optional[Tensor], lengths: Optional[Tensor] = None,
                state: Optional[TransformerState] = None) -> tuple[Tensor, TransformerState]:
        """Run the decoder over input ids (B, T).

        Args:
            ids: (B, T) decoder inputs (BOS first), right-padded.
            z: (B, D) latent, or None for a language model.
            lengths: (B,) true lengths; padded steps are masked out of attention when given.
            state: from a previous call (incremental decoding); when None it is built from z.
        Returns:
            hidden (B, T, H) and the state after the last real step of each row.
        """
        if self.inject is not None:
            z = self._need_z(z)
        if state is None:
            state = self.init_state(z, ids.shape[0])
        embeds = self.lm.transformer.wte(ids)  # (B, T, E)
        if self.inject is not None:
            embeds = self.inject.shift(embeds, z)
        if lengths is None:
            new = torch.ones(ids.shape, dtype=torch.bool, device=ids.device)
        else:
            new = torch.arange(ids.shape[1], device=ids.device) < lengths.to(ids.device).unsqueeze(1)
        return self.run(embeds, state, new)

    def project(self, hidden: Tensor) -> Tensor:
        """hidden (..., H) → logits (..., V), through GPT-2's (usually tied) output layer."""
        return self.lm.lm_head(hidden)

    def output_layer(self) -> nn.Linear:
        """The vocabulary projection that :meth:`project` applies (scored fused in training)."""
        return self.lm.lm_head

    def body_parameters(self) -> list[nn.Parameter]:
        """The language model's own weights: what ``model.freeze: [decoder]`` fixes (z's projection trains)."""
        return list(self.lm.parameters())
