"""Decoding a latent into tokens: greedy, sampling (temperature, top-k, top-p) and beam search.

Every decoder is driven through the same small interface, so LSTM and Transformer decoders
decode alike:

* ``decoder(ids (R, T), z (R, D) | None, state=state) -> (hidden (R, T, H), state)``
* ``decoder.project(hidden) -> logits``
* ``decoder.reorder_state(state, index) -> state`` (select/reorder rows)

Decoding is incremental: each step feeds only the newest token with the state returned by the
previous step (recurrent state or KV cache), never the whole prefix again. Rows that emit EOS
are dropped from the batch with ``reorder_state``, so finished sentences cost nothing.

Every method takes the Hugging Face ``generate`` rules ``max_new_tokens`` (alias ``max_length``),
``min_length``, ``repetition_penalty`` and ``no_repeat_ngram_size``, applied to the whole batch
at each step (:mod:`textvae.inference.logits_processing`) before the token choice: the
repetition penalty to the logits, then bans (−inf) of PAD, BOS, repeated n-grams and early EOS.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

import torch
from torch import Tensor, nn

from textvae.errors import ConfigError
from textvae.inference.logits_processing import StepRules
from textvae.modeling.outputs import VocabSpec


@dataclass
class DecodeConfig:
    """How a latent becomes a sentence."""

    method: Literal["greedy", "sample", "beam"] = "greedy"
    max_length: Optional[int] = None
    """Most tokens generated per sentence, EOS excluded (None: the model's default, the longest
    training sentence where the model records it). The same limit as ``max_new_tokens``."""
    temperature: float = 1.0
    """``sample``: logits are divided by this (< 1 sharper, > 1 flatter)."""
    top_k: Optional[int] = None
    """``sample``: keep only the k most likely tokens (None or 0: all)."""
    top_p: Optional[float] = None
    """``sample``: keep the smallest set of tokens whose probability reaches p (nucleus)."""
    beam_size: int = 4
    """``beam``: hypotheses kept per sentence."""
    length_penalty: float = 1.0
    """``beam``: hypotheses are ranked by log p / length^length_penalty (0: raw log p)."""
    max_new_tokens: Optional[int] = None
    """Hugging Face's name for ``max_length``: with no prompt, the tokens generated are the whole
    sentence. Give either (both only with the same value); after checking, both hold the limit."""
    min_length: int = 0
    """EOS is forbidden until the sentence has this many tokens (0: off)."""
    repetition_penalty: float = 1.0
    """The logit of a token the sentence already holds is divided by this where positive and
    multiplied by it where negative (CTRL's rule; > 1 discourages repeats; 1: off)."""
    no_repeat_ngram_size: int = 0
    """A token that would complete an n-gram of this size already in the sentence is banned
    (0: off; 1: no token twice)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown decoding method {self.method!r}; choose one of {', '.join(METHODS)}.")
        for name in ("max_length", "max_new_tokens", "min_length", "no_repeat_ngram_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{name} must be a whole number of tokens, got {value!r}.")
        for name in ("max_length", "max_new_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)} (it counts the tokens of a "
                                  "sentence, EOS excluded; leave it unset for the model's default).")
        if None not in (self.max_length, self.max_new_tokens) and self.max_length != self.max_new_tokens:
            raise ConfigError(f"max_length={self.max_length} and max_new_tokens={self.max_new_tokens} disagree: "
                              "with no prompt both are the most tokens per sentence; give only one of them.")
        # One limit under two names: whichever was given, both read it.
        self.max_length = self.max_new_tokens = self.max_length or self.max_new_tokens
        if self.min_length < 0:
            raise ConfigError(f"min_length must be >= 0 (0: off), got {self.min_length}.")
        if self.max_length is not None and self.min_length > self.max_length:
            raise ConfigError(f"min_length={self.min_length} is more than the length limit "
                              f"max_new_tokens={self.max_length}, so no sentence could end with EOS; lower "
                              "min_length or raise max_new_tokens.")
        if not (isinstance(self.repetition_penalty, (int, float)) and 0 < self.repetition_penalty < float("inf")):
            raise ConfigError(f"repetition_penalty must be a number > 0 (1: off; 1.2 is a common choice to "
                              f"discourage repeats), got {self.repetition_penalty!r}.")
        if self.no_repeat_ngram_size < 0:
            raise ConfigError(f"no_repeat_ngram_size must be >= 0 (0: off; 3 forbids repeating any 3 "
                              f"consecutive tokens), got {self.no_repeat_ngram_size}.")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature} (for the most likely token "
                                "at each step use method greedy).")
        if self.top_k is not None and self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0 (0: off), got {self.top_k}.")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.beam_size < 1:
            raise ConfigError(f"beam_size must be >= 1, got {self.beam_size}.")
        sampling = self.temperature != 1.0 or self.top_k or self.top_p is not None
        if sampling and self.method != "sample":
            # Silently ignoring --top-p under greedy decoding would hide a mistake.
            raise ConfigError(f"temperature/top_k/top_p only apply to method 'sample', not {self.method!r}.")


def decode_config(base: Optional[DecodeConfig] = None, **options: Any) -> DecodeConfig:
    """``base`` (default: greedy) with ``options`` (DecodeConfig field names) replacing fields.

    Raises:
        ConfigError: an option that is not a DecodeConfig field, or an invalid combination.
    """
    names = [f.name for f in dataclasses.fields(DecodeConfig)]
    for key in options:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown decoding option {key!r}.{hint} Options: {', '.join(names)}.")
    base = base or DecodeConfig()
    if LENGTH_NAMES & options.keys():
        # One limit under two names: a value given under either replaces the base's.
        base = dataclasses.replace(base, max_length=None, max_new_tokens=None)
    return dataclasses.replace(base, **options)


LENGTH_NAMES = {"max_length", "max_new_tokens"}


@dataclass
class DecodeOutput:
    """Greedy or sampled sequences for a batch of R latents."""

    sequences: list[list[int]]
    """Token ids per row, EOS excluded."""
    finished: Tensor
    """(R,) bool: the row emitted EOS (False: stopped at the length limit)."""
    log_probs: Tensor
    """(R,) fp32 sum of log p(token | prefix, z) under the model (before temperature/filters),
    EOS included when emitted."""
    token_log_probs: Tensor
    """(R, L) fp32 per-step log p of the chosen token; 0 after the row ended."""
    logits: Optional[Tensor] = None
    """(R, L, V) raw logits at every step (only with ``keep_logits``); 0 after the row ended."""


@dataclass
class Hypothesis:
    """One beam-search result."""

    tokens: list[int]
    """Token ids, EOS excluded."""
    score: float
    """The ranking key: the searched log-probability / length^length_penalty, where the searched
    log-probability is ``log_prob`` except under a repetition penalty (then the penalized one)."""
    log_prob: float
    """Sum of the model's token log-probabilities (EOS included when finished)."""
    finished: bool
    """Ended with EOS (False: cut at max_length)."""


# --------------------------------------------------------------------------- token choice


def filter_logits(logits: Tensor, top_k: Optional[int] = None, top_p: Optional[float] = None) -> Tensor:
    """Set logits outside the top-k and outside the top-p nucleus to −inf. logits: (R, V).

    The most likely token always survives, so every row keeps something to sample.
    """
    if top_k:
        k = min(top_k, logits.shape[-1])
        kth = logits.topk(k, dim=-1).values[..., -1:]  # (R, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # Drop a token when the tokens ranked above it already reach p.
        drop_sorted = (probs.cumsum(-1) - probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _greedy_choice(logits: Tensor, cfg: DecodeConfig, generator: Optional[torch.Generator]) -> Tensor:
    return logits.argmax(dim=-1)


def _sample_choice(logits: Tensor, cfg: DecodeConfig, generator: Optional[torch.Generator]) -> Tensor:
    filtered = filter_logits(logits / cfg.temperature, cfg.top_k, cfg.top_p)
    return torch.multinomial(filtered.softmax(-1), 1, generator=generator).squeeze(1)


Choice = Callable[[Tensor, DecodeConfig, Optional[torch.Generator]], Tensor]
CHOICES: dict[str, Choice] = {"greedy": _greedy_choice, "sample": _sample_choice}


# --------------------------------------------------------------------------- the loops


def _step(decoder: nn.Module, tokens: Tensor, z: Optional[Tensor], state: Any) -> tuple[Tensor, Any]:
    """Feed one token per row: tokens (R,) → fp32 logits (R, V) and the new state."""
    hidden, state = decoder(tokens.unsqueeze(1), z, state=state)  # (R, 1, H)
    return decoder.project(hidden[:, -1]).float(), state


@torch.no_grad()
def decode_tokens(decoder: nn.Module, z: Optional[Tensor], num: int, vocab: VocabSpec, cfg: DecodeConfig,
                  max_length: int, generator: Optional[torch.Generator] = None,
                  keep_logits: bool = False) -> DecodeOutput:
    """Greedy or sampled decoding of ``num`` rows, stopping each row at its EOS.

    Args:
        decoder: a decoder with the interface described in this module's docstring.
        z: (num, D) latents, or None for a language model.
        cfg: ``method`` greedy or sample (and its temperature/top-k/top-p), and the rules
            ``min_length``, ``repetition_penalty``, ``no_repeat_ngram_size``.
        max_length: most tokens per row, EOS excluded (the caller resolves ``cfg``'s limit).
        generator: RNG for sampling (the global one when None).
        keep_logits: also return the raw logits of every step (tests, analysis).
    """
    if cfg.method not in CHOICES:
        raise ConfigError(f"decode_tokens does greedy or sample, not {cfg.method!r}; use beam_search.")
    choose = CHOICES[cfg.method]
    device = _device(decoder)
    rules = StepRules.build(vocab, device, cfg.min_length, cfg.repetition_penalty, cfg.no_repeat_ngram_size)
    seqs = torch.full((num, max_length), vocab.pad_id, dtype=torch.long, device=device)
    token_lp = torch.zeros(num, max_length, device=device)
    all_logits = None
    lengths = torch.zeros(num, dtype=torch.long, device=device)
    finished = torch.zeros(num, dtype=torch.bool, device=device)
    rows = torch.arange(num, device=device)  # original row of each still-running row
    tokens = torch.full((num,), vocab.bos_id, dtype=torch.long, device=device)
    state = None
    for t in range(max_length if num else 0):
        logits, state = _step(decoder, tokens, z, state)  # (R, V)
        if keep_logits:
            if all_logits is None:
                all_logits = torch.zeros(num, max_length, logits.shape[-1], device=device)
            all_logits[rows, t] = logits
        held = seqs[rows, :t] if rules.uses_history else None  # (R, t) what each running row generated
        tokens = choose(rules.scores(logits, t, held), cfg, generator)
        token_lp[rows, t] = logits.log_softmax(-1).gather(1, tokens.unsqueeze(1)).squeeze(1)
        seqs[rows, t] = tokens
        is_eos = tokens == vocab.eos_id
        lengths[rows] = t + (~is_eos).long()  # tokens so far, EOS excluded
        finished[rows[is_eos]] = True
        if is_eos.any():
            keep = (~is_eos).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            rows, tokens = rows[keep], tokens[keep]
            z = z[keep] if z is not None else None
            state = decoder.reorder_state(state, keep)
    sequences = [seqs[i, :n].tolist() for i, n in enumerate(lengths.tolist())]
    return DecodeOutput(sequences, finished.cpu(), token_lp.sum(1).cpu(), token_lp.cpu(),
                        all_logits.cpu() if all_logits is not None else None)


@torch.no_grad()
def beam_search(decoder: nn.Module, z: Optional[Tensor], num: int, vocab: VocabSpec, beam_size: int,
                max_length: int, length_penalty: float = 1.0, *, min_length: int = 0,
                repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0) -> list[list[Hypothesis]]:
    """Batched beam search: up to ``beam_size`` hypotheses per row, best first.

    A row stops once ``beam_size`` hypotheses have ended with EOS (fairseq's rule; with
    ``beam_size=1`` this is exactly greedy decoding). Hypotheses still running at
    ``max_length`` are returned too, marked unfinished. The ranking score is
    log p / length^length_penalty with length = tokens + 1 for the EOS.

    ``min_length``, ``repetition_penalty`` and ``no_repeat_ngram_size`` are the DecodeConfig
    rules, applied per hypothesis: bans remove candidates, and under a repetition penalty the
    search ranks by the log-softmax of the penalized logits (as greedy and sampling choose by
    them), while ``log_prob`` stays the model's.

    Args:
        z: (num, D) latents, or None for a language model.
    Returns:
        for each row, its hypotheses sorted by score, best first.
    """
    device, k = _device(decoder), beam_size
    rules = StepRules.build(vocab, device, min_length, repetition_penalty, no_repeat_ngram_size)
    penalized = repetition_penalty != 1.0
    alive = torch.arange(num, device=device)  # original row of each running sentence, (A,)
    zz = z.repeat_interleave(k, dim=0) if z is not None else None  # (A·K, D)
    tokens = torch.full((num * k,), vocab.bos_id, dtype=torch.long, device=device)
    cum = torch.zeros(num, k, device=device)
    cum[:, 1:] = float("-inf")  # all beams start identical: expand only the first at step 0
    model_cum = cum.clone()  # the model's log p of each beam (cum: the searched, penalized one)
    history = torch.zeros(num, k, 0, dtype=torch.long, device=device)
    results: list[list[Hypothesis]] = [[] for _ in range(num)]

    def score(log_prob: float, length: int) -> float:
        return log_prob / (length ** length_penalty)

    state = None
    for t in range(max_length if num else 0):
        logits, state = _step(decoder, tokens, zz, state)
        a, v = alive.numel(), logits.shape[-1]
        held = history.reshape(a * k, t) if rules.uses_history else None
        # (A·K, V) the log-probs searched: the model's (penalized), −inf where a rule bans the token
        logp = rules.scores(logits, t, held, log_probs=True)
        cand = (cum.unsqueeze(2) + logp.view(a, k, v)).view(a, k * v)
        # 2K candidates always hold K that are not EOS (each beam has one EOS continuation).
        top, idx = cand.topk(min(2 * k, k * v), dim=1)  # (A, C)
        model_top = top if not penalized else (
            model_cum.unsqueeze(2) + logits.log_softmax(-1).view(a, k, v)).view(a, k * v).gather(1, idx)
        beam, tok = idx // v, idx % v
        is_eos = tok == vocab.eos_id
        rank = torch.arange(top.shape[1], device=device).expand_as(top)
        # An EOS among the K best candidates ends a hypothesis (as in fairseq and HF).
        for ai, j in (is_eos & (rank < k) & top.isfinite()).nonzero().tolist():
            row = results[int(alive[ai])]
            if len(row) < k:
                row.append(Hypothesis(history[ai, beam[ai, j]].tolist(), score(top[ai, j].item(), t + 1),
                                      model_top[ai, j].item(), True))
        order = (is_eos.long() * top.shape[1] + rank).argsort(dim=1)[:, :k]  # first K non-EOS
        beam, tok, cum = beam.gather(1, order), tok.gather(1, order), top.gather(1, order)
        model_cum = model_top.gather(1, order)
        history = torch.cat([history.gather(1, beam.unsqueeze(2).expand(-1, -1, t)), tok.unsqueeze(2)], dim=2)
        if t == max_length - 1:
            # Out of length: the best running beams of unfinished rows are results too.
            for ai, r in enumerate(alive.tolist()):
                for j in range(k):
                    if len(results[r]) >= k or not torch.isfinite(cum[ai, j]):
                        break
                    results[r].append(Hypothesis(history[ai, j].tolist(), score(cum[ai, j].item(), max_length),
                                                 model_cum[ai, j].item(), False))
            break
        keep = torch.tensor([len(results[r]) < k for r in alive.tolist()], device=device).nonzero().squeeze(1)
        if keep.numel() == 0:
            break
        flat = (keep.unsqueeze(1) * k + beam[keep]).view(-1)  # rows of the current state to carry on
        state = decoder.reorder_state(state, flat)
        zz = zz[flat] if zz is not None else None
        tokens = tok[keep].view(-1)
        alive, cum, model_cum, history = alive[keep], cum[keep], model_cum[keep], history[keep]
    return [sorted(row, key=lambda h: h.score, reverse=True) for row in results]


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


@torch.no_grad()
def decode(decoder: nn.Module, z: Optional[Tensor], num: int, vocab: VocabSpec, cfg: DecodeConfig,
           max_length: int, generator: Optional[torch.Generator] = None) -> list[list[int]]:
    """Token ids (EOS excluded) of the decoding ``cfg.method`` picks: the best beam for ``beam``."""
    return METHODS[cfg.method](decoder, z, num, vocab, cfg, max_length, generator)


def _decode_beam(decoder: nn.Module, z: Optional[Tensor], num: int, vocab: VocabSpec, cfg: DecodeConfig,
                 max_length: int, generator: Optional[torch.Generator]) -> list[list[int]]:
    return [hyps[0].tokens if hyps else [] for hyps in beam_search(
        decoder, z, num, vocab, cfg.beam_size, max_length, cfg.length_penalty, min_length=cfg.min_length,
        repetition_penalty=cfg.repetition_penalty, no_repeat_ngram_size=cfg.no_repeat_ngram_size)]


def _decode_stepwise(decoder: nn.Module, z: Optional[Tensor], num: int, vocab: VocabSpec, cfg: DecodeConfig,
                     max_length: int, generator: Optional[torch.Generator]) -> list[list[int]]:
    return decode_tokens(decoder, z, num, vocab, cfg, max_length, generator).sequences


METHODS: dict[str, Callable[..., list[list[int]]]] = {
    "greedy": _decode_stepwise, "sample": _decode_stepwise, "beam": _decode_beam}
