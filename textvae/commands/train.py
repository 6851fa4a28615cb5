"""``textvae train RECIPE [key=value …] [--output DIR] [--resume] [--overwrite]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from textvae.config import load_recipe


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a model from a recipe YAML",
                              description="Train a sentence VAE (or LM baseline) from a recipe. Any recipe key "
                                          "can be overridden as key.sub=value, e.g. model.latent_dim=64.")
    p.add_argument("recipe", help="path to a recipe YAML (see recipes/)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. train.max_steps=2000")
    p.add_argument("--output", "-o", help="run directory (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its newest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to metrics.jsonl)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textvae.training import train

    recipe = load_recipe(args.recipe, args.overrides)
    run_dir = Path(args.output) if args.output else Path("runs") / Path(args.recipe).stem
    result = train(recipe, run_dir, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    m = result.metrics
    print(f"\ntrained {result.step} steps in {result.seconds:.1f} s"
          + (" (interrupted: resume with --resume)" if result.interrupted else ""))
    print("validation: " + "  ".join(f"{k} {m[k]:.3f}" for k in ("loss", "rec", "kl", "mmd", "mi", "au", "neg_elbo")
                                      if k in m))
    print(f"model:     {result.model_dir}")
    if result.best_dir:
        print(f"best:      {result.best_dir}")
    print(f"run dir:   {result.run_dir}  (metrics.jsonl, tb/, checkpoints/)")
    return 0
