"""``textvae evaluate RUN_OR_MODEL_DIR [--split test] [--data …] [--iw-samples 500] [--output eval.json]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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
    add_data_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textvae.cli.args import data_options
    from textvae.cli.common import DATA_FLAG_NAMES, data_config, print_notes, resolve_model_dir
    from textvae.data import load_corpus, make_loader, tokenize_corpus
    from textvae.data.report import corpus_notes
    from textvae.errors import ConfigError
    from textvae.evaluation.evaluate import evaluate_model, format_table
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
    result = evaluate_model(model, loader, iw_samples=args.iw_samples, seed=args.seed,
                            au_threshold=args.au_threshold, num_prior_samples=args.prior_samples,
                            progress=True, total=len(loader), precision=args.precision)
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
        print(f"wrote {output}")
    else:
        print(json.dumps(result, indent=2))
    return 0


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
