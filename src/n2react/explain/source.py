"""What a finished run left behind, read back without training: from its directory or MLflow.

A run directory of ``python -m train`` holds ``config_resolved.yaml`` (reloads the data set),
``oof_predictions.csv`` (which fold held out which cluster), ``folds/fold_NN/model.skops`` (each
outer fold's fitted pipeline) and ``model.skops`` (the final pipeline, when one was fitted). An
MLflow parent run holds the same as artifacts (``fold_models/fold_NN/model.skops``) plus the final
model under its tag ``model_uri``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from n2react import runstore
from n2react.data import Dataset, load_dataset
from n2react.errors import N2ReactError
from n2react.jobs import TAG_SWEEP, sweep_job
from n2react.tracking import RUN_ID, TAG_MODEL_SHA, short_id_note
from n2react.unfinished import folder_problem, status_problem, store_problem

log = logging.getLogger(__name__)


@dataclass
class RunData:
    """A finished run: its resolved config (plain dicts, as :attr:`n2react.plan.Plan.config`),
    data, out-of-fold table and fitted models."""

    source: str
    config: Mapping[str, Any]
    dataset: Dataset
    oof: pd.DataFrame
    final_model: Any | None
    fold_models: dict[int, Any] = field(default_factory=dict)
    #: what the run's titles called the model when that is not its config's name: a sweep
    #: job's run name (``ridge alpha=0.1``)
    label: str | None = None

    def fold_rows(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """(training, test) row positions in ``dataset`` of outer fold ``fold``."""
        held = set(self.oof.loc[self.oof["fold"] == fold, "cluster"].astype(str))
        test = np.isin(self.dataset.clusters.astype(str), list(held))
        if not test.any():
            raise N2ReactError(f"{self.source}: fold {fold} has no clusters in oof_predictions.csv")
        return np.flatnonzero(~test), np.flatnonzero(test)


def _read_oof(path: Path, source: str) -> pd.DataFrame:
    """The run's out-of-fold table (one line naming the run and the file when it cannot be read:
    :func:`n2react.runstore.read_oof`, as compare says it)."""
    if not path.exists():
        raise N2ReactError(f"{path}: not found (is this a finished nested-CV run?)")
    return runstore.read_oof(path, source)


def _read_cfg(path: Path) -> dict[str, Any]:
    """The run's config as plain dicts; one line naming ``path`` when it is gone, not valid
    YAML, empty or not a mapping (:func:`n2react.runstore.read_config`, as predict says it)."""
    cfg = OmegaConf.to_container(runstore.read_config(path), resolve=True)
    assert isinstance(cfg, dict)
    if not isinstance(cfg.get("data"), dict):  # edited by hand: the data set cannot be reloaded
        raise N2ReactError(
            f"{path}: no data: settings, which reload the run's data set (not a config of "
            "python -m train?)"
        )
    return cfg  # type: ignore[return-value]


def _not_a_run(path: Path, what: str) -> str:
    """``path``: ``what``, naming the run directory above it when there is one (a model file,
    a fold or uncertainty folder of a run) and, for a model file, how to explain new clusters.
    (A folder of runs is named by :func:`n2react.unfinished.folder_problem`.)"""
    line = f"{path}: {what}; explain takes the folder python -m train wrote"
    above = next((p for p in path.parents if (p / runstore.CONFIG_FILE).exists()), None)
    if above is not None:
        line += f" (the run above it: {above})"
    if path.is_file() and (path.suffix == ".skops" or runstore.is_pickle(path)):
        line += (
            f"; a model's SHAP values for new clusters: python -m predict {path} NEW.xlsx --explain"
        )
    return line


def _refuse_pair_split(cfg: Mapping[str, Any], where: str) -> None:
    if (cfg.get("cv") or {}).get("scheme") == "pair_split":
        raise N2ReactError(
            f"{where}: a cv.scheme=pair_split run (pairs split at random: no outer folds, no "
            "held-out clusters) has nothing to explain; explain its cv.scheme=nested run"
        )


def _fold_models(run_dir: Path, trust_pickle: bool) -> dict[int, Any]:
    return {
        k: runstore.load_model_file(p, trust_pickle=trust_pickle)
        for k, p in runstore.fold_model_paths(run_dir).items()
    }


def _reload(cfg: Mapping[str, Any]) -> Dataset:
    """The run's data set as it trained on it (a ``cv.groups=column:<name>`` column is the
    rows' groups, not a descriptor)."""
    from n2react.splitters import group_column

    spec = (cfg.get("cv") or {}).get("groups")
    column = group_column(None if spec in (None, "none") else str(spec))
    return load_dataset(cfg["data"], column)


