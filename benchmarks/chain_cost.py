"""What the Langevin chains cost: training tokens/s of the chain models against the amortized VAE,
measured in one run on this machine with the same threads and precision (issue #15).

Every row is the PTB-size recipe (LSTM 256/256, z 32, vocab 10k, batch 32) trained by the textvae
Trainer on real PTB batches, measured exactly as ``benchmarks/throughput.py`` measures its trainer
rows (its ``train_worker``): tokens/s between the log row after the warm-up steps and the last one,
counting real target tokens (words + EOS). The rows:

    vae            recipes/ptb/vae.yaml           amortized q(z|x), N(0, I): the reference
    sri            recipes/ptb/sri.yaml           short-run inference: no encoder, a 20-step posterior chain
    vae_langevin   recipes/ptb/vae_langevin.yaml  q(z|x)'s sample refined by the same chain
    ebm_prior      recipes/ptb/ebm_prior.yaml     VAE with an energy-based prior (a 60-step prior chain)
    info_vae_ebm   recipes/ptb/info_vae_ebm.yaml  InfoVAE (MMD) with the energy-based prior

A posterior-chain step is a decoder forward pass and a backward pass to z alone (the output layer
computes no weight gradient; oneDNN's LSTM backward on a CPU computes its weight gradients all the
same); a prior-chain step is a forward and backward pass of the energy's small MLP. The table
gives those counts per training step beside the measured ratio, so that the ratio can be read
against what the chain must cost.

    python benchmarks/chain_cost.py                                  # all rows, fp32, all threads
    python benchmarks/chain_cost.py --steps 3 --warmup 1 --rows vae sri   # a smoke run
    python benchmarks/chain_cost.py --threads 2 --output benchmarks/results/chain_cost_cpu_epyc.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput  # noqa: E402  (benchmarks/throughput.py: the trainer measurement and the machine's description)

REPO = throughput.REPO
ROWS: dict[str, tuple[str, str]] = {
    "vae": ("ptb/vae.yaml", "amortized VAE, N(0, I) prior"),
    "sri": ("ptb/sri.yaml", "short-run inference (langevin)"),
    "vae_langevin": ("ptb/vae_langevin.yaml", "amortized+langevin"),
    "ebm_prior": ("ptb/ebm_prior.yaml", "VAE, energy-based prior"),
    "info_vae_ebm": ("ptb/info_vae_ebm.yaml", "InfoVAE, energy-based prior"),
}
REFERENCE = "vae"
# The validation that ends every measured run is untimed but, at the recipes' settings, costs more
# than a smoke run's training (16 chains per sentence, 100,000 draws for log Z): these settings are
# read by validation and evaluation only, never by a training step.
UNTIMED = ["model.langevin.fit_samples=2", "model.ebm.log_z_samples=2"]


def chain_work(recipe: Any) -> dict[str, Any]:
    """Passes per training step, from the recipe: decoder passes (the training pass, the posterior
    chain's steps, amortized+langevin's encoder term) and prior-chain (MLP) steps."""
    m = recipe.model
    chain = m.langevin.steps if m.inference != "amortized" else 0
    encoder_term = 1 if m.inference == "amortized+langevin" else 0
    parts = ["1 training"] + ([f"{chain} chain"] if chain else []) + (["1 encoder term"] if encoder_term else [])
    return {"inference": m.inference, "prior": m.prior, "decoder_passes": 1 + chain + encoder_term,
            "decoder_passes_text": " + ".join(parts), "encoder": m.inference != "langevin",
            "prior_chain_steps": m.ebm.langevin.steps if m.prior == "ebm" else 0}


# --------------------------------------------------------------------------- one row (a subprocess)


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One row, measured by throughput.py's trainer worker (in this process: its recipe lookup is
    pointed at this row's recipe, with :data:`UNTIMED` added)."""
    from textvae.config import load_recipe

    def recipe(name: str, overrides: list[str]) -> Any:
        return load_recipe(REPO / "recipes" / ROWS[name][0], [*UNTIMED, *overrides])

    throughput._recipe = recipe
    result = throughput.train_worker(spec)
    # Model FLOPs counted for one amortized forward/backward: not what a chain step costs, so no MFU here.
    result.pop("flops_per_token", None)
    return result


