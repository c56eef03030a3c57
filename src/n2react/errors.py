"""User-facing errors: the CLI turns these into one clear line and a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable


class N2ReactError(Exception):
    """An error caused by the user's input or configuration (not a bug)."""


class DataError(N2ReactError):
    """A data file is missing, unreadable or malformed."""


class ConfigError(N2ReactError):
    """The composed configuration is impossible (e.g. more folds than rows)."""


def run_script(main: Callable[[], int | None]) -> int:
    """Run a script's ``main`` (the benchmarks): bad input (a data file that is not there, an
    override Hydra cannot apply, an impossible setting) ends it as the CLI ends, with one
    ``n2react: error:`` line and exit status 2 instead of a traceback."""
    try:
        return main() or 0
    except N2ReactError as exc:
        sys.stderr.write(f"n2react: error: {exc}\n")
        sys.stderr.flush()
        return 2
