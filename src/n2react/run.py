"""The train task: build the plan, load the data, cross-validate, evaluate, refit, log.

``run(cfg, run_dir)`` is what ``python -m train`` calls; it needs no Hydra runtime, so tests call
it directly with a composed config. Everything below it takes the :class:`~n2react.plan.Plan`.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from n2react import device, runstore
from n2react.bootstrap import few_units_note
from n2react.credentials import redact
from n2react.cv import CVResult, FoldResult, fit_model, nested_cv
from n2react.data import Dataset, load_dataset
from n2react.errors import ConfigError, Interrupted
from n2react.figures import data_title, parity_plot
from n2react.final_model import save_and_score
from n2react.jobs import JobInfo
from n2react.leaderboard import refresh_after_resume
from n2react.new_clusters import keep_ligands
from n2react.pairsplit import pair_split
from n2react.plan import Plan, build_plan
from n2react.preflight import check_output_dir
from n2react.quiet import JOB_LINE, quiet_sweep_job
from n2react.results import fold_logger, write_results
from n2react.resume import Resumed, check_same_config, done_folds, find_resumed, sync_fold_runs
from n2react.search import TunedPipeline
from n2react.splitters import Split, fold_count_text, fold_counts, protocol_text
from n2react.terminal import FoldProgress, closing_line, group_table, show, summary_table
from n2react.trackers import open_tracker
from n2react.tracking import TAG_VERSION, Tracker, run_note, tracked_params
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
        if resumed.fresh:
            log.info("running sweep job %s again from the start, in its folder", resumed.run_dir)
        else:
            store = f"MLflow run {resumed.run_id}" if resumed.run_id else "no MLflow run"
            log.info("resuming %s (%s)", resumed.run_dir, store)
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
    """:func:`train` once the run folder is held: build (device, data, folds, run folder), then
    evaluate the protocol in the run's MLflow run, ended FINISHED, FAILED or KILLED."""
    if resumed is None:
        _refuse_unfinished(run_dir)
    used_device = device.place(plan.device, plan.uses_accelerator, job_num)
    dataset = plan.attach_groups(load_dataset(plan.data, plan.group_column))
    splits = plan.validate(dataset)
    if tracker is None:  # the store is prepared only for a run whose data and settings passed
        tracker = open_tracker(plan.tracking, job or JobInfo(plan.names.model))
    _log_dataset(plan, dataset)
    done = _prepare_folder(plan, run_dir, splits, resumed)
    params, tags = _params_and_tags(plan, dataset, splits, used_device, run_dir)
    label = job.name if job is not None and job.sweep else plan.names.title
    status, error = "FAILED", None
    try:
        _open_run(tracker, resumed, params, tags, run_dir, done, splits)
        if resumed is None or resumed.run_id is None:
            _log_inputs(tracker, plan, dataset)
        if plan.scheme == "pair_split":
            summary = _pair_split(plan, dataset, tracker, run_dir)
        else:
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


def _log_dataset(plan: Plan, dataset: Dataset) -> None:
    groups = dataset.groups
    grouped = f"; groups ({plan.groups}): {len(set(groups))}" if groups is not None else ""
    n, d = dataset.n_rows, dataset.X.shape[1]
    log.info(
        "%s: %d clusters x %d descriptors from %s%s", dataset.name, n, d, dataset.source, grouped
    )


def _prepare_folder(
    plan: Plan, run_dir: Path, splits: list[Split], resumed: Resumed | None
) -> dict[int, FoldResult]:
    """A fresh run clears an earlier run's searches and folds and writes its config and the
    n2react version starting it; a resumed one reads back its finished folds (returned)."""
    if resumed is not None and not resumed.fresh:
        return done_folds(run_dir, splits)
    _forget_earlier_run(run_dir)
    config = redact(OmegaConf.to_yaml(OmegaConf.create(plan.config)))  # tracking.uri's password
    runstore.write_text(run_dir / runstore.CONFIG_FILE, config)
    runstore.write_made_by(run_dir)
    return {}


