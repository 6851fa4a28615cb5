"""Exception text folded to fit inside a one-paragraph error message."""

from __future__ import annotations


def one_line(err: BaseException) -> str:
    """An exception's message with its line breaks folded, to sit inside a one-paragraph error."""
    return " ".join(str(err).split())


def root_cause(err: BaseException) -> BaseException:
    """The innermost ``__cause__`` of ``err``: what a wrapping library error was raised from."""
    while err.__cause__ is not None:
        err = err.__cause__
    return err
