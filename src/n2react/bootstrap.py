"""Bootstrap intervals of cross-validation scores, and paired comparisons of two runs.

What is resampled (with replacement, :data:`RESAMPLES` times, seed :data:`SEED`, 95 % percentile
intervals):

- ``pooled_test_*`` (r, RMSE, MAE, within): the protocol's **units**, every out-of-fold prediction
  of a drawn unit coming with it (all its repeats). The units are the clusters under KFold (and the
  authors' folds), the groups (metals, families, a column) under a grouped CV: a grouped run's
  interval says how much the figure would move with another draw of metals or families, which is
  the noise a new composition meets. The count ``within`` is rescaled to the run's row count
  (groups differ in size).
- ``mean_test_*`` / ``mean_train_*`` (the mean over outer folds): the **outer folds**, the mean of
  the drawn folds' scores. With R repeats of K folds a resample draws K fold positions and takes
  the fold at each from every repeat (:func:`fold_draws`): R*K scores, K independent draws, as the
  verdict counts them (:func:`fold_units`). Under leave-one-group-out a fold is a group, so both
  kinds resample the same units there.

A paired comparison draws the same units (or folds) for both runs, so the difference's interval
leaves out what the two runs share (the same hard clusters, the same folds); it needs both runs'
out-of-fold predictions on the same clusters, folds and groups. It gives no verdict on fewer than
:data:`MIN_UNITS_FOR_VERDICT` units (3 outer folds, say): its figures are shown, but are no finding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from n2react.errors import N2ReactError
from n2react.metrics import (
    EXPERIMENTAL_ERROR,
    METRICS,
    POOLED,
    constant_rows,
    regression_metrics,
)

RESAMPLES = 2000
SEED = 0
LEVEL = 0.95
#: metrics where larger is better (r, R², the count within the error bar)
LARGER_BETTER = ("r", "r2", "within")
#: The fewest units (folds for ``mean_*``, clusters or groups for ``pooled_*``) a paired verdict
#: may rest on. An exact sign-flip (permutation) test on n paired units has its smallest two-sided
#: p-value, 2 / 2**n, when every difference has the same sign: 0.0625 at n = 5, 0.031 at n = 6.
#: Below 6 units no test reaches p < 0.05, while the bootstrap's interval is just the range of the
#: few differences (3 folds that agree in sign: P = 1.00 and an interval off zero), so no verdict.
#: A repeat's folds hold the same clusters again: repeats add no units.
MIN_UNITS_FOR_VERDICT = 6


def too_few_to_tell(units: int, kind: str) -> str:
    """The verdict below :data:`MIN_UNITS_FOR_VERDICT` units: ``too few units (3 folds) to
    tell``."""
    return f"too few units ({units} {kind}) to tell"


def ci_keys(metric: str) -> tuple[str, str]:
    """The names of ``metric``'s interval bounds: ``<metric>_ci_low``, ``<metric>_ci_high``."""
    return f"{metric}_ci_low", f"{metric}_ci_high"


def larger_is_better(metric: str) -> bool:
    return metric.rsplit("_", 1)[-1] in LARGER_BETTER


def _grouped(oof: pd.DataFrame) -> bool:
    return "group" in oof and bool(oof["group"].notna().all())


def units_of(oof: pd.DataFrame) -> np.ndarray:
    """The protocol's units of each out-of-fold row: its group when the run had groups, else its
    cluster."""
    return oof["group" if _grouped(oof) else "cluster"].astype(str).to_numpy()


def pooled_units(oof: pd.DataFrame) -> tuple[int, str]:
    """How many units a ``pooled_*`` figure resamples, and what they are (clusters or groups)."""
    return len(set(units_of(oof))), "groups" if _grouped(oof) else "clusters"


def fold_units(oof: pd.DataFrame) -> int:
    """How many outer folds a ``mean_*`` figure rests on: the folds of one repeat (the fewest
    over repeats; another repeat's folds hold the same clusters again)."""
    if "repeat" not in oof:
        return int(oof["fold"].nunique())
    return int(oof.groupby("repeat")["fold"].nunique().min())


def folds_text(oof: pd.DataFrame) -> str:
    """The outer folds a ``mean_*`` figure rests on, counted as :func:`fold_units` counts them
    (one repeat's): ``10 outer folds``, ``10 outer folds x 2 repeats``."""
    repeats = int(oof["repeat"].nunique()) if "repeat" in oof else 1
    text = f"{fold_units(oof)} outer folds"
    return text if repeats == 1 else f"{text} x {repeats} repeats"


