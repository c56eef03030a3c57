"""How hard a cluster is to predict: the *difficulty* that normalises a conformal interval's
width and scales the expected error (:mod:`n2react.uncertainty` calibrates with it).

* ``none``: the same for every cluster;
* ``knn_distance``: the mean distance to the ``k`` nearest reference (training) clusters in their
  standardised descriptor space;
* ``knn_residual``: the mean out-of-fold |residual| of those ``k`` nearest clusters (the held-out
  error the model made on similar clusters);
* ``spread``: the spread of the model's own ensemble on the cluster (a forest: the standard
  deviation of its trees' predictions; a pairwise model: over its reference clusters); a model
  that gives no spread is refused (:func:`n2react.capabilities.gives_spread`);
* ``spread_knn``: the geometric mean of ``spread`` and ``knn_residual``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from n2react.errors import ConfigError, DataError

DIFFICULTIES = ("none", "knn_distance", "knn_residual", "spread", "spread_knn")
#: The difficulties read from the model's own spread (the model must give one).
SPREAD_DIFFICULTIES = ("spread", "spread_knn")
#: Added to a difficulty so that no normalised score divides by zero.
BETA = 0.05


def model_spread(model: Any, X: Any) -> np.ndarray:
    """The spread of a fitted model's (or pipeline's) own prediction of ``X``: a
    :class:`~n2react.capabilities.SpreadPredictor`'s ``return_std``, or the standard deviation
    over a :class:`~n2react.capabilities.MemberEnsemble`'s members after the preprocessing."""
    from sklearn.pipeline import Pipeline

    from n2react.capabilities import (
        SpreadPredictor,
        final_step,
        is_member_ensemble,
        member_spread,
    )

    final = final_step(model)
    if isinstance(final, SpreadPredictor):
        return np.asarray(model.predict(X, return_std=True)[1], dtype=float).ravel()
    if is_member_ensemble(final):
        steps = model[:-1] if isinstance(model, Pipeline) and len(model.steps) > 1 else None
        return member_spread(final, X if steps is None else steps.transform(X))
    raise ConfigError(f"{type(final).__name__} gives no spread of its own predictions")


def combine(kind: str, spread: np.ndarray | None, base: np.ndarray) -> np.ndarray:
    """The difficulty of ``kind`` from the model's ``spread`` and the neighbourhood's ``base``
    (``knn_residual`` for ``spread_knn``; unused by ``spread``)."""
    if kind not in SPREAD_DIFFICULTIES:
        return base
    if spread is None:
        raise DataError(f"uncertainty.difficulty={kind}: the model's spread is needed")
    s = np.asarray(spread, dtype=float) + BETA
    return s if kind == "spread" else np.sqrt(s * base)


class Neighbourhood:
    """The reference (training) clusters in their own standardised descriptor space."""

    def __init__(self, X: np.ndarray, abs_residual: np.ndarray | None = None) -> None:
        X = np.asarray(X, dtype=float)
        self.median = np.nanmedian(X, axis=0)
        self.median = np.where(np.isnan(self.median), 0.0, self.median)
        filled = np.where(np.isnan(X), self.median, X)
        self.mean = filled.mean(axis=0)
        sd = filled.std(axis=0)
        self.scale = np.where(sd > 0, sd, 1.0)
        self.Z = (filled - self.mean) / self.scale
        self.abs_residual = None if abs_residual is None else np.asarray(abs_residual, float)

    def difficulty(self, X: np.ndarray, kind: str, k: int) -> np.ndarray:
        """Each row's difficulty (``kind``, see the module docstring) against the references."""
        if kind == "none":
            return np.ones(len(X))
        X = np.asarray(X, dtype=float)
        Z = (np.where(np.isnan(X), self.median, X) - self.mean) / self.scale
        sq = (Z**2).sum(1)[:, None] + (self.Z**2).sum(1)[None, :] - 2.0 * Z @ self.Z.T
        d = np.sqrt(np.maximum(sq, 0.0))
        kk = min(int(k), self.Z.shape[0])
        nearest = np.argsort(d, axis=1)[:, :kk]
        if kind == "knn_distance":
            return np.take_along_axis(d, nearest, axis=1).mean(axis=1) + BETA
        assert self.abs_residual is not None, "knn_residual needs the references' residuals"
        return self.abs_residual[nearest].mean(axis=1) + BETA


def base_kind(kind: str) -> str:
    """The neighbourhood difficulty a kind builds on."""
    return {"spread": "none", "spread_knn": "knn_residual"}.get(kind, kind)
