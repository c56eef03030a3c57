"""Intervals calibrated on labelled clusters of the kind to be predicted (split conformal).

The out-of-fold residuals of a homonuclear CV measure how wrong the model is on held-out
homonuclear clusters. Clusters of a new kind (mixed metals) can be easier or harder: on the 18
labelled Fe-V clusters the extra-trees preset errs about half as much (MAE 0.42) as on held-out
homonuclear families (0.97), so intervals calibrated on the latter are twice as wide as they need
be. ``uncertainty.calibration_path`` names a labelled file of such clusters: the final model
(trained on the training clusters only; the calibration clusters never reach it) predicts them,
and their residuals replace the out-of-fold ones as the conformal scores, the expected-error
scale and the flag threshold. That is split-conformal calibration: its coverage holds for new
clusters exchangeable with the calibration ones, not for anything else.

Honest figures on the calibration file itself come from cross-fitting over its *composition
units* (metal core + ligand elements: Fe2V-C, FeV2-S, ...): each unit's intervals, expected errors
and flags come from a calibration on the other units only (``flag_threshold``: the threshold its
flags were decided with, the ``flag_quantile`` of the other units' expected errors). They are
logged as ``calibration_set_coverage``, ``calibration_set_width``, ``calibration_set_spearman`` and
``calibration_set_domain_mae_flagged`` / ``_in``, and written to
``uncertainty/calibration_set.csv``; when ``eval.path`` holds the same clusters, its transfer
interval figures are these cross-fitted ones (see :mod:`n2react.transfer`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from n2react.composition import DEFAULT_LIGANDS, parse_formula
from n2react.data.files import DATA_DIR_ENV
from n2react.difficulty import model_spread
from n2react.errors import DataError
from n2react.uncertainty import LEVELS, Calibration, conformal_intervals, min_residuals

log = logging.getLogger(__name__)

#: The cross-fitted table of the calibration clusters, under the run's uncertainty/ folder.
TABLE_FILE = "calibration_set.csv"
KEY = "uncertainty.calibration_path"


def locate(path: str) -> Path:
    """The calibration file: ``path`` itself, else a file of that name in ``$N2_DATA_DIR``."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    env = os.environ.get(DATA_DIR_ENV)
    if env and not p.is_absolute() and (Path(env).expanduser() / p).is_file():
        return Path(env).expanduser() / p
    where = f"{DATA_DIR_ENV}={env}" if env else f"{DATA_DIR_ENV} is unset"
    raise DataError(
        f"{KEY}={path}: file not found (nor in the data folder; {where}); point at the labelled "
        f"clusters with {KEY}=/path/to/file.xlsx, or calibrate on the run's own held-out errors "
        f"with {KEY}=null"
    )


def read(
    path: str, columns: list[str], coverage: float, ligands: Sequence[str] | None = None
) -> tuple[Any, np.ndarray, np.ndarray]:
    """The calibration clusters (descriptors in ``columns``' order, names, lg(k1); names read
    with the run's ``ligands``); refused with one error line when the file is missing, lacks a
    column or the lg(k1) labels, or has too few clusters for ``coverage``."""
    from n2react.new_clusters import read_labelled

    p = locate(path)
    X, clusters, y = read_labelled(p, columns, KEY, "it cannot calibrate anything", ligands)
    need = min_residuals(coverage)
    if len(y) < need:
        raise DataError(
            f"{KEY}={p}: {len(y)} labelled clusters cannot calibrate {100 * coverage:g}% "
            f"intervals (need at least {need})"
        )
    return X, np.asarray(clusters), np.asarray(y, dtype=float)


def composition_unit(name: str, ligands: Sequence[str] = DEFAULT_LIGANDS) -> str:
    """'Fe2V2C2¯' -> 'Fe2V2-C': the metal core and the ligand elements (not their counts), the
    ligand elements being the run's ``data.formula_ligands``."""
    counts, _ = parse_formula(name)
    metals = "".join(f"{e}{n if n > 1 else ''}" for e, n in counts.items() if e not in ligands)
    present = "".join(e for e in counts if e in ligands)
    return f"{metals}-{present or 'bare'}"


def _units(clusters: np.ndarray, ligands: Sequence[str]) -> np.ndarray:
    out = []
    for c in clusters:
        try:
            out.append(composition_unit(str(c), ligands))
        except ValueError:  # a name that is no formula is its own unit
            out.append(str(c))
    return np.asarray(out)


