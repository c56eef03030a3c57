"""The MLflow side of the tracking seam (:mod:`n2react.tracking`): with
:mod:`n2react.mlflow_experiment` (the experiment prepared, dead processes' runs marked KILLED)
and :mod:`n2react.mlflow_runs` (reading finished runs back), the only modules of n2react's runs,
resume, predict and explain that import MLflow.

One parent run per job, one nested child run per outer fold, the experiment prepared once per
run, one link per job on the terminal (MLflow's own "View run ..." lines, one per fold run, are
switched off), the model hashed from the local file before it is logged.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from n2react.credentials import redact
from n2react.errors import RunDeleted, first_line
from n2react.jobs import TAG_JOB, TAG_OVERRIDES, TAG_SWEEP, JobInfo
from n2react.mlflow_experiment import TAG_HOST as TAG_HOST  # callers import these here
from n2react.mlflow_experiment import TAG_PID as TAG_PID
from n2react.mlflow_experiment import prepare_experiment as prepare_experiment
from n2react.mlflow_experiment import terminate_stale_runs as terminate_stale_runs
from n2react.mlflow_runs import download, fold_runs_left, log_step_metrics, record
from n2react.quiet import JOB_LINE
from n2react.store_uri import impatient_http, patient_http
from n2react.tracking import (
    DIGEST_LEN,
    LOCAL_UI,
    MAX_PARAM_LEN,
    TAG_MODEL_SHA,
    TAG_NOTE,
    RunRecord,
    Store,
    Tracker,
    experiment_url,
    model_requirements,
)

log = logging.getLogger(__name__)

# MLflow prints "View run <name> at <url>" when each run of a server store ends (one per fold):
# n2react prints one link per job instead.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def _refusal(exc: Exception) -> bool:
    """Whether the store answered ``exc`` (it refused the request), rather than not answering
    (MLflow raises INTERNAL_ERROR for a request that got no answer)."""
    return isinstance(exc, MlflowException) and exc.error_code != "INTERNAL_ERROR"


def filter_literal(value: str) -> str:
    """``value`` as a quoted string of an MLflow search filter."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class MlflowTracker(Tracker):
    """The parent run of a job in an MLflow store, its fold runs, and the store's other runs.

    The run is named by ``tracking.run_name`` when set, else by ``job.name``; ``job`` also adds
    the sweep/job/overrides tags. The store and experiment are prepared when the tracker is made.
    """

    def __init__(self, store: Store, job: JobInfo | None = None) -> None:
        self.store = store
        self.uri = store.uri
        self.experiment = store.experiment
        self.job = job
        self.run_name = store.run_name or (job.name if job else None)
        self.run_id: str | None = None
        self.deleted = False  # the parent run was deleted in the store while it ran
        self.said = False  # ... and an error (RunDeleted) has said so
        self.run_dir = ""
        self.job_tags = job.tags() if job else {}
        patient_http()  # a server that stops answering fails the run in about 30 s, not minutes
        self.experiment_id: str | None = prepare_experiment(store.uri, store.experiment)
        self.client = MlflowClient(store.uri)

    def _tags(self) -> dict[str, str]:
        return {TAG_HOST: socket.gethostname(), TAG_PID: str(os.getpid()), **self.job_tags}

    def _announce(self, what: str) -> None:
        """The job's one link: the run's page on the server, or (a local store) where ``mlflow
        ui`` shows it once started on its default port."""
        assert self.run_id is not None and self.experiment_id is not None
        name = f"'{self.run_name}'" if self.run_name else self.run_id
        url = experiment_url(self.uri, self.experiment_id, self.run_id)
        if url:
            log.info("MLflow run %s%s: %s", name, what, redact(url), extra=JOB_LINE)
            return
        local = experiment_url(LOCAL_UI, self.experiment_id, self.run_id)
        log.info(
            "MLflow run %s%s: %s (mlflow ui --backend-store-uri %s)",
            name,
            what,
            local,
            redact(self.uri),
            extra=JOB_LINE,
        )

    def start(self, params: Mapping[str, Any], tags: Mapping[str, str], note: str = "") -> None:
        terminate_stale_runs(self.uri, str(self.experiment_id))
        described = {TAG_NOTE: note} if note else {}
        run = mlflow.start_run(
            experiment_id=self.experiment_id,
            run_name=self.run_name,
            tags={**self._tags(), **described, **tags},
        )
        self.run_id = run.info.run_id
        self.run_dir = str(tags.get("run_dir", ""))
        mlflow.log_params({k: str(v)[:MAX_PARAM_LEN] for k, v in params.items()})
        self._announce("")

    def reopen(self, run_id: str, tags: Mapping[str, str]) -> None:
        # the run keeps the name and job tags it was started with (its sweep, job number and
        # overrides; the fold runs logged from here get them too), not the resuming command's
        recorded = self.client.get_run(run_id)
        job = (TAG_SWEEP, TAG_JOB, TAG_OVERRIDES)
        kept = {k: v for k, v in recorded.data.tags.items() if k in job}
        self.job_tags = {**{k: v for k, v in self.job_tags.items() if k not in job}, **kept}
        self.run_name = recorded.info.run_name or self.run_name
        run = mlflow.start_run(run_id=run_id, tags={**self._tags(), **tags})
        self.run_id = run.info.run_id
        self.run_dir = str(tags.get("run_dir", ""))
        self._announce(" resumed")

    def log_fold(
        self,
        fold: int,
        metrics: Mapping[str, float],
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        artifacts: Sequence[Path],
    ) -> None:
        if self.deleted and self.run_id is not None:  # a refused call noticed it: stop here too
            raise self._deleted_error(self.run_id, finished=False)
        if not self.active:
            return
        self._check_parent()
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

    @property
    def active(self) -> bool:
        """A parent run of ours is open and still in the store (not deleted while it ran)."""
        return super().active and not self.deleted

    def _gone(self, run_id: str) -> bool:
        """Whether the run ``run_id`` was deleted in the store (one get_run)."""
        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "deleted"
        except MlflowException as exc:  # purged (mlflow gc) since
            return exc.error_code == "RESOURCE_DOES_NOT_EXIST"

    def _deleted_error(self, run_id: str, finished: bool) -> RunDeleted:
        """The one line that ends a run whose parent run was deleted while it ran: stopped
        before a fold run, or (``finished``) at its end, its files all written; the fold runs
        the deletion left in the store are counted (they are the user's to delete)."""
        self.said = True
        folder = f" {self.run_dir}" if self.run_dir else ""
        if finished:
            kept = f"its files are complete in the run folder{folder}"
            again = f"; resume={self.run_dir} logs it again in a new MLflow run"
        else:
            kept = f"the run folder{folder} keeps its finished outer folds"
            again = f"; resume={self.run_dir} continues it in a new MLflow run"
        folds = fold_runs_left(self.client, str(self.experiment_id), run_id)
        return RunDeleted(
            f"MLflow run {run_id} was deleted in the store while it ran: nothing more is "
            f"logged{folds}; {kept}{again if self.run_dir else ''}",
            files_complete=finished,
        )

    def _check_parent(self) -> None:
        """Stop, before a fold run is opened under it, when the parent run was deleted in the
        store while this run ran (one get_run per fold): MLflow would go on logging fold runs
        under the deleted parent until logging to the parent itself failed."""
        assert self.run_id is not None
        if not self._gone(self.run_id):
            return
        self.deleted = True
        raise self._deleted_error(self.run_id, finished=False)

    @contextmanager
    def _logging(self) -> Iterator[None]:
        """Around a call logging to the parent run after its folds (scores, final model,
        explain): a refusal because the run was deleted in the store meanwhile stops the
        logging, not the run, which writes the rest of its folder (:meth:`finish` then says
        so); any other failure is raised."""
        try:
            yield
        except MlflowException as exc:
            if not _refusal(exc) or self.run_id is None or not self._gone(self.run_id):
                raise
            log.debug("MLflow run %s deleted: nothing more is logged", self.run_id, exc_info=True)
            self.deleted = True

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        if self.active:
            with self._logging():
                mlflow.log_metrics(dict(metrics), run_id=self.run_id)

    def log_curves(self, curves: Mapping[str | int, Mapping[str, Sequence[float]]]) -> int:
        if not self.active:
            return 0
        assert self.run_id is not None
        with self._logging():
            return log_step_metrics(self.client, self.run_id, curves)
        return 0  # the run was deleted

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if self.active:
            with self._logging():
                for k, v in tags.items():
                    self.client.set_tag(self.run_id, k, v)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """The file under the run's artifacts; none once the run was deleted in the store (asked
        first: an artifact store takes files of a deleted run without a word)."""
        if not self.active:
            return
        assert self.run_id is not None
        if self._gone(self.run_id):
            log.debug("MLflow run %s deleted: %s is not logged", self.run_id, path)
            self.deleted = True
            return
        with self._logging():
            mlflow.log_artifact(str(path), artifact_path=artifact_path, run_id=self.run_id)

    def log_dataset(self, name: str, source: str, context: str, table: Any = None) -> None:
        if not self.active:
            return
        import mlflow.data
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset

        from n2react.runstore import file_sha256

        if Path(source).exists():
            source = str(Path(source).resolve())  # the UI shows where the file was read
        digest = file_sha256(source)[:DIGEST_LEN] if Path(source).is_file() else None
        with warnings.catch_warnings():  # MLflow 3.17 registers its local source twice and says so
            warnings.simplefilter("ignore", UserWarning)
            where = resolve_dataset_source(source)
        if table is not None:
            ds: Any = mlflow.data.from_pandas(table, source=where, name=name, digest=digest)
        else:
            ds = MetaDataset(where, name=name, digest=digest)
        with self._logging():
            mlflow.log_input(ds, context=context)  # the active run: ours

    def log_model(self, model: Any, X_example: Any, keras_net: Any = None) -> str | None:
        """The fitted pipeline (sklearn flavour, signature, input example; tags ``model_uri`` and
        ``model_sha256``) and its Keras network (keras flavour, tag ``keras_model_uri``).
        None when the run was deleted in the store (asked first: no model sent for nothing)."""
        if not self.active:
            return None
        assert self.run_id is not None
        if self._gone(self.run_id):
            self.deleted = True
            return None
        with self._logging():
            uri = self._log_sklearn(model, X_example)
            if keras_net is not None:
                self._log_keras(keras_net, X_example)
            return uri
        return None

    def _log_sklearn(self, model: Any, X_example: Any) -> str:
        from mlflow.models import infer_signature

        from n2react.runstore import TRUSTED_TYPES, file_sha256

        logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)
        example = X_example.head(5)
        signature = infer_signature(example, model.predict(example))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model"
            mlflow.sklearn.save_model(
                model,
                str(path),
                signature=signature,
                input_example=example,
                serialization_format="skops",  # loads without running code (n2react.runstore)
                skops_trusted_types=TRUSTED_TYPES,
                pip_requirements=model_requirements("keras" in repr(model).lower()),
            )
            # hashed here, from the file about to be logged (no download of what was just sent)
            pickled = next(iter(sorted(path.glob("*.skops")) + sorted(path.glob("*.pkl"))), None)
            mlflow.log_artifacts(str(path), "model", run_id=self.run_id)
            uri = f"runs:/{self.run_id}/model"
            tags = {"model_uri": uri}
            if pickled is not None:
                tags[TAG_MODEL_SHA] = file_sha256(pickled)
        self.set_tags(tags)
        return uri

    def _log_keras(self, net: Any, X_example: Any) -> str:
        """Its input is a float32 array of complete rows with the descriptors in the order of the
        training table (listed in the model's metadata under ``descriptors``)."""
        from mlflow.models import infer_signature

        example = X_example.dropna().head(5).to_numpy(dtype="float32")
        signature = infer_signature(example, net.predict(example, verbose=0))
        # save into an existing empty folder, then log it: mlflow.keras.log_model with an input
        # example writes the example before creating its folder (MLflow 3.17)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "keras_model"
            path.mkdir()
            mlflow.keras.save_model(
                net,
                str(path),
                signature=signature,
                input_example=example,
                pip_requirements=model_requirements(with_keras=True),
                metadata={"descriptors": [str(c) for c in X_example.columns]},
            )
            mlflow.log_artifacts(str(path), "keras_model", run_id=self.run_id)
        uri = f"runs:/{self.run_id}/keras_model"
        self.set_tags({"keras_model_uri": uri})
        return uri

    def finish(self, status: str = "FINISHED", error: str | None = None) -> None:
        if self.run_id is None:
            return
        run_id = self.run_id
        if status == "FINISHED":
            self._end_finished(run_id)
            return
        self.run_id = None
        # The run failed, perhaps because the store did: ask it once, briefly, and never leave a
        # run on MLflow's stack of active runs (the next job of a sweep would nest under it).
        with impatient_http():
            try:
                if error:
                    self.client.set_tag(run_id, "error", redact(error)[:5000])
            except Exception:
                log.debug("cannot tag the error", exc_info=True)
            unmarked, refused = False, ""
            while mlflow.active_run() is not None:
                try:
                    mlflow.end_run(status=status)  # it leaves the stack before the store is asked
                except Exception as exc:
                    log.debug("cannot end the run", exc_info=True)
                    unmarked = True
                    if _refusal(exc):
                        refused = refused or first_line(exc)
        if self.deleted and not self.said:  # deleted after the folds, then another error
            log.warning(
                "MLflow run %s was deleted in the store while it ran: nothing more was logged",
                run_id,
            )
        if self.deleted:  # said by the error that stopped the run, or just now
            return
        if refused:  # the store answered (the run deleted in the UI while it ran): no retry helps
            log.warning("MLflow run %s could not be marked %s: %s", run_id, status, refused)
        elif unmarked:
            log.warning(
                "MLflow run %s could not be marked %s: the store did not answer; the next job "
                "logged from this host to %s marks it KILLED",
                run_id,
                status,
                redact(self.uri),
            )

    def _end_finished(self, run_id: str) -> None:
        """End the run FINISHED; one deleted in the store while it ran (refused before, or now)
        ends with :class:`RunDeleted` once off MLflow's stack of active runs (a sweep's next job
        must not nest under it), a store that fails otherwise with its error."""
        try:
            while mlflow.active_run() is not None:
                if self.deleted:  # the run leaves the stack before the store is asked
                    with impatient_http(), suppress(MlflowException):
                        mlflow.end_run(status="FINISHED")
                    continue
                with self._logging():
                    mlflow.end_run(status="FINISHED")
        finally:
            self.run_id = None
        if self.deleted:
            raise self._deleted_error(run_id, finished=True)

    # -- runs in the store --
    def get_run(self, run_id: str) -> RunRecord | None:
        try:
            return record(self.client.get_run(run_id))
        except MlflowException:
            return None

    def find_runs(self, tags: Mapping[str, str]) -> list[RunRecord]:
        where = " and ".join(f"tags.`{k}` = {filter_literal(v)}" for k, v in tags.items())
        runs = self.client.search_runs([str(self.experiment_id)], filter_string=where)
        return [r for r in map(record, runs) if all(r.tags.get(k) == v for k, v in tags.items())]

    def delete_run(self, run_id: str) -> None:
        self.client.delete_run(run_id)

    def terminate_stale_runs(self) -> int:
        return terminate_stale_runs(self.uri, str(self.experiment_id))

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        return [a.path for a in self.client.list_artifacts(run_id, path)]

    def download(self, run_id: str, path: str, dest: Path) -> Path:
        return download(self.uri, run_id, path, dest)
