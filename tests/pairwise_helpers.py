"""Shared by tests/test_pairwise*.py: a linear data set and a base that remembers its rows."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge


def _linear(n: int = 40, p: int = 5, seed: int = 0, noise: float = 0.0) -> tuple:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    w = rng.normal(size=p)
    y = X @ w - 12.5 + noise * rng.normal(size=n)
    return X, y, w


class _SpyRegressor(RegressorMixin, BaseEstimator):
    """A Ridge that remembers the rows it was fitted on (to check what reaches the base)."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, X: np.ndarray, y: np.ndarray) -> _SpyRegressor:
        self.fit_X_ = np.array(X, copy=True)
        self.fit_y_ = np.array(y, copy=True)
        self.model_ = Ridge(alpha=self.alpha).fit(X, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(X)
