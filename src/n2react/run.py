"""The train task: build the plan, load the data, cross-validate, evaluate, refit, log.

``run(cfg, run_dir)`` is what ``python -m train`` calls; it needs no Hydra runtime, so tests call
it directly with a composed config. Everything below it takes the :class:`~n2react.plan.Plan`.
The run folder and the MLflow run are prepared by :mod:`n2react.run_setup`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from n2react import device, runstore
from n2react.bootstrap import few_units_note
from n2react.credentials import redact
from n2react.cv import CVResult, FoldResult, fit_model, nested_cv, unconverged
from n2react.data import Dataset, load_dataset
from n2react.errors import Interrupted, N2ReactError, first_line, storage_problem
from n2react.figures import data_title, parity_plot
from n2react.final_model import save_and_score
from n2react.jobs import JobInfo
from n2react.leaderboard import EXPLAIN_FAILED_FILE, refresh_after_resume
from n2react.metrics import figure
from n2react.new_clusters import keep_ligands
from n2react.pairsplit import pair_split
from n2react.plan import Plan, build_plan
from n2react.preflight import check_output_dir
from n2react.quiet import JOB_LINE, quiet_sweep_job
from n2react.results import fold_logger, write_results
from n2react.resume import Resumed, check_same_config, find_resumed
from n2react.run_setup import (
    device_record,
    log_dataset,
    log_inputs,
    open_run,
    params_and_tags,
    prepare_folder,
    refuse_unfinished,
    run_protocol,
)
from n2react.search import TunedPipeline
from n2react.splitters import Split, fold_count_text, held_out_text
from n2react.store_uri import absolute_uri
from n2react.terminal import (
    FoldProgress,
    closing_line,
    group_table,
    refit_bar,
    show,
    summary_table,
)
from n2react.titles import label_for_selection
from n2react.trackers import open_tracker
from n2react.tracking import TAG_EXPLAIN_ERROR, Tracker
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
        refuse_unfinished(run_dir)
    used_device = device.place(plan.device, plan.uses_accelerator, job_num)
    on = device_record(plan, used_device)
    if plan.uses_accelerator:  # (scikit-learn models: always the CPU; run.json says so)
        log.info(
            "%s runs on %s (Keras backend %s)", plan.names.model, on["device"], on["keras_backend"]
        )
    dataset = plan.attach_groups(load_dataset(plan.data, plan.group_column))
    splits = plan.validate(dataset)
    if tracker is None:  # the store is prepared only for a run whose data and settings passed
        tracker = open_tracker(plan.tracking, job or JobInfo(plan.names.model))
    log_dataset(plan, dataset)
    done = prepare_folder(plan, run_dir, splits, resumed, on)
    params, tags = params_and_tags(plan, dataset, splits, used_device, run_dir)
    label = job.name if job is not None and job.sweep else plan.names.title
    status, error = "FAILED", None
    try:
        open_run(tracker, resumed, params, tags, run_dir, done, splits)
        if resumed is None or resumed.run_id is None:
            log_inputs(tracker, plan, dataset)
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
    setting = (
        f" on {data_title(dataset.name, plan.data)}: {run_protocol(plan, dataset)}, "
        f"{fold_count_text(splits)}"
    )
    model = label or plan.names.title
    title = model + setting
    # the selection figure's own title names the selector: the model (or a sweep job's swept
    # values) is said without it
    selection = (
        plan.names.unselected
        if model == plan.names.title
        else label_for_selection(model, plan.names.selector)
    ) + setting
    with progress.running():
        result = _fit_folds(plan, dataset, splits, tracker, run_dir, progress, done)
        scores = _evaluate(plan, result, run_dir, title)
        _log_scores(tracker, result, scores, run_dir, title, selection, plan.names.selector)
        summary, final = scores.summary, None
        if plan.final_model:
            final = _fit_final(plan, dataset, run_dir, progress)
            saved = save_and_score(plan, final, result, scores.calib, tracker, run_dir, title)
            summary = {**summary, **saved}
        failed = None
        if plan.explain:
            pipe = None if final is None else final.pipeline_
            failed = _explain(plan, result, pipe, tracker, run_dir, title)
    _report(plan, result, summary, title, run_dir)
    if failed is not None:  # last, under the scores it does not change
        log.warning(
            "explain failed: %s; the run's results stand (its folds, scores and model are "
            "saved); once that is fixed, draw the figures with: python -m n2react.explain %s",
            failed,
            run_dir,
        )
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
        result, plan.uncertainty, plan.ligands, run_dir, title, run_protocol(plan, result.dataset),
        plan.progress, fold_procedure(plan, run_dir),
    )  # fmt: skip
    # what its residuals held out: predict's new-element warning reads whether it was a metal
    held = held_out_text(plan.scheme, plan.groups, result.dataset.folds is not None)
    return Scores({**summary, **metrics}, replace(calib, held_out=held), files, extra)


def _log_scores(
    tracker: Tracker,
    result: CVResult,
    scores: Scores,
    run_dir: Path,
    title: str,
    selection_title: str | None = None,
    selector: str = "",
) -> None:
    """The run's metrics; its tables, summary.json and figures, written and logged."""
    tracker.log_metrics(scores.summary)
    for p in write_results(
        result, scores.summary, run_dir, title, scores.group_extra, selection_title, selector
    ):
        tracker.log_artifact(p)
    for p in scores.files:
        tracker.log_artifact(p, "uncertainty")


