"""``textvae generate MODEL_DIR --num 20 [--decode greedy|sample|beam] [--seed S] …``: z ~ p(z), decoded."""

from __future__ import annotations

import argparse

from textvae.cli.args import (add_decoding_arguments, add_max_length_argument, add_model_arguments,
                              decoding_options)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generate", help="sample sentences from the prior",
                              description="Draw z from the prior N(0, I) and decode one sentence per draw "
                                          "(a language model decodes without z). One sentence per line.")
    add_model_arguments(p)
    p.add_argument("--num", "-n", type=int, default=20, help="how many sentences (default: 20)")
    add_max_length_argument(p, "outputs")
    add_decoding_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textvae.cli.common import load_model
    from textvae.errors import ConfigError
    from textvae.inference.decoding import decode_config

    if args.num < 1:
        raise ConfigError(f"--num must be >= 1, got {args.num}.")
    options = decoding_options(args)
    decode_config(**options)  # bad flag combinations fail before the model loads
    model = load_model(args)
    for sentence in model.generate(args.num, seed=args.seed, batch_size=args.batch_size, **options):
        print(sentence)
    return 0
