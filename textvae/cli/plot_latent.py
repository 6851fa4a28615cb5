"""``textvae plot-latent MODEL_DIR --data FILE_OR_NAME [--label-column C] --output latent.png``: 2-D PCA of μ."""

from __future__ import annotations

import argparse
from pathlib import Path

from textvae.cli.args import add_data_arguments, add_max_length_argument, add_source_arguments
from textvae.cli.args import add_model_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plot-latent", help="PNG of a 2-D PCA of the latent means",
                              description="Encode sentences to μ, project them on their first two principal "
                                          "components and scatter them, coloured by label when there is one.")
    add_model_arguments(p)
    add_source_arguments(p)
    p.add_argument("--max-points", type=int, default=5000,
                   help="plot a random subset of this many sentences (default: 5000)")
    add_max_length_argument(p, "inputs")
    p.add_argument("--output", "-o", required=True, help="the PNG file to write")
    add_data_arguments(p, label_help="column of csv/tsv/json/parquet files to colour the points by (default: "
                                     "none; shipped corpora and label_text files: their labels)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textvae.cli.common import load_model, read_texts
    from textvae.errors import ConfigError
    from textvae.evaluation.plots import plot_pca
    from textvae.evaluation.probe import subsample
    from textvae.inference.features import report_warnings

    if Path(args.output).suffix.lower() != ".png":
        raise ConfigError(f"--output {args.output}: plot-latent writes a PNG; use a .png file name.")
    if args.max_points < 1:
        raise ConfigError(f"--max-points must be >= 1, got {args.max_points}.")
    data = read_texts("plot-latent", args, args.data, args.split)
    texts, labels, names = data.texts, data.labels, data.label_names
    idx = subsample(len(texts), args.max_points)
    texts = [texts[i] for i in idx]
    labels = [labels[i] for i in idx] if labels is not None else None
    model = load_model(args)
    with report_warnings("plot-latent"):
        mu = model.encode(texts, batch_size=args.batch_size, max_length=args.max_length).numpy()
    ratio = plot_pca(mu, args.output, labels, names, title=f"{Path(args.model_dir).name}: μ of {args.data}")
    print(f"wrote {args.output}: {len(mu)} sentences, PC1+PC2 explain {100 * ratio.sum():.1f}% of the variance")
    return 0
