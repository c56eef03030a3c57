"""Per-cluster explanations of predictions (``python -m predict ... --explain``).

Each predicted cluster gets one SHAP value per descriptor: how much that descriptor moves its
predicted lg(k1) away from the average prediction over the training clusters. The background is
the training clusters themselves, recovered from the run's applicability domain (which keeps
their imputed descriptors), and the values come from the same model-agnostic permutation
explainer as the run's own importance plots, so they sum to ``y_pred - base``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from n2react.errors import N2ReactError
from n2react.explain.importance import Budget, _permutation_shap, _predict


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
    budget = budget or Budget()
    names = [str(c) for c in X.columns]
    background = training_rows(domain)[names]
    values = _permutation_shap(model, background, X.reset_index(drop=True), names, budget, 0)
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
