"""The PTB benchmark at full budget: every objective trained to convergence by one rule and
evaluated on the whole PTB test split with the published protocol, one run at a time.

    python benchmarks/ptb_full.py --list                  # the rows and sweep entries, and which are done
    python benchmarks/ptb_full.py lm mmd_vae              # train (or resume) and evaluate these, then render
    python benchmarks/ptb_full.py --render                # rewrite ptb_full.md and ptb_full.png from ptb_full.json

Convergence rule, the same for every row, the text-VAE literature's (He et al. 2019, Li et al.
2019): validate every 1,000 steps (≈ 0.76 epoch of batch 32); a plateau is 3 validations in a row
without a better validation −ELBO (``train.monitor=neg_elbo``; for the LM its NLL), not counting
validations during a KL warm-up (a cyclical schedule therefore runs its whole budget); at a plateau
the run restarts from its best model at half the learning rate (``train.lr_decay=0.5``),
AdamW's moments kept (``train.restart_optimizer=keep``; runs trained when a restart cleared them
are marked, see ``RESET``), and stops at the plateau after the third such restart
(``train.max_lr_decays=3``); at most 40,000 steps; the best validation model (``best/``) is evaluated.
Until its first plateau a run is at the constant rate 1e-3, so runs started under the earlier rule
(stop at the first plateau) continue under this one with ``--resume``.

Evaluation: ``textvae evaluate RUN --checkpoint best --split test --iw-samples 500`` on all 3,761 PTB
test sentences: IW-NLL (K = 500), PPL over words + EOS, −ELBO, KL, MI (minibatch of 32 and over the
split), AU, greedy-reconstruction BLEU and exact match. Sweep entries (§3 of the issue) may use
fewer sentences or samples to rank settings; their rows say which.

Each run lives in ``--runs`` (default ~/textvae-runs/ptb_full/NAME, outside the checkout), so an
interrupted study resumes where it stopped (``textvae train … --resume``, and ``textvae evaluate …
--resume`` from the progress an interrupted evaluation saved beside its output). Results merge into
benchmarks/results/ptb_full.json row by row, each with its machine (CPU, ISA, threads), precision,
budget (steps, epochs) and wall times. Nothing else may run beside a row but, at most, a second row:
two 1-thread jobs pinned to different cores keep their speed (``CORE=N bash benchmarks/pinned.sh
ptb_full.py NAME --threads 1 --eval-threads 1``), while two jobs of 2 threads on 2 cores slow each
other 5–15×. ``--note`` records such a neighbour in the rows' timing notes: their minutes are then
upper bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textvae.evaluation.progress import progress_path  # noqa: E402
from textvae.utils.cpu import cpu_description  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
TRAIN_SENTENCES = 42_068  # PTB train, every sentence kept (max_length 100 drops none)
RULE = ["train.max_steps=40000", "train.eval_every=1000", "train.patience=3", "train.lr_decay=0.5",
        "train.max_lr_decays=3", "train.restart_optimizer=keep", "train.monitor=neg_elbo", "train.precision=auto"]

# Runs trained before a restart could keep AdamW's state: each of their restarts cleared it (the one
# behaviour then), and validation got worse after every restart (benchmarks/restart_optimizer.py). A
# row's JSON says `restart_optimizer: reset` while it holds such a run; the sweep entry keeps it.
RESET = ["train.restart_optimizer=reset"]

# The LSTM rows' regularisation, He et al.'s decoder settings (dropout 0.5 on the embeddings and on the
# LSTM output). With the recipes' dropout 0.2 on the output alone the LM overfits by epoch 4.6 (train
# NLL 84.6 against validation 107.2 nats, PPL 169: measured, row lm_drop0.2), far from the
# literature's 100–102 nats for this size.
LSTM = ["model.embed_dropout=0.5", "model.decoder.dropout=0.5"]

# The Transformer rows keep their recipes' 20k-step budget: their learning rate follows a warm-up and
# cosine decay whose length is max_steps, so the schedule is the recipes' own (≈ 15 epochs; the plateau
# rule still stops them earlier). On a CPU without bf16 speed a 40k-step Transformer row is ~3.3 h of a core.
TRANSFORMER = ["train.max_steps=20000"]
TRANSFORMER_DROP = ["model.decoder.dropout=0.3", "model.embed_dropout=0.3"]

# The posterior-chain rows (sri, vae_langevin) run 20 Langevin steps, each a decoder forward and backward
# to z, so a step costs 13.3× an amortized one (benchmarks/results/chain_cost_cpu_epyc.md): 40,000 steps
# would be ≈ 37 h of a core. They get a stated reduced budget instead, the training compute of the
# amortized rows' 40,000 steps (3,000 × 13.3 ≈ 40,000 VAE steps); the results file puts each beside the
# vae row at the same step and at the same compute, from the vae row's validation curve.
CHAIN_STEPS = 3000
CHAINS = [f"train.max_steps={CHAIN_STEPS}"]
CHAIN_COST = 13.3  # a chain row's step ÷ an amortized step, measured (chain_cost_cpu_epyc.md)

# name → (recipe, overrides after RULE, what it is). `{runs}` is the study's run folder.
ROWS: dict[str, tuple[str, list[str], str]] = {
    "lm": ("ptb/lm.yaml", [*LSTM], "LSTM language model (no latent)"),
    "vae": ("ptb/vae.yaml", [*LSTM], "ELBO"),
    "vae_anneal_wd": ("ptb/vae_anneal_wd.yaml", [*LSTM], "ELBO, KL annealing over 10k steps, word dropout 0.25"),
    "beta": ("ptb/beta.yaml", [*LSTM], "β-VAE, β = 0.4"),
    "cyclical": ("ptb/cyclical.yaml", [*LSTM, "train.max_steps=20000"], "ELBO, 4 cyclical KL cycles over 20k steps"),
    "free_bits": ("ptb/free_bits.yaml", [*LSTM], "ELBO, free bits 0.25 nats per dimension"),
    "aggressive": ("ptb/aggressive.yaml", [*LSTM], "ELBO, aggressive inference-network training (He et al.), "
                   "KL annealed 0.1 → 1 over 10 epochs"),
    # The recipe before it took He et al.'s annealing: β = 1 from the first step. A constant schedule
    # ignores start and warmup_steps, but --resume compares every recipe key with the run's, so they
    # restate the values that run was trained with.
    "aggressive_noanneal": ("ptb/aggressive.yaml", [*LSTM, "objective.kl_schedule.kind=constant",
                                                    "objective.kl_schedule.start=0.0",
                                                    "objective.kl_schedule.warmup_steps=10000"],
                            "ELBO, aggressive inference-network training (He et al.), no KL annealing"),
    "ae_pretrain": ("ptb/ae_pretrain.yaml", [*LSTM, "train.monitor=loss"],
                    "stage 1 of ae_pretrain_fb: an autoencoder (β = 0); not a table row"),
    "ae_pretrain_fb": ("ptb/ae_pretrain_fb.yaml", [*LSTM, "train.init_from={runs}/ae_pretrain"],
                       "AE-pretrained encoder, fresh decoder, free bits 0.25 (Li et al. 2019)"),
    "bn_vae": ("ptb/bn_vae.yaml", [*LSTM], "BN-VAE, batch-normalised μ, γ = 0.7"),
    "mmd_vae": ("ptb/mmd_vae.yaml", [*LSTM], "InfoVAE α = 1 (MMD-VAE)"),
    # The recipe ships the §3 settings (sweep entry info_bn0.7_a0_lam100, which resolves to the same recipe).
    "info_vae": ("ptb/info_vae.yaml", [], "InfoVAE α = 0, λ = 100, BN encoder γ = 0.7 (as shipped)"),
    "transformer_elbo": ("ptb/transformer_elbo.yaml", [*TRANSFORMER],
                         "Transformer decoder, ELBO, 20k-step cosine schedule"),
    "transformer_mmd_vae": ("ptb/transformer_mmd_vae.yaml", [*TRANSFORMER],
                            "Transformer decoder, MMD-VAE, 20k-step cosine schedule"),
    "transformer_info_vae": ("ptb/transformer_info_vae.yaml", [*TRANSFORMER],
                             "Transformer decoder, InfoVAE α = 0, λ = 100, BN encoder γ = 0.7 (info_vae's settings), "
                             "20k-step cosine schedule"),
    # Short-run inference and the latent EBM prior (issue 15). The chains make a posterior step about
    # 13× and an EBM-prior step about 1.2× an amortized one (benchmarks/results/chain_cost_cpu_epyc.md).
    "ebm_prior": ("ptb/ebm_prior.yaml", [*LSTM], "ELBO, latent EBM prior (Pang et al. 2020)"),
    "info_vae_ebm": ("ptb/info_vae_ebm.yaml", [], "InfoVAE α = 0, λ = 100, BN encoder γ = 0.7, latent EBM prior"),
    "sri": ("ptb/sri.yaml", [*LSTM, *CHAINS], "short-run Langevin inference, no encoder (Pang et al. 2021), "
            f"reduced budget: {CHAIN_STEPS:,} steps"),
    "vae_langevin": ("ptb/vae_langevin.yaml", [*LSTM, *CHAINS], "ELBO encoder, its sample refined by Langevin, "
                     f"reduced budget: {CHAIN_STEPS:,} steps"),
}
STAGES = {"ae_pretrain"}  # trained for another row, not evaluated
NEEDS = {"ae_pretrain_fb": "ae_pretrain"}

# §3: InfoVAE settings tried against the LM, by the same rule; each entry evaluated like a row.
SWEEP: dict[str, tuple[str, list[str], str]] = {
    # A batch-normalised μ (γ = 0.7: E KL ≥ 32·γ²/2 = 7.8 nats, every unit active) with the full
    # per-sentence KL weight (α = 0: the bound the table ranks by is what is optimised) and the
    # aggregate MMD on top (α+λ−1 = 99).
    "info_bn0.7_a0_lam100": ("ptb/info_vae.yaml", [*LSTM, "model.posterior_batchnorm=0.7", "objective.alpha=0.0",
                                                   "objective.lam=100", *RESET],
                             "InfoVAE α = 0, λ = 100, BN encoder γ = 0.7"),
    # The Transformer pair overfits (train rec ≈ 78 against validation 97–103 nats by step 15k, dropout
    # 0.1), and transformer_info_vae ends 0.74 nats over its collapsed twin with KL 9.9. Two ways to
    # close it: a lower KL floor (γ = 0.5: E KL ≥ 32·0.5²/2 = 4 nats), and the pair at dropout 0.3.
    "transformer_info_bn0.5": ("ptb/transformer_info_vae.yaml", [*TRANSFORMER, "model.posterior_batchnorm=0.5"],
                               "Transformer InfoVAE α = 0, λ = 100, BN encoder γ = 0.5"),
    "transformer_elbo_drop0.3": ("ptb/transformer_elbo.yaml", [*TRANSFORMER, *TRANSFORMER_DROP],
                                 "Transformer decoder, ELBO, dropout 0.3 (the twin of transformer_info_drop0.3)"),
    "transformer_info_drop0.3": ("ptb/transformer_info_vae.yaml", [*TRANSFORMER, *TRANSFORMER_DROP],
                                 "Transformer InfoVAE α = 0, λ = 100, BN encoder γ = 0.7, dropout 0.3"),
}

# A Transformer latent model's ELBO twin (the same decoder settings) when it is not transformer_elbo.
TWINS = {"transformer_info_drop0.3": "transformer_elbo_drop0.3"}

# Sweep entries whose settings became a recipe's defaults: entry → the row (the same resolved recipe).
SHIPPED = {"info_bn0.7_a0_lam100": "info_vae"}


def run_dir(args: argparse.Namespace, name: str) -> Path:
    return Path(args.runs).expanduser() / name


def entry(name: str) -> tuple[str, list[str], str]:
    if name in ROWS:
        return ROWS[name]
    if name in SWEEP:
        return SWEEP[name]
    raise SystemExit(f"unknown row {name!r}; rows: {', '.join(ROWS)}; sweep: {', '.join(SWEEP) or 'none'}")


def train_command(args: argparse.Namespace, name: str) -> list[str]:
    recipe, overrides, _ = entry(name)
    overrides = [o.format(runs=Path(args.runs).expanduser()) for o in overrides]
    # --precision replaces the rule's `auto` where it would pick the slower of the two on a CPU (the row
    # then says so through its command and its recorded precision).
    chosen = [f"train.precision={args.precision}"] if args.precision else []
    return ["textvae", "train", f"recipes/{recipe}", *RULE, *overrides, *chosen, "--output", str(run_dir(args, name)),
            "--no-progress", "--threads", str(args.threads)]


def eval_file(args: argparse.Namespace, name: str) -> Path:
    suffix = f"_n{args.eval_sentences}" if args.eval_sentences else ""
    return run_dir(args, name) / f"eval_test_k{args.iw_samples}{suffix}.json"


def eval_command(args: argparse.Namespace, name: str) -> list[str]:
    cmd = ["textvae", "evaluate", str(run_dir(args, name)), "--checkpoint", "best", "--split", "test",
           "--iw-samples", str(args.iw_samples), "--output", str(eval_file(args, name))]
    return cmd + (["--max-sentences", str(args.eval_sentences)] if args.eval_sentences else [])


def finished(directory: Path) -> bool:
    summary = directory / "summary.json"
    if not summary.is_file() or not (directory / "model").is_dir():
        return False
    return not json.loads(summary.read_text()).get("interrupted")


def timed(cmd: list[str], log: Path, threads: int) -> tuple[int, float]:
    """Run ``cmd`` (textvae via this interpreter) on ``threads`` CPU threads, its output appended to
    ``log``: (exit code, seconds)."""
    print("+", shlex.join(cmd), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}  # evaluate has no --threads: torch reads this
    start = time.perf_counter()
    with log.open("a") as out:
        code = subprocess.call([sys.executable, "-m", "textvae", *cmd[1:]], cwd=REPO, stdout=out,
                               stderr=subprocess.STDOUT, env=env)
    return code, time.perf_counter() - start


def times_of(directory: Path) -> dict:
    path = directory / "study_times.json"
    return json.loads(path.read_text()) if path.is_file() else {"train_seconds": [], "eval_seconds": {}}


def save_times(directory: Path, times: dict) -> None:
    (directory / "study_times.json").write_text(json.dumps(times, indent=1))


def train_run(cmd: list[str], directory: Path, log: Path, threads: int, name: str) -> None:
    """Train (or resume: a run directory with checkpoints continues) and add the wall time to the
    run's study_times.json; stop the study when the run did not finish."""
    if (directory / "checkpoints").is_dir():
        cmd = [*cmd, "--resume"]
    directory.parent.mkdir(parents=True, exist_ok=True)
    code, seconds = timed(cmd, log, threads)
    times = times_of(directory)
    times["train_seconds"].append(round(seconds, 1))
    save_times(directory, times)
    if code != 0 or not finished(directory):
        raise SystemExit(f"{name}: training exited with {code}; see {log}")


