"""The argument parsing every n2react command line and benchmark shares: :class:`Parser` (a bad
argument is one error line) and the ``type`` checks :func:`at_least`, :func:`positive`,
:func:`non_negative`, :func:`comma_list` and :func:`selection_text`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import IO, Any, NoReturn


class Parser(argparse.ArgumentParser):
    """The argument parser of every n2react command and benchmark: a bad argument (``--coverage
    abc``, a missing RUN, an option a ``type`` such as :func:`at_least` refuses, a check's
    ``parser.error(...)``) is one error line and exit 2, not argparse's usage lines before it.
    ``--help`` is argparse's own, into a closed pipe too (``--help | head``) on every Python."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"n2react: error: {message}\n")

    def print_help(self, file: IO[str] | None = None) -> None:
        """argparse's help; a write that fails (the reader of ``--help | head`` gone) is ignored,
        as argparse 3.11+ ignores it and exits 0. On 3.10 the BrokenPipeError went on: the same
        command ended with 141 there."""
        try:
            super().print_help(file)
        except OSError:
            pass


def at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number of at least ``low``. A value below (``--runs 0``, which
    ended in a traceback deep in a benchmark) is the parser's one usage error naming the option."""

    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value}: at least {low}")
        return value

    return whole


def _number(text: str, zero: bool) -> float:
    """``text`` as a finite number above 0 (or, with ``zero``, 0 or more), else the one error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number") from None
    if not (0 <= value if zero else 0 < value) or value == float("inf"):
        wanted = "a finite number, 0 or more" if zero else "a number above 0"
        raise argparse.ArgumentTypeError(f"{text}: expected {wanted}")
    return value


def positive(text: str) -> float:
    """An argparse ``type``: a finite number above 0 (a learning rate, say)."""
    return _number(text, zero=False)


def non_negative(text: str) -> float:
    """An argparse ``type``: a finite number, 0 or more (a tolerance, say)."""
    return _number(text, zero=True)


def comma_list(item: Callable[[str], Any] = str) -> Callable[[str], list[Any]]:
    """An argparse ``type``: a comma-separated list of at least one ``item`` (``--seeds ""``
    ran nothing and printed NaN figures; ``--seeds a`` failed only after minutes of work)."""

    def items(text: str) -> list[Any]:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated list")
        return [item(p) for p in parts]

    return items


def selection_text(text: str) -> str:
    """An argparse ``type``: the text a selection option (``--only``, ``--exclude``) looks for in
    the rows' labels; an empty (or blank) one is refused, being part of every label
    (``--only ""`` started the whole table, hours of work)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: empty, it would match every row")
    return text