def _params_and_tags(
    plan: Plan, dataset: Dataset, splits: list[Split], used_device: str, run_dir: Path
) -> tuple[dict[str, Any], dict[str, str]]:
    """The MLflow run's parameters (the config flattened, the data's shape) and tags."""
    # the folds run per repeat, not the setting: one per metal (6) with cv.groups=metal, the
    # authors' own with data=authors_folds, whatever cv.outer_folds says
    ran = {"cv.outer_folds": fold_counts(splits)[0]} if splits else {}
    params = tracked_params(
        plan.config, **{"data.n_rows": dataset.n_rows, "data.n_features": dataset.X.shape[1]}, **ran
    )
    accel = plan.uses_accelerator
    made = runstore.made_by(run_dir)  # what started the run (None: an older n2react's run)
    tags = {
        **({TAG_VERSION: made} if made else {}),
        "model": plan.names.model,
        "dataset": str(dataset.name),
        "device": used_device,
        "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow") if accel else "none",
        "run_dir": str(run_dir.resolve()),
        "protocol": _protocol(plan, dataset),
    }
    return params, tags


def _open_run(
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


def _log_inputs(tracker: Tracker, plan: Plan, dataset: Dataset) -> None:
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


def _tuned(
    plan: Plan, run_dir: Path, name: str, progress: FoldProgress | None = None
) -> TunedPipeline:
    return TunedPipeline(
        plan.make_pipeline,
        plan.search,
        plan.inner,
        directory=run_dir / "search",
        project_name=name,
        on_trial_end=progress.trial_done if progress is not None else None,
    )


def fold_procedure(plan: Plan, run_dir: Path) -> Callable[[str], TunedPipeline] | None:
    """A searched run's fold procedure (search by inner CV, then refit), its search state in
    the project it is given, for the nested validation to run again without two folds; None
    without a search (the validation refits each fold's pipeline as it is)."""
    if not plan.search.active:
        return None
    return lambda name: _tuned(plan, run_dir, name)


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
    """The nested CV: fit and score the outer folds, validate the intervals, log the run's
    outputs, fit the final model on all clusters (then save and score it), explain, report.
    ``done``: the folds a resumed run read back; ``label``: the model, or in a sweep the job's
    swept values, for the titles."""
    progress = FoldProgress(len(splits), plan.search.size(), enabled=plan.progress)
    title = (
        f"{label or plan.names.title} on {data_title(dataset.name, plan.data)}: "
        f"{_protocol(plan, dataset)}, {fold_count_text(splits)}"
    )
    with progress.running():
        result = _fit_folds(plan, dataset, splits, tracker, run_dir, progress, done)
        scores = _evaluate(plan, result, run_dir, title)
        _log_scores(tracker, result, scores, run_dir, title)
        summary, final = scores.summary, None
        if plan.final_model:
            final = _fit_final(plan, dataset, run_dir, progress)
            saved = save_and_score(plan, final, result, scores.calib, tracker, run_dir, title)
            summary = {**summary, **saved}
        if plan.explain:
            pipe = None if final is None else final.pipeline_
            _explain(plan, result, pipe, tracker, run_dir, title)
    _report(plan, result, summary, title, run_dir)
    return summary


def _fit_folds(
    plan: Plan,
    dataset: Dataset,
    splits: list[Split],
    tracker: Tracker,
    run_dir: Path,
    progress: FoldProgress,
    done: Mapping[int, FoldResult] | None,
) -> CVResult:
    """The outer CV, each fold written and logged as a child run when it ends (the ones a
    resumed run read back counted as done)."""
    logger = fold_logger(tracker, run_dir, progress.fold_done)
    for _ in done or {}:
        progress.fold_done()
    return cross_validate(plan, dataset, run_dir, splits, logger, progress, done)


@dataclass(frozen=True)
class Scores:
    """The outer CV's scores: ``summary`` (mean/std, pooled, interval validation), the interval
    calibration, the validation's files (uncertainty/) and its per-group columns."""

    summary: dict[str, float]
    calib: Calibration | None = None
    files: list[Path] = field(default_factory=list)
    group_extra: pd.DataFrame | None = None


def _evaluate(plan: Plan, result: CVResult, run_dir: Path, title: str) -> Scores:
    """The outer CV's scores; with uncertainty, the intervals calibrated on its out-of-fold
    residuals and validated cross-fitted (:func:`n2react.uncertainty_report.evaluate_run`)."""
    summary = result.summary()
    if plan.uncertainty is None:
        return Scores(summary)
    calib, metrics, files, extra = evaluate_run(
        result, plan.uncertainty, plan.ligands, run_dir, title, _protocol(plan, result.dataset),
        plan.progress, fold_procedure(plan, run_dir),
    )  # fmt: skip
    return Scores({**summary, **metrics}, calib, files, extra)


def _log_scores(
    tracker: Tracker, result: CVResult, scores: Scores, run_dir: Path, title: str
) -> None:
    """The run's metrics; its tables, summary.json and figures, written and logged."""
    tracker.log_metrics(scores.summary)
    for p in write_results(result, scores.summary, run_dir, title, scores.group_extra):
        tracker.log_artifact(p)
    for p in scores.files:
        tracker.log_artifact(p, "uncertainty")


def _fit_final(
    plan: Plan, dataset: Dataset, run_dir: Path, progress: FoldProgress
) -> TunedPipeline:
    """The final model: the pipeline tuned by inner CV on all clusters, then refitted on them."""
    progress.start_final()
    final = _tuned(plan, run_dir, "final", progress)
    fit_model(final, dataset.X, dataset.y, dataset.groups)
    keep_ligands(final.pipeline_, plan.ligands)  # saved with it, for predict
    progress.final_done()
    return final


def _report(
    plan: Plan, result: CVResult, summary: dict[str, float], title: str, run_dir: Path
) -> None:
    """The scores table (per group too) in the terminal, and the closing line."""
    groups = result.group_table()
    if not quiet_sweep_job():  # a sweep's jobs are ranked by its leaderboard instead
        note = few_units_note(result.oof_table())  # 3 folds' "95% CI" is no such thing
        show(summary_table(result.fold_table(), summary, title, note))
        if groups is not None:
            show(group_table(groups, f"pooled out-of-fold scores per group ({plan.groups})"))
    log.info(
        "%s (outputs in %s)", closing_line(summary, groups is not None), run_dir, extra=JOB_LINE
    )


def _explain(
    plan: Plan, result: CVResult, final: Any, tracker: Tracker, run_dir: Path, title: str
) -> None:
    """Importance, errors by group and family, learning curves: files under explain/ and the
    Keras losses per epoch as step metrics (``python -m n2react.explain RUN`` redraws them)."""
    from n2react.explain import RunData, explain, histories, loss_curves

    fold_models = {f.split.fold: f.model for f in result.folds if f.model is not None}
    oof = result.oof_table()
    data = RunData(str(run_dir), plan.config, result.dataset, oof, final, fold_models)
    for p in explain(data, run_dir / "explain", title=title):
        tracker.log_artifact(p, "explain")
    tracker.log_curves(loss_curves(histories(final, fold_models)))


def _pair_split(plan: Plan, dataset: Dataset, tracker: Tracker, run_dir: Path) -> dict:
    """The paper's pair-level random split (reproduction only; see n2react.pairsplit): fit and
    score, then its files written and logged, and its line."""
    summary, pairs = pair_split(dataset, plan)
    tracker.set_tags({"cv.scheme": "pair_split"})
    tracker.log_metrics(summary)
    runstore.write_csv(run_dir / "test_pairs.csv", pairs)
    runstore.write_json(run_dir / runstore.SUMMARY_FILE, summary)
    data = data_title(dataset.name, plan.data)
    title = f"{plan.names.title} on {data}: random 80/20 split of PAIRS (paper protocol)"
    test = pairs.rename(columns={"cluster_i": "cluster"})
    difference = "lg(k1)_i - lg(k1)_j"
    # a difference of logarithms, lg(k1_i / k1_j), has no unit
    plot = parity_plot(test, None, run_dir / "parity.png", title, quantity=difference, unit="",
                       points="held-out pairs")  # fmt: skip
    for p in (run_dir / "test_pairs.csv", run_dir / runstore.SUMMARY_FILE, plot):
        tracker.log_artifact(p)
    log.info(
        "pair split: test r %.3f, RMSE %.3f on %d held-out pairs (%.0f%% with both clusters seen)",
        summary["mean_test_r"], summary["mean_test_rmse"], len(pairs),
        100 * summary["test_pairs_with_both_clusters_seen"], extra=JOB_LINE,
    )  # fmt: skip
    return summary