def train_row(args: argparse.Namespace, name: str) -> None:
    directory = run_dir(args, name)
    if finished(directory):
        return
    if name in NEEDS:
        train_row(args, NEEDS[name])
    train_run(train_command(args, name), directory, directory.parent / f"{name}.log", args.threads, name)


def measure_run(cmd: list[str], directory: Path, path: Path, log: Path, threads: int, name: str, what: str) -> dict:
    """Run an evaluation-like command that writes ``path`` (unless it exists; continuing an interrupted
    ``textvae evaluate`` from its saved progress), add its wall time to the run's study_times.json
    under the file's name (summed over interruptions), and return what it wrote."""
    if not path.is_file():
        if cmd[1] == "evaluate" and progress_path(path).is_file():
            cmd = [*cmd, "--resume"]
        code, seconds = timed(cmd, log, threads)
        times = times_of(directory)
        times["eval_seconds"][path.name] = round(times["eval_seconds"].get(path.name, 0.0) + seconds, 1)
        save_times(directory, times)
        if code != 0:
            raise SystemExit(f"{name}: {what} exited with {code}; see {log}")
    return json.loads(path.read_text())


def evaluate_row(args: argparse.Namespace, name: str) -> dict:
    directory = run_dir(args, name)
    return measure_run(eval_command(args, name), directory, eval_file(args, name), directory.parent / f"{name}.log",
                       args.eval_threads, name, "evaluation")


