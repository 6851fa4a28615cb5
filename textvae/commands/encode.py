"""``textvae encode MODEL_DIR --data FILE_OR_SHIPPED_NAME --output feats.{npy,parquet}``: corpus features."""

from __future__ import annotations

import argparse
from pathlib import Path

from textvae.commands.common import add_data_arguments
from textvae.commands.generate import add_model_arguments, load_model


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("encode", help="write latent features of a corpus",
                              description="Encode every sentence of a file or shipped corpus split. .npy holds "
                                          "the (N, D) float32 array, one row per non-blank input row in order; "
                                          ".parquet holds text, label (when there is one) and z.")
    add_model_arguments(p)
    p.add_argument("--data", required=True,
                   help="a file (text/label_text/csv/tsv/json/jsonl/parquet), a glob pattern in quotes "
                        "('data/*.txt') or a shipped corpus: ptb, yelp, yahoo, sst2")
    p.add_argument("--split", default="train", help="split of a shipped corpus (default: train)")
    p.add_argument("--output", "-o", required=True, help="features file: .npy or .parquet")
    p.add_argument("--use", choices=["mean", "sample"], default="mean",
                   help="the posterior mean μ or one sample of q(z|x) (default: mean)")
    p.add_argument("--max-length", type=int, help="truncate inputs to this many tokens (default: the model's maximum)")
    p.add_argument("--seed", type=int, help="seed for --use sample")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_data_arguments(p, label_help="column holding the labels in csv/tsv/json/parquet files, kept in .parquet "
                                     "output (default: none; label_text files always have labels)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textvae.commands.common import read_texts
    from textvae.inference.features import FEATURE_FORMATS, ConfigError, report_warnings, write_features

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
