"""Predict lg(k1) of new clusters with a trained model: load it, read the spreadsheet, build
the prediction table (the command line is ``python -m predict``, ``src/predict.py``).

The model comes from an MLflow run id (its final model, plus its outer-fold models for the
spread), a model URI (``runs:/...``, ``models:/...``), or a run directory / model file of
``python -m train``; :mod:`n2react.model_loading` loads it, checking each file against the
sha256 the run recorded. The spreadsheet (read by :mod:`n2react.new_clusters`) needs the
descriptor columns the model was trained on; an ``lg(k1)`` column is optional and, when present,
the predictions are scored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from n2react import runstore
from n2react.cv import predict_mean_std
from n2react.data.sheets import check_input_file
from n2react.difficulty import model_spread
from n2react.domain import is_metal, new_element_reasons
from n2react.errors import DataError, N2ReactError
from n2react.figures import run_dir_title
from n2react.isomers import duplicate_names_line, scored_once
from n2react.metrics import score as score  # callers import it here
from n2react.metrics import score_sets
from n2react.model_loading import LoadedModel as LoadedModel  # callers import it here
from n2react.model_loading import load_model as load_model  # callers import it here
from n2react.new_clusters import formula_ligands, read_sheet_clusters
from n2react.new_clusters import read_new_clusters as read_new_clusters  # callers import it here
from n2react.provenance import used_by_run, used_lines
from n2react.uncertainty import check_coverage

log = logging.getLogger(__name__)


def _feature_names(model: Any, ref: str = "the model") -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise N2ReactError(
            f"{ref}: the model does not record its descriptor names (not an n2react model?)"
        )
    return [str(n) for n in names]


def predict_table(loaded: LoadedModel, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Mean prediction and its uncertainty: the pairwise spread over reference clusters, else the
    spread over the outer-fold models (NaN when neither exists)."""
    mean, std = predict_mean_std(loaded.model, X)
    if std is None:
        if loaded.fold_models:
            per_fold = np.stack([predict_mean_std(m, X)[0] for m in loaded.fold_models])
            std = per_fold.std(axis=0, ddof=1) if len(per_fold) > 1 else np.zeros(len(X))
        else:
            std = np.full(len(X), np.nan)
    return mean, std


def prediction_table(
    loaded: LoadedModel,
    X: pd.DataFrame,
    clusters: np.ndarray,
    y: np.ndarray | None,
    coverage: float = 0.9,
    coverage_from: str = "coverage",
) -> tuple[pd.DataFrame, str | None]:
    """(cluster, y_pred, y_std, in_domain, domain_reasons, nearest_training, y_lower, y_upper,
    interval_coverage, expected_error, flag_threshold, descriptor_notes[, y_true, residual])
    and the summary line of the domain check (None: no domain). The scores against lg(k1) are
    :func:`n2react.metrics.score_sets`.

    With the run's calibration, ``in_domain`` is false for a cluster with an element no training
    cluster has, or whose expected error is above the run's flag threshold (validated on held-out
    clusters); the descriptor range / kNN distance reasons go to ``descriptor_notes``
    (informational: on held-out clusters they did not separate large errors from small). Without
    one (older runs), the interval columns are left out and in_domain is the descriptor rule.
    ``coverage_from`` names ``coverage`` in a refusal (predict's ``--coverage``, a config key).
    """
    mean, std = predict_table(loaded, X)
    out = pd.DataFrame({"cluster": clusters, "y_pred": mean, "y_std": std})
    calib = loaded.uncertainty
    band = None
    if calib is not None:
        spread = model_spread(loaded.model, X) if calib.needs_spread else None
        band = calib.predict(X, mean, coverage, spread, where=coverage_from)
    else:
        log.warning(
            "the run recorded no interval calibration (trained before intervals existed, or with "
            "uncertainty.enabled=false): y_lower, y_upper and expected_error are left out"
        )
    summary = None
    if loaded.domain is not None:
        dom = loaded.domain.assess(X, clusters)
        if band is None:
            out["in_domain"] = dom["in_domain"].to_numpy()
            out["domain_reasons"] = dom["reasons"].to_numpy()
            summary = loaded.domain.summary(dom)
        else:
            out["in_domain"], out["domain_reasons"], notes, summary = trust_flags(
                dom, band, calib.threshold, calib.flag_quantile
            )
        out["nearest_training"] = dom["nearest_training"].to_numpy()
    else:
        out["in_domain"] = np.nan if band is None else ~band["flagged"].to_numpy()
        log.warning("the run recorded no applicability domain: no new-element check")
    if band is not None:
        out["y_lower"], out["y_upper"] = band["y_lower"].to_numpy(), band["y_upper"].to_numpy()
        out["interval_coverage"] = float(coverage)  # the nominal level (--coverage), every row
        out["expected_error"] = band["expected_error"].to_numpy()
        out["flag_threshold"] = calib.threshold  # the expected error above which it is flagged
        if loaded.domain is not None:
            out["descriptor_notes"] = notes
    if calib is not None:
        out["used_by_run"] = used_by_run(calib, X)
    elif loaded.domain is not None:  # a run without intervals: its domain knows the training rows
        out["used_by_run"] = np.where(loaded.domain.seen(X), "training", "")
    if y is not None:
        out["y_true"] = y
        out["residual"] = mean - y
        measured = ~np.isnan(y)
        if not measured.all():
            log.info(
                "%d of %d clusters have a measured lg(k1): the scores are theirs",
                measured.sum(),
                len(y),
            )
    return out, summary


