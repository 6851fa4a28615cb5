"""``textvae probe MODEL_DIR (--dataset yelp|sst2 | --train FILE --test FILE) [--labels-per-class 10,100,all]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from textvae.commands.common import add_data_arguments
from textvae.commands.generate import add_model_arguments, load_model


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("probe", help="few-label linear probe on the latent means",
                              description="Logistic regression on μ with k labelled sentences per class "
                                          "(a new draw per seed), against majority-class and bag-of-words "
                                          "baselines on the same draws (Li et al. 2019; Optimus).")
    add_model_arguments(p)
    p.add_argument("--dataset", help="a shipped labelled corpus: yelp (train: the Shen dev files; test: test) "
                                     "or sst2 (train, test)")
    p.add_argument("--train", help="labelled training file (label_text/csv/tsv/json/jsonl/parquet), or a glob "
                                   "pattern in quotes")
    p.add_argument("--test", help="labelled test file (or pattern), not the training file")
    p.add_argument("--labels-per-class", default="10,100,1000,all",
                   help="label budgets, comma-separated: k per class or 'all' (default: 10,100,1000,all)")
    p.add_argument("--seeds", type=int, default=5, help="draws per budget (default: 5)")
    p.add_argument("--max-train", type=int, help="use a random subset of this many training sentences")
    p.add_argument("--max-test", type=int, help="use a random subset of this many test sentences")
    p.add_argument("--max-length", type=int, help="truncate inputs to this many tokens (default: the model's maximum)")
    p.add_argument("--no-bow", action="store_true", help="skip the bag-of-words baseline")
    p.add_argument("--output", "-o", help="also write the results as JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_data_arguments(p, label_help="column holding the labels in csv/tsv/json/parquet files (default: label; "
                                     "label_text files: the first word of each line)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textvae.commands.common import data_options, print_notes
    from textvae.inference.features import report_warnings
    from textvae.probe import ProbeError, load_probe_sets, parse_budgets, run_probe

    budgets = parse_budgets(args.labels_per_class)
    if args.seeds < 1:
        raise ProbeError(f"--seeds must be >= 1, got {args.seeds}.")
    sets = load_probe_sets(args.dataset, args.train, args.test, **data_options(args))
    print_notes("probe", sets["warnings"], "warning")
    print_notes("probe", sets["notes"])
    train = _subset(sets["train_texts"], sets["train_labels"], args.max_train)
    test = _subset(sets["test_texts"], sets["test_labels"], args.max_test)
    model = load_model(args)
    with report_warnings("probe"):
        result = run_probe(model, *train, *test, budgets, range(args.seeds), args.batch_size, args.max_length,
                           bow=not args.no_bow, label_names=sets["label_names"], progress=not args.no_progress)
    print(result.table())
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
        print(f"results: {args.output}", file=sys.stderr)
    return 0


def _subset(texts: list[str], labels: list[int], limit: Optional[int]) -> tuple[list[str], list[int]]:
    """A seeded random subset (shipped files are sorted by label, so not the first rows)."""
    from textvae.probe import subsample

    idx = subsample(len(texts), limit)
    return [texts[i] for i in idx], [labels[i] for i in idx]
