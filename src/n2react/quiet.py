"""Default terminal hygiene: no TensorFlow/absl start-up chatter, no library deprecation noise.

Called by the entry points before anything imports TensorFlow. ``-v`` (``hydra.verbose=...``)
leaves the frameworks' own logging alone, so their details come back.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Sequence

#: Library loggers that only repeat framework internals at INFO/WARNING.
NOISY_LOGGERS = (
    "absl",
    "tensorflow",
    "h5py",
    "numexpr",
    "alembic",
    "keras_tuner",
    "mlflow.store.db.utils",
)


def verbose_requested(argv: Sequence[str]) -> bool:
    """``-v``/``--verbose`` or a ``hydra.verbose=...`` override on the command line."""
    return any(a in ("-v", "--verbose") or a.startswith("hydra.verbose=") for a in argv)


def expand_verbose_flag(argv: list[str]) -> list[str]:
    """``-v``/``--verbose`` -> ``hydra.verbose=n2react`` (debug lines of n2react only; Hydra's own
    ``hydra.verbose=true`` turns every library's debug logging on)."""
    if not any(a in ("-v", "--verbose") for a in argv):
        return argv
    rest = [a for a in argv if a not in ("-v", "--verbose")]
    if not any(a.startswith("hydra.verbose=") for a in rest):
        rest.append("hydra.verbose=n2react")
    return rest


def quiet_frameworks(argv: Sequence[str] | None = None) -> bool:
    """Silence the frameworks unless verbosity was asked for; returns whether it was."""
    argv = sys.argv[1:] if argv is None else argv
    verbose = verbose_requested(argv)
    logging.captureWarnings(True)  # warnings go through the logging handler (and its filters)
    if verbose:
        return True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    for module in ("keras", "tensorflow", "absl", "google", "mlflow", "keras_tuner", "jax"):
        warnings.filterwarnings("ignore", category=UserWarning, module=module)
    return False
