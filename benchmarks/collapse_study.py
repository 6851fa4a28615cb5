"""The collapse study: every objective on PTB at one fixed budget, measured with one protocol.

Trains each run of STUDY (LSTM 256/256/32 unless said) for ``--steps`` optimizer steps of
batch 32 on the full PTB train split, then evaluates it on the first ``--eval-sentences``
sentences of PTB test: IW-NLL with ``--iw-samples`` samples, −ELBO, PPL (words + EOS), KL, MI,
AU, MMD (fixed IMQ kernel), reconstruction BLEU, and training tokens/s and wall time.

    python benchmarks/collapse_study.py                      # all LSTM runs
    python benchmarks/collapse_study.py --transformer        # + the Transformer-decoder runs
    python benchmarks/collapse_study.py --runs elbo mmd_vae  # a subset

Writes benchmarks/results/collapse_study.md (+ .json, + curves.png). Report what is measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textvae.config import load_recipe  # noqa: E402
from textvae.data import load_corpus, make_loader, tokenize_corpus  # noqa: E402
from textvae.evaluation.evaluate import evaluate_model  # noqa: E402
from textvae.evaluation.report import plot_curves  # noqa: E402
from textvae import TextVAE  # noqa: E402
from textvae.training import train  # noqa: E402
from textvae.utils.metrics import read_metrics  # noqa: E402

# name → (recipe, overrides). KL-annealing lengths scale with the budget (see main()).
STUDY: dict[str, tuple[str, list[str]]] = {
    "lm": ("ptb/lm.yaml", []),
    "elbo": ("ptb/vae.yaml", []),
    "vae_anneal_wd": ("ptb/vae_anneal_wd.yaml", []),
    "beta_0.4": ("ptb/beta.yaml", []),
    "free_bits": ("ptb/free_bits.yaml", []),
    "cyclical": ("ptb/cyclical.yaml", []),
    "mmd_vae_lam100": ("ptb/mmd_vae.yaml", ["objective.lam=100"]),
    "mmd_vae_lam1000": ("ptb/mmd_vae.yaml", ["objective.lam=1000"]),
    "mmd_vae_lam100_init0": ("ptb/mmd_vae.yaml", ["objective.lam=100", "model.init_logvar=0.0"]),
    "info_vae_a0.5": ("ptb/info_vae.yaml", []),
}
TRANSFORMER: dict[str, tuple[str, list[str]]] = {
    # The recipes warm up over 1000 steps; at this budget a tenth of the run is enough.
    "tf_elbo": ("ptb/transformer_elbo.yaml", ["train.warmup_steps=100"]),
    "tf_mmd_vae": ("ptb/transformer_mmd_vae.yaml", ["train.warmup_steps=100"]),
    "tf_info_vae_a0.5": ("ptb/transformer_mmd_vae.yaml", ["train.warmup_steps=100", "objective.preset=info_vae",
                                                          "objective.alpha=0.5", "objective.lam=100"]),
}
COLUMNS = [("iw_nll", "IW-NLL", "{:.2f}"), ("neg_elbo", "−ELBO", "{:.2f}"), ("ppl", "PPL", "{:.1f}"),
           ("rec", "rec", "{:.2f}"), ("kl", "KL", "{:.2f}"), ("mi", "MI", "{:.2f}"), ("mi_full", "MI (full)", "{:.2f}"),
           ("au", "AU", "{}"), ("mmd", "MMD", "{:.4f}"), ("bleu", "BLEU", "{:.1f}"),
           ("tokens_per_s", "train tok/s", "{:.0f}"), ("train_s", "train s", "{:.0f}"), ("eval_s", "eval s", "{:.0f}")]


def test_batches(model: TextVAE, recipe, n: int, batch_size: int = 32):
    corpus = load_corpus(recipe.data, seed=recipe.train.seed)
    test = corpus["test"].select(range(min(n, len(corpus["test"]))))
    tokenized, _ = tokenize_corpus({"test": test}, model.tokenizer, recipe.data)
    return make_loader(tokenized["test"], model.tokenizer, batch_size, shuffle=False)


def run_one(name: str, recipe_path: str, overrides: list[str], args: argparse.Namespace) -> dict:
    steps = args.steps
    common = [f"train.max_steps={steps}", f"train.eval_every={max(steps // 6, 1)}", "train.eval_batches=30",
              "train.log_every=50", "train.tensorboard=false", f"train.seed={args.seed}"]
    if "anneal" in name:
        common.append(f"objective.kl_schedule.warmup_steps={steps // 2}")  # anneal over half the budget
    recipe = load_recipe(REPO / "recipes" / recipe_path, common + overrides)
    run_dir = args.runs_dir / name
    start = time.perf_counter()
    result = train(recipe, run_dir, overwrite=True, progress=False)
    train_s = time.perf_counter() - start
    rows = [r for r in read_metrics(run_dir) if r["split"] == "train"]
    tokens = sum(r.get("tokens", 0) for r in rows)
    model = TextVAE.from_pretrained(result.model_dir)
    torch.manual_seed(args.seed)
    metrics = evaluate_model(model, test_batches(model, recipe, args.eval_sentences), iw_samples=args.iw_samples,
                             seed=args.seed, num_prior_samples=50)
    metrics.update(name=name, recipe=recipe_path, overrides=overrides, train_s=train_s,
                   tokens_per_s=tokens / train_s, eval_s=metrics["seconds"], steps=result.step)
    print(f"[{name}] " + "  ".join(f"{label} {fmt.format(metrics[key])}" for key, label, fmt in COLUMNS
                                   if key in metrics), flush=True)
    return metrics


def write_results(results: list[dict], args: argparse.Namespace, command: str) -> Path:
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    (out / "collapse_study.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    plot_curves({r["name"]: read_metrics(args.runs_dir / r["name"]) for r in results}, out / "collapse_study.png")
    lines = ["# Collapse study (PTB)", "",
             f"Command: `{command}`", "",
             f"Budget: {args.steps} steps × batch 32 on the full PTB train split (42,068 sentences) per run, "
             f"seed {args.seed}, on this machine's CPU ({torch.get_num_threads()} threads). Evaluation: the first "
             f"{args.eval_sentences} sentences of PTB test, IW-NLL with K = {args.iw_samples} (not the K = 500 of "
             "the published tables, to fit the budget), nats per sentence; PPL over words + EOS; MMD with the "
             "fixed IMQ kernel; BLEU of greedy reconstructions from μ; train tok/s counts non-pad target tokens "
             "over the whole training wall time (periodic validation included).", "",
             "| run | " + " | ".join(label for _, label, _ in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for r in results:
        cells = [fmt.format(r[key]) if r.get(key) is not None else "—" for key, _, fmt in COLUMNS]
        lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    lines += ["", "Validation curves of every run (rec, KL, MI, AU, MMD, −ELBO over steps):", "",
              "![curves](collapse_study.png)", ""]
    path = out / "collapse_study.md"
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--eval-sentences", type=int, default=500)
    p.add_argument("--iw-samples", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", nargs="*", help="names from the study (default: all)")
    p.add_argument("--transformer", action="store_true", help="add the Transformer-decoder runs")
    p.add_argument("--runs-dir", type=Path, default=REPO / "runs" / "collapse_study")
    p.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args()
    study = dict(STUDY)
    if args.transformer:
        study.update(TRANSFORMER)
    names = args.runs or list(study)
    unknown = [n for n in names if n not in study]
    if unknown:
        p.error(f"unknown runs {unknown}; choose from {list(study)}")
    command = "python benchmarks/collapse_study.py " + " ".join(sys.argv[1:])
    results_path = args.output / "collapse_study.json"
    previous = {r["name"]: r for r in json.loads(results_path.read_text())} if results_path.is_file() else {}
    results = []
    for name in names:
        results.append(run_one(name, *study[name], args))
        previous[results[-1]["name"]] = results[-1]
        # Rewrite after every run: a long study that is cut off keeps what it measured.
        ordered = [previous[n] for n in list(study) if n in previous]
        print(f"wrote {write_results(ordered, args, command)}", flush=True)


if __name__ == "__main__":
    main()
