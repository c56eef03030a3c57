"""Which of the clusters given to ``predict`` (or ``eval.path``) the run itself used. For a
cluster with the descriptors of a training cluster the model returns its fitted value (extra
trees give back the measured lg(k1) exactly), and for one with the descriptors of a calibration
cluster the interval is in-sample: both look better than anything the run can promise for a new
cluster, so they are marked (column ``used_by_run``) and said once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from n2react.uncertainty import Calibration

#: rows compared at once (bounded memory for a long file)
_CHUNK = 1000
#: the marks of the clusters a run used itself in predict's table and plot, and their notes
USED_MARKS = {"training": "*", "calibration": "†"}
USED_TEXT = {
    "training": "a training cluster of the run: fitted, not predicted",
    "calibration": "a cluster the run's intervals were calibrated on: its interval is in-sample",
}


def same_rows(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Whether each row of ``A`` equals some row of ``B`` (to float noise; NaN equals NaN)."""
    hit = np.zeros(len(A), dtype=bool)
    if not len(B):
        return hit
    for start in range(0, len(A), _CHUNK):
        part = A[start : start + _CHUNK, None, :]
        same = np.isclose(part, B[None], rtol=1e-7, atol=1e-9, equal_nan=True)
        hit[start : start + _CHUNK] = same.all(axis=2).any(axis=1)
    return hit


def used_by_run(calib: Calibration, X: pd.DataFrame) -> np.ndarray:
    """Per cluster, ``"training"`` when its descriptors are those of a cluster the final model
    was fitted on (its prediction is fitted, not predicted), ``"calibration"`` when they are
    those of a cluster the intervals were calibrated on (its interval is in-sample), else ``""``.
    """
    raw = calib.raw(X)
    out = np.full(len(raw), "", dtype=object)
    for label, ref in (("calibration", calib.calib_X), ("training", calib.train_X)):
        if ref is not None:
            out[same_rows(raw, ref)] = label
    return out


def used_lines(out: pd.DataFrame, calib: Calibration | None, calibration: bool = True) -> list[str]:
    """Warnings for the clusters the run itself used (see :func:`used_by_run`); without
    ``calibration`` only for its training clusters."""
    if "used_by_run" not in out:
        return []
    used, n, lines = out["used_by_run"], len(out), []
    if k := int((used == "training").sum()):
        lines.append(
            f"{k} of {n} clusters have the descriptors of clusters this run was trained on: their "
            "predictions are fitted, not predicted, and scores on them say nothing about new "
            "clusters (the run's held-out predictions are in its oof_predictions.csv)"
        )
    if calibration and (k := int((used == "calibration").sum())):
        source = calib.source if calib is not None else "its calibration file"
        lines.append(
            f"{k} of {n} clusters have the descriptors of the clusters the run's intervals were "
            f"calibrated on ({source}): their intervals are in-sample (the run's cross-fitted "
            "figures for them are in uncertainty/calibration_set.csv)"
        )
    return lines
