"""Transfer scoring in the same run: the final model predicts a second labelled spreadsheet.

``eval.path=new.xlsx`` names clusters that took no part in training (e.g. other compositions).
The final model, refitted on all training clusters, predicts them; the spread over the outer-fold
models and the applicability domain of the training clusters come with each prediction, and the
scores are logged to the parent run as ``transfer_r``, ``transfer_rmse``, ``transfer_mae`` and
``transfer_within`` (how many within ±log10(3)).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from n2react import runstore
from n2react.data import Dataset
from n2react.domain import ApplicabilityDomain
from n2react.errors import DataError
from n2react.figures import domain_plot, parity_plot
from n2react.inference import LoadedModel, new_element_line, prediction_table
from n2react.metrics import figure, pooled_metrics
from n2react.new_clusters import formula_ligands, read_sheet_clusters
from n2react.provenance import used_lines
from n2react.uncertainty_report import descriptor_flag, flag_split_text

log = logging.getLogger(__name__)


def fit_domain(dataset: Dataset, run_dir: Path, ligands: Sequence[str]) -> Path:
    """Fit the applicability domain of the training clusters; write it beside the model."""
    domain = ApplicabilityDomain(ligands=list(ligands)).fit(dataset.X, dataset.clusters)
    return runstore.save_model(domain, run_dir / runstore.DOMAIN_FILE)


def evaluate_transfer(
    loaded: LoadedModel,
    path: str | Path,
    run_dir: Path,
    coverage: float = 0.9,
    held_out: Any = None,
    trained: str = "",
) -> tuple[dict[str, float], list[Path]]:
    """Predict and score the labelled spreadsheet ``path``; return the transfer metrics and the
    files written (predictions CSV, parity plot, domain plot; with the run's calibration, the
    interval calibration and expected-error plots). ``held_out``: the cross-fitted table of the
    intervals' calibration file (:mod:`n2react.calibration_set`); when ``path`` holds exactly its
    clusters (found by their descriptors: the same file, a copy in another format, reordered),
    their cross-fitted intervals, expected errors and flags replace the in-sample ones, and when
    it holds only some of them a warning says their intervals are in-sample. ``trained``: what
    the final model is and what it was trained on, for the figures' titles."""
    names = [str(c) for c in loaded.model.feature_names_in_]
    sheet = read_sheet_clusters(path, names, ligands=formula_ligands(loaded.model))
    X, clusters, y = sheet.X, sheet.names, sheet.y
    if y is None:
        raise DataError(f"eval.path={path}: no lg(k1) column, so there is nothing to score")
    table, summary = prediction_table(loaded, X, clusters, y, coverage, "uncertainty.coverage")
    # as predict warns: an element no training cluster has, and what the intervals hold for
    named = {"cluster": table["cluster"].to_numpy(), "row": sheet.rows}
    if line := new_element_line(pd.DataFrame(named), loaded.uncertainty, loaded.domain):
        log.warning("eval.path=%s: %s", path, line)
    held_out = _calibration_rows(held_out, loaded, X)
    for line in used_lines(table, loaded.uncertainty, calibration=held_out is None):
        log.warning("eval.path=%s: %s", path, line)  # its transfer figures are not transfer
    if held_out is not None:
        summary = _use_held_out(table, held_out, loaded, X, clusters)
    metrics = {f"transfer_{k}": float(v) for k, v in pooled_metrics(y, table["y_pred"]).items()}
    metrics["transfer_n"] = float(len(y))
    if "in_domain" in table and table["in_domain"].notna().all():
        metrics["transfer_in_domain"] = float(table["in_domain"].astype(bool).sum())
    out = run_dir / "transfer"
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "transfer_predictions.csv"]
    runstore.write_csv(files[0], table)
    title = f"transfer: {Path(path).name} predicted by the final model"
    title += f" ({trained})" if trained else ""
    new = "new clusters (no part in training)"
    model = f"; model: {trained}" if trained else ""  # the other figures' titles
    files.append(parity_plot(table, None, out / "transfer_parity.png", title=title, points=new))
    dom = None
    if loaded.domain is not None:
        dom = loaded.domain.assess(X, clusters)
        verdict = table if loaded.uncertainty is not None else None  # else the descriptor rule
        files.append(
            domain_plot(
                dom,
                out / "transfer_domain.png",
                f"{Path(path).name}: {summary or ''}{model}",
                verdict=verdict,
            )  # fmt: skip
        )
    if loaded.uncertainty is not None:
        flag = None if dom is None else descriptor_flag(dom)
        trust, more = transfer_trust(
            loaded, X, table, flag, out, Path(path).name, coverage, held_out, model
        )
        metrics.update(trust)
        files += more
    log.info("%s", transfer_text(Path(path).name, len(y), metrics, summary))
    return metrics, files


def transfer_text(name: str, n: int, metrics: dict[str, float], summary: str | None) -> str:
    """The closing line of the transfer scores; an undefined figure (the r of constant
    predictions) prints ``-`` by :func:`n2react.metrics.figure`, not ``nan``."""
    r, rmse, mae = (figure(metrics[f"transfer_{k}"]) for k in ("r", "rmse", "mae"))
    within = int(metrics["transfer_within"])
    return (
        f"transfer ({name}, {n} clusters): r {r}, RMSE {rmse}, MAE {mae}, {within} within "
        f"±0.477{f'; {summary}' if summary else ''}"
    )


