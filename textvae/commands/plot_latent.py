"""``textvae plot-latent MODEL_DIR --data FILE_OR_NAME [--label-column C] --output latent.png``: 2-D PCA of μ."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from textvae.commands.common import add_data_arguments
from textvae.commands.generate import add_model_arguments, load_model


def plot_pca(mu: np.ndarray, path: str | Path, labels: Optional[Sequence[int]] = None,
             label_names: Optional[Sequence[str]] = None, title: str = "") -> np.ndarray:
    """Scatter the first two principal components of ``mu`` (N, D) into a PNG, one colour per label.

    Returns:
        the explained variance ratio of the two components.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    components = min(2, mu.shape[1], mu.shape[0])
    pca = PCA(n_components=components)
    xy = pca.fit_transform(mu)
    if components < 2:  # one dimension (or one point): plot it on a line
        xy = np.concatenate([xy, np.zeros((len(xy), 2 - components))], axis=1)
    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=6, alpha=0.6)
    else:
        labels = np.asarray(labels)
        for value in np.unique(labels):
            name = label_names[value] if label_names is not None else str(value)
            mask = labels == value
            ax.scatter(xy[mask, 0], xy[mask, 1], s=6, alpha=0.6, label=f"{name} ({int(mask.sum())})")
        ax.legend(markerscale=3, fontsize="small")
    ratio = np.zeros(2)
    ratio[:components] = pca.explained_variance_ratio_
    ax.set_xlabel(f"PC1 ({100 * ratio[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * ratio[1]:.1f}% of variance)")
    ax.set_title(title or f"PCA of posterior means, {len(mu)} sentences")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return ratio


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plot-latent", help="PNG of a 2-D PCA of the latent means",
                              description="Encode sentences to μ, project them on their first two principal "
                                          "components and scatter them, coloured by label when there is one.")
    add_model_arguments(p)
    p.add_argument("--data", required=True,
                   help="a file (text/label_text/csv/tsv/json/jsonl/parquet), a glob pattern in quotes "
                        "('data/*.txt') or a shipped corpus: ptb, yelp, yahoo, sst2")
    p.add_argument("--split", default="train", help="split of a shipped corpus (default: train)")
    p.add_argument("--max-points", type=int, default=5000,
                   help="plot a random subset of this many sentences (default: 5000)")
    p.add_argument("--max-length", type=int, help="truncate inputs to this many tokens (default: the model's maximum)")
    p.add_argument("--output", "-o", required=True, help="the PNG file to write")
    add_data_arguments(p, label_help="column of csv/tsv/json/parquet files to colour the points by (default: "
                                     "none; shipped corpora and label_text files: their labels)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textvae.commands.common import read_texts
    from textvae.inference.features import FeatureError, report_warnings
    from textvae.probe import subsample

    if Path(args.output).suffix.lower() != ".png":
        raise FeatureError(f"--output {args.output}: plot-latent writes a PNG; use a .png file name.")
    if args.max_points < 1:
        raise FeatureError(f"--max-points must be >= 1, got {args.max_points}.")
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
