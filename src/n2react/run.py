"""The train task: build the plan, load the data, cross-validate, refit, log.

``run(cfg, run_dir)`` is what ``python -m train`` calls; it needs no Hydra runtime, so tests call
it directly with a composed config. Everything below it takes the :class:`~n2react.plan.Plan`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from n2react import device, runstore
from n2react.cv import CVResult, FoldResult, fit_model, nested_cv
from n2react.data import Dataset, load_dataset
from n2react.errors import ConfigError, Interrupted
from n2react.export import keras_model_of
from n2react.figures import data_title, parity_plot
from n2react.jobs import JobInfo
from n2react.leaderboard import refresh_after_resume
from n2react.new_clusters import keep_ligands
from n2react.pairsplit import pair_split
from n2react.plan import Plan, build_plan
from n2react.preflight import check_output_dir
from n2react.quiet import JOB_LINE, quiet_sweep_job
from n2react.results import fold_logger, write_results
from n2react.resume import (
    Resumed,
    check_same_config,
    done_folds,
    find_resumed,
    sync_fold_runs,
)
from n2react.search import TunedPipeline
from n2react.splitters import Split, fold_count_text, protocol_text
from n2react.terminal import FoldProgress, closing_line, group_table, show, summary_table
from n2react.trackers import open_tracker
from n2react.tracking import Tracker, run_note, tracked_params
from n2react.transfer import evaluate_transfer, fit_domain, loaded_from_run
from n2react.uncertainty import Calibration
from n2react.uncertainty_report import evaluate_run

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def run(
    cfg: DictConfig, run_dir: str | Path, job_num: int | None = None, job: JobInfo | None = None
) -> dict[str, float]:
    """Nested CV of the configured pipeline; returns the parent-run metrics (mean/std ...).

    ``job_num`` is the job's number in a multirun (it picks the GPU when several are visible);
    ``job`` names the MLflow run and tags its sweep (default: the model's name).
    """
    plan = build_plan(cfg)
    if plan.search.distributed is not None:  # search.distributed.role=chief|worker
        from n2react.distributed_job import run_distributed

        return run_distributed(
            plan, Path(run_dir), lambda: train(plan, Path(run_dir), job_num, job)
        )
    return train(plan, Path(run_dir), job_num=job_num, job=job)


def train(
    plan: Plan, run_dir: Path, job_num: int | None = None, job: JobInfo | None = None
) -> dict[str, float]:
    """The task: place the device, load and check the data, then evaluate under MLflow.

    With ``resume=<run id or run dir>`` in the config, the run continues in its own directory
    and MLflow parent run (see :mod:`n2react.resume`); ``run_dir`` is then not used.
    """
    tracker: Tracker | None = None
    resumed = None
    if plan.resume:  # the run to continue is found through its store
        tracker = open_tracker(plan.tracking, job or JobInfo(plan.names.model))
        resumed = find_resumed(plan.resume, tracker)
        check_same_config(resumed.run_dir, plan.config)
        log.info("resuming %s (MLflow run %s)", resumed.run_dir, resumed.run_id or "none")
        run_dir = resumed.run_dir
    check_output_dir(run_dir)  # writable, with room for the models, before any data work
    with runstore.held(run_dir):  # one process at a time in a run folder
        summary = _train(plan, run_dir, job_num, job, tracker, resumed)
    if resumed is not None:  # a sweep job finished apart from its sweep: its leaderboard too
        refresh_after_resume(run_dir, plan.tracking)
    return summary


def _train(
    plan: Plan,
    run_dir: Path,
    job_num: int | None,
    job: JobInfo | None,
    tracker: Tracker | None,
    resumed: Resumed | None,
) -> dict[str, float]:
    """:func:`train` once the run folder is held."""
    if resumed is None:
        _refuse_unfinished(run_dir)
    used_device = device.place(plan.device, plan.uses_accelerator, job_num)
    dataset = plan.attach_groups(load_dataset(plan.data, plan.group_column))
    splits = plan.validate(dataset)
    if tracker is None:  # the store is prepared only for a run whose data and settings passed
        tracker = open_tracker(plan.tracking, job or JobInfo(plan.names.model))
    log.info(
        "%s: %d clusters x %d descriptors from %s%s",
        dataset.name,
        dataset.n_rows,
        dataset.X.shape[1],
        dataset.source,
        f"; groups ({plan.groups}): {len(set(dataset.groups))}"
        if dataset.groups is not None
        else "",
    )
    config_path = run_dir / runstore.CONFIG_FILE
    if resumed is None:
        _forget_earlier_run(run_dir)
        runstore.write_text(config_path, OmegaConf.to_yaml(OmegaConf.create(plan.config)))
    done = done_folds(run_dir, splits) if resumed is not None else {}

    params = tracked_params(
        plan.config, **{"data.n_rows": dataset.n_rows, "data.n_features": dataset.X.shape[1]}
    )
    accel = plan.uses_accelerator
    tags = {
        "model": plan.names.model,
        "dataset": str(dataset.name),
        "device": used_device,
        "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow") if accel else "none",
        "run_dir": str(run_dir.resolve()),
        "protocol": _protocol(plan, dataset),
    }
    status, error = "FAILED", None
    try:
        if resumed is not None and resumed.run_id is not None:
            tracker.reopen(resumed.run_id, tags)
            sync_fold_runs(tracker, run_dir, done)
        else:
            note = run_note(params, tags["protocol"], len(splits) or None)
            tracker.start(params, tags, note)  # inside: a failure logging params ends FAILED
            tracker.log_artifact(config_path)
        if plan.scheme == "pair_split":
            summary = _pair_split(plan, dataset, tracker, run_dir)
        else:
            label = job.name if job is not None and job.sweep else plan.names.model
            summary = _nested(plan, dataset, splits, tracker, run_dir, done, label)
        status = "FINISHED"
        return summary
    except KeyboardInterrupt as exc:
        status = "KILLED"
        raise Interrupted(str(exc), tracker.run_id) from exc
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        tracker.finish(status, error)


def _protocol(plan: Plan, dataset: Dataset) -> str:
    """In words, what the outer folds hold out (tagged on the run, shown in titles)."""
    return protocol_text(plan.scheme, plan.groups, dataset.folds is not None)


def _refuse_unfinished(run_dir: Path) -> None:
    """A fresh run is not started over a run that stopped part-way in the same folder: its
    finished folds would be lost, where ``resume=`` continues it."""
    if (run_dir / "folds").is_dir() and not (run_dir / runstore.SUMMARY_FILE).exists():
        raise ConfigError(
            f"{run_dir} holds a run that stopped before its outer folds were done: "
            f"resume={run_dir} continues it; to start afresh, remove that folder or choose "
            "another hydra.run.dir"
        )


def _forget_earlier_run(run_dir: Path) -> None:
    """A fresh run in a folder that held an earlier one (the same hydra.run.dir again) starts
    afresh: the earlier run's keras-tuner state would be resumed as this run's searches (trials
    scored on other folds), and its fold folders read back as this run's fold models."""
    stale = [run_dir / d for d in ("search", "folds") if (run_dir / d).is_dir()]
    if stale:
        log.warning(
            "%s held an earlier run: its %s are removed (resume=<run dir> continues a run)",
            run_dir,
            " and ".join(f"{p.name}/" for p in stale),
        )
    for p in stale:
        shutil.rmtree(p)


def _tuned(plan: Plan, run_dir: Path, name: str, progress: FoldProgress) -> TunedPipeline:
    return TunedPipeline(
        plan.make_pipeline,
        plan.search,
        plan.inner,
        directory=run_dir / "search",
        project_name=name,
        on_trial_end=progress.trial_done,
    )


def cross_validate(
    plan: Plan,
    dataset: Dataset,
    run_dir: Path,
    splits: list[Split] | None = None,
    on_fold_end: Callable[[FoldResult], None] | None = None,
    progress: FoldProgress | None = None,
    done: Mapping[int, FoldResult] | None = None,
) -> CVResult:
    """The outer CV of the plan: per fold, the pipeline tuned by inner CV, then scored."""
    progress = progress or FoldProgress(0, 0, enabled=False)
    return nested_cv(
        dataset,
        lambda s: _tuned(plan, run_dir, f"outer_{s.fold:02d}", progress),
        plan.outer_splits(dataset) if splits is None else splits,
        on_fold_end=on_fold_end,
        done=done,
    )


def _nested(
    plan: Plan,
    dataset: Dataset,
    splits: list[Split],
    tracker: Tracker,
    run_dir: Path,
    done: Mapping[int, FoldResult] | None = None,
    label: str | None = None,
) -> dict[str, float]:
    """The nested CV, its outputs, and the final model refitted on all clusters (``done``: the
    folds a resumed run read back; ``label``: the model, or in a sweep the job's swept values,
    for the titles)."""
    progress = FoldProgress(len(splits), plan.search.size(), enabled=plan.progress)
    title = (
        f"{label or plan.names.model} on {data_title(dataset.name, plan.data)}: "
        f"{_protocol(plan, dataset)}, {fold_count_text(splits)}"
    )
    with progress.running():
        logger = fold_logger(tracker, run_dir, progress.fold_done)
        for _ in done or {}:
            progress.fold_done()
        result = cross_validate(plan, dataset, run_dir, splits, logger, progress, done)
        summary = result.summary()
        calib, extra, files = None, None, []
        if plan.uncertainty is not None:
            calib, metrics, files, extra = evaluate_run(
                result, plan.uncertainty, plan.ligands, run_dir, title, _protocol(plan, dataset),
                plan.progress,
            )  # fmt: skip
            summary.update(metrics)
        tracker.log_metrics(summary)
        for p in write_results(result, summary, run_dir, title, extra):
            tracker.log_artifact(p)
        for p in files:
            tracker.log_artifact(p, "uncertainty")
        final = None
        if plan.final_model:
            progress.start_final()
            final = _tuned(plan, run_dir, "final", progress)
            fit_model(final, dataset.X, dataset.y, dataset.groups)
            keep_ligands(final.pipeline_, plan.ligands)  # saved with it, for predict
            progress.final_done()
            held_out = None
            if calib is not None and plan.uncertainty.calibration_path:
                calib, held_out, metrics = _calibration_set(
                    plan, final.pipeline_, calib, tracker, run_dir, title
                )
                summary.update(metrics)
            _save_final(plan, final, dataset, tracker, run_dir, calib)
            if plan.eval_path:
                summary.update(
                    _transfer(plan, final.pipeline_, result, tracker, run_dir, calib, held_out)
                )
        if plan.explain:
            pipe = None if final is None else final.pipeline_
            _explain(plan, result, pipe, tracker, run_dir, title)
    groups = result.group_table()
    if not quiet_sweep_job():  # a sweep's jobs are ranked by its leaderboard instead
        show(summary_table(result.fold_table(), summary, title))
        if groups is not None:
            show(group_table(groups, f"pooled out-of-fold scores per group ({plan.groups})"))
    log.info(
        "%s (outputs in %s)", closing_line(summary, groups is not None), run_dir, extra=JOB_LINE
    )
    return summary


def _save_final(
    plan: Plan,
    final: TunedPipeline,
    dataset: Dataset,
    tracker: Tracker,
    run_dir: Path,
    calib: Calibration | None = None,
) -> None:
    """The final model file, final_params.json, the domain and interval calibration, the logged
    model flavours."""
    model = final.pipeline_
    runstore.save_model(model, run_dir / runstore.MODEL_FILE)
    params: dict[str, Any] = final.search_.best_params
    tracker.log_artifact(runstore.write_json(run_dir / runstore.FINAL_PARAMS_FILE, params))
    domain = fit_domain(dataset, run_dir, plan.ligands)
    for p in (domain, runstore.sha256_path(domain)):  # predict checks one by the other
        tracker.log_artifact(p, "domain")
    if calib is not None:  # plain JSON: predict reads it without unpickling anything
        tracker.log_artifact(calib.save(run_dir / runstore.UNCERTAINTY_FILE), "uncertainty")
    if tracker.store is not None and tracker.store.log_model:
        tracker.log_model(model, dataset.X, keras_model_of(model, dataset.X))


def _calibration_set(
    plan: Plan, final: Any, calib: Calibration, tracker: Tracker, run_dir: Path, title: str
) -> tuple[Calibration, pd.DataFrame, dict[str, float]]:
    """Recalibrate the intervals on uncertainty.calibration_path (n2react.calibration_set); its
    cross-fitted table and figures, logged and added to summary.json; its coverage curve drawn
    first in uncertainty/calibration.png (these are the intervals the run's model gives)."""
    from n2react import calibration_set as cs
    from n2react.uncertainty_report import draw_calibration

    spec = plan.uncertainty
    calib, table = cs.recalibrate(calib, final, str(spec.calibration_path), spec.coverage)
    metrics = cs.crossfit_metrics(table)
    out = run_dir / "uncertainty"
    out.mkdir(parents=True, exist_ok=True)
    tracker.log_artifact(runstore.write_csv(out / cs.TABLE_FILE, table), "uncertainty")
    label = (
        f"{calib.source} ({len(table)} clusters), the run's intervals: "
        "each composition unit calibrated on the other units"
    )
    for p in draw_calibration(out, title, label, cs.curve(table), first=True):
        tracker.log_artifact(p, "uncertainty")
    tracker.log_metrics(metrics)
    _add_to_summary(run_dir, metrics)
    log.info(
        "intervals calibrated on %s (%d clusters); cross-fitted over its composition units: "
        "%g%% intervals cover %.0f%%, mean width %.2f",
        calib.source, len(table), 100 * spec.coverage,
        100 * metrics["calibration_set_coverage"], metrics["calibration_set_width"],
    )  # fmt: skip
    return calib, table, metrics


def _add_to_summary(run_dir: Path, metrics: dict[str, float]) -> None:
    summary = json.loads((run_dir / runstore.SUMMARY_FILE).read_text())
    runstore.write_json(run_dir / runstore.SUMMARY_FILE, {**summary, **metrics})


def _transfer(
    plan: Plan,
    final: Any,
    result: CVResult,
    tracker: Tracker,
    run_dir: Path,
    calib: Calibration | None = None,
    held_out: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Score the final model on eval.path, a second labelled spreadsheet (new compositions);
    ``held_out``: the cross-fitted table of the interval calibration file, used when eval.path
    holds the same clusters (:func:`n2react.transfer.evaluate_transfer`)."""
    folds = [f.model for f in result.folds if f.model is not None]
    loaded = loaded_from_run(final, folds, run_dir / runstore.DOMAIN_FILE, calib)
    coverage = plan.uncertainty.coverage if plan.uncertainty is not None else 0.9
    n, data = len(result.dataset.y), data_title(plan.names.data, plan.data)
    trained = f"{plan.names.model} trained on all {n} clusters of {data}"
    metrics, files = evaluate_transfer(
        loaded, str(plan.eval_path), run_dir, coverage, held_out, trained
    )
    tracker.log_metrics(metrics)
    for p in files:
        tracker.log_artifact(p, "transfer")
    _add_to_summary(run_dir, metrics)
    return metrics


def _explain(
    plan: Plan, result: CVResult, final: Any, tracker: Tracker, run_dir: Path, title: str
) -> None:
    """Importance, errors by group and family, learning curves: files under explain/ and the
    Keras losses per epoch as step metrics (``python -m n2react.explain RUN`` redraws them)."""
    from n2react.explain import RunData, explain, histories, loss_curves

    fold_models = {f.split.fold: f.model for f in result.folds if f.model is not None}
    data = RunData(
        str(run_dir),
        plan.config,
        result.dataset,
        result.oof_table(),
        final,
        fold_models,
    )
    for p in explain(data, run_dir / "explain", title=title):
        tracker.log_artifact(p, "explain")
    tracker.log_curves(loss_curves(histories(final, fold_models)))


def _pair_split(plan: Plan, dataset: Dataset, tracker: Tracker, run_dir: Path) -> dict:
    """The paper's pair-level random split (reproduction only; see n2react.pairsplit)."""
    summary, pairs = pair_split(dataset, plan)
    tracker.set_tags({"cv.scheme": "pair_split"})
    tracker.log_metrics(summary)
    runstore.write_csv(run_dir / "test_pairs.csv", pairs)
    runstore.write_json(run_dir / runstore.SUMMARY_FILE, summary)
    title = (
        f"{plan.names.model} on {data_title(dataset.name, plan.data)}: random 80/20 split of "
        "PAIRS (paper protocol)"
    )
    plot = parity_plot(
        pairs.rename(columns={"cluster_i": "cluster"}),
        None,
        run_dir / "parity.png",
        title=title,
        quantity="lg(k1)_i - lg(k1)_j",
    )
    for p in (run_dir / "test_pairs.csv", run_dir / runstore.SUMMARY_FILE, plot):
        tracker.log_artifact(p)
    log.info(
        "pair split: test r %.3f, RMSE %.3f on %d held-out pairs (%.0f%% with both clusters seen)",
        summary["mean_test_r"],
        summary["mean_test_rmse"],
        len(pairs),
        100 * summary["test_pairs_with_both_clusters_seen"],
        extra=JOB_LINE,
    )
    return summary