def trust_flags(
    dom: pd.DataFrame,
    band: pd.DataFrame,
    threshold: float | np.ndarray,
    flag_quantile: float,
    whose: str = "the calibration clusters'",
) -> tuple[np.ndarray, list[str], list[str], str]:
    """in_domain, domain_reasons, descriptor_notes and the summary line, from the domain's
    assessment and the calibration's expected errors (``threshold``: their ``flag_quantile``
    quantile over the calibration clusters, which the reason says in words as the quantile of
    ``whose`` expected errors; one per row when each row's flag was decided by its own
    calibration, as the cross-fitted rows of :mod:`n2react.calibration_set` are). A flagged row's
    reason quotes its expected error and the threshold its flag compared it with."""
    new = dom["new_elements"].fillna("").to_numpy()
    high = band["flagged"].to_numpy(dtype=bool)
    limits = np.broadcast_to(np.asarray(threshold, dtype=float), (len(dom),))
    reasons, notes = [], []
    for i in range(len(dom)):
        why = new_element_reasons(new[i].split(", ")) if new[i] else []
        if high[i]:
            ee, limit = _distinct(float(band["expected_error"].iat[i]), float(limits[i]))
            why.append(
                f"expected error {ee} above {limit} (higher than "
                f"{100 * flag_quantile:g} % of {whose})"
            )
        reasons.append("; ".join(why))
        parts = str(dom["reasons"].iat[i] or "").split("; ")
        notes.append("; ".join(p for p in parts if p and p not in why))  # why: the flags' own
    inside = ~((new != "") | high)
    n_out = int((~inside).sum())
    line = f"{n_out} of {len(dom)} clusters outside the training domain"
    detail = {"new element": int((new != "").sum()), "high expected error": int(high.sum())}
    text = ", ".join(f"{k}: {v}" for k, v in detail.items() if v)
    return inside, reasons, notes, f"{line} ({text})" if text else line


def _distinct(value: float, limit: float) -> tuple[str, str]:
    """``value`` and the ``limit`` it exceeds, to 2 decimals, or to as many more as it takes
    for the printed value to exceed the printed limit and the value itself to exceed the printed
    limit (0.527 vs 0.526 is not '0.53 above 0.53')."""
    for digits in range(2, 7):
        v, lim = f"{value:.{digits}f}", f"{limit:.{digits}f}"
        if float(v) > float(lim) and value > float(lim):
            return v, lim
    return repr(value), repr(limit)


#: The run whose intervals are calibrated on held-out metals (README, Known families vs new
#: compositions).
METAL_CALIBRATED = (
    "python -m train experiment=new_compositions cv.groups=metal uncertainty.calibration_path=null"
)


