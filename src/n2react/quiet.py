"""Default terminal hygiene: no TensorFlow/absl start-up chatter, no library deprecation noise.

Called by the entry points before anything imports TensorFlow. ``-v`` (``hydra.verbose=...``)
leaves the frameworks' own logging alone, so their details come back.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, TypeVar

T = TypeVar("T")

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


#: Packages whose native libraries print start-up lines straight to file descriptor 2 while they
#: are imported: TensorFlow 2.21 writes its oneDNN and CUDA notes (twice, once per native module)
#: before absl logging is initialised, so TF_CPP_MIN_LOG_LEVEL cannot stop them.
CHATTY_IMPORTS = ("tensorflow",)


class _SilencedLoader(importlib.abc.Loader):
    """Runs the real loader with file descriptor 2 pointed at /dev/null (errors still raise)."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        from n2react.backend import stderr_silenced

        module.__loader__ = self._loader  # the module looks as if imported normally
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        with stderr_silenced():
            self._loader.exec_module(module)


class _QuietImports(importlib.abc.MetaPathFinder):
    """Imports the packages of :data:`CHATTY_IMPORTS` through :class:`_SilencedLoader`."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in CHATTY_IMPORTS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _SilencedLoader(spec.loader)
        return spec


def silence_native_imports() -> None:
    """Install the import hook once (a no-op for packages already imported)."""
    if not any(isinstance(f, _QuietImports) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImports())


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
    # 3, not only when unset: the common TF_CPP_MIN_LOG_LEVEL=2 still let TensorFlow's "E0000 ...
    # failed call to cuInit: ... UNKNOWN ERROR (303)" through on every CPU-only run (-v keeps it)
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    silence_native_imports()
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # a failing store (locked, corrupt) is reported in n2react's one error line; MLflow's own
    # record of it is a traceback with the SQL statement
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    for module in ("keras", "tensorflow", "absl", "google", "mlflow", "keras_tuner", "jax"):
        warnings.filterwarnings("ignore", category=UserWarning, module=module)
    return False


#: ``log.info(..., extra=JOB_LINE)``: one of the lines a sweep job still prints on the terminal.
JOB_LINE = {"job_line": True}


class SweepJobLines(logging.Filter):
    """On the terminal of a multirun job, only the job's own lines (its MLflow link, its closing
    scores: records logged with :data:`JOB_LINE`) and warnings pass; fold lines and the rest go
    to the job's log file only. Single runs and ``-v`` are not filtered."""

    def __init__(self) -> None:
        super().__init__()
        self.multirun = _in_multirun()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.multirun or record.levelno >= logging.WARNING or _verbose():
            return True
        return bool(getattr(record, "job_line", False))


class RetryLines(logging.Filter):
    """Off the terminal (the log file keeps them): urllib3's "Retrying (Retry(total=2, ...))
    after connection broken by ..." warnings, one per request while a tracking server does not
    answer. n2react's own line says what happened once the retries are spent. ``-v`` keeps them."""

    def filter(self, record: logging.LogRecord) -> bool:
        retry = record.name.startswith("urllib3") and record.getMessage().startswith("Retrying")
        return not retry or _verbose()


def quiet_sweep_job() -> bool:
    """This process runs a job of a multirun without ``-v``: per-job tables stay off the
    terminal (they are in the job's folder; the sweep's leaderboard ranks the jobs)."""
    return _in_multirun() and not _verbose()


def _verbose() -> bool:
    return logging.getLogger("n2react").isEnabledFor(logging.DEBUG)


def _in_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:  # no Hydra job (tests, notebooks)
        return False


def _stdout_closed() -> bool:
    """Whether nothing reads stdout any more (a pipe whose reader has gone: ``| head``)."""
    try:
        import select

        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no file descriptor
        return True


def closed_stdout_ends_quietly(entry: Callable[[], T]) -> T:
    """Run a command's entry point; a reader that closes stdout early (``--help | head``) ends it
    quietly with exit 141 (128 + SIGPIPE, as a shell reports a command a closed pipe stopped),
    not with a BrokenPipeError traceback. A broken pipe elsewhere (a server's socket) is raised."""
    try:
        try:
            return entry()
        finally:  # written to a pipe's buffer: its write fails only now (argparse's --help)
            if sys.stdout is not None:
                sys.stdout.flush()
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        # Python flushes stdout again at exit: into /dev/null, not the closed pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
