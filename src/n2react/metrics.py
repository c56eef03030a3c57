"""Regression scores used everywhere (outer folds, inner search, predict)."""

from __future__ import annotations

from typing import Any

import numpy as np

METRICS = ("r", "rmse", "mae", "r2")
#: Pooled (all out-of-fold predictions at once) metrics: r, RMSE, MAE and the count within the
#: experimental error bar.
POOLED = ("r", "rmse", "mae", "within")
#: The experimental error bar of lg(k1): log10(3), a factor of 3 in k1.
EXPERIMENTAL_ERROR = float(np.log10(3.0))
#: Metrics where larger is better (the others are errors).
MAXIMIZE = {"r", "r2"}


#: Values whose spread is within this many rounding units of their size are constant: the mean
#: of 53 equal predictions is not always exactly their value, and r of that rounding is noise.
_ROUNDING = 4 * float(np.finfo(float).eps)


def figure(value: float | None, spec: str = ".3f") -> str:
    """A figure for people, formatted by ``spec``: ``-`` where it is undefined (NaN, None: the
    r of a model that predicts one value per fold), not ``nan`` (summary.json keeps null, MLflow
    NaN). The terminal, compare's table and the benchmark tables all print through it."""
    if value is None or not np.isfinite(value):
        return "-"
    return f"{value:{spec}}"


def constant(values: np.ndarray) -> bool:
    """Whether all ``values`` are equal (to within the rounding of their size): their Pearson r
    with anything is undefined (a model of constant predictions, e.g. Ridge with a huge alpha)."""
    x = np.asarray(values, dtype=float)
    return x.size == 0 or float(np.ptp(x)) <= _ROUNDING * float(np.max(np.abs(x)))


def constant_rows(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row of ``weights`` (resamples x values): whether the values it draws (weight > 0)
    are :func:`constant`."""
    x, drawn = np.asarray(values, dtype=float)[None, :], weights > 0
    high = np.where(drawn, x, -np.inf).max(axis=1)
    low = np.where(drawn, x, np.inf).min(axis=1)
    return high - low <= _ROUNDING * np.maximum(np.abs(high), np.abs(low))


def pearson_r(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is :func:`constant`."""
    if constant(y_true) or constant(y_pred):
        return float("nan")
    a = np.asarray(y_true, dtype=float) - np.mean(y_true)
    b = np.asarray(y_pred, dtype=float) - np.mean(y_pred)
    den = float(np.sqrt(np.sum(a * a) * np.sum(b * b)))
    return float(np.sum(a * b) / den) if den > 0 else float("nan")


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Pearson r, RMSE, MAE and R2 of predictions against the truth."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    err = y_pred - y_true
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    return {
        "r": pearson_r(y_true, y_pred),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan"),
    }


def within_error(y_true: np.ndarray, y_pred: np.ndarray) -> int:
    """How many predictions lie within the experimental error bar (±log10 3) of the truth."""
    err = np.abs(np.asarray(y_pred, dtype=float) - np.asarray(y_true, dtype=float))
    return int(np.sum(err <= EXPERIMENTAL_ERROR))


def pooled_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """r, RMSE, MAE and the count within ±log10(3), over all the predictions at once."""
    m = regression_metrics(y_true, y_pred)
    return {"r": m["r"], "rmse": m["rmse"], "mae": m["mae"], "within": within_error(y_true, y_pred)}


def summary_keys() -> set[str]:
    """Every parent-run metric name a sweeper may optimise."""
    keys = {
        f"{s}_{part}_{m}" for s in ("mean", "std") for part in ("test", "train") for m in METRICS
    }
    return keys | {f"pooled_test_{m}" for m in POOLED}


def score(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """r, RMSE, MAE, R2 and how many predictions fall within the experimental error bar; r and
    R2 are NaN for fewer than 3 clusters (r of two is always +-1, and says nothing)."""
    m = regression_metrics(y_true, y_pred)
    if len(y_true) < 3:
        m["r"] = m["r2"] = float("nan")
    within = np.abs(np.asarray(y_pred) - np.asarray(y_true)) <= EXPERIMENTAL_ERROR
    m["within_error"] = float(within.sum())
    m["n"] = float(len(y_true))
    return m


def score_sets(table: Any, scored: np.ndarray) -> list[tuple[str, dict[str, float]]]:
    """predict's scores against the measured lg(k1) of ``table`` (y_true, y_pred[, used_by_run]),
    one (label, scores) per set: all measured clusters, and apart those the model was not
    trained on when some are its training clusters (at least 3 others). Only ``scored`` rows
    count (identical copies of a row once, :func:`n2react.isomers.scored_once`); the label says
    how many copies were left out. Empty when no cluster is measured."""
    y_true, y_pred = table["y_true"].to_numpy(float), table["y_pred"].to_numpy(float)
    has = ~np.isnan(y_true)
    if "used_by_run" in table:
        used = table["used_by_run"].fillna("").to_numpy()
    else:
        used = np.full(len(table), "")
    measured = has & scored
    if not measured.any():
        return []
    fitted = (used == "training") & measured  # their scores are fits
    notes = [f"{fitted.sum()} training clusters"] if fitted.any() else []
    if copies := int((has & ~scored).sum()):
        notes.append(f"{copies} identical cop{'y' if copies == 1 else 'ies'} of a row scored once")
    everyone = "all" if has.all() else "all measured"
    label = f"{everyone} ({'; '.join(notes)})" if notes else everyone
    sets = [(label, score(y_true[measured], y_pred[measured]))]
    others = measured & ~fitted
    if fitted.any() and others.sum() >= 3:
        sets.append(("not training clusters", score(y_true[others], y_pred[others])))
    return sets
