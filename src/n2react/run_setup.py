"""The train task's setup, before any fold is fitted: the run folder prepared (an unfinished
run refused, an earlier run's searches and folds cleared, the config written) and the run's
MLflow run started or reopened with its params, tags and input files.

Split from :mod:`n2react.run` (which calls these from ``_train``); its log lines keep the
``n2react.run`` logger, as they are the train task's.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from n2react import runstore
from n2react.credentials import redact
from n2react.cv import FoldResult
from n2react.data import Dataset, takes_published_descriptors
from n2react.data.tables import short_list
from n2react.errors import ConfigError
from n2react.plan import Plan
from n2react.resume import Resumed, done_folds, sync_fold_runs
from n2react.splitters import Split, fold_count_text, fold_counts, protocol_text
from n2react.tracking import TAG_VERSION, Tracker, run_note, tracked_params

log = logging.getLogger("n2react.run")  # its lines are the train task's


def log_dataset(plan: Plan, dataset: Dataset) -> None:
    """The data set's line: its clusters, descriptors, source and groups; and the descriptors'
    names when the data config does not list them (every column of the sheet but the name and
    the target is one: a sheet lacking one would otherwise run on fewer without a word), unless
    the sheet is the data set's published file read the standard way, whose descriptors are
    known (:func:`n2react.data.takes_published_descriptors`: the default data says nothing)."""
    groups = dataset.groups
    grouped = f"; groups ({plan.groups}): {len(set(groups))}" if groups is not None else ""
    n, d = dataset.n_rows, dataset.X.shape[1]
    log.info(
        "%s: %d clusters x %d descriptors from %s%s", dataset.name, n, d, dataset.source, grouped
    )
    if plan.data.get("feature_columns") is None and not takes_published_descriptors(
        plan.data, dataset, plan.group_column
    ):  # a column the sheet lacks is not noticed
        log.info(
            "descriptors (every column of the sheet but the name and the target; list them in "
            "data.feature_columns=[...] to require them): %s",
            short_list(dataset.feature_names, limit=30),
        )


def device_record(plan: Plan, used_device: str) -> dict[str, str]:
    """The device a run uses, as run.json, the MLflow tags and its log line give it: ``device``
    (``cpu`` or ``gpu N: <name>``) and ``keras_backend`` (``none`` for scikit-learn models)."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow") if plan.uses_accelerator else "none"
    return {"device": used_device, "keras_backend": backend}


def prepare_folder(
    plan: Plan,
    run_dir: Path,
    splits: list[Split],
    resumed: Resumed | None,
    device: Mapping[str, str] | None = None,
) -> dict[int, FoldResult]:
    """A fresh run clears an earlier run's searches and folds and writes its config and the
    n2react version and ``device`` (:func:`device_record`) starting it (run.json); a resumed
    one reads back its finished folds (returned)."""
    if resumed is not None and not resumed.fresh:
        return done_folds(run_dir, splits)
    _forget_earlier_run(run_dir)
    config = redact(OmegaConf.to_yaml(OmegaConf.create(plan.config)))  # tracking.uri's password
    runstore.write_text(run_dir / runstore.CONFIG_FILE, config)
    runstore.write_made_by(run_dir, device)
    return {}


def params_and_tags(
    plan: Plan, dataset: Dataset, splits: list[Split], used_device: str, run_dir: Path
) -> tuple[dict[str, Any], dict[str, str]]:
    """The MLflow run's parameters (the config flattened, the data's shape) and tags."""
    # the folds run per repeat, not the setting: one per metal (6) with cv.groups=metal, the
    # authors' own with data=authors_folds, whatever cv.outer_folds says
    ran = {"cv.outer_folds": fold_counts(splits)[0]} if splits else {}
    params = tracked_params(
        plan.config, **{"data.n_rows": dataset.n_rows, "data.n_features": dataset.X.shape[1]}, **ran
    )
    made = runstore.made_by(run_dir)  # what started the run (None: an older n2react's run)
    tags = {
        **({TAG_VERSION: made} if made else {}),
        "model": plan.names.model,
        "dataset": str(dataset.name),
        **device_record(plan, used_device),
        "run_dir": str(run_dir.resolve()),
        "protocol": run_protocol(plan, dataset),
    }
    return params, tags