def load_run_dir(
    run_dir: str | Path,
    dataset: Dataset | None = None,
    trust_pickle: bool = False,
    verb: str = "explain it",
) -> RunData:
    """Read a run directory of ``python -m train``; ``verb`` is what the caller does with the
    run, named where it is not finished (:mod:`n2react.unfinished`)."""
    from n2react.backend import stderr_silenced

    d = Path(run_dir)
    if d.is_file():
        raise N2ReactError(_not_a_run(d, "a file, not a run directory"))
    if not d.is_dir():
        raise N2ReactError(
            f"{d}: not a run directory (nor an MLflow run id){short_id_note(str(d))}"
        )
    if why := folder_problem(d, verb):  # a folder of runs, a run not finished yet
        raise N2ReactError(why)
    if not (d / runstore.CONFIG_FILE).exists() and not (d / runstore.OOF_FILE).exists():
        raise N2ReactError(_not_a_run(d, f"no {runstore.CONFIG_FILE} (not a run directory)"))
    cfg = _read_cfg(d / runstore.CONFIG_FILE)
    _refuse_pair_split(cfg, str(d))
    oof = _read_oof(d / runstore.OOF_FILE, str(d))
    with stderr_silenced():  # building a Keras network starts TensorFlow, which chatters
        file = runstore.model_path(d)
        final = runstore.load_model_file(file, trust_pickle=trust_pickle) if file else None
        folds = _fold_models(d, trust_pickle)
    if final is not None and file is not None and runstore.is_pickle(file):  # fd 2 back
        log.warning(runstore.TRUSTED_PICKLE, file)
    ds = dataset if dataset is not None else _reload(cfg)
    job = sweep_job(d)
    return RunData(str(d), cfg, ds, oof, final, folds, job.name if job is not None else None)


def load_mlflow_run(
    run_id: str,
    dest: str | Path,
    tracking_uri: str | None = None,
    dataset: Dataset | None = None,
    trust_pickle: bool = False,
    verb: str = "explain it",
) -> RunData:
    """Download a parent run's config, out-of-fold table and fold models into ``dest`` and load
    its final model (tag ``model_uri``); ``verb`` as in :func:`load_run_dir`."""
    from n2react.backend import stderr_silenced
    from n2react.mlflow_runs import RunReader
    from n2react.store_uri import unreadable
    from n2react.tracking import default_uri

    uri = tracking_uri or default_uri()
    if why := unreadable(uri):  # else an empty store appears, or MLflow retries for minutes
        raise N2ReactError(f"MLflow run {run_id}: {why}")
    try:  # an unknown scheme (foo://) fails in the client already
        reader = RunReader(uri)
        run = reader.run(run_id)
    except Exception as exc:
        raise N2ReactError(f"MLflow run {run_id}: {store_problem(exc, uri)}") from exc
    if why := run.fold_run_problem():
        raise N2ReactError(why)
    dest = Path(dest)
    names = set(reader.list_artifacts(run_id))
    if runstore.OOF_FILE not in names and (why := status_problem(run, verb)):
        raise N2ReactError(why)  # an n2react parent run ("not an n2react parent run?" said)

    def need(name: str) -> None:
        if name not in names:
            raise N2ReactError(
                f"MLflow run {run_id}: no artifact {name} (not an n2react parent run?)"
            )

    need(runstore.CONFIG_FILE)
    cfg = _read_cfg(reader.download(run_id, runstore.CONFIG_FILE, dest))
    _refuse_pair_split(cfg, f"MLflow run {run_id}")
    need(runstore.OOF_FILE)
    got = {
        name: reader.download(run_id, name, dest)
        for name in (runstore.OOF_FILE, "fold_models")
        if name in names
    }
    oof = _read_oof(got[runstore.OOF_FILE], f"MLflow run {run_id}")
    with stderr_silenced():
        folds = {}
        if "fold_models" in got:  # fold_models/fold_NN/<model file>
            for k, p in runstore.fold_model_files(got["fold_models"]).items():
                folds[k] = runstore.load_model_file(p, trust_pickle=trust_pickle)
        uri = run.tags.get("model_uri")
        read: runstore.MlflowModel | None = None
        if uri:
            local = reader.download_uri(uri, dest)  # beside the other artifacts, not in /tmp
            recorded = run.tags.get(TAG_MODEL_SHA)
            read = runstore.read_mlflow_model(local, recorded, trust_pickle)
    if read is not None and read.pickled:  # fd 2 back
        log.warning(runstore.TRUSTED_PICKLE, uri)
    final = read.model if read is not None else None
    ds = dataset if dataset is not None else _reload(cfg)
    label = run.name if TAG_SWEEP in run.tags and run.name else None  # the job's name
    return RunData(f"MLflow run {run_id}", cfg, ds, oof, final, folds, label)


def load_run(
    ref: str | Path,
    *,
    tracking_uri: str | None = None,
    download_to: str | Path | None = None,
    dataset: Dataset | None = None,
    trust_pickle: bool = False,
    verb: str = "explain it",
) -> RunData:
    """A run directory, or an MLflow parent run id (artifacts go to ``download_to``);
    ``trust_pickle`` loads the pickled models of older runs (loading a pickle runs code);
    ``verb``: what the caller does with the run, said of one not finished ("explain it")."""
    p = Path(ref)
    if p.exists() or not RUN_ID.match(str(ref)):
        return load_run_dir(p, dataset, trust_pickle, verb)
    dest = Path(download_to) if download_to is not None else Path(f"explain-{ref}") / "artifacts"
    return load_mlflow_run(str(ref), dest, tracking_uri, dataset, trust_pickle, verb)
