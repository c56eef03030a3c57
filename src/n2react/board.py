"""What the sweep's leaderboard (:mod:`n2react.leaderboard`) and its report
(:mod:`n2react.sweep_report`) share, so that neither imports the other both ways."""

from __future__ import annotations

import pandas as pd

from n2react.bootstrap import MIN_UNITS_FOR_VERDICT, larger_is_better, too_few_to_tell

KEY_METRICS = ("mean_test_r", "mean_test_rmse", "mean_test_mae")
#: the paired comparison with the best job (on the ranking metric): job - best, its 95 % paired
#: bootstrap interval, and the share of resamples in which the best job is better
VS_BEST = ("vs_best", "vs_best_ci_low", "vs_best_ci_high", "p_best_better")
#: how many units that comparison resampled (outer folds for a mean_* metric, clusters or groups
#: for a pooled_* one): below MIN_UNITS_FOR_VERDICT its figures are no finding
VS_BEST_UNITS = "vs_best_units"
#: a job that wrote all its files but whose MLflow run was deleted in the store while it ran
#: (:class:`n2react.errors.RunDeleted`): its scores stand in its folder, ranked as a done job's
RUN_DELETED = "done (MLflow run deleted)"
#: the statuses of a job with scores to rank (summary.json)
SCORED = ("done", RUN_DELETED)


def higher_is_better(metric: str) -> bool:
    """r, R² and the count within ±0.477 are maximised; errors and spreads (std_*) minimised."""
    return not metric.startswith("std_") and larger_is_better(metric)


def vs_best_note(board: pd.DataFrame, metric: str) -> str:
    """'' or one line: the comparison with the best job rests on too few units to tell which job
    is better (:data:`n2react.bootstrap.MIN_UNITS_FOR_VERDICT`), so its figures are no finding."""
    units = board.get(VS_BEST_UNITS, pd.Series(dtype=float)).iloc[1:].dropna()  # not the best
    if units.empty or (n := int(units.min())) >= MIN_UNITS_FOR_VERDICT:
        return ""
    # a mean_* figure resamples the outer folds (one repeat's: fold_units); a pooled_* one the
    # clusters, or the groups of a grouped CV. A run holds at least 6 clusters (2 outer folds,
    # each testing 3 or more: Plan.validate), so below the minimum a pooled figure's units are
    # groups, under every protocol that has out-of-fold predictions to pair
    kind = "folds" if metric.startswith("mean_") else "groups"
    return (
        f"vs best: {too_few_to_tell(n, kind)} which job is better (an exact sign-flip test on n "
        f"paired units cannot reach p < 0.05 below n = {MIN_UNITS_FOR_VERDICT}); its differences, "
        "intervals and P(best better) are no finding"
    )
