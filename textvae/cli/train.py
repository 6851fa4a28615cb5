"""``textvae train RECIPE [key=value …] [--output DIR] [--resume] [--overwrite] [--nproc N] [--threads N]``.

Overrides may stand anywhere after the recipe, before or after the flags, as in torchtune's
``tune run``: :func:`textvae.cli.main` hands every ``key=value`` word to ``args.overrides``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from textvae.config import load_recipe

# Set by torchrun in every process it starts.
TORCHRUN_ENV = "LOCAL_RANK"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a model from a recipe YAML",
                              usage="textvae train RECIPE [key=value ...] [--output DIR] [--resume | --overwrite] "
                                    "[--threads N] [--nproc N] [--no-progress] [--samples N]",
                              description="Train a sentence VAE (or LM baseline) from a recipe. Any recipe key "
                                          "can be overridden as key.sub=value (optional, anywhere after the "
                                          "recipe), e.g. model.latent_dim=64.",
                              epilog="Exit status: 0 when training ended (max_steps or early stop); 130 after "
                                     "SIGINT and 143 after SIGTERM (a checkpoint is saved, no model/ is "
                                     "written: finish with --resume); 2 for a usage or recipe error.")
    p.add_argument("recipe", help="path to a recipe YAML (see recipes/)")
    p.add_argument("--output", "-o", help="run directory (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its newest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to metrics.jsonl)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: torch's, i.e. the cores; on --resume the count the run "
                        "was trained with, which keeps resuming bit-exact)")
    p.add_argument("--allow-different-threads", action="store_true",
                   help="with --resume: accept --threads other than the run's, and a result that differs "
                        "from an uninterrupted run")
    p.add_argument("--samples", type=int, default=3, metavar="N",
                   help="when training ends, print N sentences sampled from the model and, for a VAE, one "
                        "interpolation between two prior draws (default: 3; 0: none)")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="train with N processes (DistributedDataParallel: one per GPU, or N CPU processes); "
                        "starts torch.distributed.run. train.batch_size stays the global batch.")
    p.set_defaults(func=run, overrides=[], accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from textvae.training import train
    from textvae.training.collapse import collapse_warning
    from textvae.training.signals import SIGNAL_EXIT

    recipe = load_recipe(args.recipe, args.overrides)
    run_dir = Path(args.output) if args.output else Path("runs") / Path(args.recipe).stem
    if args.nproc is not None and args.nproc != 1:
        return launch(args, recipe, run_dir)
    result = train(recipe, run_dir, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                   threads=args.threads, allow_different_threads=args.allow_different_threads)
    status = SIGNAL_EXIT.get(result.stop_signal, 0)
    if int(os.environ.get("RANK", 0)) != 0:  # under torchrun, rank 0 speaks for all
        return status
    m = result.metrics
    if result.interrupted:
        print(f"\ninterrupted at step {result.step} after {result.seconds:.1f} s: the checkpoint is saved and no "
              f"model/ was written. Finish the run with: textvae train {run_dir / 'recipe.yaml'} --output {run_dir} "
              "--resume")
        return status
    print(f"\ntrained {result.step} steps in {result.seconds:.1f} s")
    keys = ("loss", "rec", "kl", "mmd", "mi", "au", "neg_elbo") if recipe.model.mode == "vae" else ("loss",)
    print("validation: " + "  ".join(f"{k} {m[k]}" if k == "au" else f"{k} {m[k]:.3f}" for k in keys if k in m))
    warning = collapse_warning(m, recipe)
    if warning:
        print(warning)
    print(f"model:     {result.model_dir}")
    if result.best_dir:
        print(f"best:      {result.best_dir}")
    print(f"run dir:   {result.run_dir}  (metrics.jsonl, tb/, checkpoints/)")
    if args.samples > 0:
        from textvae.data.shipped import SHIPPED_CORPORA

        # The shipped corpus's example sentences only when its data is what was trained on: files given
        # by data.train_files replace it, and its sentences could be all-unknown words to this model.
        shipped = (SHIPPED_CORPORA.get(recipe.data.name)
                   if isinstance(recipe.data.name, str) and not recipe.data.train_files else None)
        show_model(result.model_dir, args.samples, recipe.train.seed, shipped.examples if shipped else ())
    return status


def show_model(model_dir: Path, n: int, seed: int, examples: tuple[str, ...] = ()) -> None:
    """What the model just trained says: ``n`` nucleus samples (top-p 0.9) and, for a VAE, a greedy
    5-step interpolation (no repeated 3-gram) between the two ``examples`` sentences, or two prior
    draws without them; then the commands to look further, with those sentences."""
    from textvae.inference.api import TextVAE
    from textvae.inference.features import report_warnings

    model = TextVAE.from_pretrained(model_dir)
    if model.tokenizer is None:
        return
    print(f"\nsamples ({'z ~ p(z), ' if model.is_vae else ''}top-p 0.9, seed {seed}):")
    for sentence in model.generate(n, seed=seed, method="sample", top_p=0.9):
        print(f"  {sentence}")
    a, b = examples[:2] if len(examples) >= 2 else (None, None)
    if model.is_vae:
        # Greedy decoding of a short-trained model loops ("the <unk> of the <unk> …") until the length
        # limit; forbidding a repeated 3-gram, as Hugging Face generate can, shows what z says instead.
        between = f'"{a}" and "{b}"' if a else "two prior draws"
        print(f"interpolation between {between} (greedy, no repeated 3-gram):")
        with report_warnings("train"):
            path = model.interpolate(a, b, steps=5, seed=seed, no_repeat_ngram_size=3)
        for i, sentence in enumerate(path):
            print(f"  {i / 4:.2f}  {sentence}")
    print("next:")
    print(f"  textvae generate {model_dir} -n 10 --decode sample --top-p 0.9")
    if model.is_vae:
        a, b = (a, b) if a else ("a sentence to encode and decode back", "another sentence")
        print(f"  textvae reconstruct {model_dir} {shlex.quote(a)}")
        print(f"  textvae interpolate {model_dir} {shlex.quote(a)} {shlex.quote(b)} --steps 6 --no-repeat-ngram-size 3")
    print(f"  textvae evaluate {model_dir.parent if model_dir.name == 'model' else model_dir} --split test")


def launch(args: argparse.Namespace, recipe, run_dir: Path) -> int:
    """Start ``args.nproc`` copies of this command under torch.distributed.run (single node) and
    return its exit status. What can be checked here is checked before anything starts."""
    import torch

    from textvae.errors import ConfigError
    from textvae.training.distributed import local_batch_size

    n = args.nproc
    if n < 1:
        raise ConfigError(f"--nproc must be >= 1, got {n}.")
    if TORCHRUN_ENV in os.environ:
        raise ConfigError("--nproc starts torchrun itself, and this process already runs under torchrun; "
                           "drop --nproc (torchrun's --nproc_per_node sets the number of processes).")
    local_batch_size(recipe.train.batch_size, n)
    device = recipe.train.device
    wants_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if wants_cuda and n > torch.cuda.device_count():
        raise ConfigError(f"--nproc {n} needs {n} GPUs (one per process), but {torch.cuda.device_count()} "
                           "are visible; use --nproc <= that, or train.device=cpu.")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
               "-m", "textvae", "train", str(args.recipe), *args.overrides, "--output", str(run_dir)]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    command += [flag for flag, on in (("--resume", args.resume), ("--overwrite", args.overwrite),
                                      ("--no-progress", args.no_progress),
                                      ("--allow-different-threads", args.allow_different_threads)) if on]
    env = dict(os.environ)
    if not wants_cuda:  # CPU processes share the cores; torchrun would give each one thread
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
    return subprocess.call(command, env=env)
