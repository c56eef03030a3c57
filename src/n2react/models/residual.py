"""A linear trend with trees on its residuals: a model that extrapolates to new compositions.

Tree ensembles interpolate well inside known families but cannot extrapolate: a cluster of a
metal they never saw gets the average of the leaves it lands in. A ridge regression carries the
broad linear trend of lg(k1) with the descriptors to new metals; extremely randomised trees then
model what the trend leaves unexplained. At prediction time the inputs are clipped to the
training range per descriptor and the prediction to the training range of lg(k1), so a cluster
far outside the training domain is not extrapolated into nonsense.

Chosen for ``experiment=new_compositions`` by grouped cross-validation (leave one metal out and
metal + ligand families), see the README.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.linear_model import RidgeCV
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["RidgeResidualTrees"]


class RidgeResidualTrees(RegressorMixin, BaseEstimator):
    """``RidgeCV`` on the inputs, then ``ExtraTreesRegressor`` on the ridge's residuals.

    Parameters
    ----------
    alphas : sequence of float
        Ridge penalties tried by ``RidgeCV`` (efficient leave-one-out on the rows given to fit).
    n_estimators, max_features, min_samples_leaf : ExtraTreesRegressor parameters
    clip : bool
        Clip inputs to the training range per column, and predictions to the training range of
        the target.
    random_state : int or None
        Seeds the trees.
    n_jobs : int or None
        For the trees.
    """

    def __init__(
        self,
        alphas: tuple[float, ...] = tuple(np.logspace(-3, 3, 13)),
        n_estimators: int = 500,
        max_features: float | str | None = 1.0,
        min_samples_leaf: int = 1,
        clip: bool = True,
        random_state: int | None = None,
        n_jobs: int | None = 1,
    ) -> None:
        self.alphas = alphas
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.clip = clip
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: Any) -> RidgeResidualTrees:
        X, y = validate_data(self, X, y, y_numeric=True, multi_output=False)
        y = np.asarray(y, dtype=float)
        self.x_min_, self.x_max_ = X.min(axis=0), X.max(axis=0)
        self.y_min_, self.y_max_ = float(y.min()), float(y.max())
        self.linear_ = RidgeCV(alphas=np.asarray(self.alphas, dtype=float)).fit(X, y)
        trees = ExtraTreesRegressor(
            n_estimators=self.n_estimators,
            max_features=self.max_features,
            min_samples_leaf=self.min_samples_leaf,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        )
        self.trees_ = clone(trees).fit(X, y - self.linear_.predict(X))
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "trees_")
        X = validate_data(self, X, reset=False)
        if self.clip:
            X = np.clip(X, self.x_min_, self.x_max_)
        pred = self.linear_.predict(X) + self.trees_.predict(X)
        return np.clip(pred, self.y_min_, self.y_max_) if self.clip else pred
