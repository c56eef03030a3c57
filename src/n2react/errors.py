"""User-facing errors: the CLI turns these into one clear line and a non-zero exit; a failure
of the disk or the MLflow store mid-run is read into such a line by :func:`storage_problem`."""

from __future__ import annotations

import sys
from collections.abc import Callable

from n2react.credentials import redact


class N2ReactError(Exception):
    """An error caused by the user's input or configuration (not a bug)."""


class DataError(N2ReactError):
    """A data file is missing, unreadable or malformed."""


class ConfigError(N2ReactError):
    """The composed configuration is impossible (e.g. more folds than rows)."""


def shorten(text: str, limit: int = 300) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, ending in " ..." when cut
    (not mid-word: "Read timed out. (read tim")."""
    if len(text) <= limit:
        return text
    head = text[: limit - 4]
    if " " in head:
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(" ,;:(") + " ..."


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of ``exc``'s message, cut to ``limit`` characters at a word (its type's name
    when it has none): what an error line quotes of a library's exception."""
    text = redact(str(exc).strip())
    return shorten(text.splitlines()[0], limit) if text else type(exc).__name__


class StoreUnavailable(ConfigError):
    """The MLflow store could not be used when the run began (a server that does not answer, a
    SQLite file held locked): nothing was trained or logged, and the same job can run again once
    the store answers."""


class RunDeleted(N2ReactError):
    """The run's MLflow parent run was deleted in the store (the UI's Delete) while it ran: it
    stops before logging more; its run folder keeps the outer folds it finished, or
    (``files_complete``: deleted after its folds) every file of the finished run."""

    def __init__(self, message: str, files_complete: bool = False) -> None:
        super().__init__(message)
        self.files_complete = files_complete

    def __reduce__(self) -> tuple[type[RunDeleted], tuple[str, bool]]:  # a launcher's pickle
        return type(self), (str(self), self.files_complete)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during the run's MLflow run, which it ended KILLED (``killed_run``: its
    id, None with ``tracking=none``); ``str()`` names the signal, as the interrupt did."""

    def __init__(self, name: str = "", killed_run: str | None = None) -> None:
        super().__init__(name)
        self.killed_run = killed_run


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


def _store_errors() -> tuple[type[BaseException], ...]:
    """The exception types of the MLflow store: sqlite's, SQLAlchemy's and MLflow's."""
    import sqlite3

    out: list[type[BaseException]] = [sqlite3.Error]
    try:
        from sqlalchemy.exc import SQLAlchemyError

        out.append(SQLAlchemyError)
    except ImportError:
        pass
    if "mlflow" in sys.modules:  # only a run that got as far as MLflow can have its errors
        from mlflow.exceptions import MlflowException

        out.append(MlflowException)
    return tuple(out)


def storage_problem(exc: BaseException) -> str | None:
    """One line for a failure of the disk or the MLflow store during the run (disk full, store
    locked or corrupt); None for any other error (a bug: its traceback is wanted). A store
    error is described by the deepest one in the chain (sqlite's own "database is locked", not
    SQLAlchemy's wrapper about autoflush)."""
    from http.client import IncompleteRead

    seen: set[int] = set()
    e: BaseException | None = exc
    store: BaseException | None = None
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, TimeoutError) and store is not None:  # a hung server: socket's timeout
            return "the MLflow tracking server stopped answering (read timed out)"
        if isinstance(e, ConnectionError | IncompleteRead) and store is not None:  # under MLflow's
            why = e.strerror if isinstance(e, OSError) else None  # a reply cut off: IncompleteRead
            return f"the MLflow tracking server stopped answering ({why or e})"
        if isinstance(e, OSError) and e.errno is not None:
            where = f"{e.filename}: " if e.filename else ""
            return f"{where}{e.strerror or e} while writing the run's outputs"
        if isinstance(e, _store_errors()):
            store = e
        e = e.__cause__ or e.__context__
    if store is None:
        return None
    lines = [ln.strip() for ln in str(store).splitlines() if ln.strip()]
    first = next((ln for ln in lines if not ln.startswith("(raised as")), type(store).__name__)
    if "database is locked" in first:
        first += " (another process held a write lock on the SQLite file too long)"
    return f"the MLflow store failed: {shorten(redact(first))}"
