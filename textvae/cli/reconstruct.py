"""``textvae reconstruct MODEL_DIR "a sentence" … | --data FILE [--use mean|sample]``: encode, decode back."""

from __future__ import annotations

import argparse

from textvae.cli.args import add_data_arguments, add_max_length_argument
from textvae.cli.args import add_decoding_arguments, add_model_arguments, decoding_options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("reconstruct", help="encode sentences and decode them back",
                              description="Encode each sentence to z (the posterior mean, or a sample) and "
                                          "decode it. Prints '> input' and '< reconstruction' per sentence.")
    add_model_arguments(p)
    p.add_argument("texts", nargs="*", metavar="TEXT", help="sentences to reconstruct")
    p.add_argument("--data", help="a file of sentences (text: one per line; label_text: '<label> <sentence>'; "
                                  "csv/tsv/json/parquet: --text-column), or a glob pattern in quotes")
    p.add_argument("--use", choices=["mean", "sample"], default="mean",
                   help="decode the posterior mean μ or a sample of q(z|x) (default: mean)")
    add_max_length_argument(p, "both")
    add_decoding_arguments(p)
    add_data_arguments(p, label_help="label column of csv/tsv/json/parquet files (read and checked, not used)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textvae.cli.common import load_model, read_texts
    from textvae.errors import ConfigError
    from textvae.inference.decoding import decode_config
    from textvae.inference.features import report_warnings

    if bool(args.texts) == bool(args.data):
        raise ConfigError("give the sentences to reconstruct either as arguments or with --data FILE "
                             "(exactly one of the two).")
    options = decoding_options(args)
    decode_config(**options)
    texts = args.texts or read_texts("reconstruct", args, args.data, shipped=False).texts
    model = load_model(args)
    with report_warnings("reconstruct"):
        outputs = model.reconstruct(texts, use=args.use, seed=args.seed, max_input_length=args.max_length,
                                    batch_size=args.batch_size, **options)
    for text, output in zip(texts, outputs):
        print(f"> {text}\n< {output}")
    return 0