def budget(directory: Path, monitor: str) -> dict:
    """Steps trained, the best validation's step and value, and epochs, from metrics.jsonl."""
    rows = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines() if line.strip()]
    valid = [r for r in rows if r.get("split") == "valid"]
    best = min(valid, key=lambda r: r[monitor])
    summary = directory / "summary.json"  # absent while a run is unfinished (--partial)
    steps = json.loads(summary.read_text())["step"] if summary.is_file() else rows[-1]["step"]
    return {"steps": steps, "best_step": best["step"], f"best_valid_{monitor}": best[monitor],
            "epochs": round(steps * 32 / TRAIN_SENTENCES, 2), "best_epoch": round(best["step"] * 32 / TRAIN_SENTENCES, 2),
            "valid_curve": [[r["step"], round(r[monitor], 3)] for r in valid]}


def logged_stretches(directory: Path) -> list[float]:
    """The trainer's own clock, per training process: metrics.jsonl's ``elapsed`` restarts at each resume,
    so each stretch's last value. It counts a stretch whose driver died with a session (the study's clock
    records only on return) but not the time after a stretch's last log line."""
    stretches, last = [], None
    for line in (directory / "metrics.jsonl").read_text().splitlines():
        elapsed = json.loads(line).get("elapsed") if line.strip() else None
        if elapsed is None:
            continue
        if last is not None and elapsed < last:
            stretches.append(last)
        last = elapsed
    return stretches + ([last] if last is not None else [])


