"""Import the deep-learning stack once, without TensorFlow's start-up chatter on stderr."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType

from n2react.errors import ConfigError


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null (C++ logging ignores sys.stderr)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def import_quietly(name: str) -> ModuleType:
    """``importlib.import_module(name)``, hiding the backend's native log lines on first import."""
    if name in sys.modules:
        return sys.modules[name]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with stderr_silenced():
        return importlib.import_module(name)


def keras_module() -> ModuleType:
    """Keras, started on its backend (``KERAS_BACKEND``, TensorFlow by default): a backend that
    is not installed here is one ConfigError line, not an ImportError traceback."""
    try:
        return import_quietly("keras")
    except ImportError as exc:
        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        raise ConfigError(
            f"KERAS_BACKEND={backend}: Keras cannot start this backend ({exc}); "
            + _INSTALL.get(backend, _INSTALL_ANY)
        ) from None


#: How to get the backend ``KERAS_BACKEND`` names, when it is missing.
_INSTALL = {
    "jax": 'pip install "jax[cuda12]" for a GPU or "jax" for the CPU (the pins are the '
    "Dockerfile's), or unset KERAS_BACKEND to run on TensorFlow",
    "tensorflow": "pip install n2react's own requirements (tensorflow; see pyproject.toml), or "
    "KERAS_BACKEND=jax with jax installed",
}
_INSTALL_ANY = (
    "install it (the Keras MLP runs on tensorflow or jax) or set KERAS_BACKEND to one that is"
)
