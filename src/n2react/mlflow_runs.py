"""Finished MLflow runs read back (predict, explain, compare) and annotated (explain's files
and learning curves); the helpers :mod:`n2react.mlflow_tracking` shares with them."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from n2react.tracking import RunRecord

_BATCH = 1000  # MLflow's log_batch limit on metrics per call

# MLflow draws a "Downloading artifacts" bar for every artifact it fetches (compare reads two,
# explain a dozen): noise between n2react's own lines
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def record(run: Any) -> RunRecord:
    return RunRecord(
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        status=run.info.status,
        deleted=run.info.lifecycle_stage == "deleted",
        start_time=int(run.info.start_time or 0),
        tags=dict(run.data.tags),
        name=run.info.run_name or "",
    )


def download(uri: str, run_id: str, path: str, dest: Path) -> Path:
    """A run's artifact (file or folder) copied under ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    return Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=path, dst_path=str(dest), tracking_uri=uri
        )
    )


def log_step_metrics(
    client: MlflowClient, run_id: str, curves: Mapping[str | int, Mapping[str, Sequence[float]]]
) -> int:
    """``curves["final"]`` as step metrics (step = epoch, 1-based) of the parent ``run_id``,
    ``curves[k]`` of its child run tagged ``fold=k``. Non-finite values (a diverged epoch) are
    skipped. How many values were logged."""
    children: dict[int, str] = {}
    if any(k != "final" for k in curves):
        parent = client.get_run(run_id)
        for c in client.search_runs(
            [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
        ):
            fold = c.data.tags.get("fold")
            if fold is not None and str(fold).isdigit():
                children[int(fold)] = c.info.run_id
    now = int(time.time() * 1000)
    n = 0
    for key, h in curves.items():
        target = run_id if key == "final" else children.get(int(key))
        if target is None:
            continue
        metrics = [
            Metric(name, float(v), now, step)
            for name, values in h.items()
            for step, v in enumerate(values, start=1)
            if math.isfinite(v)
        ]
        for s in range(0, len(metrics), _BATCH):
            client.log_batch(target, metrics=metrics[s : s + _BATCH])
        n += len(metrics)
    return n


def fold_runs_left(client: MlflowClient, experiment_id: str, run_id: str) -> str:
    """A deleted parent run's fold runs still in the store, in words (MLflow deletes a run alone:
    the UI's Delete removes its child runs only when asked, "Delete selected and children", and
    lists the others on their own); empty when there are none, or the store does not say."""
    try:
        n = len(
            client.search_runs(
                [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
            )
        )
    except Exception:
        return ""
    if not n:
        return ""
    runs = "1 fold run stays" if n == 1 else f"{n} fold runs stay"
    return (
        f"; its {runs} in the store, listed on {'its' if n == 1 else 'their'} own (delete "
        f"{'it' if n == 1 else 'them'} in the MLflow UI if unwanted)"
    )


class RunReader:
    """Read access to one store for the commands that load a finished run (predict, explain):
    the run's tags, its artifacts, its logged sklearn model, and logging files onto it."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.client = MlflowClient(uri)

    def run(self, run_id: str) -> RunRecord:
        return record(self.client.get_run(run_id))

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        return [a.path for a in self.client.list_artifacts(run_id, path)]

    def download(self, run_id: str, path: str, dest: Path) -> Path:
        return download(self.uri, run_id, path, dest)

    def download_uri(self, artifact_uri: str, dest: Path | None = None) -> Path:
        """A model URI (``runs:/...``, ``models:/...``) downloaded to a local folder."""
        mlflow.set_tracking_uri(self.uri)
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=artifact_uri, dst_path=None if dest is None else str(dest)
            )
        )

    def model_run_id(self, model_uri: str) -> str | None:
        """The run that logged the model at ``model_uri`` (``runs:/<run id>/...``, or a
        registered ``models:/<name>/<version or alias>``)."""
        if model_uri.startswith("runs:/"):
            return model_uri[len("runs:/") :].lstrip("/").split("/", 1)[0] or None
        from mlflow.store.artifact.utils.models import get_model_name_and_version

        name, version = get_model_name_and_version(self.client, model_uri)
        return self.client.get_model_version(name, version).run_id

    def load_sklearn(self, local_or_uri: str) -> Any:
        """An MLflow sklearn-flavour model (unpickling runs code: trusted sources only)."""
        mlflow.set_tracking_uri(self.uri)
        return mlflow.sklearn.load_model(local_or_uri)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def delete_tag(self, run_id: str, key: str) -> bool:
        """Remove the run's tag ``key`` through the client (``mlflow.delete_tag`` would start a
        run when none is active); whether it had one."""
        if key not in self.client.get_run(run_id).data.tags:
            return False
        self.client.delete_tag(run_id, key)
        return True

    def log_curves(
        self, run_id: str, curves: Mapping[str | int, Mapping[str, Sequence[float]]]
    ) -> int:
        return log_step_metrics(self.client, run_id, curves)
