"""The ``textvae`` command: one subcommand per module of this package (``train.py``, ``evaluate.py``,
…), each with ``register(subparsers)`` and ``run(args)``: parse, call the library, print. Flags
that several commands share are declared once in :mod:`textvae.cli.args`; the helpers that read
models and data for them are in :mod:`textvae.cli.common`. Commands import the library inside
``run``, so that ``textvae --help`` and a usage error answer without loading it."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import sys
from typing import Iterator, Optional, Sequence

from textvae import __version__
from textvae.errors import TextVAEError

# Subcommand modules, in the order `textvae --help` lists them.
COMMANDS = ["train", "evaluate", "report", "generate", "reconstruct", "interpolate", "encode", "probe", "plot_latent"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textvae", description="Sentence VAEs with the InfoVAE objective.")
    parser.add_argument("--version", action="version", version=f"textvae {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"textvae.cli.{name}").register(subparsers)
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its subparsers here and nowhere public
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _unknown_command(parser: argparse.ArgumentParser, argv: Sequence[str]) -> Optional[str]:
    """The error for a mistyped subcommand, with the closest one ('did you mean'), or None."""
    words = [a for a in argv if not a.startswith("-")]
    if not words or argv[0].startswith("-"):
        return None
    names = _subcommands(parser)
    if words[0] in names:
        return None
    close = difflib.get_close_matches(words[0], names, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return (f"textvae: error: '{words[0]}' is not a textvae command.{hint} The commands are: "
            f"{', '.join(names)} (textvae --help).")


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; the ``key=value`` words of a command that takes recipe overrides may stand
    anywhere after its positional arguments, between or after the flags."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "accepts_overrides", False):
            stray = [w for w in extra if w.startswith("-") or "=" not in w]
            if not stray:
                args.overrides = [*args.overrides, *extra]
                return args
            extra = stray
        _subcommands(parser).get(getattr(args, "command", None), parser).error(
            f"unrecognized arguments: {' '.join(extra)}")
    return args


@contextlib.contextmanager
def _quiet_progress(quiet: bool) -> Iterator[None]:
    """--no-progress silences the bars of the libraries too: Hugging Face datasets draws one per
    tokenized split, which a log file keeps as hundreds of carriage-returned updates. The switch is
    global, so it is put back after the command (tests call ``main`` many times in one process)."""
    if not quiet:
        yield
        return
    from datasets.utils import logging as datasets_logging

    was_enabled = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            datasets_logging.enable_progress_bar()


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    unknown = _unknown_command(parser, argv)
    if unknown:
        print(unknown, file=sys.stderr)
        return 2
    args = parse(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with _quiet_progress(getattr(args, "no_progress", False)):
            return int(args.func(args) or 0)
    except TextVAEError as err:
        print(f"textvae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"textvae {args.command}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
