"""The command-line flags several commands share, declared once: each command adds the groups it
takes, so a flag means the same thing and reads the same in every ``--help``."""

from __future__ import annotations

import argparse
from typing import Any, Literal, Optional

from textvae.inference.decoding import METHODS

def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", metavar="MODEL_DIR", help="a model directory, or a run directory (its model/ is used)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1 … (default: auto)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences processed at once (default: 64)")


def add_decoding_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("decoding")
    g.add_argument("--decode", choices=list(METHODS), default="greedy", help="decoding method (default: greedy)")
    g.add_argument("--temperature", type=float, help="sample: divide logits by T (default: 1)")
    g.add_argument("--top-k", type=int, help="sample: keep the k most likely tokens")
    g.add_argument("--top-p", type=float, help="sample: keep the smallest set of tokens with probability >= p")
    g.add_argument("--beam-size", type=int, help="beam: hypotheses per sentence (default: 4)")
    g.add_argument("--length-penalty", type=float,
                   help="beam: rank by log p / length^a (default: 1; 0 = no length normalisation)")
    g.add_argument("--seed", type=int, help="seed for every random choice (default: unseeded)")


def decoding_options(args: argparse.Namespace) -> dict[str, Any]:
    """The decoding flags given on the command line, as DecodeConfig fields (unset ones left out)."""
    options: dict[str, Any] = {"method": args.decode}
    for flag, field in (("temperature", "temperature"), ("top_k", "top_k"), ("top_p", "top_p"),
                        ("beam_size", "beam_size"), ("length_penalty", "length_penalty"),
                        ("max_length", "max_length")):
        value = getattr(args, flag, None)
        if value is not None:
            options[field] = value
    return options


MAX_LENGTH_HELP = {
    "inputs": "truncate inputs to this many tokens, with a warning (default: the model's maximum)",
    "outputs": "most tokens per generated sentence (default: the model's maximum)",
    "both": "longest sentence in tokens, in (longer inputs are truncated, with a warning) and out "
            "(default: the model's maximum)",
}


def add_max_length_argument(p: argparse.ArgumentParser, applies_to: Literal["inputs", "outputs", "both"]) -> None:
    p.add_argument("--max-length", type=int, metavar="N", help=MAX_LENGTH_HELP[applies_to])


def add_source_arguments(p: argparse.ArgumentParser) -> None:
    """``--data`` (required: a file, a pattern or a shipped corpus) and ``--split``."""
    p.add_argument("--data", required=True,
                   help="a file (text/label_text/csv/tsv/json/jsonl/parquet), a glob pattern in quotes "
                        "('data/*.txt') or a shipped corpus: ptb, yelp, yahoo, sst2")
    p.add_argument("--split", default="train", help="split of a shipped corpus (default: train)")


def add_progress_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


DATA_FLAGS = ("format", "encoding", "text_column", "label_column")
"""The DataConfig fields every data-reading command sets by flag (--format, --encoding, ...)."""

FORMAT_HELP = ("text (one sentence per line), label_text ('<label> <sentence>' per line: SST, MR, SUBJ, "
               "TREC, CR, MPQA as distributed), csv, tsv, json, jsonl or parquet (default: from the extension)")


def add_data_arguments(p: argparse.ArgumentParser, label_help: Optional[str] = None) -> None:
    """The flags of every command that reads data files: --format, --encoding, --text-column,
    --label-column (all unset by default, so a run's own recipe values stay in force)."""
    g = p.add_argument_group("reading data files", "the same flags in every command that reads data")
    g.add_argument("--format", metavar="FORMAT", help=FORMAT_HELP)
    g.add_argument("--encoding", help="encoding of text/csv/tsv/json files (default: utf-8; Windows files are "
                                      "often cp1252, and latin-1 accepts every byte)")
    g.add_argument("--text-column", metavar="COLUMN",
                   help="column holding the sentences in csv/tsv/json/parquet files (default: text)")
    g.add_argument("--label-column", metavar="COLUMN",
                   help=label_help or "column holding the labels in csv/tsv/json/parquet files (default: none; "
                                      "label_text files always have labels)")


def data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The data flags given on the command line, as DataConfig fields (unset ones left out)."""
    return {key: getattr(args, key) for key in DATA_FLAGS if getattr(args, key, None) is not None}