def train_minutes(directory: Path, times: dict) -> float:
    """A run's training minutes: the study's clock (``times``), or the trainer's own where it is larger."""
    return round(max(sum(times["train_seconds"]), sum(logged_stretches(directory))) / 60, 1)


def train_sessions(directory: Path, times: dict) -> int:
    """How many training processes made the run: the study's count, or the trainer's stretches where more
    (a driver stopped with its session records no time, but its trainer logged)."""
    return max(len(times["train_seconds"]), len(logged_stretches(directory)))


def numerics_of(directory: Path) -> dict:
    """Threads, CPU capability and precision the run recorded in its last checkpoint."""
    import torch

    states = sorted((directory / "checkpoints").glob("step-*/trainer_state.pt"),
                    key=lambda p: int(p.parent.name.split("-")[1]))
    if not states:
        return {}
    return torch.load(states[-1], map_location="cpu", weights_only=False).get("numerics", {})  # our own file


def restart_optimizer_of(directory: Path) -> str | None:
    """What the run's plateau restarts did with AdamW's state (``train.restart_optimizer`` of its last
    checkpoint; ``reset`` for a run from before the key, the one behaviour then); None without a restart."""
    import yaml

    from textvae.training.checkpoint import TRAINING_RECIPE_NAME, checkpoint_dirs

    summary = directory / "summary.json"
    if not summary.is_file() or not json.loads(summary.read_text()).get("lr_decays"):
        return None
    checkpoints = checkpoint_dirs(directory)
    train = (yaml.safe_load((checkpoints[-1] / TRAINING_RECIPE_NAME).read_text()).get("train", {})
             if checkpoints else {})
    return train.get("restart_optimizer", "reset")


def record(args: argparse.Namespace, name: str, metrics: dict) -> dict:
    directory = run_dir(args, name)
    recipe, overrides, what = entry(name)
    monitor = "loss" if "train.monitor=loss" in overrides else "neg_elbo"
    times = times_of(directory)
    if not times["train_seconds"] and (directory / "summary.json").is_file():  # trained by hand: its own clock
        times["train_seconds"] = [json.loads((directory / "summary.json").read_text())["seconds"]]
    keep = ("iw_nll", "ppl", "neg_elbo", "rec", "kl", "mi", "mi_full", "au", "mmd", "bleu", "exact_match",
            "iw_gap", "distinct_1", "distinct_2", "self_bleu", "n_sentences", "n_tokens", "iw_samples", "precision",
            "seconds", "log_z", "log_z_se", "log_z_samples", "proposal")
    return {
        "what": what, "recipe": f"recipes/{recipe}", "overrides": overrides,
        "train_command": shlex.join(train_command(args, name)), "eval_command": shlex.join(eval_command(args, name)),
        **budget(directory, monitor), "monitor": monitor, "restart_optimizer": restart_optimizer_of(directory),
        "train_minutes": train_minutes(directory, times),
        "train_sessions": train_sessions(directory, times),
        # The evaluation's own clock sums its resumed parts; the study's misses a part whose driver was killed
        # with the session (it records only on return), so the larger of the two.
        "eval_minutes": round(max(times["eval_seconds"].get(eval_file(args, name).name, 0.0), metrics["seconds"]) / 60, 1),
        "metrics": {k: metrics[k] for k in keep if k in metrics},
        "prior_samples": metrics.get("prior_samples", [])[:5],
        "numerics": numerics_of(directory), "machine": cpu_description(), "torch": _torch_version(),
        "python": platform.python_version(), "date": date.today().isoformat(),
        "concurrent_note": args.note,
    }


