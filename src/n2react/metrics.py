"""Regression scores used everywhere (outer folds, inner search, predict)."""

from __future__ import annotations

import numpy as np

METRICS = ("r", "rmse", "mae", "r2")
#: Metrics where larger is better (the others are errors).
MAXIMIZE = {"r", "r2"}


def pearson_r(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant."""
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
