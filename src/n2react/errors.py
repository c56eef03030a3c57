"""User-facing errors: the CLI turns these into one clear line and a non-zero exit."""

from __future__ import annotations


class N2ReactError(Exception):
    """An error caused by the user's input or configuration (not a bug)."""


class DataError(N2ReactError):
    """A data file is missing, unreadable or malformed."""


class ConfigError(N2ReactError):
    """The composed configuration is impossible (e.g. more folds than rows)."""