def few_units_note(oof: pd.DataFrame) -> str:
    """'' or one line: which of a run's 95 % intervals (:func:`score_intervals`) rest on fewer
    than :data:`MIN_UNITS_FOR_VERDICT` units, so are no confidence interval."""
    parts = []
    if (folds := fold_units(oof)) < MIN_UNITS_FOR_VERDICT:
        parts.append(f"mean_* over {folds} folds")
    units, kind = pooled_units(oof)
    if units < MIN_UNITS_FOR_VERDICT:
        parts.append(f"pooled_* over {units} {kind}")
    if not parts:
        return ""
    return (
        f"the 95% CI of {' and of '.join(parts)}: too few units (fewer than "
        f"{MIN_UNITS_FOR_VERDICT}) to be a confidence interval; read it as their spread"
    )


def unit_weights(units: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(resamples x rows) weights: how often each row's unit was drawn in each resample."""
    codes, uniques = pd.factorize(units)
    n = len(uniques)
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples)
    return counts[:, codes].astype(float)


def weighted_pooled(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """r, RMSE, MAE and the count within ±log10(3) of each weighted resample (rows of ``w``)."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    total = w.sum(axis=1)
    err = p - y
    with np.errstate(invalid="ignore", divide="ignore"):
        my, mp = (w @ y) / total, (w @ p) / total
        dy, dp = y[None, :] - my[:, None], p[None, :] - mp[:, None]
        cov = (w * dy * dp).sum(axis=1)
        r = cov / np.sqrt((w * dy * dy).sum(axis=1) * (w * dp * dp).sum(axis=1))
        # undefined (not rounding noise) where a resample's predictions or truths are constant
        r = np.where(constant_rows(p, w) | constant_rows(y, w), np.nan, r)
        within = (w @ (np.abs(err) <= EXPERIMENTAL_ERROR).astype(float)) / total * len(y)
        return {
            "r": r,
            "rmse": np.sqrt((w @ err**2) / total),
            "mae": (w @ np.abs(err)) / total,
            "within": within,
        }


def _by_repeat(oof: pd.DataFrame) -> list[np.ndarray]:
    if "repeat" not in oof:
        return [np.arange(len(oof))]
    return [np.flatnonzero(oof["repeat"].to_numpy() == r) for r in sorted(oof["repeat"].unique())]


def pooled_resamples(oof: pd.DataFrame, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Each pooled metric per resample (over repeats, the mean of each repeat's, as the run's)."""
    per_repeat = [
        weighted_pooled(
            oof["y_true"].to_numpy()[rows], oof["y_pred"].to_numpy()[rows], weights[:, rows]
        )
        for rows in _by_repeat(oof)
    ]
    return {m: np.mean([d[m] for d in per_repeat], axis=0) for m in POOLED}


def fold_draws(folds: pd.DataFrame, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(resamples x R*K) rows of ``folds`` (one row per outer fold, with its ``repeat`` when R
    repeats ran) drawn for the means: each resample draws K fold positions with replacement and
    takes the fold at each position from every repeat (a repeat's folds hold the same clusters
    again, so only K draws are independent). A fold's position is its order within its repeat;
    a repeat short of a position gives -1 there (no score). With one repeat: K rows drawn."""
    repeats = folds["repeat"].to_numpy() if "repeat" in folds else np.ones(len(folds))
    by_repeat = [np.flatnonzero(repeats == r) for r in pd.unique(repeats)]
    k = max(len(rows) for rows in by_repeat)
    grid = np.full((len(by_repeat), k), -1)
    for r, rows in enumerate(by_repeat):
        grid[r, : len(rows)] = rows
    positions = np.random.default_rng(seed).integers(0, k, size=(resamples, k))
    return np.concatenate([row[positions] for row in grid], axis=1)


def mean_resamples(values: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """The mean of the drawn folds' scores, per resample (a fold without a score, or a draw of
    -1, is skipped)."""
    with np.errstate(invalid="ignore"):
        drawn = np.append(np.asarray(values, dtype=float), np.nan)[draws]
        ok = np.isfinite(drawn)
        counts = ok.sum(axis=1)
        return np.where(counts > 0, np.where(ok, drawn, 0.0).sum(axis=1) / counts, np.nan)


def interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of the finite resamples (NaN, NaN when there are none)."""
    finite = np.asarray(samples, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def fold_scores(oof: pd.DataFrame) -> pd.DataFrame:
    """Per outer fold (and repeat) the test r, RMSE, MAE and R² of an out-of-fold table, as the
    run's fold table holds them."""
    keys = ["repeat", "fold"] if "repeat" in oof else ["fold"]
    rows = []
    for key, part in oof.groupby(keys, sort=True):
        m = regression_metrics(part["y_true"].to_numpy(), part["y_pred"].to_numpy())
        rows.append({**dict(zip(keys, key)), **{f"test_{k}": v for k, v in m.items()}})
    return pd.DataFrame(rows)


def score_intervals(
    oof: pd.DataFrame,
    folds: pd.DataFrame,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, float]:
    """``<metric>_ci_low`` / ``_ci_high`` of every ``mean_test_*``, ``mean_train_*`` (over the
    rows of ``folds``, one per outer fold with its ``test_*``/``train_*`` scores) and every
    ``pooled_test_*`` (over the units of ``oof``)."""
    out: dict[str, float] = {}
    draws = fold_draws(folds, resamples, seed)
    for part in ("test", "train"):
        for m in METRICS:
            if f"{part}_{m}" in folds:
                samples = mean_resamples(folds[f"{part}_{m}"].to_numpy(), draws)
                low, high = interval(samples)
                out.update(dict(zip(ci_keys(f"mean_{part}_{m}"), (low, high))))
    pooled = pooled_resamples(oof, unit_weights(units_of(oof), resamples, seed))
    for m, samples in pooled.items():
        out.update(dict(zip(ci_keys(f"pooled_test_{m}"), interval(samples))))
    return out


# --------------------------------------------------------------------------- paired comparison


@dataclass(frozen=True)
class Paired:
    """Run A against run B on one metric: both figures, ``diff`` = A - B with its paired
    interval, the share of resamples in which A is better (ties count half), and the number of
    units resampled (``units``: outer folds, clusters or groups, named by ``unit_kind``)."""

    metric: str
    a: float
    b: float
    diff: float
    low: float
    high: float
    p_a_better: float
    units: int
    unit_kind: str

    @property
    def too_few_units(self) -> bool:
        """Fewer than :data:`MIN_UNITS_FOR_VERDICT` units: the figures are no finding."""
        return self.units < MIN_UNITS_FOR_VERDICT

    @property
    def decided(self) -> bool:
        """Enough units, and the interval of the difference excludes zero: one may say which
        run is better."""
        return not self.too_few_units and bool(self.low > 0 or self.high < 0)

    @property
    def too_few(self) -> str:
        """``too few units (3 folds) to tell``: the verdict when :attr:`too_few_units`."""
        return too_few_to_tell(self.units, self.unit_kind)


def aligned(oof_a: pd.DataFrame, oof_b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both out-of-fold tables in the same row order; a N2ReactError when their clusters, folds,
    repeats, groups or measured values differ (the runs were not cross-validated alike)."""
    keys = [c for c in ("repeat", "fold", "cluster") if c in oof_a or c in oof_b]
    a = oof_a.assign(repeat=oof_a.get("repeat", 1)).sort_values(keys, ignore_index=True)
    b = oof_b.assign(repeat=oof_b.get("repeat", 1)).sort_values(keys, ignore_index=True)
    keys = ["repeat", "fold", "cluster"]
    why = None
    if len(a) != len(b) or not a[keys].astype(str).equals(b[keys].astype(str)):
        why = f"their out-of-fold clusters or folds differ ({_how_folds_differ(a, b)})"
    elif ("group" in a) != ("group" in b) or (
        "group" in a and not a["group"].astype(str).equals(b["group"].astype(str))
    ):
        why = "their groups differ (one grouped CV against another protocol?)"
    elif not np.allclose(a["y_true"].to_numpy(float), b["y_true"].to_numpy(float)):
        why = "their measured lg(k1) differ (another data set?)"
    if why:
        raise N2ReactError(
            f"cannot compare the runs: {why}; a paired comparison needs the same folds"
        )
    return a, b


def _how_folds_differ(a: pd.DataFrame, b: pd.DataFrame) -> str:
    """What tells two runs' out-of-fold tables apart, in a few words (A first)."""
    ca, cb = set(a["cluster"].astype(str)), set(b["cluster"].astype(str))
    if ca != cb:
        return f"A has {len(ca)} clusters, B {len(cb)}, {len(ca ^ cb)} in one run only"
    if ("group" in a) != ("group" in b):
        grouped = "A" if "group" in a else "B"
        return f"only {grouped}'s CV is grouped by cv.groups"
    fa, fb = (folds_text(t) for t in (a, b))
    if fa != fb:
        return f"A has {fa}, B {fb}"
    na, nb = (len(t.groupby(["repeat", "fold"])) for t in (a, b))
    if na != nb:  # repeats of unequal fold counts
        return f"A has {na} outer folds over its repeats, B {nb}"
    if len(a) != len(b):
        return f"A has {len(a)} out-of-fold rows, B {len(b)}"
    return "the same clusters fall in other folds: another cv.seed, cv.groups or data order?"


def _paired(
    metric: str,
    a: float,
    b: float,
    sa: np.ndarray,
    sb: np.ndarray,
    units: tuple[int, str],
    level: float = LEVEL,
) -> Paired:
    diff = sa - sb
    low, high = interval(diff, level)
    ok = np.isfinite(diff)
    if larger_is_better(metric):
        wins = (sa > sb)[ok].sum() + 0.5 * (sa == sb)[ok].sum()
    else:
        wins = (sa < sb)[ok].sum() + 0.5 * (sa == sb)[ok].sum()
    p = float(wins / ok.sum()) if ok.any() else float("nan")
    return Paired(metric, a, b, a - b, low, high, p, *units)


def compare_oof(
    oof_a: pd.DataFrame,
    oof_b: pd.DataFrame,
    metrics: Sequence[str] = ("pooled_test_mae", "pooled_test_rmse", "pooled_test_r"),
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> list[Paired]:
    """Run A against run B on each metric (``pooled_test_*`` over units, ``mean_test_*`` over
    folds), the same draws for both, the difference's interval at ``level``; each
    :class:`Paired` says how many units it rests on (no verdict below
    :data:`MIN_UNITS_FOR_VERDICT`). Refuses runs not cross-validated alike (:func:`aligned`)."""
    a, b = aligned(oof_a, oof_b)
    out = []
    weights = draws = None
    for metric in metrics:
        kind, _, m = (metric.split("_", 2) + ["", ""])[:3]
        if metric.startswith("pooled_test_") and m in POOLED:
            if weights is None:
                weights = unit_weights(units_of(a), resamples, seed)
            sa, sb = pooled_resamples(a, weights)[m], pooled_resamples(b, weights)[m]
            pa = _point_pooled(a, m)
            pb = _point_pooled(b, m)
            units = pooled_units(a)
        elif kind == "mean" and metric.startswith("mean_test_") and m in METRICS:
            fa, fb = fold_scores(a), fold_scores(b)
            if draws is None:
                draws = fold_draws(fa, resamples, seed)
            col = f"test_{m}"
            sa = mean_resamples(fa[col].to_numpy(), draws)
            sb = mean_resamples(fb[col].to_numpy(), draws)
            pa, pb = float(fa[col].mean()), float(fb[col].mean())
            units = (fold_units(a), "folds")
        else:
            raise _unknown(metric)
        out.append(_paired(metric, pa, pb, sa, sb, units, level))
    return out


def check_metrics(metrics: Sequence[str]) -> None:
    """A N2ReactError for a metric a paired comparison cannot resample (before any run is read)."""
    known = {f"pooled_test_{m}" for m in POOLED} | {f"mean_test_{m}" for m in METRICS}
    for metric in metrics:
        if metric not in known:
            raise _unknown(metric)


def _unknown(metric: str) -> N2ReactError:
    return N2ReactError(
        f"cannot compare on {metric!r}: use pooled_test_{{{','.join(POOLED)}}} or "
        f"mean_test_{{{','.join(METRICS)}}}"
    )


def _point_pooled(oof: pd.DataFrame, m: str) -> float:
    """The run's own pooled figure (weights 1: the point estimate of the resamples)."""
    return float(pooled_resamples(oof, np.ones((1, len(oof))))[m][0])
