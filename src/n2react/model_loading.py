"""The trained model predict reads, loaded: from a run directory or model file of
``python -m train``, an MLflow run id (its final model, plus its outer-fold models for the
spread, its applicability domain and interval calibration), or a model URI (``runs:/...``,
``models:/...``).

Model files are read by :mod:`n2react.runstore`: skops files with a fixed list of trusted types,
checked against the sha256 the run recorded (``<file>.sha256``, or the MLflow tag
``model_sha256``); pickles of older runs only with ``trust_pickle`` (``--trust-pickle``).
Split from :mod:`n2react.inference` (which re-exports :func:`load_model` and
:class:`LoadedModel`); its log lines keep the ``n2react.inference`` logger, predict's.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from n2react import __version__, runstore
from n2react.backend import stderr_silenced
from n2react.errors import N2ReactError
from n2react.tracking import RUN_ID, TAG_MODEL_SHA, short_id_note
from n2react.uncertainty import load_calibration
from n2react.unfinished import model_problem, no_final_model, status_problem, store_problem

log = logging.getLogger("n2react.inference")  # its lines are predict's

HASH_TAG = TAG_MODEL_SHA  # the old name (n2react.tracking defines the tag)
FINAL = "final model (tag model_uri) before its outer folds and final fit are done"


@dataclass
class LoadedModel:
    """A trained run as predict uses it: the final model, the outer-fold models (their spread),
    where it was read from, and the run's domain and interval calibration when it recorded them."""

    model: Any
    fold_models: list[Any]
    source: str
    #: the fitted applicability domain of the training clusters (None: the run recorded none)
    domain: Any = None
    #: the run's interval calibration (:class:`n2react.uncertainty.Calibration`; None: none)
    uncertainty: Any = None
    #: the final model was an older run's pickle (loaded because of ``trust_pickle``)
    pickled: bool = False


def load_model(
    ref: str, tracking_uri: str | None = None, trust_pickle: bool = False
) -> LoadedModel:
    """Load the final model and, where available, the outer-fold models and the domain.

    Each file must match its recorded sha256; pickles (older runs) load only with
    ``trust_pickle``, with a one-line warning once they did (their sha256 matched).
    """
    with stderr_silenced():  # building a Keras network starts TensorFlow, which chatters
        loaded = _load_model(ref, tracking_uri, trust_pickle)
    if loaded.pickled:  # said once it is true, and after the block (fd 2 is /dev/null in it)
        log.warning(runstore.TRUSTED_PICKLE, loaded.source)
    saved = runstore.saved_by(loaded.model)
    if saved is not None and saved != __version__:  # None: saved before versions were recorded
        log.warning(
            "%s: saved by n2react %s, loaded by n2react %s", loaded.source, saved, __version__
        )
    return loaded


def _load_run_dir(path: Path, trust_pickle: bool) -> LoadedModel:
    run_dir = path if path.is_dir() else path.parent
    file = runstore.model_path(path) if path.is_dir() else path
    if file is None and (why := model_problem(path)):  # path: a folder
        raise N2ReactError(why)  # final_model=false, a run not finished yet, a sweep's folder
    if file is None:
        raise N2ReactError(
            f"{run_dir}: no {runstore.MODEL_FILE} (not a run directory of python -m train, or a "
            "run made with final_model=false?)"
        )
    model = runstore.load_model_file(file, trust_pickle=trust_pickle)
    folds = [
        runstore.load_model_file(p, trust_pickle=trust_pickle)
        for p in runstore.fold_model_paths(run_dir).values()
    ]
    domain_file = runstore.model_path(run_dir, runstore.DOMAIN_FILE)
    domain = (
        runstore.load_model_file(domain_file, trust_pickle=trust_pickle) if domain_file else None
    )
    calib_file = run_dir / runstore.UNCERTAINTY_FILE
    calib = load_calibration(calib_file) if calib_file.exists() else None
    return LoadedModel(model, folds, str(file), domain, calib, runstore.is_pickle(file))


def _load_model(ref: str, tracking_uri: str | None, trust_pickle: bool) -> LoadedModel:
    path = Path(ref)
    if path.exists():
        return _load_run_dir(path, trust_pickle)
    if not RUN_ID.match(ref) and not ref.startswith(("runs:/", "models:/")):
        raise N2ReactError(
            f"{ref}: no such run directory or model file (nor an MLflow run id){short_id_note(ref)}"
        )
    return _load_mlflow(ref, tracking_uri, trust_pickle)