def _torch_version() -> str:
    import torch

    return torch.__version__


def load_results() -> dict:
    path = RESULTS / "ptb_full.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    for part in ("rows", "sweep", "progress"):  # each a name → row mapping (an early file held sweep: [])
        if not isinstance(results.get(part), dict):
            results[part] = {}
    results["rule"] = " ".join(RULE)
    return results


def save_results(results: dict) -> None:
    tmp = RESULTS / "ptb_full.json.tmp"
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, RESULTS / "ptb_full.json")


COLUMNS = [("iw_nll", "IW-NLL", "{:.2f}"), ("ppl", "PPL", "{:.1f}"), ("neg_elbo", "−ELBO", "{:.2f}"),
           ("rec", "rec", "{:.2f}"), ("kl", "KL", "{:.2f}"), ("mi", "MI", "{:.2f}"), ("mi_full", "MI (split)", "{:.2f}"),
           ("au", "AU", "{}"), ("bleu", "BLEU", "{:.1f}"), ("exact_match", "exact", "{:.3f}")]


def table(rows: dict, lm: float | None) -> list[str]:
    head = ("| row | " + " | ".join(c for _, c, _ in COLUMNS) + " | Δ LM | best step / steps (epochs) | "
            "train min | eval min | precision (train / eval), threads | sentences, K |")
    lines = [head, "|" + "---|" * (len(COLUMNS) + 7)]
    for name, r in rows.items():
        m = r["metrics"]
        cells = [fmt.format(m[k]) if k in m else "—" for k, _, fmt in COLUMNS]
        delta = f"{m['iw_nll'] - lm:+.2f}" if lm is not None and name != "lm" else "—"
        num = r.get("numerics", {})
        mark = " (restarts reset AdamW)" if r.get("restart_optimizer") == "reset" else ""
        lines.append(f"| {name}{mark} | " + " | ".join(cells) + f" | {delta} | {r['best_step']:,} / {r['steps']:,} "
                     f"({r['epochs']}) | {r['train_minutes']} | {r['eval_minutes']} | "
                     f"{num.get('precision', '?')} / {m.get('precision', '?')}, {num.get('threads', '?')} | {m['n_sentences']:,}, "
                     f"{m.get('iw_samples') or 'exact'} |")
    return lines


# Issue 13 §3: the LSTM InfoVAE against the LM, and each Transformer latent model against its ELBO twin.
LSTM_TARGET = {"kl": 8.0, "mi_full": 5.0, "au": 24}  # and IW-NLL at most the LM's
TRANSFORMER_TWIN = "transformer_elbo"
TRANSFORMER_MI = 3.0


def targets(rows: dict, sweep: dict) -> list[str]:
    """Issue 13 §3, checked on the rows and sweep entries present: yes/no with the figures."""
    def yes(ok: bool) -> str:
        return "**yes**" if ok else "**no**"

    out = []
    lm, info = rows.get("lm"), rows.get("info_vae")
    if lm and info:
        m, nll = info["metrics"], lm["metrics"]["iw_nll"]
        checks = [(m["iw_nll"] <= nll, f"IW-NLL {m['iw_nll']:.2f} ≤ LM {nll:.2f}"),
                  (m["kl"] >= LSTM_TARGET["kl"], f"KL {m['kl']:.2f} ≥ {LSTM_TARGET['kl']:g}"),
                  (m["mi_full"] >= LSTM_TARGET["mi_full"], f"MI (split) {m['mi_full']:.2f} ≥ {LSTM_TARGET['mi_full']:g}"),
                  (m["au"] >= LSTM_TARGET["au"], f"AU {m['au']} ≥ {LSTM_TARGET['au']}")]
        out.append(f"- LSTM decoder, info_vae against lm: {yes(all(ok for ok, _ in checks))} "
                   f"({'; '.join(f'{text}: {yes(ok)}' for ok, text in checks)})")
    runs = {**rows, **sweep}
    twins = {*TWINS.values(), TRANSFORMER_TWIN}
    for name in [n for n in runs if n.startswith("transformer_") and n not in twins]:
        twin_name = TWINS.get(name, TRANSFORMER_TWIN)
        if twin_name in runs:
            m, tw = runs[name]["metrics"], runs[twin_name]["metrics"]
            checks = [(m["mi_full"] >= TRANSFORMER_MI,
                       f"MI (split) {m['mi_full']:.2f} ≥ {TRANSFORMER_MI:g} (its twin: {tw['mi_full']:.2f}, AU {tw['au']})"),
                      (m["iw_nll"] <= tw["iw_nll"], f"IW-NLL {m['iw_nll']:.2f} ≤ its twin's {tw['iw_nll']:.2f}")]
            out.append(f"- Transformer decoder, {name} against {twin_name}: {yes(all(ok for ok, _ in checks))} "
                       f"({'; '.join(f'{text}: {yes(ok)}' for ok, text in checks)})")
    if out:
        out = ["", "**Targets of issue 13 §3** (test split, the rows above): the LSTM InfoVAE's IW-NLL at most "
               "the LM's with KL ≥ 8, MI over the split ≥ 5 and AU ≥ 24 of 32; a Transformer latent model with "
               f"MI ≥ {TRANSFORMER_MI:g} where its ELBO twin ({TRANSFORMER_TWIN}, or the sweep's twin with the same "
               "decoder settings) collapses, and IW-NLL at most the twin's.", "", *out]
    return out


