"""``textvae generate MODEL_DIR --num 20 [--decode greedy|sample|beam] [--seed S] …``: z ~ p(z), decoded.

Also defines the model and decoding flags that ``reconstruct`` and ``interpolate`` share.
"""

from __future__ import annotations

import argparse
from typing import Any

from textvae.inference.decoding import METHODS


# --------------------------------------------------------------------------- shared flags


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", metavar="MODEL_DIR", help="a model directory, or a run directory (its model/ is used)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1 … (default: auto)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences processed at once (default: 64)")


def add_decoding_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("decoding")
    g.add_argument("--decode", choices=list(METHODS), default="greedy", help="decoding method (default: greedy)")
    g.add_argument("--temperature", type=float, help="sample: divide logits by T (default: 1)")
    g.add_argument("--top-k", type=int, help="sample: keep the k most likely tokens")
    g.add_argument("--top-p", type=float, help="sample: keep the smallest set of tokens with probability >= p")
    g.add_argument("--beam-size", type=int, help="beam: hypotheses per sentence (default: 4)")
    g.add_argument("--length-penalty", type=float,
                   help="beam: rank by log p / length^a (default: 1; 0 = no length normalisation)")
    g.add_argument("--seed", type=int, help="seed for every random choice (default: unseeded)")


def decoding_options(args: argparse.Namespace) -> dict[str, Any]:
    """The decoding flags given on the command line, as DecodeConfig fields (unset ones left out)."""
    options: dict[str, Any] = {"method": args.decode}
    for flag, field in (("temperature", "temperature"), ("top_k", "top_k"), ("top_p", "top_p"),
                        ("beam_size", "beam_size"), ("length_penalty", "length_penalty"),
                        ("max_length", "max_length")):
        value = getattr(args, flag, None)
        if value is not None:
            options[field] = value
    return options


def load_model(args: argparse.Namespace) -> Any:
    """The model of ``MODEL_DIR`` (a model directory, or a run directory: its model/), in eval mode."""
    from textvae.commands.common import resolve_model_dir
    from textvae.inference.api import TextVAE
    from textvae.utils.precision import resolve_device

    model_dir, _ = resolve_model_dir(args.model_dir)
    return TextVAE.from_pretrained(model_dir, device=resolve_device(args.device)).eval()


# --------------------------------------------------------------------------- the command


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generate", help="sample sentences from the prior",
                              description="Draw z from the prior N(0, I) and decode one sentence per draw "
                                          "(a language model decodes without z). One sentence per line.")
    add_model_arguments(p)
    p.add_argument("--num", "-n", type=int, default=20, help="how many sentences (default: 20)")
    p.add_argument("--max-length", type=int, help="most tokens per sentence (default: the model's maximum)")
    add_decoding_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textvae.inference.api import ConfigError
    from textvae.inference.decoding import decode_config

    if args.num < 1:
        raise ConfigError(f"--num must be >= 1, got {args.num}.")
    options = decoding_options(args)
    decode_config(**options)  # bad flag combinations fail before the model loads
    model = load_model(args)
    for sentence in model.generate(args.num, seed=args.seed, batch_size=args.batch_size, **options):
        print(sentence)
    return 0