def _load_mlflow(ref: str, tracking_uri: str | None, trust_pickle: bool) -> LoadedModel:
    from n2react.mlflow_runs import RunReader
    from n2react.store_uri import unreadable
    from n2react.tracking import default_uri

    uri = tracking_uri or default_uri()
    if why := unreadable(uri):  # else an empty store appears, or MLflow retries for minutes
        raise N2ReactError(f"{ref}: {why}")
    reader = RunReader(uri)
    try:
        with tempfile.TemporaryDirectory(prefix="n2react-") as tmp:  # loaded, then removed
            return _read_mlflow(reader, ref, Path(tmp), trust_pickle)
    except N2ReactError:
        raise
    except Exception as exc:
        raise N2ReactError(f"cannot load model {ref}: {store_problem(exc, uri)}") from exc


def _read_mlflow(reader: Any, ref: str, tmp: Path, trust_pickle: bool) -> LoadedModel:
    """The final model (and the fold models, domain and calibration of a run id, or of the run
    whose final model a ``runs:/`` URI names), downloaded into ``tmp``."""
    if not RUN_ID.match(ref):  # a model URI: checked against the hash its run recorded
        run_id = reader.model_run_id(ref)
        tags = reader.run(run_id).tags if run_id else {}
        if tags.get("model_uri") == ref:  # the run's own final model: read as the run is
            return _read_mlflow(reader, str(run_id), tmp, trust_pickle)
        local = reader.download_uri(ref, tmp)
        read = runstore.read_mlflow_model(local, tags.get(TAG_MODEL_SHA), trust_pickle, ref)
        return LoadedModel(read.model, [], ref, pickled=read.pickled)
    try:
        info = reader.run(ref)
    except Exception as exc:
        raise N2ReactError(f"MLflow run {ref}: {store_problem(exc, reader.uri)}") from exc
    if why := info.fold_run_problem():
        raise N2ReactError(why)
    tags = info.tags
    model_uri = tags.get("model_uri")
    if model_uri is None and (why := status_problem(info, "predict", FINAL)):
        raise N2ReactError(why)
    if model_uri is None:
        raise N2ReactError(_no_model_uri(reader, ref, tmp))
    local = reader.download_uri(model_uri, tmp)
    name = f"MLflow run {ref} ({model_uri})"  # what the user gave, not the removed download
    final = runstore.read_mlflow_model(local, tags.get(TAG_MODEL_SHA), trust_pickle, name)
    folds = []
    for entry in reader.list_artifacts(ref, "fold_models"):
        p = runstore.model_path(reader.download(ref, entry, tmp))
        if p is not None:
            folds.append(
                runstore.load_model_file(p, trust_pickle=trust_pickle, name=_name(ref, p, tmp))
            )
    domain = None
    if reader.list_artifacts(ref, "domain"):
        p = runstore.model_path(reader.download(ref, "domain", tmp), runstore.DOMAIN_FILE)
        domain = (
            runstore.load_model_file(p, trust_pickle=trust_pickle, name=_name(ref, p, tmp))
            if p
            else None
        )
    calib = None
    calib_path = f"uncertainty/{runstore.UNCERTAINTY_FILE}"
    if calib_path in reader.list_artifacts(ref, "uncertainty"):
        calib = load_calibration(reader.download(ref, calib_path, tmp))
    return LoadedModel(final.model, folds, model_uri, domain, calib, final.pickled)


def _name(run_id: str, file: Path, tmp: Path) -> str:
    """A run's artifact downloaded into ``tmp``, as errors name it (the folder is removed)."""
    try:
        return f"MLflow run {run_id} ({file.relative_to(tmp).as_posix()})"
    except ValueError:
        return f"MLflow run {run_id} ({file.name})"


def _no_model_uri(reader: Any, ref: str, tmp: Path) -> str:
    """Why the finished MLflow run ``ref`` has no tag model_uri: made with final_model=false (its
    artifact config_resolved.yaml says), or no final model was logged at all."""
    if runstore.CONFIG_FILE in reader.list_artifacts(ref):
        config = reader.download(ref, runstore.CONFIG_FILE, tmp / "config")
        if why := no_final_model(f"MLflow run {ref}", "tag model_uri", config.parent):
            return why
    return f"MLflow run {ref} has no final model (tag model_uri)"
