"""Per-cluster explanations of predictions (``python -m predict ... --explain``).

Each predicted cluster gets one SHAP value per descriptor: how much that descriptor moves its
predicted lg(k1) away from the average prediction over the training clusters. The background is
the training clusters themselves, recovered from the run's applicability domain (which keeps
their imputed descriptors), and the values come from the same model-agnostic permutation
explainer as the run's own importance plots, so they sum to ``y_pred - base``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

import numpy as np
import pandas as pd

from n2react.capabilities import final_step, inner_model
from n2react.errors import N2ReactError
from n2react.explain.importance import _TREES, Budget, _permutation_shap, _predict

log = logging.getLogger(__name__)
#: Seconds after which a running explanation says how long it will take (then every quarter).
TELL_AFTER_S = 10.0


class _Countdown:
    """Counts the predictions made (thread-safe) and advances the terminal's bar; without one
    (a log file, a pipe) logs after :data:`TELL_AFTER_S` how long the rest will take, then again
    at each quarter."""

    def __init__(self, total: int, n_clusters: int, advance: Any) -> None:
        self.total, self.n_clusters, self.advance = total, n_clusters, advance
        self.done, self.start = 0, time.monotonic()
        self.next_mark = 0.0 if not sys.stderr.isatty() else 2.0  # a terminal has the bar
        self.lock = threading.Lock()

    def __call__(self, rows: int) -> None:
        with self.lock:
            self.done += rows
            self.advance(rows * self.n_clusters / self.total)
            frac, elapsed = self.done / self.total, time.monotonic() - self.start
            if frac < 1 and elapsed >= TELL_AFTER_S and frac >= self.next_mark:
                left = elapsed * (1 - frac) / frac
                log.info(
                    "explain: SHAP values of %d clusters %d%% done, about %s left",
                    self.n_clusters,
                    100 * frac,
                    f"{left:.0f} s" if left < 120 else f"{left / 60:.0f} min",
                )
                self.next_mark = (int(frac * 4) + 1) / 4


def _workers(model: Any) -> int:
    """Threads for the predictions: the CPUs this process may use for a tree model (pairwise or
    not: scikit-learn's trees predict without the GIL, row by row, so a chunk's numbers do not
    depend on the threads), else one."""
    if not isinstance(inner_model(final_step(model)), _TREES):
        return 1
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return max(1, len(cpus) if cpus else os.cpu_count() or 1)


def training_rows(domain: Any) -> pd.DataFrame:
    """The training clusters' descriptors (missing cells imputed) kept by a fitted domain."""
    return pd.DataFrame(domain.Z_ * domain.scale_ + domain.mean_, columns=domain.columns_)


def explain_clusters(
    model: Any, domain: Any, X: pd.DataFrame, clusters: np.ndarray, budget: Budget | None = None
) -> pd.DataFrame:
    """cluster, base (mean prediction over the background), y_pred, one SHAP column per
    descriptor and the three descriptors that move the prediction most."""
    if domain is None:
        raise N2ReactError(
            "--explain needs the run's training clusters (its domain file), which this run "
            "did not record; retrain with this version of n2react"
        )
    from n2react.terminal import refit_bar

    budget = budget or Budget()
    names = [str(c) for c in X.columns]
    background = training_rows(domain)[names]
    n_bg = min(budget.background, len(background))
    total = len(X) * 2 * (len(names) + 1) * n_bg * max(1, budget.permutations)
    # each cluster costs 2 (p + 1) x background predictions: minutes for a pairwise tree model
    # (every prediction goes through all its reference clusters), so the CPUs share the chunks
    # and a count says how long it takes (the same values: each chunk is predicted as alone)
    with refit_bar(len(X), what="SHAP values of clusters") as advance:
        countdown = _Countdown(total, len(X), advance)
        rows = X.reset_index(drop=True)
        values = _permutation_shap(
            model, background, rows, names, budget, 0, _workers(model), countdown
        )
    rng = np.random.default_rng([budget.seed, 0, 1])
    bg = background.to_numpy(dtype=float)
    bg = bg[rng.choice(len(bg), min(budget.background, len(bg)), replace=False)]
    base = float(np.mean(_predict(model, bg, names)))
    out = pd.DataFrame(values, columns=[f"shap {n}" for n in names])
    out.insert(0, "cluster", clusters)
    out.insert(1, "base", base)
    out.insert(2, "y_pred_explained", base + values.sum(axis=1))
    order = np.argsort(-np.abs(values), axis=1)[:, :3]
    out["top_descriptors"] = [
        "; ".join(f"{names[j]} {values[i, j]:+.2f}" for j in row) for i, row in enumerate(order)
    ]
    return out