def new_element_line(out: pd.DataFrame, calib: Any, domain: Any) -> str | None:
    """A warning for the clusters with an element no training cluster has (``domain``'s
    :meth:`~n2react.domain.ApplicabilityDomain.new_elements`), each named a metal or a ligand
    element (:func:`~n2react.domain.is_metal`), saying what the intervals were calibrated on;
    None when there is nothing to warn about.

    Intervals calibrated on a file (the Fe-V clusters of experiment=new_compositions) or on the
    run's held-out errors under KFold or family-grouped folds were calibrated on clusters whose
    metal their training had (on leave-one-metal-out predictions of the preset, such 90 %
    intervals cover 57 %, 76 % and 85 % of the held-out metals' clusters): a new metal is warned
    about. Out-of-fold intervals of a run grouped by metal (``cv.groups=metal``) were calibrated
    on held-out metals, so a new metal is not. No grouping holds out a ligand element (metal and
    family hold out a metal or one metal's ligand pattern), so a new one is warned about under
    every calibration."""
    if calib is None or domain is None:
        return None
    on_metals = calib.source == "out-of-fold" and calib.held_out == "metal"
    news = pd.Series(domain.new_elements(out["cluster"].tolist()), index=out.index)
    news = news.map(lambda found: [e for e in found or [] if not (on_metals and is_metal(e))])
    new = news[news.map(bool)]
    if new.empty:
        return None
    elements = sorted({e for found in new for e in found})
    metals = [e for e in elements if is_metal(e)]
    ligands = [e for e in elements if not is_metal(e)]
    kinds = new_element_reasons(elements)
    rows = [f"{out['cluster'].iat[i]} row {out['row'].iat[i]}" for i in new.index[:3]]
    more = f" and {len(new) - 3} more" if len(new) > 3 else ""
    on = calib.source
    if on == "out-of-fold":  # the protocol: "KFold (known families)", "grouped by family ..."
        on = "the run's held-out errors" + (f", {calib.protocol}" if calib.protocol else "")
    line = (
        f"{len(new)} of {len(out)} clusters have an element no training cluster has "
        f"({'; '.join(kinds)}: {', '.join(rows)}{more}): their intervals were calibrated on {on}"
    )
    if metals:
        line += (
            ", not on held-out metals, and hold only for clusters whose errors are like those; "
            "a new metal's level can be off by more than 1 lg unit. Intervals calibrated on "
            f"held-out metals: {METAL_CALIBRATED}"
        )
    if ligands:
        line += (
            f"{'. No' if metals else '; no'} calibration holds out a ligand element (cv.groups="
            "metal and family hold out a metal or one metal's ligand pattern): for a new ligand "
            "element the intervals are not validated"
        )
    return line


def check_output(
    file: str | Path, output: str | Path, force: bool = False, default: bool = False
) -> Path:
    """The output path, refused when it is the input spreadsheet, a folder, or (without
    ``force``) an existing file; ``default``: the output was not named (-o), so the refusal says
    whose default name it is (fev.xlsx and fev.csv both write fev_predictions.csv)."""
    out = Path(output)
    if out.resolve() == Path(file).resolve():
        raise DataError(f"{out}: the output is the input spreadsheet; choose another -o")
    if out.is_dir():
        raise DataError(f"{out}: the output is a folder; name a .csv file with -o")
    above = next((a for a in out.parents if a.exists()), None)
    if (
        above is not None and not above.is_dir()
    ):  # -o fev.xlsx/out.csv: 'cannot write (File exists)'
        raise DataError(f"{out}: {above} is a file, not a folder; choose another -o")
    if out.exists() and not force:
        if default:
            raise DataError(
                f"{out}: the output exists (the default output name for {Path(file).name}); "
                "name another with -o, or pass --force to replace it"
            )
        raise DataError(f"{out}: the output exists; pass --force to replace it")
    return out


def write_csv_atomic(table: pd.DataFrame, output: str | Path) -> None:
    """Write ``table`` whole or not at all (see :func:`n2react.runstore.write_csv`)."""
    runstore.write_csv(output, table)


def check_finite(table: pd.DataFrame) -> None:
    """Refuse a table holding a non-finite prediction (or an infinite spread): one line naming
    the cluster and its spreadsheet row (the ``row`` column; else counted from row 2), nothing
    written."""
    for col in ("y_pred", "y_std", "y_lower", "y_upper", "expected_error"):
        if col not in table:
            continue
        v = pd.to_numeric(table[col], errors="coerce").to_numpy(float)
        bad = np.isinf(v) if col != "y_pred" else ~np.isfinite(v)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            row = table["row"].iat[i] if "row" in table else i + 2
            raise DataError(
                f"cluster {table['cluster'].iloc[i]} (row {row}): the model gives {col} = "
                f"{v[i]} (descriptors far outside anything it was trained on?); nothing written"
            )


def _plot_title(
    ref: str,
    file: str | Path,
    loaded: LoadedModel,
    table: pd.DataFrame,
    coverage: float,
    scores: list[tuple[str, dict[str, float]]],
) -> str:
    """The --plot title: the spreadsheet, the model it came from (run folder or id; for a run
    folder also the model, data and protocol, as the run's figures say them), what the
    intervals were calibrated on and, with measured lg(k1), the scores the terminal prints."""
    what = "no intervals"
    if "y_lower" in table and loaded.uncertainty is not None:
        source = loaded.uncertainty.source
        on = "the run's held-out errors" if source == "out-of-fold" else source
        what = f"{100 * coverage:g} % intervals calibrated on {on}"
    for label, m in scores[:1]:  # all measured clusters
        r = f"{m['r']:.3f}" if np.isfinite(m["r"]) else "- (fewer than 3)"
        what += f"; vs measured lg(k1), {label}: n {m['n']:.0f}, r {r}, MAE {m['mae']:.3f}"
    path = Path(ref)
    if not path.exists():
        return f"{Path(file).name}: predicted lg(k1), {what}; model: {ref}"
    run_dir = (path if path.is_dir() else path.parent).resolve()
    setting = run_dir_title(run_dir)
    model = f"{run_dir.name} ({setting})" if setting else run_dir.name
    return f"{Path(file).name}: predicted lg(k1), {what}; model: {model}"


