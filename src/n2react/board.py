"""What the sweep's leaderboard (:mod:`n2react.leaderboard`) and its report
(:mod:`n2react.sweep_report`) share, so that neither imports the other both ways."""

from __future__ import annotations

from n2react.bootstrap import larger_is_better

KEY_METRICS = ("mean_test_r", "mean_test_rmse", "mean_test_mae")
#: the paired comparison with the best job (on the ranking metric): job - best, its 95 % paired
#: bootstrap interval, and the share of resamples in which the best job is better
VS_BEST = ("vs_best", "vs_best_ci_low", "vs_best_ci_high", "p_best_better")


def higher_is_better(metric: str) -> bool:
    """r, R² and the count within ±0.477 are maximised; errors and spreads (std_*) minimised."""
    return not metric.startswith("std_") and larger_is_better(metric)
