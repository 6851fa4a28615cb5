"""``textvae report RUN_DIR [RUN_DIR …] [--output DIR]``: the collapse dashboard."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="report.md + curves.png for one run, or several in one table",
                              description="Write report.md and curves.png (rec, KL, MI, AU, MMD, ELBO over "
                                          "steps). report.md has the last validation of each run and, apart, "
                                          "what `textvae evaluate` wrote (eval.json), with its split and how "
                                          "many sentences it scored. One run: into its directory; several: "
                                          "into --output (default ./report).")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--output", "-o", help="directory for a multi-run report")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textvae.evaluation.report import write_report

    path = write_report(args.runs, args.output)
    print(f"wrote {path} and {path.parent / 'curves.png'}")
    return 0
