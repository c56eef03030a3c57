"""n2react.models.residual.RidgeResidualTrees (model=ridge_trees): scikit-learn's estimator
contract, and the clipping that keeps a cluster far outside the training range from being
extrapolated."""

from __future__ import annotations

import numpy as np
from sklearn.utils.estimator_checks import parametrize_with_checks

from n2react.models.residual import RidgeResidualTrees


# Every check passes with a small forest (~5 s), none listed as an expected failure.
@parametrize_with_checks([RidgeResidualTrees(n_estimators=5, random_state=0)])
def test_sklearn_conformance(estimator, check) -> None:
    check(estimator)


def test_clip_keeps_predictions_inside_the_training_range() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = 2.0 * X[:, 0] - 12.0
    far = np.array([[50.0, 0.0, 0.0], [-50.0, 0.0, 0.0]])
    clipped = RidgeResidualTrees(n_estimators=20, random_state=0).fit(X, y).predict(far)
    assert y.min() <= clipped.min() and clipped.max() <= y.max()
    free = RidgeResidualTrees(n_estimators=20, clip=False, random_state=0).fit(X, y).predict(far)
    assert free.max() > y.max() + 50 and free.min() < y.min() - 50  # the ridge extrapolates