def recalibrate(
    calib: Calibration, model: Any, path: str, coverage: float
) -> tuple[Calibration, pd.DataFrame]:
    """The run's calibration with the residuals of ``model`` (the final model) on the labelled
    clusters of ``path``, and their cross-fitted table (leave one composition unit out)."""
    from n2react.new_clusters import formula_ligands

    p = locate(path)
    columns, ligands = [str(c) for c in model.feature_names_in_], formula_ligands(model)
    X, clusters, y = read(str(p), columns, coverage, ligands)
    y_hat = np.asarray(model.predict(X), dtype=float).ravel()
    spread = model_spread(model, X) if calib.needs_spread else None
    sig = calib.difficulty_of(X, spread)
    own = calib.error_kind == calib.difficulty
    err = sig if own else calib.difficulty_of(X, spread, calib.error_kind)
    new = replace(
        calib,
        residuals=np.asarray(y, dtype=float) - y_hat,
        sigmas=sig,
        error_sigmas=None if own else err,
        source=p.name,
        calib_X=calib.raw(X),
        protocol=f"{calib.protocol}; intervals calibrated on {p.name} ({len(y)} clusters)",
    )
    units = _units(clusters, ligands or DEFAULT_LIGANDS)
    table = _crossfit(new, clusters, units, np.asarray(y, float), y_hat, sig, err, coverage)
    return new, table


def _crossfit(
    calib: Calibration,
    clusters: np.ndarray,
    units: np.ndarray,
    y: np.ndarray,
    y_hat: np.ndarray,
    sig: np.ndarray,
    err: np.ndarray,
    coverage: float,
) -> pd.DataFrame:
    if len(np.unique(units)) < 2:
        raise DataError(
            f"{KEY}: all its clusters are one composition unit ({units[0]}), so its intervals "
            "cannot be checked on clusters they were not calibrated on"
        )
    r = y - y_hat
    table = pd.DataFrame({"cluster": clusters, "unit": units, "y_true": y, "y_pred": y_hat})
    table["residual"] = y_hat - y  # predicted - measured, as in predict's and explain's tables
    table["abs_error"] = np.abs(r)
    for level in sorted(set(LEVELS) | {coverage}):
        table[f"covered_{level:g}"] = np.nan
        table[f"width_{level:g}"] = np.nan
    table["y_lower"] = np.nan
    table["y_upper"] = np.nan
    table["expected_error"] = np.nan
    table["flag_threshold"] = np.nan  # the threshold each unit's flag compared its errors with
    table["flagged"] = False
    for u in np.unique(units):
        te, ca = units == u, units != u
        scale = float(np.median(np.abs(r[ca]) / err[ca]))
        table.loc[te, "expected_error"] = scale * err[te]
        limit = np.quantile(scale * err[ca], calib.flag_quantile)
        table.loc[te, "flag_threshold"] = limit
        table.loc[te, "flagged"] = scale * err[te] > limit
        for level in sorted(set(LEVELS) | {coverage}):
            if ca.sum() < min_residuals(level):
                continue  # too few residuals left for this level: no figure, not a fake one
            iv = conformal_intervals(r[ca], sig[ca], y_hat[te], sig[te], level)
            inside = (y[te] >= iv[:, 0]) & (y[te] <= iv[:, 1])
            table.loc[te, f"covered_{level:g}"] = inside.astype(float)
            table.loc[te, f"width_{level:g}"] = iv[:, 1] - iv[:, 0]
            if level == coverage:
                table.loc[te, "y_lower"], table.loc[te, "y_upper"] = iv[:, 0], iv[:, 1]
    if table["y_lower"].isna().any():
        raise DataError(
            f"{KEY}: too few clusters outside the largest composition unit to calibrate "
            f"{100 * coverage:g}% intervals for it (need {min_residuals(coverage)})"
        )
    table["in_domain"] = ~table["flagged"].astype(bool)
    return table


def crossfit_metrics(table: pd.DataFrame) -> dict[str, float]:
    """The cross-fitted figures of the calibration clusters (NaN ones left out)."""
    from n2react.uncertainty_report import trust_metrics

    m = trust_metrics(
        table["y_true"], table["y_pred"], table["y_lower"], table["y_upper"],
        table["expected_error"], table["in_domain"], None,
    )  # fmt: skip
    out = {
        "calibration_set_" + k.replace("interval_", "").replace("uncertainty_", ""): float(v)
        for k, v in m.items()
        if np.isfinite(v)
    }
    out["calibration_set_n"] = float(len(table))
    return out


def curve(table: pd.DataFrame) -> pd.DataFrame:
    """Observed vs nominal coverage of the cross-fitted table (levels it could calibrate)."""
    rows = []
    for level in LEVELS:
        c = table[f"covered_{level:g}"].dropna()
        if len(c) == len(table):
            w = float(table[f"width_{level:g}"].mean())
            rows.append({"nominal": level, "observed": float(c.astype(bool).mean()), "width": w})
    return pd.DataFrame(rows)