def valid_at(row: dict, step: int) -> float | None:
    """A row's validation value at ``step`` (its curve's last point at or before it)."""
    points = [v for s, v in row.get("valid_curve", []) if s <= step]
    return points[-1] if points else None


def reduced(rows: dict) -> list[str]:
    """The posterior-chain rows' reduced budget, each beside the vae row at the same step and at the same
    training compute (the vae row's best validation −ELBO up to CHAIN_COST × the chain row's steps)."""
    vae = rows.get("vae")
    lines = []
    for name in [n for n in rows if f"train.max_steps={CHAIN_STEPS}" in rows[n]["overrides"]]:
        r = rows[name]
        text = (f"- {name}: {r['steps']:,} steps, best validation −ELBO {r['best_valid_neg_elbo']:.2f} at step "
                f"{r['best_step']:,}")
        if vae:
            same_step = valid_at(vae, r["steps"])
            compute = round(r["steps"] * CHAIN_COST)
            best_by = [v for s, v in vae["valid_curve"] if s <= compute]
            text += (f"; the vae row {same_step:.2f} at the same step, and {min(best_by):.2f} (its best) within "
                     f"the same compute ({compute:,} of its steps)" if same_step is not None and best_by else "")
        lines.append(text)
    if lines:
        lines = ["", f"**Reduced budget (issue 15's posterior-chain rows):** a step runs {CHAIN_COST:g}× an amortized "
                 f"one (20 Langevin steps, each a decoder forward and backward to z: "
                 "`benchmarks/results/chain_cost_cpu_epyc.md`), so these rows stop at "
                 f"{CHAIN_STEPS:,} steps, the training compute of the amortized rows' 40,000; the plateau rule "
                 "still applies within it. Validation −ELBO on the Gaussian fitted to the short-run samples:", *lines]
    return lines