@dataclass(frozen=True)
class Predicted:
    """predict's table and scores: (label, scores) per set of measured clusters
    (:func:`n2react.metrics.score_sets`; none without lg(k1))."""

    table: pd.DataFrame
    scores: list[tuple[str, dict[str, float]]]


def predict(
    ref: str,
    file: str | Path,
    output: str | Path,
    tracking_uri: str | None = None,
    sheet: str | int = 0,
    force: bool = False,
    explain: bool = False,
    coverage: float = 0.9,
    trust_pickle: bool = False,
    plot: bool = False,
) -> tuple[pd.DataFrame, dict[str, float] | None]:
    """:func:`predict_sheet`'s table and its scores over all measured clusters (None: none)."""
    done = predict_sheet(
        ref, file, output, tracking_uri, sheet, force, explain, coverage, trust_pickle, plot
    )
    return done.table, (done.scores[0][1] if done.scores else None)


def predict_sheet(
    ref: str,
    file: str | Path,
    output: str | Path,
    tracking_uri: str | None = None,
    sheet: str | int = 0,
    force: bool = False,
    explain: bool = False,
    coverage: float = 0.9,
    trust_pickle: bool = False,
    plot: bool = False,
    default_output: bool = False,
) -> Predicted:
    """Write a CSV (cluster, y_pred, y_std, in_domain ...[, y_true, residual], row: the sheet's
    row, so that isomers, one name on several rows, join back); return it and the scores (an
    identical copy of a row counted once).
    ``explain`` also writes ``<output>_explain.csv`` (per-cluster SHAP values, and ``row``),
    ``plot`` ``<output>.png`` (:func:`n2react.figures.prediction_plot`).

    The output never replaces the input, replaces an existing file only with ``force``, and is
    written atomically (``default_output``: its name is the default, not the user's -o).
    ``trust_pickle`` loads pickled models (older runs; loading runs code).
    """
    check_coverage(coverage, where="--coverage")
    check_input_file(Path(file))  # before the output: fev.xls's default output may be fev.xlsx's
    check_output(file, output, force, default_output)
    explain_out = Path(output).with_name(Path(output).stem + "_explain.csv")
    if explain:
        check_output(file, explain_out, force, default_output)
    plot_out = Path(output).with_suffix(".png")
    if plot:
        if plot_out.resolve() == Path(output).resolve():  # the plot would replace the table
            raise DataError(f"{output}: --plot writes <output>.png; name a .csv file with -o")
        check_output(file, plot_out, force, default_output)
    if Path(output).suffix.lower() not in (".csv", ".txt"):  # out.xlsx would hold CSV text
        raise DataError(
            f"{output}: predict writes a CSV table (comma-separated); name the output .csv"
        )
    loaded = load_model(ref, tracking_uri, trust_pickle)
    names, ligands = _feature_names(loaded.model, ref), formula_ligands(loaded.model)
    # the names as the sheet writes them, and each one's row: every row joins back, isomers too
    sheet_in = read_sheet_clusters(
        file, names, sheet, ligands=ligands, as_written=True, sheet_option="--sheet",
        duplicates_ok=True,
    )  # fmt: skip
    X, clusters, y = sheet_in.X, sheet_in.names, sheet_in.y
    if twice := duplicate_names_line(sheet_in.keys, clusters, sheet_in.rows, X):
        log.warning("%s: %s", file, twice)
    out, domain_summary = prediction_table(loaded, X, clusters, y, coverage, "--coverage")
    scores = [] if y is None else score_sets(out, scored_once(sheet_in.keys, X, y))
    out["row"] = sheet_in.rows  # the sheet's row: one name may stand on several (isomers)
    check_finite(out)
    if domain_summary:
        log.info("%s", domain_summary)
    if line := new_element_line(out, loaded.uncertainty, loaded.domain):
        log.warning("%s", line)
    for line in used_lines(out, loaded.uncertainty):
        log.warning("%s", line)
    if explain:
        from n2react.explain.clusters import explain_clusters

        shap = explain_clusters(loaded.model, loaded.domain, X, clusters)
        shap["row"] = sheet_in.rows
        write_csv_atomic(shap, explain_out)
        log.info("per-cluster SHAP values written to %s", explain_out)
    write_csv_atomic(out, output)
    if plot:
        from n2react.figures import prediction_plot

        title = _plot_title(ref, file, loaded, out, coverage, scores)
        prediction_plot(out, plot_out, title, coverage)
        log.info("plot written to %s", plot_out)
    return Predicted(out, scores)