def _use_held_out(
    table: Any, held_out: Any, loaded: LoadedModel, X: Any, clusters: Any
) -> str | None:
    """Put the cross-fitted intervals, expected errors and flags of the calibration clusters in
    the prediction table (``held_out`` in its row order); the domain summary line."""
    from n2react.inference import trust_flags

    for col in ("y_lower", "y_upper", "expected_error", "flag_threshold"):
        table[col] = held_out[col].to_numpy()
    log.info(
        "eval.path holds the clusters the intervals were calibrated on: their intervals, expected "
        "errors and flags are cross-fitted (each composition unit calibrated on the others)"
    )
    if loaded.domain is None:
        table["in_domain"] = held_out["in_domain"].to_numpy()
        return None
    band = pd.DataFrame({"flagged": held_out["flagged"].to_numpy(dtype=bool),
                         "expected_error": held_out["expected_error"].to_numpy()})  # fmt: skip
    dom = loaded.domain.assess(X, clusters)
    # each unit's flag was decided by its own calibration's threshold, not the run's: its
    # reason quotes that one
    limits = held_out["flag_threshold"].to_numpy(dtype=float)
    whose = "the other composition units' calibration clusters'"
    inside, reasons, _, summary = trust_flags(
        dom, band, limits, loaded.uncertainty.flag_quantile, whose
    )
    table["in_domain"], table["domain_reasons"] = inside, reasons
    return summary


def _calibration_rows(held_out: Any, loaded: LoadedModel, X: Any) -> Any:
    """``held_out`` (the calibration file's cross-fitted table) in the order of the rows of ``X``
    when they are exactly the calibration clusters, matched by their descriptors whatever the
    file, format, order or names; else None (the intervals of ``X`` are the model's own)."""
    from n2react.provenance import same_rows

    calib = loaded.uncertainty
    if held_out is None or calib is None or calib.calib_X is None:
        return None
    raw, ref = calib.raw(X), calib.calib_X
    if len(raw) != len(ref):
        return None
    order: list[int] = []
    for row in raw:
        hits = [int(i) for i in np.flatnonzero(same_rows(ref, row[None])) if i not in order]
        if not hits:
            return None
        order.append(hits[0])
    return held_out.iloc[order].reset_index(drop=True)


def loaded_from_run(
    final: Any, fold_models: list[Any], domain_file: Path, calibration: Any = None
) -> LoadedModel:
    """The run's own final model, fold models, domain and calibration, as predict loads them."""
    domain = runstore.load_model_file(domain_file)
    return LoadedModel(final, fold_models, "this run", domain, calibration)


def transfer_trust(
    loaded: LoadedModel,
    X: Any,
    table: Any,
    descriptor: Any,
    out: Path,
    name: str,
    coverage: float,
    held_out: Any = None,
    model: str = "",
) -> tuple[dict[str, float], list[Path]]:
    """transfer_coverage/_width/_spearman and the domain MAE flagged vs passed on the transfer
    set (``descriptor``: the descriptor rule's flags, or None), its observed vs nominal coverage
    plot and |error| vs expected_error plot (``model``, ``; model: ...``, ends their titles)."""
    from n2react.difficulty import model_spread
    from n2react.uncertainty import LEVELS, min_residuals
    from n2react.uncertainty_report import calibration_plot, error_plot, trust_metrics

    m = trust_metrics(
        table["y_true"], table["y_pred"], table["y_lower"], table["y_upper"],
        table["expected_error"], table["in_domain"], descriptor,
    )  # fmt: skip
    metrics = {f"transfer_{k.replace('interval_', '').replace('uncertainty_', '')}": v
               for k, v in m.items() if np.isfinite(v)}  # fmt: skip
    y = table["y_true"].to_numpy()
    calib = loaded.uncertainty
    if held_out is not None:
        from n2react.calibration_set import curve as crossfit_curve

        curve = crossfit_curve(held_out)
        how = "cross-fitted over its composition units"
    else:
        spread = model_spread(loaded.model, X) if calib.needs_spread else None
        rows = []
        for level in LEVELS:
            if calib.n < min_residuals(level):
                continue
            band = calib.predict(X, table["y_pred"].to_numpy(), level, spread)
            inside = (y >= band["y_lower"]) & (y <= band["y_upper"])
            width = (band["y_upper"] - band["y_lower"]).mean()
            rows.append({"nominal": level, "observed": float(inside.mean()), "width": width})
        curve = pd.DataFrame(rows)
        how = (
            "calibrated on the run's held-out errors"
            if calib.source == "out-of-fold"
            else f"calibrated on {calib.source}"
        )
    label = f"{name} ({len(y)} clusters),\n{how}"
    files = [
        calibration_plot(
            {label: curve}, out / "transfer_calibration.png", f"transfer: {name}{model}"
        ),
        error_plot(table, out / "transfer_errors.png", f"transfer: {name}{model}:"),
    ]
    log.info("%s", intervals_text(coverage, m))
    return metrics, files


def intervals_text(coverage: float, m: dict[str, float]) -> str:
    """The transfer intervals' line; an undefined width or Spearman (constant expected errors,
    ``uncertainty.difficulty=none``) prints ``-`` by :func:`n2react.metrics.figure`, not
    ``nan``."""
    width, rho = figure(m["interval_width"], ".2f"), figure(m["uncertainty_spearman"], "+.2f")
    return (
        f"transfer {100 * coverage:g}% intervals: cover {100 * m['interval_coverage']:.0f}%, "
        f"mean width {width}; Spearman(expected error, |error|) {rho}; {flag_split_text(m)}"
    )