def render(results: dict) -> None:
    rows, sweep = results["rows"], results["sweep"]
    lm = rows.get("lm", {}).get("metrics", {}).get("iw_nll")
    machines = sorted({r["machine"] for r in [*rows.values(), *sweep.values()]})
    out = ["# PTB at full budget: every objective trained to convergence", "",
           "Generated by `python benchmarks/ptb_full.py --render` from `ptb_full.json`; each row by "
           "`python benchmarks/ptb_full.py NAME` (its exact train and evaluate commands are in the JSON).", "",
           "Standard size: LSTM 256/256 (Transformer rows: see their recipes), z = 32, batch 32, every PTB "
           "sentence kept (42,068 train / 3,370 valid / 3,761 test).", "",
           "**Convergence rule, the same for every row:** validation every 1,000 steps; a plateau is 3 "
           "validations in a row without a better validation −ELBO (the LM: NLL), not counting validations "
           "during a KL warm-up (a cyclical schedule runs its whole budget); at a plateau the run restarts "
           "from its best model at half the learning rate (from 1e-3) with AdamW's moments kept (rows marked "
           "*restarts reset AdamW* were trained when a restart cleared them, the only behaviour then; "
           "`benchmarks/results/restart_optimizer.md` measures the difference), and stops at "
           "the plateau after the third restart; at most 40,000 steps. The best validation model is "
           "evaluated. `best step / steps` is the budget actually used.", "",
           "**Protocol:** all 3,761 PTB test sentences, IW-NLL with K = 500 importance samples (nats per "
           "sentence; the LM's NLL is exact), PPL = exp(IW-NLL·N / tokens) over words + one EOS per sentence "
           "(82,430 tokens), −ELBO and rec with one sample, KL in closed form, MI over minibatches of 32 and "
           "over the whole split, AU (Cov > 0.01), BLEU and exact match of greedy reconstructions from μ.", "",
           "Machines: " + "; ".join(machines) + ".", ""]
    out += table(rows, lm)
    out += targets(rows, sweep)
    tilted = [f"{n} {r['metrics']['log_z']:.3f} ± {r['metrics']['log_z_se']:.3f} ({r['metrics']['log_z_samples']:,} draws)"
              for n, r in rows.items() if "log_z" in r["metrics"]]
    if tilted:
        out += ["", "Energy-based prior rows: KL, −ELBO and IW-NLL include log Z of p_α, estimated by importance "
                "sampling from N(0, I) (log Ẑ ± its standard error): " + "; ".join(tilted) + "."]
    chained = [f"{n} ({r['metrics']['proposal']})" for n, r in rows.items() if r["metrics"].get("proposal")]
    if chained:
        out += ["", "Posterior-chain rows measure KL, MI, AU and the IW proposal on the Gaussian fitted to each "
                "sentence's short-run samples: " + "; ".join(chained) + "."]
    out += reduced(rows)
    notes = [f"- {n}: {r['concurrent_note']}" for n, r in [*rows.items(), *sweep.items()] if r.get("concurrent_note")]
    if notes:
        out += ["", "Timing notes:", *notes]
    if sweep:
        out += ["", "## §3 sweep: InfoVAE settings against the LM", "",
                "Screened first at about one epoch (`collapse_study.md`, 1,200 steps, 500 test sentences, K = 100): "
                "MMD-VAE λ = 100 and 1,000, with and without an informative initial variance, InfoVAE α = 0.5, "
                "β = 0.4, free bits, cyclical and annealed ELBOs; and at 5,000 steps the shipped MMD-VAE (α = 1, "
                "λ = 100), which fell 8.2 nats behind the LM with its per-sentence KL unbounded (issue 13). "
                "Hence the entry below: the full per-sentence KL (α = 0) with the MMD on top, and a "
                "batch-normalised μ (γ = 0.7) so that the KL cannot collapse. Entries named transformer_* try to "
                "close the Transformer InfoVAE's gap to its collapsed ELBO twin (the targets above): a lower KL "
                "floor (γ = 0.5), and the pair at dropout 0.3 against the overfitting both show at 0.1. Trained "
                "and evaluated as a row: same rule and protocol unless the last column says fewer sentences or "
                "samples.", ""]
        out += table(sweep, lm)
        out += ["", "| entry | settings |", "|---|---|"]
        out += [f"| {n} | `{r['recipe']}` {' '.join(r['overrides']) or '(as shipped)'}"
                f"{f' — now the shipped recipe: row {SHIPPED[n]}' if n in SHIPPED else ''} |" for n, r in sweep.items()]
    if results.get("progress"):
        out += ["", "## Runs in progress (not converged: stopped at the session's end, best validation so far)", "",
                "Evaluated with `--partial`: the same rule, stopped before it ended; not table rows. The "
                "validation curves (step, −ELBO) are in the JSON.", ""]
        out += table(results["progress"], lm if lm is not None else results["progress"].get("lm", {}).get(
            "metrics", {}).get("iw_nll"))
    for name, a in results.get("ablations", {}).items():
        m = a["metrics"]
        out += ["", f"**{name}** ({a['what']}): test NLL {m['iw_nll']:.2f} (PPL {m['ppl']:.1f}) at its best "
                f"validation step {a['best_step']:,}; {a['note']} Commands: `{a['train_command']}`, then "
                f"`{a['eval_command']}`."]
    if plot(rows, lm):
        out += ["", "![IW-NLL against MI and KL](ptb_full.png)"]
    (RESULTS / "ptb_full.md").write_text("\n".join(out) + "\n")


# Rows more than this many nats over the LM are drawn at the figure's top edge (see plot).
OFF_SCALE = 5.0


