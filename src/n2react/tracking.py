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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from n2react.errors import ConfigError

log = logging.getLogger(__name__)

MAX_PARAM_LEN = 6000
TAG_HOST = "n2react.host"
TAG_PID = "n2react.pid"


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
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_experiment(uri: str, experiment: str) -> str:
    """Create the store's schema and the experiment once (under a lock); return its id."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    with _store_lock(uri):
        try:
            client = MlflowClient(uri)
            exp = client.get_experiment_by_name(experiment)
            if exp is not None:
                return exp.experiment_id
            db = _sqlite_file(uri)
            location = (db.resolve().parent / "mlartifacts").as_uri() if db else None
            return client.create_experiment(experiment, artifact_location=location)
        except MlflowException as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"tracking.uri={uri}: {first}") from exc
        except Exception as exc:  # unreachable server, a store being migrated by someone else...
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ConfigError(
                f"tracking.uri={uri}: cannot use the store ({type(exc).__name__}: {first[:200]})"
            ) from exc


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


class Tracker:
    """Thin wrapper over MLflow's fluent API; does nothing when tracking is disabled."""

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.enabled = bool(cfg.get("enabled", True)) and cfg.get("uri") is not None
        self.uri = str(cfg.get("uri")) if cfg.get("uri") else None
        self.experiment = str(cfg.get("experiment", "n2react"))
        self.run_name = cfg.get("run_name")
        self.run_id: str | None = None
        self.experiment_id: str | None = None

    def _tags(self) -> dict[str, str]:
        return {TAG_HOST: socket.gethostname(), TAG_PID: str(os.getpid())}

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
        if not self.enabled:
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
        if self.enabled:
            import mlflow

            mlflow.log_metrics(dict(metrics))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if self.enabled:
            import mlflow

            mlflow.set_tags(dict(tags))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self.enabled:
            import mlflow

            mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_sklearn_model(self, model: Any, X_example: Any) -> str | None:
        """Log the fitted pipeline (sklearn flavour) with a signature and an input example."""
        if not self.enabled:
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
        return str(info.model_uri)

    def log_keras_model(self, model: Any, X_example: Any) -> str | None:
        """Log a Keras model (MLflow keras flavour).

        Its input is a float32 array of complete rows with the descriptors in the order of the
        training table (listed in the model's metadata under ``descriptors``).
        """
        if not self.enabled:
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
