"""MLflow: one parent run per job, one nested child run per outer fold, artifacts, clean-up.

Every name logged here is part of the public contract (see README): parent metrics
``mean_test_r`` ...; child runs tagged ``fold`` with ``test_r`` ...; artifacts
``oof_predictions.csv``, ``parity.png``, the resolved config and the final model.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from n2react.errors import ConfigError

log = logging.getLogger(__name__)

MAX_PARAM_LEN = 6000
TAG_HOST = "n2react.host"
TAG_PID = "n2react.pid"
TAG_SWEEP = "sweep"
TAG_JOB = "job"
TAG_COMMIT = "git_commit"
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
#: Set by the container image (Dockerfile build arg) or CI: recorded on every run as git_commit.
ENV_COMMIT = "N2REACT_GIT_COMMIT"
EXPERIMENT_TAGS = {
    "mlflow.note.content": (
        "n2react nested cross-validation of lg(k1) models: one parent run per training job "
        "(metrics mean_test_r/rmse/mae), one child run per outer fold (tag fold). Sweep jobs carry "
        "the tags sweep and job, and leaderboard_rank once the sweep has ended."
    ),
    # MLflow 3's UI opens an experiment of this kind on its training runs (not the GenAI views)
    TAG_EXPERIMENT_KIND: "custom_model_development",
}


#: What MLflow accepts in a parameter name.
_PARAM_NAME = re.compile(r"^[/\w.\- :]*$")


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay values.

    A mapping whose keys are data rather than names (e.g. ``data.rename_columns`` with keys like
    ``Expt. lg(k1)``) is kept whole, as JSON, under its own key.
    """
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            if all(_PARAM_NAME.match(f"{key}.{c}") for c in v):
                out.update(flatten(v, key + "."))
            else:
                out[key] = json.dumps(v, ensure_ascii=False, default=str)
        else:
            out[key] = v
    return out


def _sqlite_file(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).expanduser()
    return None


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise schema/experiment creation on a SQLite store shared by parallel jobs."""
    db = _sqlite_file(uri)
    if db is None:
        yield
        return
    with open(f"{db}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


#: Tracking-server requests while preparing the experiment: few retries, short timeouts, so a
#: server that does not answer fails the job in seconds instead of minutes of backoff.
_PROBE_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
PROBE_TIMEOUT_S = 10.0


@contextlib.contextmanager
def _impatient_http() -> Iterator[None]:
    """Lower MLflow's HTTP retries/timeout for the duration (unless the user set them)."""
    saved = {k: os.environ.get(k) for k in _PROBE_ENV}
    for k, v in _PROBE_ENV.items():
        os.environ.setdefault(k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)


