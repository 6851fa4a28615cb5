"""TextVAE, what users load and call: the model with its tokenizer, and the methods that work on text.

    model = TextVAE.from_pretrained("runs/ptb/model")
    model.generate(5, method="sample", top_p=0.9, seed=0)
    model.reconstruct(["the company said it expects to report a loss"], method="beam", beam_size=5)
    model.interpolate("sentence a", "sentence b", steps=8, method="slerp")
    model.encode(texts)  # (N, D) μ

Decoding options (``method``, ``max_new_tokens`` or its alias ``max_length``, ``min_length``,
``repetition_penalty``, ``no_repeat_ngram_size``, ``temperature``, ``top_k``, ``top_p``,
``beam_size``, ``length_penalty``) are the fields of
:class:`~textvae.inference.decoding.DecodeConfig`; every stochastic choice takes a ``seed``.
Without a length limit, decoding stops at the model's :attr:`~TextVAE.default_max_new_tokens`:
the longest training sentence, which ``textvae train`` records (``generation_config.json``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Optional

import torch
from torch import Tensor

from textvae.config import ModelConfig
from textvae.data.tokenizers import TextTokenizer
from textvae.errors import ConfigError, ModelError, TextVAEError
from textvae.inference.decoding import DecodeConfig, decode, decode_config
from textvae.inference.features import (POSITIONAL_KINDS, check_max_length, default_max_length, encode_texts,
                                        eval_mode)
from textvae.inference.generation_config import GenerationDefaults
from textvae.modeling import TextVAEModel, VocabSpec
from textvae.utils.layout import TOKENIZER_DIR
from textvae.utils.seeding import seeded_generator


# --------------------------------------------------------------------------- latent paths


def lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Straight line: a (D,), b (D,), t (S,) → (S, D)."""
    t = t.unsqueeze(1)
    return (1 - t) * a + t * b


def slerp(a: Tensor, b: Tensor, t: Tensor, eps: float = 1e-7) -> Tensor:
    """Great-circle path between the directions of a and b, with the norm going linearly
    from ‖a‖ to ‖b‖ (White 2016). Under a Gaussian prior, lerp's midpoints have small norms
    that the prior almost never produces; slerp keeps the typical norm along the way.

    a (D,), b (D,), t (S,) → (S, D). When a and b point the same way (or one is zero) this is
    lerp of the directions; when they are opposite the great circle is not unique and plain
    lerp is used.
    """
    na, nb = a.norm(), b.norm()
    if na < eps or nb < eps:
        return lerp(a, b, t)
    ua, ub = a / na, b / nb
    cos = (ua @ ub).clamp(-1.0, 1.0)
    if cos < -1.0 + 1e-6:
        return lerp(a, b, t)
    omega = torch.arccos(cos)
    tt = t.unsqueeze(1)
    if omega.sin() < 1e-6:
        direction = lerp(ua, ub, t)
        direction = direction / direction.norm(dim=1, keepdim=True)
    else:
        direction = (torch.sin((1 - tt) * omega) * ua + torch.sin(tt * omega) * ub) / omega.sin()
    return direction * ((1 - tt) * na + tt * nb)


PATHS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {"lerp": lerp, "slerp": slerp}


def latent_path(a: Tensor, b: Tensor, steps: int, method: str = "lerp") -> Tensor:
    """``steps`` evenly spaced points from a to b, both endpoints included (exactly). → (steps, D).

    Raises:
        ConfigError: steps < 2, an unknown method, or a and b of different shapes.
    """
    if steps < 2:
        raise ConfigError(f"steps must be >= 2 so that the path includes both endpoints, got {steps}.")
    if method not in PATHS:
        raise ConfigError(f"unknown interpolation method {method!r}; choose one of {', '.join(PATHS)}.")
    if a.shape != b.shape or a.dim() != 1:
        raise ConfigError(f"endpoints must be two vectors of the same size, got {tuple(a.shape)} and "
                             f"{tuple(b.shape)}.")
    t = torch.linspace(0.0, 1.0, steps, dtype=a.dtype, device=a.device)
    path = PATHS[method](a, b, t)
    path[0], path[-1] = a, b  # no rounding at the ends: they are the inputs
    return path


# --------------------------------------------------------------------------- the model users call