def place_labels(ax, labels: list[tuple[tuple[float, float], str]], avoid: list) -> None:
    """Annotate each point with the first of a few offsets whose text stays inside the axes and
    overlaps neither a label placed before it nor the texts in ``avoid`` (the baselines' captions), so that
    rows a tenth of a nat apart stay readable; the last offset if every one collides."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    offsets = [(4, 3, "left"), (4, -10, "left"), (-4, 3, "right"), (-4, -10, "right"), (4, 12, "left"),
               (4, -19, "left"), (-4, 12, "right"), (-4, -19, "right")]
    placed = [text.get_window_extent(renderer) for text in avoid]
    for xy, text in labels:
        for dx, dy, ha in offsets:
            note = ax.annotate(text, xy, fontsize=7, xytext=(dx, dy), textcoords="offset points", ha=ha,
                               annotation_clip=False)
            box = note.get_window_extent(renderer).expanded(1.05, 1.15)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(other) for other in placed):
                break
            if (dx, dy, ha) != offsets[-1]:
                note.remove()
        placed.append(box)


def plot(rows: dict, lm: float | None) -> bool:
    """Write ptb_full.png (IW-NLL against MI and KL, the LM and the Transformer ELBO twin as lines); False
    when no VAE row has a point."""
    points = {n: r["metrics"] for n, r in rows.items() if n != "lm" and "iw_nll" in r["metrics"]}
    if not points:
        (RESULTS / "ptb_full.png").unlink(missing_ok=True)
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The y range is the neighbourhood of the baselines (at least ±2 nats about the LM), where the
    # objectives differ by tenths of a nat; a row far above it (mmd_vae, +12 nats) would squeeze every
    # other point into a line, so it is drawn at the top edge as ▲ with its value in the label.
    ys = [m["iw_nll"] for m in points.values()]
    low = min(ys) - 0.7
    # Every row off the scale leaves only the LM to bound the range (the filter keeps every row without one).
    high = max((y for y in ys if lm is None or y <= lm + OFF_SCALE), default=lm) + 0.7
    if lm is not None:
        low, high = min(low, lm - 2), max(high, lm + 2)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    for ax, key, label in ((axes[0], "mi_full", "MI over the test split (nats)"), (axes[1], "kl", "KL (nats)")):
        # From 0 (no latent information), so that a handful of points is not magnified into a spread
        # that means nothing.
        ax.set_xlim(0, max(m[key] for m in points.values()) * 1.15 + 0.5)
        ax.set_ylim(low, high)
        ax.ticklabel_format(axis="y", useOffset=False)
        labels = []
        for name, m in sorted(points.items(), key=lambda item: item[1]["iw_nll"]):
            above = m["iw_nll"] > high
            y = high - 0.02 * (high - low) if above else m["iw_nll"]
            # Squares: the Transformer decoder, whose baseline is its collapsed ELBO twin, not the LSTM LM.
            marker = "^" if above else "s" if name.startswith("transformer") else "o"
            ax.scatter(m[key], y, s=30, marker=marker, clip_on=False,
                       color="tab:red" if "mmd" in name or "info" in name else "tab:blue")
            labels.append(((m[key], y), f"{name} ({m['iw_nll']:.2f}, off the scale)" if above else name))
        captions = []
        if lm is not None:
            ax.axhline(lm, color="gray", linestyle="--", linewidth=1)
            captions.append(ax.text(0.98 * ax.get_xlim()[1], lm, f"LSTM LM {lm:.2f} (no z)", ha="right", va="bottom",
                                    fontsize=8, color="gray"))
        if TRANSFORMER_TWIN in points:
            twin = points[TRANSFORMER_TWIN]["iw_nll"]
            ax.axhline(twin, color="gray", linestyle=":", linewidth=1)
            captions.append(ax.text(0.98 * ax.get_xlim()[1], twin,
                                    f"{TRANSFORMER_TWIN} {twin:.2f} (collapsed: ■ rows' baseline)",
                                    ha="right", va="top", fontsize=8, color="gray"))
        place_labels(ax, labels, captions)
        ax.set_xlabel(label)
    axes[0].set_ylabel("PTB test IW-NLL, K = 500 (nats/sentence; lower is better)")
    fig.suptitle("PTB, every objective trained to convergence: likelihood against latent use", fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / "ptb_full.png", dpi=130)
    plt.close(fig)
    return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="rows or sweep entries to train and evaluate, in order")
    p.add_argument("--runs", default="~/textvae-runs/ptb_full", help="folder of the run directories")
    p.add_argument("--threads", type=int, default=2, help="CPU threads of training (default 2)")
    p.add_argument("--eval-threads", type=int, default=2, help="CPU threads of evaluation (default 2)")
    p.add_argument("--precision", choices=["fp32", "bf16"],
                   help="train at this precision instead of the rule's auto (say why in --note)")
    p.add_argument("--iw-samples", type=int, default=500)
    p.add_argument("--eval-sentences", type=int, help="evaluate the first N test sentences (sweep only)")
    p.add_argument("--train-only", action="store_true", help="train, do not evaluate yet")
    p.add_argument("--note", default="", help="a timing caveat recorded with these rows (e.g. what else ran)")
    p.add_argument("--partial", action="store_true",
                   help="do not train: evaluate the best/ model of these unfinished runs and record it under "
                        "'progress' (not converged, not a table row), with the step reached")
    p.add_argument("--render", action="store_true", help="only rewrite the .md and .png from the JSON")
    p.add_argument("--list", action="store_true")
    args = p.parse_args()
    results = load_results()
    if args.list:
        for name in [*ROWS, *SWEEP]:
            state = ("recorded" if name in results["rows"] or name in results["sweep"] else
                     "trained" if finished(run_dir(args, name)) else "—")
            print(f"{name:24s} {state:9s} {entry(name)[2]}")
        return
    if args.eval_sentences and not args.partial and any(n in ROWS for n in args.names):
        raise SystemExit("--eval-sentences is for sweep entries: table rows use the whole test split.")
    for name in args.names:
        entry(name)  # every name checked before hours of work
    print(f"machine: {cpu_description()}", flush=True)
    for name in args.names if args.partial else []:
        row = record(args, name, evaluate_row(args, name))
        results = load_results()
        results.setdefault("progress", {})[name] = row
        save_results(results)
    for name in [] if args.partial else args.names:
        train_row(args, name)
        if args.train_only or name in STAGES:
            continue
        row = record(args, name, evaluate_row(args, name))
        results = load_results()  # another invocation may have added rows meanwhile
        results["rows" if name in ROWS else "sweep"][name] = row
        results["progress"].pop(name, None)  # the converged row replaces its partial evaluation
        save_results(results)
        print(f"{name}: IW-NLL {row['metrics']['iw_nll']:.2f}  KL {row['metrics'].get('kl', 0):.2f}  "
              f"MI(split) {row['metrics'].get('mi_full', 0):.2f}  AU {row['metrics'].get('au', 0)}  "
              f"steps {row['steps']}", flush=True)
    render(load_results())


if __name__ == "__main__":
    main()
