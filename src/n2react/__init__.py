"""n2react: nested-CV trainer for the N2 reactivity (lg k1) of metal clusters."""

from __future__ import annotations

from n2react.errors import ConfigError, DataError, N2ReactError

__all__ = ["ConfigError", "DataError", "N2ReactError", "__version__"]
__version__ = "0.1.0"
