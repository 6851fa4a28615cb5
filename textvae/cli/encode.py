"""``textvae encode MODEL_DIR --data FILE_OR_SHIPPED_NAME --output feats.{npy,parquet}``: corpus features."""

from __future__ import annotations

import argparse
from pathlib import Path

from textvae.cli.args import (add_data_arguments, add_max_length_argument, add_progress_argument,
                              add_source_arguments)
from textvae.cli.args import add_model_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("encode", help="write latent features of a corpus",
                              description="Encode every sentence of a file or shipped corpus split. .npy holds "
                                          "the (N, D) float32 array, one row per non-blank input row in order; "
                                          ".parquet holds text, label (when there is one) and z.")
    add_model_arguments(p)
    add_source_arguments(p)
    p.add_argument("--output", "-o", required=True, help="features file: .npy or .parquet")
    p.add_argument("--use", choices=["mean", "sample"], default="mean",
                   help="the posterior mean μ or one sample of q(z|x) (default: mean)")
    add_max_length_argument(p, "inputs")
    p.add_argument("--seed", type=int, help="seed for --use sample")
    add_progress_argument(p)
    add_data_arguments(p, label_help="column holding the labels in csv/tsv/json/parquet files, kept in .parquet "
                                     "output (default: none; label_text files always have labels)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textvae.cli.common import load_model, read_texts
    from textvae.errors import ConfigError
    from textvae.inference.features import FEATURE_FORMATS, report_warnings, write_features

    output = Path(args.output)
    if output.suffix not in FEATURE_FORMATS:  # fail before the (long) encoding, not after
        raise ConfigError(f"--output {output}: use a {' or '.join(FEATURE_FORMATS)} file name.")
    data = read_texts("encode", args, args.data, args.split)
    texts, labels, names = data.texts, data.labels, data.label_names
    model = load_model(args)
    with report_warnings("encode"):
        z = model.encode(texts, use=args.use, batch_size=args.batch_size, max_length=args.max_length,
                         seed=args.seed, progress=not args.no_progress)
    if names is not None and labels is not None:
        labels = [names[i] for i in labels]
    write_features(output, z, texts if output.suffix == ".parquet" else None,
                   labels if output.suffix == ".parquet" else None)
    print(f"wrote {z.shape[0]} x {z.shape[1]} features ({args.use}) to {output}")
    return 0