class TextVAE(TextVAEModel):
    """A :class:`~textvae.modeling.TextVAEModel` with its tokenizer: it reads and writes text.

    Args:
        config: the ``model`` section of a recipe.
        vocab: special ids and vocabulary size from the tokenizer.
        tokenizer: the tokenizer itself, kept so that a model directory is self-contained.
        generation_defaults: what decoding uses for options a call leaves unset (``textvae
            train`` records the longest training sentence); saved as ``generation_config.json``.
    """

    def __init__(self, config: ModelConfig, vocab: VocabSpec, tokenizer: Optional[TextTokenizer] = None,
                 generation_defaults: Optional[GenerationDefaults] = None):
        super().__init__(config, vocab)
        self.tokenizer = tokenizer
        self.generation_defaults = generation_defaults or GenerationDefaults()

    # ------------------------------------------------------------------ persistence

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the tokenizer, ``generation_config.json`` (when there are defaults to record),
        ``model.safetensors`` and ``config.json`` into ``directory`` (each atomically; config.json
        last, so a directory with one is complete)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.tokenizer is not None:
            self.tokenizer.save(directory / TOKENIZER_DIR)
        self.generation_defaults.save(directory)
        return super().save_pretrained(directory)

    @classmethod
    def _load_extras(cls, directory: Path, vocab: VocabSpec) -> dict[str, Any]:
        generation = GenerationDefaults.load(directory)  # none recorded (older models): the position limit
        if not (directory / TOKENIZER_DIR).is_dir():
            return {"tokenizer": None, "generation_defaults": generation}
        tokenizer = _load_tokenizer(directory / TOKENIZER_DIR)
        if tokenizer.vocab_size != vocab.vocab_size:
            raise ModelError(
                f"the tokenizer in {directory / TOKENIZER_DIR} has {tokenizer.vocab_size} tokens but the "
                f"model was built for {vocab.vocab_size}; the directory mixes files of two runs. "
                "Copy the tokenizer/ folder of the run that wrote these weights.")
        return {"tokenizer": tokenizer, "generation_defaults": generation}

    # ------------------------------------------------------------------ decoding

    @property
    def default_max_new_tokens(self) -> int:
        """The length limit of decoding when a call gives none: the one the model records
        (``generation_defaults.max_new_tokens``; ``textvae train``: the longest training sentence,
        EOS excluded), else the position limit ``model.max_positions`` − 2, which a Transformer
        decoder cannot pass either way."""
        recorded, positions = self.generation_defaults.max_new_tokens, default_max_length(self)
        if recorded is None:
            return positions
        return min(recorded, positions) if self.config.decoder.kind in POSITIONAL_KINDS else recorded

    def decode_latent(self, z: Optional[Tensor], n: Optional[int] = None, *, seed: Optional[int] = None,
                      decoding: Optional[DecodeConfig] = None, batch_size: int = 256,
                      **options: Any) -> list[str]:
        """Sentences decoded from latents z (N, D) (or ``n`` unconditional ones for an LM).

        Args:
            decoding: a DecodeConfig; ``options`` (its field names) replace its fields.
            seed: seeds the sampler (``method=sample``); None uses torch's global RNG.
            batch_size: latents decoded at once.
        Raises:
            ConfigError: a bad option, or ``min_length`` above the length limit.
        """
        self._require_tokenizer()
        cfg = decode_config(decoding, **options)
        max_length = cfg.max_new_tokens or self.default_max_new_tokens
        check_max_length(self, max_length, "decoder")
        if cfg.min_length > max_length:
            raise ConfigError(f"min_length={cfg.min_length} is more than the length limit {max_length} (this "
                              "model's default_max_new_tokens), so no sentence could end with EOS; lower "
                              "min_length or give a larger max_new_tokens.")
        if z is not None:
            if z.dim() != 2 or z.shape[1] != self.latent_dim:
                raise ConfigError(f"z must have shape (N, {self.latent_dim}), got {tuple(z.shape)}.")
            z = z.to(self.device, dtype=next(self.parameters()).dtype)
            n = z.shape[0]
        elif self.is_vae:
            raise ConfigError("this model is a VAE: decoding needs latents z (N, latent_dim).")
        if n is None or n < 0:
            raise ConfigError(f"the number of sentences must be >= 0, got {n}.")
        generator = seeded_generator(self.device, seed)
        ids: list[list[int]] = []
        with eval_mode(self):
            for start in range(0, n, batch_size):
                rows = min(batch_size, n - start)
                chunk = z[start:start + rows] if z is not None else None
                ids += decode(self.decoder, chunk, rows, self.vocab, cfg, max_length, generator)
        return self.tokenizer.decode_batch(ids)

    def generate(self, n: int = 1, *, seed: Optional[int] = None,
                 decoding: Optional[DecodeConfig] = None, batch_size: int = 256, **options: Any) -> list[str]:
        """``n`` sentences from the prior: z ~ p(z), decoded (an LM decodes without z). An
        energy-based prior (``model.prior: ebm``) is sampled by its short-run Langevin chain.

        ``seed`` seeds both z and the sampler, so the same seed gives the same sentences.
        """
        if n < 0:
            raise ConfigError(f"n must be >= 0, got {n}.")
        z = None
        if self.is_vae:
            generator = seeded_generator(self.device, seed)
            z = self.sample_prior(n, generator)  # N(0, I), or the energy-based prior's chain
            seed = None if seed is None else seed + 1  # the sampler gets its own stream
        return self.decode_latent(z, n, seed=seed, decoding=decoding, batch_size=batch_size, **options)

    def reconstruct(self, texts: Sequence[str] | str, *, use: Literal["mean", "sample"] = "mean",
                    seed: Optional[int] = None, max_input_length: Optional[int] = None,
                    decoding: Optional[DecodeConfig] = None, batch_size: int = 64, **options: Any) -> list[str]:
        """Encode each text (μ, or a sample of q(z|x) with ``use="sample"``) and decode it back.

        ``max_input_length`` truncates the inputs (see :meth:`encode`); the decoding option
        ``max_new_tokens`` (or ``max_length``) caps the outputs.
        """
        z = self.encode(texts, use=use, seed=seed, max_length=max_input_length, batch_size=batch_size)
        return self.decode_latent(z, seed=seed, decoding=decoding, batch_size=batch_size, **options)

    def interpolate(self, a: Optional[str] = None, b: Optional[str] = None, steps: int = 8, *,
                    method: str = "lerp", use: Literal["mean", "sample"] = "mean", seed: Optional[int] = None,
                    max_input_length: Optional[int] = None, decoding: Optional[DecodeConfig] = None,
                    **options: Any) -> list[str]:
        """The homotopy from a to b: ``steps`` points (both endpoints included), one sentence each.

        With two texts, the endpoints are their latents (μ, or samples); with neither, two draws
        from the prior (seeded by ``seed``). ``method`` is ``lerp`` or ``slerp``.
        """
        path = self.interpolation_latents(a, b, steps, method=method, use=use, seed=seed,
                                          max_input_length=max_input_length)
        return self.decode_latent(path, seed=seed, decoding=decoding, **options)

    def interpolation_latents(self, a: Optional[str] = None, b: Optional[str] = None, steps: int = 8,
                              *, method: str = "lerp", use: Literal["mean", "sample"] = "mean",
                              seed: Optional[int] = None, max_input_length: Optional[int] = None) -> Tensor:
        """The latent points :meth:`interpolate` decodes. → (steps, D) on the model's device."""
        if not self.is_vae:
            raise ConfigError("a language model (model.mode=lm) has no latent space to interpolate in.")
        if steps < 2:  # checked before any encoding, so the message comes first
            raise ConfigError(f"steps must be >= 2 so that the path includes both endpoints, got {steps}.")
        if (a is None) != (b is None):
            raise ConfigError("give two sentences to interpolate between, or none to use two prior samples.")
        if a is None:
            ends = self.sample_prior(2, seeded_generator(self.device, seed))
        else:
            for text in (a, b):
                if not isinstance(text, str):
                    raise ConfigError(f"interpolation endpoints must be strings, got {type(text).__name__}.")
            ends = self.encode([a, b], use=use, seed=seed, max_length=max_input_length).to(self.device)
        return latent_path(ends[0], ends[1], steps, method)

    # ------------------------------------------------------------------ encoding

    def encode(self, texts: Sequence[str] | str, *, use: Literal["mean", "sample"] = "mean",
               batch_size: int = 64, max_length: Optional[int] = None, seed: Optional[int] = None,
               progress: bool = False) -> Tensor:
        """Latent features of texts: μ of q(z|x) (``use="mean"``) or one sample. → (N, D) fp32 CPU.

        Texts longer than ``max_length`` tokens (default: max_positions − 2) are truncated, and
        an :class:`~textvae.inference.features.InputWarning` says how many; empty texts and texts
        of unknown words only are encoded as they are, with a warning.
        """
        return encode_texts(self, texts, use, batch_size, max_length, seeded_generator(self.device, seed), progress)

    # ------------------------------------------------------------------ helpers

    def _require_tokenizer(self) -> None:
        if self.tokenizer is None:
            raise ConfigError("this model has no tokenizer, so it cannot write text. Load it with "
                                 "TextVAE.from_pretrained from a directory with a tokenizer/ folder, or build "
                                 "it as TextVAE(config, vocab, tokenizer).")


def _load_tokenizer(directory: Path) -> TextTokenizer:
    try:
        return TextTokenizer.load(directory)
    except TextVAEError as err:
        raise ModelError(str(err)) from err
    except Exception as err:  # tokenizers and sentencepiece raise their own types for a damaged file
        reason = " ".join(str(err).split())[:160]
        raise ModelError(f"{directory} cannot be read ({type(err).__name__}: {reason}); its files are "
                             "truncated or altered. Copy the tokenizer/ folder of the run that wrote these "
                             "weights.") from err
