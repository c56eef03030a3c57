"""What a run's explanation costs, and a smaller budget for a model that predicts slowly.

Model-agnostic SHAP and the permutation importance call the model's ``predict`` on many masked or
shuffled copies of the clusters: with the default :class:`~n2react.explain.importance.Budget`
about 2 (p + 1) x 20 predictions per explained cluster, 80 clusters for the final model and 20
per outer-fold model, plus p x 10 shuffles of each fold's held-out clusters. That is seconds for
SVR, ridge or the Keras MLP; a pairwise model with a tree base predicts each cluster through every
reference cluster with fully grown trees, and the same budget takes the better part of an hour.

So, before a model-agnostic explanation, the model's ``predict`` is timed on a batch of the
run's clusters; when the default budget would take longer than ``Budget.seconds``, the first
budget of :data:`LADDER` that fits is used (the last one when none does). One log line gives
both estimates, and the figures' titles count the clusters explained.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import numpy as np

from n2react.explain.importance import Budget, _predict, explainer_kind

log = logging.getLogger(__name__)

#: Smaller budgets, tried in turn: a smaller background first (each explained cluster costs
#: in proportion to it), then fewer clusters and shuffles.
LADDER: tuple[dict[str, int], ...] = (
    {"background": 10, "max_rows": 40, "fold_rows": 10, "n_repeats": 5},
    {"background": 5, "max_rows": 20, "fold_rows": 5, "n_repeats": 2},
    {"background": 5, "max_rows": 10, "fold_rows": 3, "n_repeats": 1},
)
#: Clusters per timed predict call (after one call that warms the model up).
TIMED_ROWS = 200


def predictions(budget: Budget, n_rows: int, p: int, fold_sizes: list[tuple[int, int]]) -> int:
    """How many clusters the explanation predicts: ``n_rows`` clusters of ``p`` descriptors for
    the final model (0: no final model), ``fold_sizes`` (training, test) per outer fold."""
    per_row = 2 * (p + 1) * budget.background * max(1, budget.permutations)

    def rows(n: int, cap: int | None) -> int:
        return n if cap is None else min(n, cap)

    total = rows(n_rows, budget.max_rows) * per_row
    for train, test in fold_sizes:
        total += rows(train, budget.fold_rows) * per_row + test * (p * budget.n_repeats + 1)
    return total


def seconds_per_row(model: Any, X: Any) -> float:
    """The model's predict time per cluster, on a batch of :data:`TIMED_ROWS` of ``X``."""
    names = [str(c) for c in X.columns]
    data = X.to_numpy(dtype=float)
    batch = data[np.arange(TIMED_ROWS) % len(data)]
    _predict(model, batch[: min(20, len(batch))], names)  # a first call may build or trace
    t0 = time.perf_counter()
    _predict(model, batch, names)
    return (time.perf_counter() - t0) / len(batch)


def affordable(
    budget: Budget, model: Any, X: Any, n_rows: int, fold_sizes: list[tuple[int, int]]
) -> Budget:
    """``budget``, or the first smaller one of :data:`LADDER` whose estimated time fits within
    ``budget.seconds``, for a model explained model-agnostically (TreeSHAP: ``budget``)."""
    names = [str(c) for c in X.columns]
    if budget.seconds is None or explainer_kind(model, names) == "tree":
        return budget
    per_row = seconds_per_row(model, X)
    p = len(names)
    need = predictions(budget, n_rows, p, fold_sizes) * per_row
    if need <= budget.seconds:
        return budget
    for step in LADDER:
        smaller = replace(
            budget,
            **{
                k: v if getattr(budget, k) is None else min(v, getattr(budget, k))
                for k, v in step.items()
            },
        )
        fits = predictions(smaller, n_rows, p, fold_sizes) * per_row
        if fits <= budget.seconds:
            break
    log.warning(
        "explain: the model predicts slowly (%.1f ms per cluster), so the default explanation "
        "would take about %s; a smaller budget is used (SHAP over %s clusters against a "
        "background of %d, %s per outer-fold model, %d shuffle(s) per descriptor): about %s "
        "(explain=false skips it)",
        1e3 * per_row,
        _duration(need),
        smaller.max_rows,
        smaller.background,
        smaller.fold_rows,
        smaller.n_repeats,
        _duration(fits),
    )
    return smaller


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
