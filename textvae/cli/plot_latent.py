"""``textvae plot-latent MODEL_DIR --data FILE_OR_NAME [--label-column C] --output latent.png``: 2-D PCA of μ;
with ``--prior-samples N``, the aggregate posterior against N(0, I) and the energy-based prior."""

from __future__ import annotations

import argparse
from pathlib import Path

from textvae.cli.args import add_data_arguments, add_max_length_argument, add_source_arguments
from textvae.cli.args import add_model_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plot-latent", help="PNG of a 2-D PCA of the latent means",
                              description="Encode sentences to μ, project them on their first two principal "
                                          "components and scatter them, coloured by label when there is one. "
                                          "With --prior-samples N: N samples of the aggregate posterior q(z) "
                                          "against N of N(0, I) and, for model.prior=ebm, N of the "
                                          "energy-based prior, on the principal components of the posterior "
                                          "samples.")
    add_model_arguments(p)
    add_source_arguments(p)
    p.add_argument("--max-points", type=int, default=5000,
                   help="plot a random subset of this many sentences (default: 5000)")
    add_max_length_argument(p, "inputs")
    p.add_argument("--output", "-o", required=True, help="the PNG file to write")
    p.add_argument("--prior-samples", type=int, default=0, metavar="N",
                   help="draw N samples each of the aggregate posterior (one z ~ q(z|x) per sentence of the "
                        "--max-points subset, as training draws it: with a posterior chain, one short-run "
                        "chain's final z; sentences repeat when N exceeds them), of N(0, I) and, for "
                        "model.prior=ebm, of the energy-based prior's chain; fit the PCA on the posterior "
                        "samples and draw all of them on it (default: 0, off: the PCA of μ)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the --prior-samples draws (default: 0)")
    add_data_arguments(p, label_help="column of csv/tsv/json/parquet files to colour the points by (default: "
                                     "none; shipped corpora and label_text files: their labels)")
    p.set_defaults(func=run)


def model_name(model_dir: str) -> str:
    """The plot title's name for a model: a run's model folder (``best/``, ``model/``,
    ``checkpoints/step-N/``) with the run it belongs to ("RUN/best"), since "best" alone names
    every run's best model."""
    from textvae.utils.layout import run_dir_of

    path = Path(model_dir).expanduser().resolve()
    run = run_dir_of(path)
    return path.relative_to(run.parent).as_posix() if run is not None else path.name


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
    if args.prior_samples < 0 or args.prior_samples == 1:
        raise ConfigError(f"--prior-samples must be 0 (off) or >= 2 (a PCA needs two points), got "
                          f"{args.prior_samples}.")
    data = read_texts("plot-latent", args, args.data, args.split)
    texts, labels, names = data.texts, data.labels, data.label_names
    idx = subsample(len(texts), args.max_points)
    texts = [texts[i] for i in idx]
    labels = [labels[i] for i in idx] if labels is not None else None
    model = load_model(args)
    if args.prior_samples:
        return _run_overlay(args, model, texts, labels, names)
    with report_warnings("plot-latent"):
        mu = model.encode(texts, batch_size=args.batch_size, max_length=args.max_length).numpy()
    ratio = plot_pca(mu, args.output, labels, names, title=f"{model_name(args.model_dir)}: μ of {args.data}")
    print(f"wrote {args.output}: {len(mu)} sentences, PC1+PC2 explain {100 * ratio.sum():.1f}% of the variance")
    return 0


POSTERIOR_DRAWS = {"amortized": "one z ~ q(z|x) per sentence",
                   "langevin": "one z per sentence, the end of a short-run chain from N(0, I)",
                   "amortized+langevin": "one z per sentence, a q(z|x) sample refined by a short-run chain"}


def _run_overlay(args: argparse.Namespace, model, texts: list[str], labels, names) -> int:
    """--prior-samples N: N draws of the aggregate posterior and of each prior, in one PCA plot."""
    import numpy as np

    from textvae.errors import ConfigError
    from textvae.evaluation.plots import (EBM, POSTERIOR, aggregate_posterior_samples, plot_prior_overlay,
                                          prior_samples)
    from textvae.evaluation.probe import subsample
    from textvae.inference.features import report_warnings

    if not model.is_vae:
        raise ConfigError("--prior-samples: this model is a language model (model.mode=lm): it has no latent "
                          "space, no posterior and no prior to draw.")
    n, pool = args.prior_samples, len(texts)
    # N sentences of the pool; past it, every sentence N // pool times and a random N % pool once more.
    idx = np.concatenate([np.tile(np.arange(pool), n // pool), subsample(pool, n % pool, seed=args.seed)]) \
        if n > pool else subsample(pool, n, seed=args.seed)
    with report_warnings("plot-latent"):
        posterior = aggregate_posterior_samples(model, [texts[i] for i in idx], seed=args.seed,
                                                batch_size=args.batch_size, max_length=args.max_length)
    priors = prior_samples(model, n, seed=args.seed + 1)  # its own stream: no draw shared with the posterior
    result = plot_prior_overlay(posterior.numpy(), {k: v.numpy() for k, v in priors.items()}, args.output,
                                [labels[i] for i in idx] if labels is not None else None, names,
                                title=f"{model_name(args.model_dir)}: q(z) of {args.data} against p(z)")
    sets = ["the aggregate posterior",
            *(f"the {k} (its model.ebm.langevin chain)" if k == EBM else k for k in priors)]
    drawn = ", ".join(sets[:-1]) + " and " + sets[-1]
    sentences = f"{min(n, pool)} sentences" + (f", each {n / pool:.3g} times on average" if n > pool else "")
    print(f"wrote {args.output}: {n} samples each of {drawn}; posterior: "
          f"{POSTERIOR_DRAWS[model.config.inference]}, {sentences}; PC1+PC2 of the posterior samples explain "
          f"{100 * result.ratio.sum():.1f}% of their variance ({100 * result.ratio[0]:.1f}% + "
          f"{100 * result.ratio[1]:.1f}%)")
    width = max(len(k) for k in result.summaries)
    print(f"  {'set':<{width}}  {'PC1 mean':>9} {'PC1 std':>8}  {'PC2 mean':>9} {'PC2 std':>8}  "
          f"{'std / posterior':>15}  {'variance in PC1-PC2':>19}")
    ref = result.summaries[POSTERIOR].std
    for name, s in result.summaries.items():
        ratio = s.std / np.where(ref > 0, ref, np.nan)
        print(f"  {name:<{width}}  {s.mean[0]:>+9.3f} {s.std[0]:>8.3f}  {s.mean[1]:>+9.3f} {s.std[1]:>8.3f}  "
              f"{ratio[0]:>7.2f} {ratio[1]:>7.2f}  {100 * s.in_plane:>18.1f}%")
    return 0
