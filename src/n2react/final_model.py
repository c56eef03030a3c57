"""What the train task does with its final model once fitted on all clusters: recalibrate its
intervals on uncertainty.calibration_path, save it with its domain and calibration, score it on
eval.path. Every file is logged to the run's tracker; the metrics are added to summary.json.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from n2react import runstore
from n2react.cv import CVResult
from n2react.data import Dataset
from n2react.export import keras_model_of
from n2react.figures import data_title
from n2react.plan import Plan
from n2react.search import TunedPipeline
from n2react.tracking import Tracker
from n2react.transfer import evaluate_transfer, fit_domain, loaded_from_run
from n2react.uncertainty import Calibration

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("n2react.run")  # its lines are the train task's


def save_and_score(
    plan: Plan,
    final: TunedPipeline,
    result: CVResult,
    calib: Calibration | None,
    tracker: Tracker,
    run_dir: Path,
    title: str,
) -> dict[str, float]:
    """The fitted final model (``result``: the run's outer CV, ``calib``: the intervals calibrated
    on its out-of-fold residuals) recalibrated, saved and scored; returns the metrics it adds."""
    metrics: dict[str, float] = {}
    held_out = None
    if calib is not None and plan.uncertainty.calibration_path:
        calib, held_out, metrics = _calibration_set(
            plan, final.pipeline_, calib, tracker, run_dir, title
        )
    _save(plan, final, result.dataset, tracker, run_dir, calib)
    if plan.eval_path:
        transfer = _transfer(plan, final.pipeline_, result, tracker, run_dir, calib, held_out)
        metrics = {**metrics, **transfer}
    return metrics


def _save(
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
    runstore.keep_version(model)  # in its model file (and MLflow's), for predict to compare
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
    trained = f"{plan.names.title} trained on all {n} clusters of {data}"
    metrics, files = evaluate_transfer(
        loaded, str(plan.eval_path), run_dir, coverage, held_out, trained
    )
    tracker.log_metrics(metrics)
    for p in files:
        tracker.log_artifact(p, "transfer")
    _add_to_summary(run_dir, metrics)
    return metrics
