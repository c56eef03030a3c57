"""A tracking store's URI, checked before anything is opened (no MLflow import here).

:func:`check_uri` refuses in one line what cannot work (no experiment name, a file store, a SQLite
file in a folder that cannot be written, a server that does not answer); :func:`store_lock`
serialises schema and experiment creation on a SQLite file shared by parallel jobs;
:func:`impatient_http` and :func:`patient_http` keep a dead server from costing minutes of
retries.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from n2react.credentials import redact
from n2react.errors import ConfigError, StoreUnavailable


def sqlite_file(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).expanduser()
    return None


def absolute_uri(uri: str) -> str:
    """``uri`` usable from any folder: a relative SQLite file (``sqlite:///mlflow.db``, the
    default) made absolute; any other URI as it is."""
    db = sqlite_file(uri)
    return uri if db is None or db.is_absolute() else f"sqlite:///{db.resolve()}"


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Serialise schema/experiment creation on a SQLite store shared by parallel jobs."""
    db = sqlite_file(uri)
    if db is None:
        yield
        return
    with open(f"{db}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


#: Tracking-server requests while preparing the experiment, and while ending a run that failed:
#: few retries, short timeouts, so a server that does not answer fails the job in seconds.
_PROBE_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
PROBE_TIMEOUT_S = 10.0
#: Tracking-server requests during a run. MLflow's own default (7 retries, backoff up to 2 min)
#: kept a run whose server had stopped retrying each request for about 4 minutes, and again for
#: every request after it; 3 retries wait about 30 s, time enough for a server to restart.
RUN_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}
#: What the user set in the environment: n2react's settings never replace these.
_USER_HTTP_ENV = {k: os.environ[k] for k in (*_PROBE_ENV, *RUN_HTTP_ENV) if k in os.environ}


def patient_http() -> None:
    """MLflow's HTTP retries/timeout for the requests of a run (unless the user set them)."""
    for k, v in RUN_HTTP_ENV.items():
        if k not in _USER_HTTP_ENV:
            os.environ[k] = v


@contextlib.contextmanager
def impatient_http() -> Iterator[None]:
    """Lower MLflow's HTTP retries/timeout for the duration (unless the user set them)."""
    saved = {k: os.environ.get(k) for k in _PROBE_ENV if k not in _USER_HTTP_ENV}
    for k in saved:
        os.environ[k] = _PROBE_ENV[k]
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_uri(uri: str, experiment: str) -> None:
    """Refuse, in one line, what cannot work before anything is opened: no experiment name, a file
    store (MLflow 3), a SQLite file in a folder that cannot be written, a server that does not
    accept connections."""
    if not experiment.strip():
        raise ConfigError(
            "tracking.experiment is empty: name the MLflow experiment (default n2react)"
        )
    parsed, shown = urlparse(uri), redact(uri)
    if parsed.scheme in ("", "file"):
        raise ConfigError(
            f"tracking.uri={shown}: MLflow 3 no longer accepts file stores for runs; use a "
            "database, e.g. tracking.uri=sqlite:///mlflow.db (`mlflow migrate-filestore` "
            "converts an old mlruns/ folder)"
        )
    db = sqlite_file(uri)
    if db is not None:
        folder = db.resolve().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"tracking.uri={shown}: cannot create {folder} ({exc.strerror})"
            ) from exc
        if not os.access(folder, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
            raise ConfigError(
                f"tracking.uri={shown}: {db if db.exists() else folder} is not writable "
                "(SQLite also writes a journal beside the file): choose a writable location"
            )
    if why := no_server(uri):
        raise StoreUnavailable(
            f"tracking.uri={shown}: {why}; start it (mlflow server ...) or use tracking=none"
        )


def no_server(uri: str) -> str | None:
    """Why the tracking server of an ``http(s)://`` URI cannot be used: it does not accept
    connections (MLflow's own client would retry for minutes); None for a server that answers
    or a URI that names no server."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return None
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname or "localhost", port), PROBE_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return f"no tracking server answers at {parsed.hostname}:{port} ({reason})"
    return None


def unreadable(uri: str) -> str | None:
    """Why a finished run cannot be read from the store ``uri`` (predict, explain, compare): a
    SQLite file that does not exist (opening it would create an empty store), a server that
    does not answer, or a file store (MLflow 3 refuses one with a traceback); None when it can
    be tried. For the store used for want of any (no --tracking-uri, no $MLFLOW_TRACKING_URI)
    the reason adds how to name another one."""
    from n2react.tracking import DEFAULT_URI

    if urlparse(uri).scheme in ("", "file"):
        return (
            f"{redact(uri)} is a file store, which MLflow 3 no longer reads; name a database "
            "store, e.g. sqlite:///mlflow.db (`mlflow migrate-filestore` converts an old "
            "mlruns/ folder)"
        )
    db = sqlite_file(uri)
    why = f"no MLflow store at {db}" if db is not None and not db.is_file() else no_server(uri)
    if why and uri == DEFAULT_URI and not os.environ.get("MLFLOW_TRACKING_URI"):
        why += " (the default store; name yours with --tracking-uri)"
    return why