def open_run(
    tracker: Tracker,
    resumed: Resumed | None,
    params: dict[str, Any],
    tags: dict[str, str],
    run_dir: Path,
    done: Mapping[int, FoldResult],
    splits: list[Split],
) -> None:
    """Reopen a resumed run's MLflow run (its finished folds' child runs checked), or start one
    (a failure logging its params ends it FAILED) with the config as its first artifact."""
    if resumed is not None and resumed.run_id is not None:
        tracker.reopen(resumed.run_id, tags)
        sync_fold_runs(tracker, run_dir, done)
    else:
        folds = fold_count_text(splits, "outer folds") if splits else ""
        tracker.start(params, tags, run_note(params, tags["protocol"], folds))
        tracker.log_artifact(run_dir / runstore.CONFIG_FILE)
        if done:  # resumed into a new parent (none was logged, or it was deleted): its fold runs
            sync_fold_runs(tracker, run_dir, done)


def log_inputs(tracker: Tracker, plan: Plan, dataset: Dataset) -> None:
    """The files the run reads, as MLflow datasets: the training table, eval.path's and
    uncertainty.calibration_path's."""
    from n2react.calibration_set import locate

    table = dataset.X.assign(**{dataset.target_name: dataset.y})
    table.insert(0, "cluster", dataset.clusters)
    tracker.log_dataset(str(dataset.name), dataset.source, "training", table)
    uses: dict[str, list[str]] = {}  # one file may serve both (experiment=new_compositions)
    if plan.eval_path:
        uses.setdefault(str(locate(plan.eval_path)), []).append("evaluation")
    calibration = plan.uncertainty.calibration_path if plan.uncertainty else None
    if calibration:
        uses.setdefault(str(locate(calibration)), []).append("calibration")
    for path, contexts in uses.items():
        tracker.log_dataset(Path(path).stem, path, ", ".join(contexts))


def run_protocol(plan: Plan, dataset: Dataset) -> str:
    """In words, what the outer folds hold out (tagged on the run, shown in titles)."""
    return protocol_text(plan.scheme, plan.groups, dataset.folds is not None)


def refuse_unfinished(run_dir: Path) -> None:
    """A fresh run is not started over a run that stopped part-way in the same folder: its
    finished folds would be lost, where ``resume=`` continues it."""
    if (run_dir / "folds").is_dir() and not (run_dir / runstore.SUMMARY_FILE).exists():
        raise ConfigError(
            f"{run_dir} holds a run that stopped before its outer folds were done: "
            f"resume={run_dir} continues it; to start afresh, remove that folder or choose "
            "another hydra.run.dir"
        )


#: an earlier run's files that mark it finished or that compare and predict read
_FINISHED_FILES = (
    runstore.SUMMARY_FILE,
    runstore.OOF_FILE,
    runstore.UNCERTAINTY_FILE,
    *(
        f"{name}{suffix}"
        for name in (
            runstore.MODEL_FILE,
            runstore.DOMAIN_FILE,
            runstore.LEGACY_MODEL_FILE,
            runstore.LEGACY_DOMAIN_FILE,
        )
        for suffix in ("", ".sha256")
    ),
)


def _forget_earlier_run(run_dir: Path) -> None:
    """A fresh run in a folder that held an earlier one (the same hydra.run.dir again) starts
    afresh: the earlier run's keras-tuner state would be resumed as this run's searches (trials
    scored on other folds), and its fold folders read back as this run's fold models."""
    stale = [run_dir / d for d in ("search", "folds") if (run_dir / d).is_dir()]
    # and what marks it finished and what compare/predict read: while this run was under way
    # (or after it stopped) they showed the earlier run's figures and model as this run's
    done = [run_dir / f for f in _FINISHED_FILES if (run_dir / f).is_file()]
    if stale or done:
        log.warning(
            "%s held an earlier run: its %s are removed (resume=<run dir> continues a run)",
            run_dir,
            ", ".join([f"{p.name}/" for p in stale] + [p.name for p in done]),
        )
    for p in stale:
        shutil.rmtree(p)
    for p in done:
        p.unlink()
