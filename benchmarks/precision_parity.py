"""Mixed precision against fp32: the same validation curve within seed noise, and the same IW-NLL.

1. Training: the recipe is trained for ``--steps`` steps in every precision (fp32 first) and for
   every seed, as ``textvae train`` does it. The validation rows (rec, KL, −ELBO, MMD, MI, AU) are
   read back from each run's metrics.jsonl. "Within noise" is checked against the spread between
   seeds: the precision gap |bf16 − fp32| of the same seed is set beside the seed gap
   |fp32 seed a − fp32 seed b| at every evaluation.
2. Evaluation: IW-NLL (K = ``--iw-samples``) of the fp32-trained model on the first
   ``--iw-sentences`` test sentences, scored in each precision with the same importance-sample
   seed: mean NLL per sentence, PPL, and the per-sentence difference to fp32.

Runs on CPU (fp32, bf16) and CUDA (fp32, bf16, fp16 with GradScaler); the device is the
trainer's (CUDA when available).

    python benchmarks/precision_parity.py                                    # PTB MMD-VAE, 2 seeds
    python benchmarks/precision_parity.py --steps 200 --seeds 0 --iw-sentences 50   # a quick look
    python benchmarks/precision_parity.py --output benchmarks/results/precision_parity_cpu_epyc.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CURVE_KEYS = ("rec", "kl", "neg_elbo", "mmd", "mi", "au")


def train(recipe_path: Path, precision: str, seed: int, args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    from textvae.config import load_recipe
    from textvae.training import Trainer
    from textvae.utils.metrics import read_metrics

    overrides = [f"train.precision={precision}", f"train.seed={seed}", f"train.max_steps={args.steps}",
                 f"train.eval_every={args.eval_every}", f"train.log_every={args.eval_every}",
                 f"train.save_every={10 * args.steps}", "train.tensorboard=false"]
    recipe = load_recipe(recipe_path, overrides)
    trainer = Trainer(recipe, run_dir, progress=False)
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    rows = read_metrics(run_dir)
    valid = [{k: r[k] for k in ("step", *CURVE_KEYS) if k in r} for r in rows if r["split"] == "valid"]
    tokens = sum(r["tokens"] for r in rows if r["split"] == "train")
    return {"precision": precision, "seed": seed, "seconds": seconds, "train_tokens": tokens,
            "device": str(trainer.device), "valid": valid}


def iw_scores(model_dir: Path, recipe_path: Path, precision: str,
              args: argparse.Namespace) -> tuple[list[float], int]:
    """Per-sentence IW-NLL of the first ``--iw-sentences`` test sentences under ``precision``, and
    their number of target tokens."""
    from textvae.config import load_recipe
    from textvae.data import load_corpus, make_loader, tokenize_corpus
    from textvae.evaluation.likelihood import iw_log_likelihood
    from textvae import TextVAE
    from textvae.utils.precision import resolve_precision

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = TextVAE.from_pretrained(model_dir, device=device).eval()
    recipe = load_recipe(recipe_path, [])
    corpus = load_corpus(recipe.data, seed=recipe.train.seed)
    tokenized, _ = tokenize_corpus(corpus, model.tokenizer, recipe.data)
    test = tokenized["test"].select(range(min(args.iw_sentences, len(tokenized["test"]))))
    generator = torch.Generator(device=device).manual_seed(0)
    scores = []
    with resolve_precision(precision, device).autocast():
        for batch in make_loader(test, model.tokenizer, 32, shuffle=False, bucket=False):
            batch = batch.to(device)
            out = iw_log_likelihood(model, batch.ids, batch.lengths, args.iw_samples, 512, generator)
            scores += (-out["iw_ll"]).tolist()
    return scores, sum(n + 1 for n in test["length"])


def write_markdown(path: Path | None, command: str, info: dict[str, Any], runs: list[dict[str, Any]],
                   iw: dict[str, list[float]], iw_tokens: int, args: argparse.Namespace) -> str:
    lines = ["# Mixed precision against fp32", "", f"Command: `{command}`", "",
             f"Machine: {info['machine']}; device {runs[0]['device']}; torch {torch.__version__}; "
             f"{time.strftime('%Y-%m-%d %H:%M')}. Recipe `{args.recipe.relative_to(REPO) if args.recipe.is_relative_to(REPO) else args.recipe}`, {args.steps} steps, seeds "
             f"{', '.join(map(str, args.seeds))}.", "", "## Validation curves", "",
             "−ELBO per sentence (rec + KL) on the validation split at each evaluation, then the final "
             "row's other terms.", ""]
    steps = [r["step"] for r in runs[0]["valid"]]
    names = [f"{r['precision']} s{r['seed']}" for r in runs]
    lines += ["| step | " + " | ".join(names) + " |", "|---|" + "---|" * len(runs)]
    for i, step in enumerate(steps):
        lines.append(f"| {step} | " + " | ".join(f"{r['valid'][i]['neg_elbo']:.2f}" for r in runs) + " |")
    lines += ["", "| run | train seconds | train tokens/s | final rec | KL | MMD | MI | AU |",
              "|---|---|---|---|---|---|---|---|"]
    for name, r in zip(names, runs):
        last = r["valid"][-1]
        lines.append(f"| {name} | {r['seconds']:.0f} | {r['train_tokens'] / r['seconds']:,.0f} | {last['rec']:.2f} | "
                     f"{last['kl']:.2f} | {last.get('mmd', math.nan):.4f} | {last.get('mi', math.nan):.2f} | "
                     f"{last.get('au', math.nan)} |")
    by = {(r["precision"], r["seed"]): r for r in runs}
    lines += ["", "## Gaps", "",
              "Mean over evaluations of |−ELBO difference|: between precisions of the same seed, and "
              "between the two fp32 seeds (the noise a precision gap is judged against).", ""]
    if len(args.seeds) > 1:
        a, b = by[("fp32", args.seeds[0])], by[("fp32", args.seeds[1])]
        seed_gap = sum(abs(x["neg_elbo"] - y["neg_elbo"]) for x, y in zip(a["valid"], b["valid"])) / len(steps)
        lines.append(f"- seed gap (fp32 s{args.seeds[0]} vs s{args.seeds[1]}): {seed_gap:.3f}")
    else:
        seed_gap = None
    for precision in args.precisions:
        if precision == "fp32":
            continue
        gaps = [sum(abs(x["neg_elbo"] - y["neg_elbo"]) for x, y in zip(by[(precision, s)]["valid"],
                                                                          by[("fp32", s)]["valid"])) / len(steps)
                for s in args.seeds]
        gap = sum(gaps) / len(gaps)
        speed = (sum(by[(precision, s)]["train_tokens"] / by[(precision, s)]["seconds"] for s in args.seeds)
                 / sum(by[("fp32", s)]["train_tokens"] / by[("fp32", s)]["seconds"] for s in args.seeds))
        verdict = "" if seed_gap is None else (" — within seed noise" if gap <= seed_gap else " — larger than seed noise")
        lines.append(f"- precision gap ({precision} vs fp32, same seed): {gap:.3f}{verdict}; "
                     f"{precision}/fp32 training tokens/s (whole runs, incl. evaluation) = {speed:.2f}")
    if iw:
        ref = iw["fp32"]
        lines += ["", f"## IW-NLL (K = {args.iw_samples}) of the fp32-trained model (seed {args.seeds[0]})", "",
                  f"First {len(ref)} test sentences ({iw_tokens:,} target tokens), the same importance-sample seed "
                  "in every precision.", "",
                  "| precision | IW-NLL / sentence | PPL | mean |Δ| / sentence vs fp32 | max |Δ| |",
                  "|---|---|---|---|---|"]
        for precision, scores in iw.items():
            nll = sum(scores) / len(scores)
            diffs = [abs(x - y) for x, y in zip(scores, ref)]
            lines.append(f"| {precision} | {nll:.3f} | {math.exp(sum(scores) / iw_tokens):.2f} | "
                         f"{sum(diffs) / len(diffs):.3f} | {max(diffs):.3f} |")
    text = "\n".join(lines) + "\n"
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.with_suffix(".json").write_text(json.dumps({"command": command, "machine": info, "runs": runs, "iw": iw},
                                                        indent=2) + "\n")
    return text


def main() -> None:
    # Parity is measured on every CPU, emulated bf16 included (training refuses that by default).
    os.environ.setdefault("TEXTVAE_ALLOW_EMULATED_BF16", "1")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", type=Path, default=REPO / "recipes/ptb/mmd_vae.yaml")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--precisions", nargs="+", default=None, choices=["fp32", "bf16", "fp16"],
                   help="default: fp32 bf16 on CPU, fp32 bf16 fp16 on CUDA")
    p.add_argument("--iw-sentences", type=int, default=300, help="0 skips the IW-NLL comparison")
    p.add_argument("--iw-samples", type=int, default=100)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--output", type=Path)
    p.add_argument("--keep", type=Path, help="keep the runs in this directory")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.precisions is None:
        args.precisions = ["fp32", "bf16", "fp16"] if torch.cuda.is_available() else ["fp32", "bf16"]
    if "fp32" not in args.precisions:
        args.precisions.insert(0, "fp32")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    command = "python benchmarks/precision_parity.py " + " ".join(sys.argv[1:])
    from throughput import machine  # this folder is on sys.path when the script runs

    cpu = machine()["cpu"]
    info = {"machine": (torch.cuda.get_device_name(0) if torch.cuda.is_available()
                        else f"{cpu}, {os.cpu_count()} logical cores, {args.threads} threads")}
    root = args.keep or Path(tempfile.mkdtemp(prefix="parity-"))
    runs = []
    try:
        for precision in args.precisions:
            for seed in args.seeds:
                runs.append(train(args.recipe, precision, seed, args, root / f"{precision}_s{seed}"))
                last = runs[-1]["valid"][-1]
                print(f"{precision} seed {seed}: {runs[-1]['seconds']:.0f} s, final valid −ELBO {last['neg_elbo']:.2f}",
                      flush=True)
        iw, iw_tokens = {}, 0
        if args.iw_sentences:
            model_dir = root / f"fp32_s{args.seeds[0]}" / "model"
            for precision in args.precisions:
                iw[precision], iw_tokens = iw_scores(model_dir, args.recipe, precision, args)
                print(f"IW-NLL {precision}: {sum(iw[precision]) / len(iw[precision]):.3f}", flush=True)
        print()
        print(write_markdown(args.output, command, info, runs, iw, iw_tokens, args))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
