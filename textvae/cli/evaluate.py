"""``textvae evaluate RUN_OR_MODEL_DIR [--split test] [--data …] [--iw-samples 500] [--output eval.json] [--resume]``.

With an output file, the evaluation saves its progress beside it (``eval.json.partial``) every minute
and when interrupted (Ctrl-C, SIGTERM), and ``--resume`` continues from there: an hour-long K = 500
evaluation on a CPU survives an interruption and ends with the same numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Optional

from textvae.cli.args import add_data_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="IW-NLL, PPL, KL, MI, AU, MMD, BLEU of a trained model",
                              description="Evaluate a run or model directory on one split with the text-VAE "
                                          "protocol (He et al. 2019). Nats per sentence.")
    p.add_argument("path", help="a run directory (uses its model/) or a model directory")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--data", help="shipped corpus name, hub dataset name, a file or a glob pattern in quotes "
                                  "(default: the run's data)")
    p.add_argument("--checkpoint", default="model", choices=["model", "best"], help="which model of a run")
    p.add_argument("--iw-samples", type=int, default=500, help="K importance samples (default 500)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-sentences", type=int, help="evaluate the first N sentences only")
    p.add_argument("--prior-samples", type=int, default=100, help="sentences sampled from p(z) for diversity")
    p.add_argument("--au-threshold", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16", "auto"],
                   help="fp32 (default, the reference) or bf16/fp16 autocast for the matmuls: about 2x "
                        "faster on CPUs with bf16 units and on GPUs; sums stay fp32 (see benchmarks/results)")
    p.add_argument("--output", "-o", help="JSON file (default: eval.json in a run directory)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted evaluation of the same command (its progress is saved beside "
                        "--output every minute and on Ctrl-C, as OUTPUT.partial)")
    add_data_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textvae.cli.args import data_options
    from textvae.cli.common import DATA_FLAG_NAMES, data_config, print_notes, resolve_model_dir
    from textvae.data import load_corpus, make_loader, tokenize_corpus
    from textvae.data.report import corpus_notes
    from textvae.errors import ConfigError
    from textvae.evaluation.evaluate import EvaluationStopped, evaluate_model, format_table
    from textvae.evaluation.progress import EvalProgress, progress_path
    from textvae.training.signals import SIGNAL_EXIT, StopSignals
    from textvae.inference.api import TextVAE
    from textvae.utils.io import atomic_write_json
    from textvae.utils.precision import resolve_device, resolve_precision

    if args.iw_samples < 1:
        raise ConfigError(f"--iw-samples must be >= 1 (500 is the published protocol), got {args.iw_samples}.")
    resolve_precision(args.precision, resolve_device(args.device), option="--precision")  # before any work
    model_dir, recipe = resolve_model_dir(args.path, args.checkpoint)
    output = Path(args.output) if args.output else (
        Path(args.path) / "eval.json" if (Path(args.path) / "recipe.yaml").is_file() else None)
    if output is not None:  # before the evaluation, which can take an hour, not after it
        check_output_file(output, "--output")
    partial = progress_path(output) if output is not None else None
    if args.resume and partial is None:
        raise ConfigError("--resume needs the output file whose progress it continues: give --output FILE (the "
                          "evaluation of a model directory prints its result and saves no progress).")
    if partial is not None and args.resume and not partial.is_file():
        raise ConfigError(f"--resume: there is no interrupted evaluation to continue ({partial} does not exist); "
                          "run the command without --resume.")
    if partial is not None and not args.resume and partial.is_file():
        raise ConfigError(f"{partial} holds the progress of an interrupted evaluation; continue it with the same "
                          "command and --resume, or delete it to evaluate from the start.")
    model = TextVAE.from_pretrained(model_dir, device=resolve_device(args.device))
    if model.tokenizer is None:
        raise ConfigError(f"{model_dir} has no tokenizer/ folder, so text cannot be read; save the model "
                           "with its tokenizer (TextVAE(..., tokenizer=...).save_pretrained).")
    cfg = data_config(recipe, args.data, **data_options(args))
    corpus = load_corpus(cfg, seed=recipe.train.seed if recipe else 0, names=DATA_FLAG_NAMES)
    if args.split not in corpus:
        raise ConfigError(f"split {args.split!r} does not exist here; the splits are: {', '.join(corpus)}.")
    print_notes("evaluate", corpus_notes(corpus, [args.split]))
    dataset = corpus[args.split]
    if args.max_sentences:
        dataset = dataset.select(range(min(args.max_sentences, len(dataset))))
    tokenized, _ = tokenize_corpus({args.split: dataset}, model.tokenizer, cfg)
    loader = make_loader(tokenized[args.split], model.tokenizer, args.batch_size, shuffle=False)
    identity = evaluation_identity(args, model_dir, len(loader))
    resume = EvalProgress.load(partial, identity) if args.resume else None
    if resume is not None:
        print(f"evaluate: continuing from batch {resume.batches} of {len(loader)} ({partial})", flush=True)
    with StopSignals() as signals:
        saver = ProgressSaver(partial, identity, signals)
        try:
            result = evaluate_model(model, loader, iw_samples=args.iw_samples, seed=args.seed,
                                    au_threshold=args.au_threshold, num_prior_samples=args.prior_samples,
                                    progress=True, total=len(loader), precision=args.precision, resume=resume,
                                    after_batch=saver if partial is not None else None)
        except EvaluationStopped as stopped:
            print(f"{signals.received} received: saved the evaluation's progress after batch "
                  f"{stopped.progress.batches} of {len(loader)} in {partial}. Continue it with the same "
                  f"command{' (with --resume)' if args.resume else ' and --resume'}.", flush=True)
            return SIGNAL_EXIT.get(signals.received or "", 130)
    result.update(split=args.split, model_dir=str(model_dir), data=args.data, max_sentences=args.max_sentences)
    print(format_table({Path(args.path).name or str(args.path): result}))
    print(f"PPL denominator: {result['ppl_denominator']}; IW samples K = {result['iw_samples']}; "
          f"precision {result['precision']}; "
          f"{result['n_sentences']} sentences, {result['n_tokens']} tokens, {result['seconds']:.1f} s")
    if "proposal" in result:
        print(f"IW proposal: {result['proposal']}")
    if "log_z" in result:
        print(f"prior: log Z = {result['log_z']:.4f} ± {result['log_z_se']:.4f} (standard error, "
              f"{result['log_z_samples']} draws from N(0, I)); {result['prior']}")
    if output is not None:
        atomic_write_json(output, result)
        partial.unlink(missing_ok=True)  # after the result is safely written, not before
        print(f"wrote {output}")
    else:
        print(json.dumps(result, indent=2))
    return 0


# How often a running evaluation saves its progress: a minute of a K = 500 run is a few batches.
SAVE_EVERY_S = 60.0


class ProgressSaver:
    """``after_batch`` for the CLI: saves the progress when a minute has passed since the last save
    or a stop signal came (and then asks the evaluation to stop)."""

    def __init__(self, path: Optional[Path], identity: dict[str, Any], signals: Any) -> None:
        self.path, self.identity, self.signals = path, identity, signals
        self.last = time.monotonic()

    def __call__(self, progress: Any) -> bool:
        stop = self.signals.received is not None
        if stop or time.monotonic() - self.last >= SAVE_EVERY_S:
            progress.identity = self.identity
            progress.save(self.path)
            self.last = time.monotonic()
        return stop


def evaluation_identity(args: argparse.Namespace, model_dir: Path, n_batches: int) -> dict[str, Any]:
    """What an evaluation's numbers depend on: progress saved under another identity is not continued."""
    from textvae.cli.args import data_options
    from textvae.training.checkpoint import file_sha256
    from textvae.utils.layout import WEIGHTS_NAME

    return {"weights_sha256": file_sha256(Path(model_dir) / WEIGHTS_NAME), "split": args.split, "data": args.data,
            "data_options": data_options(args),  # the flags given (it leaves unset ones out)
            "iw_samples": args.iw_samples, "batch_size": args.batch_size, "max_sentences": args.max_sentences,
            "prior_samples": args.prior_samples, "au_threshold": args.au_threshold, "seed": args.seed,
            "precision": args.precision, "device": str(args.device), "batches": n_batches}


def check_output_file(path: Path, flag: str) -> None:
    """Refuse, before any work, an output path that cannot become a file: a directory, a missing
    or non-directory parent, or one this user cannot write in."""
    from textvae.errors import ConfigError
    from textvae.utils.io import probe_writable

    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a directory; give a file name, e.g. {flag} {path / 'eval.json'}.")
    parent = path.parent
    if not parent.is_dir():
        raise ConfigError(f"{flag} {path}: the folder {parent} does not exist"
                           f"{' (it is a file)' if parent.exists() else ''}; create it or choose another path.")
    try:
        probe_writable(parent)
    except OSError as err:
        raise ConfigError(f"{flag} {path}: cannot write in {parent} ({err.strerror or err}); choose a "
                          "writable path.") from err
