"""Starting a run from another model's weights: ``train.init_from`` and ``train.init_reset``.

Autoencoder pretraining then free bits (Li et al. 2019, "A Surprisingly Effective Fix") is two runs:

    textvae train recipes/ptb/ae_pretrain.yaml      # stage 1: β = 0 → runs/ptb_ae_pretrain
    textvae train recipes/ptb/ae_pretrain_fb.yaml   # stage 2: init_from it, init_reset: [decoder]

The second loads every tensor of the first bit-exactly except the decoder's, which keep this
run's fresh initialisation, and tokenizes with the first run's tokenizer (the loaded embeddings
are indexed by its ids). The source is read with ``TextVAE.from_pretrained``, so it takes what
the CLI takes, and without touching this run's random stream, so the reset parts are those a run
without ``init_from`` would start from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from textvae.config import TrainConfig
from textvae.data import TextTokenizer
from textvae.errors import ConfigError, ModelError
from textvae.inference.api import TextVAE
from textvae.utils.layout import CONFIG_NAME, MODEL_DIR, is_run_dir

__all__ = ["load_init", "load_source", "source_tokenizer"]


def load_source(cfg: TrainConfig) -> TextVAE:
    """The model ``train.init_from`` names, on the CPU.

    Raises:
        ModelError: it is missing or damaged (``from_pretrained``'s message, prefixed with the key).
    """
    # Building the model draws its random initialisation: fork the RNG so this run's stream
    # (and with it the initialisation of the reset parts) is the one a plain run would have.
    with torch.random.fork_rng(devices=[]):
        try:
            return TextVAE.from_pretrained(cfg.init_from)
        except ModelError as err:
            raise ModelError(f"train.init_from: {err}") from err


def source_tokenizer(source: TextVAE, cfg: TrainConfig) -> TextTokenizer:
    """The tokenizer of the ``train.init_from`` model ``source``: the run must number tokens as it did.

    Raises:
        ModelError: the source has no tokenizer.
    """
    tokenizer = source.tokenizer
    if tokenizer is None:
        raise ModelError(
            f"train.init_from: {_source_dir(cfg.init_from)} has no tokenizer/ folder, so this run cannot number "
            "tokens as its embeddings expect. Point at a run or model directory written by `textvae train` "
            "(or by TextVAE.save_pretrained with a tokenizer).")
    return tokenizer


def load_init(model: TextVAE, source: TextVAE, cfg: TrainConfig, say: Callable[[str], None]) -> None:
    """Copy the weights of ``source`` (the ``train.init_from`` model, see :func:`load_source`) into
    ``model``, bar the parts in ``train.init_reset``.

    Every parameter and buffer outside those parts is replaced by the source's, bit-exactly; those
    under them keep ``model``'s own (fresh) values. Nothing is copied unless everything fits.

    Raises:
        ModelError: a loaded part differs from this model's (a missing tensor or another shape:
            the message names it and both shapes).
        ConfigError: ``init_reset`` names a part this model does not have (a language model's encoder).
    """
    where = _source_dir(cfg.init_from)
    mine, theirs = model.state_dict(), source.state_dict()
    parts, source_parts = _parts(mine), _parts(theirs)
    for part in cfg.init_reset:
        if part not in parts:
            raise ConfigError(
                f"train.init_reset names {part!r}, but this model (model.mode={model.config.mode}) has no {part}; "
                f"its parts are {sorted(parts)}. Remove {part!r} from train.init_reset.")
    loaded = [p for p in parts if p not in cfg.init_reset]
    absent = [p for p in loaded if p not in source_parts]
    if absent:
        raise ModelError(
            f"train.init_from: {where} (model.mode={source.config.mode}) has no {', '.join(absent)}, which this "
            f"recipe's model has. List {', '.join(absent)} in train.init_reset to train "
            f"{'them' if len(absent) > 1 else 'it'} from a fresh initialisation, or point at another model.")
    state = dict(mine)
    for key, tensor in mine.items():
        if _part(key) not in loaded:
            continue
        if key not in theirs:
            raise ModelError(
                f"train.init_from: {key} is in this recipe's model but not in {where}: the two "
                f"{_part(key)}s are built differently (model.{_section(key)} settings). Use the same model "
                f"settings as that run, or list {_part(key)} in train.init_reset.")
        if theirs[key].shape != tensor.shape:
            raise ModelError(
                f"train.init_from: {key} is {tuple(theirs[key].shape)} in {where} but {tuple(tensor.shape)} in this "
                f"recipe; use the same model sizes and tokenizer, or list {_part(key)} in train.init_reset.")
        state[key] = theirs[key]
    extra = sorted(k for k in theirs if _part(k) in loaded and k not in mine)
    if extra:
        raise ModelError(
            f"train.init_from: {where} has {extra[0]}" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
            + f", which this recipe's model lacks: the two {_part(extra[0])}s are built differently "
            f"(model.{_section(extra[0])} settings). Use the same model settings as that run, or list "
            f"{_part(extra[0])} in train.init_reset.")
    model.load_state_dict(state)  # copies into the existing tensors: device and requires_grad stay
    unused = sorted(p for p in source_parts if p not in parts)
    reset = [p for p in parts if p in cfg.init_reset]
    say(f"init_from: loaded {', '.join(loaded) or 'no part'} from {where} "
        f"({sum(_part(k) in loaded for k in mine)} tensors); "
        + (f"reset {', '.join(reset)} to this run's initialisation (train.seed={cfg.seed}); " if reset else "")
        + (f"not used: {', '.join(unused)} (this model has none); " if unused else "")
        + f"tokenizer: the source's ({model.tokenizer.vocab_size if model.tokenizer else '?'} tokens).")


def _part(key: str) -> str:
    """The model's top-level part a state-dict key belongs to: ``decoder.embed.weight`` → ``decoder``."""
    return key.split(".", 1)[0]


def _section(key: str) -> str:
    """The recipe section that builds a key's part (the head is sized by model.latent_dim)."""
    return {"head": "latent_dim"}.get(_part(key), _part(key))


def _parts(state: dict[str, torch.Tensor]) -> list[str]:
    """The top-level parts holding tensors, in the model's order."""
    return list(dict.fromkeys(_part(k) for k in state))


def _source_dir(init_from: str) -> Path:
    """The model directory ``init_from`` resolves to (a run directory's model/), for messages."""
    path = Path(init_from)
    return path / MODEL_DIR if is_run_dir(path) and not (path / CONFIG_NAME).is_file() else path
