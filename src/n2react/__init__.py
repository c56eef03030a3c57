"""n2react: nested-CV trainer for the N2 reactivity (lg k1) of metal clusters."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from n2react.errors import ConfigError, DataError, N2ReactError

__all__ = ["ConfigError", "DataError", "N2ReactError", "__version__"]


def _version() -> str:
    """The installed package's version; in a checkout that is not installed, pyproject.toml's
    (the one place the version is written)."""
    try:
        return version("n2react")
    except PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        text = pyproject.read_text(encoding="utf-8") if pyproject.is_file() else ""
        found = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
        return found.group(1) if found else "0+unknown"


__version__ = _version()
