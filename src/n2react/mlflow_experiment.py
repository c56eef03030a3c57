"""The MLflow experiment a run logs into, prepared once per run (the store checked, its schema
and the experiment created under a lock, a deleted experiment refused), and the runs of dead
processes on this host marked KILLED (the host and pid tags every run carries).

Split from :mod:`n2react.mlflow_tracking` (which re-exports these names); its log lines keep
the ``n2react.mlflow_tracking`` logger.
"""

from __future__ import annotations

import logging
import os
import socket
from urllib.parse import urlparse

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from n2react.credentials import redact
from n2react.errors import ConfigError, StoreUnavailable, first_line
from n2react.store_uri import check_uri, impatient_http, sqlite_file, store_lock
from n2react.tracking import TAG_NOTE

log = logging.getLogger("n2react.mlflow_tracking")  # its lines are the tracker's

TAG_HOST = "n2react.host"
TAG_PID = "n2react.pid"
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_TAGS = {
    TAG_NOTE: (
        "n2react nested cross-validation of lg(k1) models: one parent run per training job "
        "(metrics mean_test_r/rmse/mae), one child run per outer fold (tag fold). Sweep jobs carry "
        "the tags sweep and job, and leaderboard_rank once the sweep has ended."
    ),
    # read by MLflow 3 UIs that take the view from the experiment (3.17 takes it from the link's
    # workflowType, see experiment_url)
    TAG_EXPERIMENT_KIND: "custom_model_development",
}
LOCKED_HINT = (
    "; another process holds a write lock on this SQLite file: run again when it is done, or "
    "log parallel jobs through a tracking server (README, 'A tracking server for a team')"
)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_experiment(uri: str, experiment: str) -> str:
    """Check the store, create its schema and the experiment once (under a lock); return its id.

    A new experiment gets a description and MLflow 3's kind tag (an existing one gets the kind
    tag). A deleted experiment of that name is refused, not revived.
    """
    check_uri(uri, experiment)
    mlflow.set_tracking_uri(uri)
    shown = redact(uri)
    try:
        with impatient_http(), store_lock(uri):
            client = MlflowClient(uri)
            exp = client.get_experiment_by_name(experiment)
            if exp is None:
                db = sqlite_file(uri)
                location = (db.resolve().parent / "mlartifacts").as_uri() if db else None
                return client.create_experiment(
                    experiment, artifact_location=location, tags=EXPERIMENT_TAGS
                )
            if exp.lifecycle_stage == "deleted":
                raise ConfigError(
                    f"tracking.experiment={experiment}: this experiment was deleted in {shown}; "
                    f"restore it (mlflow experiments restore --experiment-id {exp.experiment_id}) "
                    "or choose another name"
                )
            if TAG_EXPERIMENT_KIND not in exp.tags:
                client.set_experiment_tag(
                    exp.experiment_id, TAG_EXPERIMENT_KIND, EXPERIMENT_TAGS[TAG_EXPERIMENT_KIND]
                )
            _warn_local_artifacts(uri, experiment, exp.artifact_location)
            return exp.experiment_id
    except ConfigError:
        raise
    except MlflowException as exc:
        raise ConfigError(f"tracking.uri={shown}: {first_line(exc)}") from exc
    except Exception as exc:  # unreachable server, a read-only database, a store being migrated
        hint = LOCKED_HINT if "database is locked" in str(exc) else ""
        what = f"{type(exc).__name__}: {first_line(exc)}"
        raise StoreUnavailable(
            f"tracking.uri={shown}: cannot use the store ({what}){hint}"
        ) from exc


def _warn_local_artifacts(uri: str, experiment: str, location: str | None) -> None:
    """An experiment created through a local store keeps writing artifacts to that path even when
    later runs log through a server: other machines then see runs without their files."""
    if not uri.startswith(("http://", "https://")) or not location:
        return
    if urlparse(location).scheme in ("", "file"):
        log.warning(
            "experiment '%s' keeps its artifacts at %s, a local path (it was created without the "
            "server): runs logged through %s write their files there, not to the server's "
            "artifact store; use a new tracking.experiment name to have them proxied",
            experiment,
            location,
            redact(uri),
        )


def terminate_stale_runs(uri: str, experiment_id: str) -> int:
    """Mark KILLED the RUNNING runs of dead processes on this host (e.g. after a SIGKILL)."""
    client = MlflowClient(uri)
    host = socket.gethostname()
    n = 0
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'"):
        tags = run.data.tags
        pid = tags.get(TAG_PID)
        if tags.get(TAG_HOST) == host and pid and pid.isdigit() and not _pid_alive(int(pid)):
            client.set_terminated(run.info.run_id, status="KILLED")
            n += 1
    if n:
        log.warning("marked %d run(s) of dead processes as KILLED", n)
    return n
