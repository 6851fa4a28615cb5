"""What a trained model says, shown the way a user meets it: the CLI commands and their unedited output.

    python benchmarks/showcase.py ~/textvae-runs/ptb_full/info_bn0.7_a0_lam100 --checkpoint best \\
        --data ptb --output benchmarks/results/showcase_ptb_info_vae.md

For one model: 5 prior samples (top-p 0.9), 3 greedy reconstructions of held-out test sentences
with their sentence BLEU, a 6-step interpolation between two test sentences (for a labelled corpus,
from a sentence of the first class to one of the second), each printed by the real ``textvae``
command (run here as a subprocess, its stdout copied as it is). Then, over the whole test split,
the share of greedy and beam (size 5) reconstructions that hit the length limit instead of ending
with EOS, and their corpus BLEU and exact match. The test sentences are drawn with ``--seed``
among those of 8–20 words, so the choice is not ours.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from textvae.config import DataConfig  # noqa: E402
from textvae.data import load_corpus  # noqa: E402
from textvae.evaluation.text_metrics import bleu, exact_match  # noqa: E402
from textvae.inference.api import TextVAE  # noqa: E402
from textvae.inference.decoding import DecodeConfig, beam_search, decode_tokens  # noqa: E402
from textvae.utils.cpu import cpu_description  # noqa: E402


def cli(args: list[str], threads: int) -> str:
    """Run ``textvae ARGS`` and return its stdout as printed (stderr: progress and notes, left out)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "-m", "textvae", *args], cwd=REPO, env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"textvae {shlex.join(args)} exited with {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout.rstrip("\n")


def pick_sentences(texts: list[str], labels: list[int] | None, seed: int) -> tuple[list[str], tuple[str, str]]:
    """Three test sentences to reconstruct and two to interpolate between, of 8–20 words, drawn with ``seed``."""
    rng = random.Random(seed)
    fit = [i for i, t in enumerate(texts) if 8 <= len(t.split()) <= 20 and "<unk>" not in t.split()]
    three = [texts[i] for i in rng.sample(fit, 3)]
    if labels is None:
        a, b = (texts[i] for i in rng.sample(fit, 2))
    else:  # from the first class to the second (negative → positive)
        a = texts[rng.choice([i for i in fit if labels[i] == 0])]
        b = texts[rng.choice([i for i in fit if labels[i] == 1])]
    return three, (a, b)


@torch.no_grad()
def limit_shares(model: TextVAE, texts: list[str], batch_size: int = 64) -> dict[str, dict[str, float]]:
    """Greedy and beam-5 reconstructions from μ of every test sentence: the share cut at the length
    limit, corpus BLEU and exact match."""
    tok, limit = model.tokenizer, model.default_max_new_tokens
    refs = [t.split() for t in texts]
    out: dict[str, dict[str, float]] = {}
    for method in ("greedy", "beam"):
        hyps, cut = [], 0
        for start in range(0, len(texts), batch_size):
            mu = model.encode(texts[start:start + batch_size])
            if method == "greedy":
                decoded = decode_tokens(model.decoder, mu.to(model.device), mu.shape[0], model.vocab,
                                        DecodeConfig(method="greedy"), limit)
                seqs, ended = decoded.sequences, decoded.finished.tolist()
            else:
                best = [h[0] for h in beam_search(model.decoder, mu.to(model.device), mu.shape[0], model.vocab, 5,
                                                  limit, 1.0)]
                seqs, ended = [h.tokens for h in best], [h.finished for h in best]
            hyps += [tok.decode(s).split() for s in seqs]
            cut += sum(not e for e in ended)
        out[method] = {"hit_limit": cut / len(texts), "bleu": bleu(hyps, refs), "exact_match": exact_match(hyps, refs)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a run directory")
    p.add_argument("--checkpoint", default="best", choices=["best", "model"])
    p.add_argument("--data", required=True, help="the shipped corpus the model was trained on (its test split)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit-sentences", type=int,
                   help="measure the length-limit share on N test sentences drawn with --seed (default: all)")
    p.add_argument("--output", required=True, help="the Markdown file to write (a .json beside it too)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    run = Path(args.run).expanduser()
    model_dir = run / args.checkpoint
    test = load_corpus(DataConfig(name=args.data))["test"]
    texts = list(test["text"])
    labels = list(test["label"]) if "label" in test.column_names else None
    three, (a, b) = pick_sentences(texts, labels, args.seed)

    shown = []
    for what, cmd in [
        ("5 prior samples, nucleus (top-p 0.9)",
         ["generate", str(model_dir), "-n", "5", "--decode", "sample", "--top-p", "0.9", "--seed", str(args.seed)]),
        ("3 held-out test sentences, reconstructed greedily from μ", ["reconstruct", str(model_dir), *three]),
        ("a 6-step interpolation between two test sentences" + (" (negative → positive)" if labels else ""),
         ["interpolate", str(model_dir), a, b, "--steps", "6", "--no-repeat-ngram-size", "3"]),
    ]:
        shown.append({"what": what, "command": "textvae " + shlex.join(cmd).replace(str(Path.home()), "~"),
                      "output": cli(cmd, args.threads)})
    model = TextVAE.from_pretrained(model_dir)
    recon = model.reconstruct(three)
    sentence_bleu = [bleu([h.split()], [r.split()]) for h, r in zip(recon, three)]
    measured = texts
    if args.limit_sentences and args.limit_sentences < len(texts):
        measured = [texts[i] for i in sorted(random.Random(args.seed).sample(range(len(texts)), args.limit_sentences))]
    start = time.perf_counter()
    shares = limit_shares(model, measured)
    seconds = time.perf_counter() - start

    machine = f"{cpu_description()}, {args.threads} thread{'s' if args.threads != 1 else ''}, fp32, torch {torch.__version__}, {date.today()}"
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    trained = (f" The model: `{args.checkpoint}/` of a run of {summary['step']:,} steps whose best validation came at "
               f"step {summary.get('best_step') or summary['step']:,}." if summary else "")
    lines = [f"# What `{run.name}` says ({args.data}, `{args.checkpoint}/`)", "",
             f"Generated by `python benchmarks/showcase.py {shlex.join(sys.argv[1:]).replace(str(Path.home()), '~')}`. "
             "Each block is the command and its output, unedited. The test sentences were drawn with seed "
             f"{args.seed} among those of 8–20 words without `<unk>`.{trained}", "", f"Machine: {machine}.", ""]
    for item in shown:
        lines += [f"**{item['what']}**", "", "```", f"$ {item['command']}", item["output"], "```", ""]
        if item["command"].startswith("textvae reconstruct"):
            lines += ["Sentence BLEU of the three: " + ", ".join(f"{x:.1f}" for x in sentence_bleu) + ".", ""]
    which = (f"Every test sentence ({len(texts):,})" if measured is texts else
             f"{len(measured):,} test sentences (of {len(texts):,}, drawn with seed {args.seed})")
    lines += [f"**{which} reconstructed from μ** (length limit "
              f"{model.default_max_new_tokens} tokens, the longest training sentence; {seconds:.0f} s):", "",
              "| decoding | hit the limit | BLEU | exact match |", "|---|---|---|---|"]
    lines += [f"| {m} | {s['hit_limit']:.2%} | {s['bleu']:.2f} | {s['exact_match']:.3f} |" for m, s in shares.items()]
    out = Path(args.output)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(
        {"run": str(run), "checkpoint": args.checkpoint, "data": args.data, "seed": args.seed, "shown": shown,
         "sentence_bleu": sentence_bleu, "test_split": shares, "measured_sentences": len(measured), "machine": machine,
         "python": platform.python_version()}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