def _fit_final(
    plan: Plan, dataset: Dataset, run_dir: Path, progress: FoldProgress
) -> TunedPipeline:
    """The final model: the pipeline tuned by inner CV on all clusters, then refitted on them
    (its network checked like the outer folds')."""
    progress.start_final()
    final = _tuned(plan, run_dir, "final", progress)
    fit_model(final, dataset.X, dataset.y, dataset.groups)
    where = f"final model (all {dataset.n_rows} clusters)"
    unconverged(where, final.pipeline_, final.search_.best_params)
    keep_ligands(final.pipeline_, plan.ligands)  # saved with it, for predict
    progress.final_done()
    return final


def _report(
    plan: Plan, result: CVResult, summary: dict[str, float], title: str, run_dir: Path
) -> None:
    """The scores table (per group too) in the terminal, and the closing line."""
    groups = result.group_table()
    if not quiet_sweep_job():  # a sweep's jobs are ranked by its leaderboard instead
        # 3 folds' "95% CI" is no such thing; r of constant predictions none at all
        notes = (few_units_note(result.oof_table()), result.constant_note())
        note = "\n".join(n for n in notes if n)
        show(summary_table(result.fold_table(), summary, title, note))
        if groups is not None:
            show(group_table(groups, f"pooled out-of-fold scores per group ({plan.groups})"))
    log.info(
        "%s (outputs in %s)", closing_line(summary, groups is not None), run_dir, extra=JOB_LINE
    )


def _explain(
    plan: Plan, result: CVResult, final: Any, tracker: Tracker, run_dir: Path, title: str
) -> str | None:
    """Importance, errors by group and family, learning curves: files under explain/ and the
    Keras losses per epoch as step metrics (``python -m n2react.explain RUN`` redraws them).

    Explaining comes after the run's results are saved and logged, and does not change them:
    when it fails, the run is not failed with it. Returns why it failed (tagged
    ``explain_error`` on the MLflow run, and written to explain_failed.json with the MLflow run,
    whose tag ``python -m n2react.explain RUN`` removes once it explains it, as a ``resume=``
    whose explain succeeds does), else None."""
    from n2react.explain import RunData, clear_explain_failure, explain, histories, loss_curves

    fold_models = {f.split.fold: f.model for f in result.folds if f.model is not None}
    oof = result.oof_table()
    data = RunData(str(run_dir), plan.config, result.dataset, oof, final, fold_models)
    note = run_dir / EXPLAIN_FAILED_FILE  # what a sweep's leaderboard shows of it
    try:
        for p in explain(data, run_dir / "explain", title=title):
            tracker.log_artifact(p, "explain")
    except Exception as exc:
        log.debug("explain failed", exc_info=True)  # a bug's traceback: in train.log, and -v
        why = str(exc) if isinstance(exc, N2ReactError) else storage_problem(exc)
        why = why or f"{type(exc).__name__}: {first_line(exc)}"
        tracker.set_tags({TAG_EXPLAIN_ERROR: redact(why)[:5000]})
        mlflow_run = {"mlflow_run_id": tracker.run_id} if tracker.active else {}
        if tracker.store is not None and mlflow_run:
            mlflow_run["tracking_uri"] = redact(absolute_uri(tracker.store.uri))
        runstore.write_json(note, {"error": redact(why)[:500], **mlflow_run})
        return why
    if note.is_file():  # an earlier explain failed (resume=): its note and MLflow tag go
        store = tracker.store if tracker.active else None
        mine = (store.uri, tracker.run_id) if store is not None and tracker.run_id else None
        clear_explain_failure(run_dir, mine)
    tracker.log_curves(loss_curves(histories(final, fold_models)))
    return None


def _pair_split(plan: Plan, dataset: Dataset, tracker: Tracker, run_dir: Path) -> dict:
    """The paper's pair-level random split (reproduction only; see n2react.pairsplit): fit and
    score, then its files written and logged, and its line."""
    with refit_bar(1, plan.progress, "pair split (one fit)") as done:  # a clock for minutes
        summary, pairs = pair_split(dataset, plan)
        done()
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
        "pair split: test r %s, RMSE %s on %d held-out pairs (%.0f%% with both clusters seen)",
        figure(summary["mean_test_r"]), figure(summary["mean_test_rmse"]), len(pairs),
        100 * summary["test_pairs_with_both_clusters_seen"], extra=JOB_LINE,
    )  # fmt: skip
    if plan.explain:  # explain=true is the default: say why there is no explain/
        log.info("explain: none for cv.scheme=pair_split (no outer folds, no held-out clusters); "
                 "the cv.scheme=nested run of the same model has them")  # fmt: skip
    return summary
