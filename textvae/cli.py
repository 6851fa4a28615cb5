"""The ``textvae`` command: one subcommand per module in :mod:`textvae.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from textvae.errors import TextVAEError

# Subcommand modules, in the order `textvae --help` lists them.
COMMANDS = ["train", "evaluate", "report", "generate", "reconstruct", "interpolate", "encode", "probe", "plot_latent"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textvae", description="Sentence VAEs with the InfoVAE objective.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"textvae.commands.{name}").register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except TextVAEError as err:
        print(f"textvae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"textvae {args.command}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