def check_uri(uri: str, experiment: str) -> None:
    """Refuse, in one line, what cannot work before anything is opened: no experiment name, a file
    store (MLflow 3), a SQLite file in a folder that cannot be written, a server that does not
    accept connections."""
    if not experiment.strip():
        raise ConfigError(
            "tracking.experiment is empty: name the MLflow experiment (default n2react)"
        )
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        raise ConfigError(
            f"tracking.uri={uri}: MLflow 3 no longer accepts file stores for runs; use a "
            "database, e.g. tracking.uri=sqlite:///mlflow.db (`mlflow migrate-filestore` "
            "converts an old mlruns/ folder)"
        )
    db = _sqlite_file(uri)
    if db is not None:
        folder = db.resolve().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"tracking.uri={uri}: cannot create {folder} ({exc.strerror})"
            ) from exc
        if not os.access(folder, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
            raise ConfigError(
                f"tracking.uri={uri}: {db if db.exists() else folder} is not writable "
                "(SQLite also writes a journal beside the file): choose a writable location"
            )
    if parsed.scheme in ("http", "https"):
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection(
                (parsed.hostname or "localhost", port), PROBE_TIMEOUT_S
            ).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConfigError(
                f"tracking.uri={uri}: no tracking server answers at {parsed.hostname}:{port} "
                f"({reason}); start it (mlflow server ...) or use tracking=none"
            ) from exc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def prepare_experiment(uri: str, experiment: str) -> str:
    """Check the store, create its schema and the experiment once (under a lock); return its id.

    A new experiment gets a description and MLflow 3's kind tag, so the UI opens on its training
    runs rather than on the GenAI views. A deleted experiment of that name is refused, not revived.
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    check_uri(uri, experiment)
    mlflow.set_tracking_uri(uri)
    try:
        with _impatient_http(), _store_lock(uri):
            client = MlflowClient(uri)
            exp = client.get_experiment_by_name(experiment)
            if exp is None:
                db = _sqlite_file(uri)
                location = (db.resolve().parent / "mlartifacts").as_uri() if db else None
                return client.create_experiment(
                    experiment, artifact_location=location, tags=EXPERIMENT_TAGS
                )
            if exp.lifecycle_stage == "deleted":
                raise ConfigError(
                    f"tracking.experiment={experiment}: this experiment was deleted in {uri}; "
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
        raise ConfigError(f"tracking.uri={uri}: {_first_line(exc)}") from exc
    except Exception as exc:  # unreachable server, a read-only database, a store being migrated
        raise ConfigError(
            f"tracking.uri={uri}: cannot use the store ({type(exc).__name__}: {_first_line(exc)})"
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
            uri,
        )


def terminate_stale_runs(uri: str, experiment_id: str) -> int:
    """Mark KILLED the RUNNING runs of dead processes on this host (e.g. after a SIGKILL)."""
    from mlflow.tracking import MlflowClient

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


def model_requirements(with_keras: bool) -> list[str]:
    """Pinned requirements of a logged model (instead of MLflow's slow import-tracing guess)."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["scikit-learn", "numpy", "pandas", "scipy", "cloudpickle"]
    if with_keras:
        names += ["keras", "tensorflow"]
    out = []
    for name in names:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return out


def check_tracking(cfg: Mapping[str, Any]) -> str | None:
    """Prepare the configured store and experiment now (before any data work); its id, or None
    when tracking is off. Every problem is one ConfigError line."""
    if not bool(cfg.get("enabled", True)) or cfg.get("uri") is None:
        return None
    return prepare_experiment(str(cfg["uri"]), str(cfg.get("experiment", "n2react")))


#: Overrides that change no result (or name the store itself): left out of run names.
NAME_EXCLUDE = ("tracking", "hydra", "progress", "final_model", "device", "sweep", "resume")
MAX_NAME_LEN = 120


def run_name(model: str, overrides: Sequence[str] = ()) -> str:
    """A run name from what differs: the model, then the job's overrides with each key shortened
    to its last part (``svr C=10.0 scaler=robust selector=kbest``); just the model by default."""
    parts = [model]
    for ov in overrides:
        key, sep, value = ov.partition("=")
        key = key.lstrip("+~")
        if not sep or key == "model" or key.split(".")[0].split("/")[0] in NAME_EXCLUDE:
            continue
        if key.startswith("model.space."):  # model.space.n_layers=null: fixed for the search
            continue
        parts.append(f"{key.rsplit('.', 1)[-1]}={value}")
    name = " ".join(parts)
    return name if len(name) <= MAX_NAME_LEN else name[: MAX_NAME_LEN - 1] + "…"


def only_swept(overrides: Sequence[str], axes: Sequence[str]) -> list[str]:
    """The job's ``overrides`` whose key the sweep varies: ``axes`` holds the sweep's override
    strings (``seed=1,2``, ``scaler=standard,robust``); keys with sweep syntax vary."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    swept = {
        ov.get_key_element().lstrip("+~")
        for ov in OverridesParser.create().parse_overrides(list(axes))
        if ov.is_sweep_override()
    }
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in swept]


@dataclass(frozen=True)
class JobInfo:
    """Who this job is: its MLflow run name, and in a multirun the sweep (its directory) and the
    job number. ``python -m train`` builds it from Hydra's runtime config; tests by hand."""

    name: str
    sweep: str | None = None
    job: int | None = None

    @classmethod
    def from_overrides(
        cls, model: str, overrides: Sequence[str], sweep: str | None = None, job: int | None = None
    ) -> JobInfo:
        return cls(run_name(model, overrides), sweep, job)

    def tags(self) -> dict[str, str]:
        out = {}
        if self.sweep is not None:
            out[TAG_SWEEP] = self.sweep
        if self.job is not None:
            out[TAG_JOB] = str(self.job)
        commit = os.environ.get(ENV_COMMIT)
        if commit:
            out[TAG_COMMIT] = commit
        return out


class Tracker:
    """Thin wrapper over MLflow's fluent API; does nothing when tracking is disabled.

    The run is named by ``tracking.run_name`` when set, else by ``job.name``; ``job`` also adds the
    sweep/job tags. Nothing is logged before :meth:`start` opened the run (so a failure while
    preparing the store never starts a stray run).
    """

    def __init__(self, cfg: Mapping[str, Any], job: JobInfo | None = None) -> None:
        self.enabled = bool(cfg.get("enabled", True)) and cfg.get("uri") is not None
        self.uri = str(cfg.get("uri")) if cfg.get("uri") else None
        self.experiment = str(cfg.get("experiment", "n2react"))
        self.job = job
        self.run_name = cfg.get("run_name") or (job.name if job else None)
        self.run_id: str | None = None
        self.experiment_id: str | None = None

    @property
    def active(self) -> bool:
        """A run of ours is open (only then may anything be logged)."""
        return self.enabled and self.run_id is not None

    def _tags(self) -> dict[str, str]:
        job_tags = self.job.tags() if self.job else {}
        return {TAG_HOST: socket.gethostname(), TAG_PID: str(os.getpid()), **job_tags}

    def start(self, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        if not self.enabled:
            return
        import mlflow

        assert self.uri is not None
        self.experiment_id = prepare_experiment(self.uri, self.experiment)
        terminate_stale_runs(self.uri, self.experiment_id)
        run = mlflow.start_run(
            experiment_id=self.experiment_id,
            run_name=self.run_name,
            tags={**self._tags(), **tags},
        )
        self.run_id = run.info.run_id
        mlflow.log_params({k: str(v)[:MAX_PARAM_LEN] for k, v in params.items()})
        log.info("MLflow run %s in experiment '%s' at %s", self.run_id, self.experiment, self.uri)

    def reopen(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Continue the parent run ``run_id`` (``resume=``): RUNNING again, its params kept."""
        if not self.enabled:
            return
        import mlflow

        assert self.uri is not None
        self.experiment_id = prepare_experiment(self.uri, self.experiment)
        run = mlflow.start_run(run_id=run_id, tags={**self._tags(), **tags})
        self.run_id = run.info.run_id
        log.info("MLflow run %s resumed (experiment '%s', %s)", run_id, self.experiment, self.uri)

    def log_fold(
        self,
        fold: int,
        metrics: Mapping[str, float],
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        artifacts: list[Path],
    ) -> None:
        if not self.active:
            return
        import mlflow

        with mlflow.start_run(
            experiment_id=self.experiment_id,
            run_name=f"fold-{fold:02d}",
            nested=True,
            tags={**self._tags(), "fold": str(fold), **tags},
        ):
            mlflow.log_metrics(dict(metrics))
            if params:
                mlflow.log_params({k: str(v)[:MAX_PARAM_LEN] for k, v in params.items()})
            for a in artifacts:
                mlflow.log_artifact(str(a))

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        if self.active:
            import mlflow

            mlflow.log_metrics(dict(metrics), run_id=self.run_id)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if self.active:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(self.uri)
            for k, v in tags.items():
                client.set_tag(self.run_id, k, v)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self.active:
            import mlflow

            mlflow.log_artifact(str(path), artifact_path=artifact_path, run_id=self.run_id)

    def log_sklearn_model(self, model: Any, X_example: Any) -> str | None:
        """Log the fitted pipeline (sklearn flavour) with a signature and an input example."""
        if not self.active:
            return None
        import mlflow
        from mlflow.models import infer_signature

        # the cloudpickle caution is known: the pipeline holds our own estimator classes
        logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)
        example = X_example.head(5)
        signature = infer_signature(example, model.predict(example))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            serialization_format="cloudpickle",
            pip_requirements=model_requirements("keras" in repr(model).lower()),
        )
        mlflow.set_tag("model_uri", info.model_uri)
        # the pickle's hash, which predict checks before unpickling a download of this model
        import hashlib

        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri))
        pickled = next(iter(sorted(local.glob("*.pkl"))), None)
        if pickled is not None:
            mlflow.set_tag("model_sha256", hashlib.sha256(pickled.read_bytes()).hexdigest())
        return str(info.model_uri)

    def log_keras_model(self, model: Any, X_example: Any) -> str | None:
        """Log a Keras model (MLflow keras flavour).

        Its input is a float32 array of complete rows with the descriptors in the order of the
        training table (listed in the model's metadata under ``descriptors``).
        """
        if not self.active:
            return None
        import tempfile

        import mlflow
        from mlflow.models import infer_signature

        example = X_example.dropna().head(5).to_numpy(dtype="float32")
        signature = infer_signature(example, model.predict(example, verbose=0))
        # save into an existing empty folder, then log it: mlflow.keras.log_model with an input
        # example writes the example before creating its folder (MLflow 3.17)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "keras_model"
            path.mkdir()
            mlflow.keras.save_model(
                model,
                str(path),
                signature=signature,
                input_example=example,
                pip_requirements=model_requirements(with_keras=True),
                metadata={"descriptors": [str(c) for c in X_example.columns]},
            )
            mlflow.log_artifacts(str(path), "keras_model")
        uri = f"runs:/{self.run_id}/keras_model"
        mlflow.set_tag("keras_model_uri", uri)
        return uri

    def finish(self, status: str = "FINISHED") -> None:
        if not self.enabled or self.run_id is None:
            return
        import mlflow

        # close any fold run left open by an exception, then the parent
        while mlflow.active_run() is not None:
            mlflow.end_run(status=status)
        self.run_id = None