def run_row(spec: dict[str, Any], threads: int) -> dict[str, Any]:
    """``spec`` measured in a fresh process: each row starts from the same state (no oneDNN kernels,
    allocator pools or thread pools warmed by the row before it, which would favour later rows),
    its peak RSS is its own, and a row that fails loses only itself."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "TEXTVAE_ALLOW_EMULATED_BF16": "1"}
    command = [sys.executable, str(Path(__file__).resolve()), "--threads", str(threads), "--worker", json.dumps(spec)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**spec, **json.loads(line[len("RESULT "):])}
    raise RuntimeError(f"row {spec} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


# --------------------------------------------------------------------------- report


def summarize(name: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """A row's median measurement (a measured run, not an average of two) and its spread."""
    ranked = sorted(results, key=lambda r: r["tokens_per_s"])
    median = ranked[(len(ranked) - 1) // 2]
    return {**median, "row": name, "repeats": [r["tokens_per_s"] for r in results]}


def report(rows: list[dict[str, Any]], info: dict[str, Any], args: argparse.Namespace, command: str,
           load_end: float) -> str:
    ref = next((r for r in rows if r["row"] == REFERENCE), None)
    lines = ["# Langevin chains: training tokens/s against the amortized VAE", "",
             f"Command: `{command}`", "",
             f"Machine: {info['cpu_description']}; ISA {info['isa']}"
             + (f" (capped: {info['isa_limits']})" if info["isa_limits"] else "")
             + f"; {info['cores']} logical cores, {args.threads} torch threads"
             + (f", GPU {info['gpu']}" if "gpu" in info else ", no GPU")
             + f"; precision {args.precision}; torch {info['torch']}, Python {info['python']}; "
             f"{time.strftime('%Y-%m-%d %H:%M')}. Load average (1 min) at the start {info['load_start']:.2f}, at the "
             f"end {load_end:.2f} (other work on the CPU lowers every figure).", "",
             f"{args.steps} timed training steps after {args.warmup} warm-up steps per row, the PTB-size recipes "
             "(LSTM 256/256, z 32, vocab 10k, batch 32) on real PTB batches, the textvae Trainer as `textvae train` "
             "runs it, each row in a fresh process"
             + (f", {args.repeats} rounds over the rows (each row the median round)" if args.repeats > 1 else "")
             + ". tokens/s counts real target tokens (words + EOS). Decoder passes per step: the training pass, "
             "each posterior-chain step (forward + backward to z; no output-layer weight gradient) and "
             "amortized+langevin's encoder term (the same kind of pass); prior-chain steps are passes of the "
             "energy's MLP (32 → 200 → 200 → 1) over the batch. The untimed validation that ends each run uses "
             f"{' and '.join(UNTIMED)} (read by validation alone).", "",
             "| row | recipe | inference | prior | decoder passes / step | prior-chain steps / step | tokens/s "
             "| steps/s | s / step | tokens/s ÷ VAE | slowdown | peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = r["tokens_per_s"] / ref["tokens_per_s"] if ref else None
        spread = (f" ({min(r['repeats']):,.0f}–{max(r['repeats']):,.0f})" if len(r["repeats"]) > 1 else "")
        lines.append(f"| {r['row']} | recipes/{ROWS[r['row']][0]} | {r['inference']} | {r['prior']} | "
                     f"{r['decoder_passes_text']} | {r['prior_chain_steps'] or '—'} | "
                     f"{r['tokens_per_s']:,.0f}{spread} | "
                     f"{r['steps_per_s']:.3f} | {1 / r['steps_per_s']:.3f} | "
                     + (f"{ratio:.3f} | {1 / ratio:.1f}× |" if ratio else "— | — |")
                     + f" {r['peak_rss_mib']:,.0f} |")
    if ref is None:
        lines += ["", f"No `{REFERENCE}` row in this run: no ratios."]
    return "\n".join(lines) + "\n"


def write_results(path: Path, text: str, payload: dict[str, Any]) -> None:
    """``path`` as markdown and the same stem as JSON beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".md").write_text(text, encoding="utf-8")
    path.with_suffix(".json").write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=50, help="timed training steps per row (default: 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first, >= 1 (default: 5)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: all)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                   help="train.precision (default: fp32)")
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS),
                   help=f"rows to measure (default: all; the ratios need {REFERENCE})")
    p.add_argument("--repeats", type=int, default=1,
                   help="rounds over the rows, interleaved so that drift on a shared machine hits every row "
                        "alike; each row reports its median round (default: 1)")
    p.add_argument("--output", type=Path, help="results file: markdown there, JSON beside it (.md/.json)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        p.error(f"--steps and --warmup must be >= 1 (the timing starts at the log row after the warm-up), got "
                f"{args.steps} and {args.warmup}")
    if args.threads < 1 or args.repeats < 1:
        p.error(f"--threads and --repeats must be >= 1, got {args.threads} and {args.repeats}")
    torch.set_num_threads(args.threads)
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return

    from textvae.config import load_recipe

    command = "python benchmarks/chain_cost.py " + " ".join(sys.argv[1:] if argv is None else argv)
    info = throughput.machine()
    print(f"CPU: {info['cpu_description']}; ISA {info['isa']}; {args.threads} torch threads; precision "
          f"{args.precision}", flush=True)
    work = {name: chain_work(load_recipe(REPO / "recipes" / ROWS[name][0])) for name in args.rows}
    measured: dict[str, list[dict[str, Any]]] = {name: [] for name in args.rows}
    for round_ in range(args.repeats):
        for name in args.rows:
            spec = {"kind": "train", "size": name, "precision": args.precision, "steps": args.steps,
                    "warmup": args.warmup, "compile": False}
            measured[name].append(run_row(spec, args.threads))
            print(f"{name} ({ROWS[name][1]}){f' round {round_ + 1}' if args.repeats > 1 else ''}: "
                  f"{measured[name][-1]['tokens_per_s']:,.0f} tokens/s", flush=True)
    rows = [{**summarize(name, measured[name]), **work[name]} for name in args.rows]
    text = report(rows, info, args, command, os.getloadavg()[0])
    print()
    print(text)
    if args.output:
        write_results(args.output, text, {"command": command, "machine": info, "precision": args.precision,
                                          "threads": args.threads, "steps": args.steps, "warmup": args.warmup,
                                          "rows": rows, "reference": REFERENCE})


if __name__ == "__main__":
    main()
