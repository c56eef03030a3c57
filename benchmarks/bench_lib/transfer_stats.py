"""The statistics of the transfer table (benchmarks/transfer.py): each figure on a table of
predictions, its bootstrap interval over composition units, and a row's paired MAE difference
from another's.

All draws and intervals are the project's (:mod:`n2react.bootstrap`); ``transfer`` re-exports
these names, which the other benchmarks import from it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr

WITHIN = float(np.log10(3.0))  # the experimental error bar, ±0.477


def composition_unit(name: str) -> str:
    """'Fe2V2C2¯' -> 'Fe2V2-C': the metal core and the ligand elements (not their counts), the
    units the intervals are cross-fitted over (:func:`n2react.calibration_set.composition_unit`)."""
    from n2react.calibration_set import composition_unit as unit

    return unit(name)


def draws(units: np.ndarray) -> list[np.ndarray]:
    """Row indices of the bootstrap samples of :mod:`n2react.bootstrap` (whole units drawn with
    replacement, the same draws as its paired comparisons)."""
    from n2react.bootstrap import unit_weights

    rows = np.arange(len(units))
    return [np.repeat(rows, w.astype(int)) for w in unit_weights(np.asarray(units, dtype=str))]


def interval(values: list[float]) -> tuple[float, float]:
    """The project's percentile interval; none when the statistic is undefined in most draws."""
    from n2react.bootstrap import interval as percentile_interval

    v = np.asarray(values, dtype=float)
    if np.isfinite(v).sum() < 0.5 * len(v):
        return float("nan"), float("nan")
    return percentile_interval(v)


def _mae(t: pd.DataFrame) -> float:
    return float(np.mean(np.abs(t["y_pred"] - t["y_true"])))


def _within(t: pd.DataFrame) -> float:
    return float(np.mean(np.abs(t["y_pred"] - t["y_true"]) <= WITHIN))


def _r(t: pd.DataFrame) -> float:
    if t["y_true"].nunique() < 3 or t["y_pred"].nunique() < 2:
        return float("nan")
    return float(pearsonr(t["y_true"], t["y_pred"])[0])


def _coverage(t: pd.DataFrame) -> float:
    return float(np.mean((t["y_lower"] <= t["y_true"]) & (t["y_true"] <= t["y_upper"])))


def _width(t: pd.DataFrame) -> float:
    return float(np.mean(t["y_upper"] - t["y_lower"]))


def _flag_ratio(t: pd.DataFrame) -> float:
    """MAE of clusters flagged outside the domain / MAE of those inside (nan without both)."""
    inside = t["in_domain"].astype(bool).to_numpy()
    if inside.all() or not inside.any():
        return float("nan")
    err = np.abs(t["y_pred"] - t["y_true"]).to_numpy()
    return float(err[~inside].mean() / max(err[inside].mean(), 1e-12))


def _uncertainty(t: pd.DataFrame) -> pd.Series:
    if "expected_error" in t and t["expected_error"].notna().all():
        return t["expected_error"]
    if "y_lower" in t:
        return t["y_upper"] - t["y_lower"]
    return t["y_std"]


def _rank_corr(t: pd.DataFrame) -> float:
    u = _uncertainty(t)
    if u.nunique() < 2:
        return float("nan")
    return float(spearmanr(u, np.abs(t["y_pred"] - t["y_true"]))[0])


STATS: dict[str, Callable[[pd.DataFrame], float]] = {
    "mae": _mae,
    "within": _within,
    "r": _r,
    "coverage": _coverage,
    "width": _width,
    "flag_ratio": _flag_ratio,
    "spearman": _rank_corr,
}
NEEDS = {"coverage": "y_lower", "width": "y_lower", "flag_ratio": "in_domain"}


def describe(
    t: pd.DataFrame, idx: list[np.ndarray], names: tuple[str, ...] = tuple(STATS)
) -> dict[str, tuple[float, float, float]]:
    """Each statistic on the whole table and its bootstrap interval: name -> (value, lo, hi)."""
    out = {}
    for name in names:
        f = STATS[name]
        col = NEEDS.get(name)
        if col is not None and (col not in t or t[col].isna().any()):
            continue
        value = f(t)
        out[name] = (value, *interval([f(t.iloc[i]) for i in idx]))
    return out


def paired(
    a: pd.DataFrame, b: pd.DataFrame, units: np.ndarray, level: float | None = None
) -> tuple[float, ...]:
    """MAE(a) - MAE(b) on the same clusters, its paired interval over ``units`` (at ``level``,
    by default the project's 95 %) and P(a's MAE is lower), by
    :func:`n2react.bootstrap.compare_oof` (one fold; the units as groups)."""
    from n2react.bootstrap import LEVEL, compare_oof

    def oof(t: pd.DataFrame) -> pd.DataFrame:
        return t[["cluster", "y_true", "y_pred"]].assign(fold=0, group=units)

    (p,) = compare_oof(oof(a), oof(b), ["pooled_test_mae"], level=level or LEVEL)
    return p.diff, p.low, p.high, p.p_a_better
