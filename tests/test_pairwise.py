"""Tests of n2react.models.pairwise: pair construction and PairwiseRegressor's fit, predict and
fused folds (early stopping, groups and capabilities: tests/test_pairwise_validation.py)."""

from __future__ import annotations

import os
import pickle

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from pairwise_helpers import _linear, _SpyRegressor  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import LinearRegression, Ridge  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.tree import DecisionTreeRegressor  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from n2react.models.pairwise import PairwiseRegressor, make_pairs, pair_indices  # noqa: E402


# All sklearn checks pass with the default Ridge base; nothing needs expected_failed_checks
# (a single training row raises "n_samples=1", which check_fit2d_1sample accepts).
@parametrize_with_checks([PairwiseRegressor(base=Ridge())])
def test_sklearn_conformance(estimator, check) -> None:
    check(estimator)


# --------------------------------------------------------------------------- pairs


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7])
def test_pair_indices_every_ordered_pair_once(n: int) -> None:
    i, j = pair_indices(n)
    assert len(i) == len(j) == n * (n - 1)
    assert np.all(i != j)
    pairs = set(zip(i.tolist(), j.tolist()))
    assert len(pairs) == n * (n - 1)
    assert pairs == {(a, b) for a in range(n) for b in range(n) if a != b}


def test_make_pairs_values_and_full_size() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(6, 3)), rng.normal(size=6)
    dX, dy = make_pairs(X, y)
    i, j = pair_indices(6)
    for r in range(len(i)):
        np.testing.assert_array_equal(dX[r], X[i[r]] - X[j[r]])
        assert dy[r] == y[i[r]] - y[j[r]]
    # The data set's size: 159 clusters -> 25,122 pairs, built vectorised (no timing assert).
    X159, y159 = rng.normal(size=(159, 24)), rng.normal(size=159)
    dX, dy = make_pairs(X159, y159)
    assert dX.shape == (159 * 158, 24) and dy.shape == (159 * 158,)
    with pytest.raises(ValueError):
        make_pairs(X159, y159[:-1])


# --------------------------------------------------------------------------- the regressor


def test_linear_base_recovers_linear_function() -> None:
    X, y, w = _linear(n=40)
    X_new = np.random.default_rng(5).normal(size=(15, X.shape[1]))
    est = PairwiseRegressor(base=LinearRegression()).fit(X, y)
    assert est.n_pairs_ == 40 * 39 and est.n_features_in_ == X.shape[1]
    mean, std = est.predict(X_new, return_std=True)
    # Differences recover w; the intercept comes back through the references' y.
    np.testing.assert_allclose(mean, X_new @ w - 12.5, atol=1e-8)
    assert mean.shape == std.shape == (15,)
    np.testing.assert_allclose(std, 0.0, atol=1e-8)  # noise-free: every reference agrees
    np.testing.assert_allclose(est.predict(X_new), mean)


def test_return_std_is_reference_spread() -> None:
    X, y, _ = _linear(n=30, noise=0.3)
    est = PairwiseRegressor(base=Ridge(alpha=0.1)).fit(X, y)
    X_new = X[:7] + 0.01
    mean, std = est.predict(X_new, return_std=True)
    assert std.shape == (7,) and np.all(std > 0) and np.all(np.isfinite(std))
    # Brute force over references.
    per_ref = np.array(
        [[est.difference((x - r)[None])[0] + yr for r, yr in zip(X, y)] for x in X_new]
    )
    np.testing.assert_allclose(mean, per_ref.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(std, per_ref.std(axis=1), rtol=1e-10, atol=1e-12)


def test_predict_chunking_matches_unchunked(monkeypatch: pytest.MonkeyPatch) -> None:
    import n2react.models.pairwise as pw

    X, y, _ = _linear(n=30, noise=0.5)
    est = PairwiseRegressor(base=DecisionTreeRegressor(random_state=0)).fit(X, y)
    X_new = np.random.default_rng(2).normal(size=(25, X.shape[1]))
    full = est.predict(X_new, return_std=True)
    monkeypatch.setattr(pw, "_CHUNK_PAIRS", 70)  # 2 rows per chunk
    chunked = est.predict(X_new, return_std=True)
    np.testing.assert_allclose(chunked[0], full[0], rtol=1e-13)
    np.testing.assert_allclose(chunked[1], full[1], rtol=1e-13)


def test_symmetrized_difference_is_antisymmetric() -> None:
    X, y, _ = _linear(n=30, noise=0.5)
    D = np.random.default_rng(3).normal(size=(50, X.shape[1]))
    tree = DecisionTreeRegressor(max_depth=4, random_state=0)
    sym = PairwiseRegressor(base=tree, max_pairs=300, random_state=0).fit(X, y)
    np.testing.assert_array_equal(sym.difference(-D), -sym.difference(D))
    np.testing.assert_array_equal(sym.difference(np.zeros((1, X.shape[1]))), [0.0])
    raw = PairwiseRegressor(base=tree, max_pairs=300, symmetrize=False, random_state=0).fit(X, y)
    assert not np.allclose(raw.difference(-D), -raw.difference(D))


def test_fit_sees_only_its_own_rows() -> None:
    X, y, _ = _linear(n=50)
    rows_a, rows_b = np.arange(0, 20), np.arange(20, 50)
    est = PairwiseRegressor(base=_SpyRegressor()).fit(X[rows_a], y[rows_a])
    n_a = len(rows_a)
    assert est.base_.fit_X_.shape == (n_a * (n_a - 1), X.shape[1])
    dX_a, dy_a = make_pairs(X[rows_a], y[rows_a])
    np.testing.assert_array_equal(est.base_.fit_X_, dX_a)
    np.testing.assert_array_equal(est.base_.fit_y_, dy_a)
    np.testing.assert_array_equal(est.X_ref_, X[rows_a])
    # Folds of fit_many are built from their own rows only, too.
    fitted = PairwiseRegressor(base=_SpyRegressor()).fit_many(
        [X[rows_a], X[rows_b]], [y[rows_a], y[rows_b]]
    )
    for est_k, rows in zip(fitted, (rows_a, rows_b)):
        np.testing.assert_array_equal(est_k.base_.fit_X_, make_pairs(X[rows], y[rows])[0])
        np.testing.assert_array_equal(est_k.y_ref_, y[rows])


def test_max_pairs_subsample_is_seeded() -> None:
    X, y, _ = _linear(n=30)
    a = PairwiseRegressor(base=_SpyRegressor(), max_pairs=100, random_state=3).fit(X, y)
    b = PairwiseRegressor(base=_SpyRegressor(), max_pairs=100, random_state=3).fit(X, y)
    c = PairwiseRegressor(base=_SpyRegressor(), max_pairs=100, random_state=4).fit(X, y)
    assert a.n_pairs_ == 100 and a.base_.fit_X_.shape == (100, X.shape[1])
    np.testing.assert_array_equal(a.base_.fit_X_, b.base_.fit_X_)
    assert not np.array_equal(a.base_.fit_X_, c.base_.fit_X_)
    # Every subsampled row is a genuine pair difference.
    dX, _ = make_pairs(X, y)
    assert {r.tobytes() for r in a.base_.fit_X_} <= {r.tobytes() for r in dX}
    # max_pairs above the pair count keeps all pairs.
    assert PairwiseRegressor(max_pairs=10**6).fit(X, y).n_pairs_ == 30 * 29


def test_fit_predict_many_with_ridge_equals_single_fits() -> None:
    X, y, _ = _linear(n=60, noise=0.2)
    folds = [np.arange(0, 40), np.arange(15, 60), np.arange(30, 50)]
    tests = [np.arange(40, 60), np.arange(0, 15), np.arange(0, 30)]
    est = PairwiseRegressor(base=Ridge(alpha=0.5), max_pairs=500, random_state=0)
    fused = est.fit_predict_many(
        [X[f] for f in folds], [y[f] for f in folds], [X[t] for t in tests]
    )
    assert [p.shape for p in fused] == [(20,), (15,), (30,)]
    for k, (f, t) in enumerate(zip(folds, tests)):
        alone = est.fit_many([X[f]], [y[f]], model_indices=[k])[0].predict(X[t])
        np.testing.assert_allclose(fused[k], alone, rtol=1e-12, atol=1e-12)
    # fit() is model index 0.
    np.testing.assert_allclose(
        clone(est).fit(X[folds[0]], y[folds[0]]).predict(X[tests[0]]), fused[0]
    )
    assert not hasattr(est, "base_")  # the template itself stays unfitted


def test_fit_predict_many_with_keras_base_matches_single_fits() -> None:
    from n2react.models.keras_mlp import KerasMLPRegressor

    X, y, _ = _linear(n=40, p=4, noise=0.1)
    folds = [np.arange(0, 24), np.arange(12, 34)]  # different pair counts: 552 and 462
    tests = [np.arange(24, 40), np.arange(0, 12)]
    base = KerasMLPRegressor(max_epochs=20, units=16, random_state=0)
    est = PairwiseRegressor(base=base, random_state=0)  # seeds the held-out validation clusters
    fused = est.fit_predict_many(
        [X[f] for f in folds], [y[f] for f in folds], [X[t] for t in tests]
    )
    assert all(np.all(np.isfinite(p)) for p in fused)
    # Fold k's base is Keras model index k (passed as model_indices), so training it alone with
    # the same index reproduces it.  The Keras engine is only equal up to float round-off of its
    # padded batched matmuls (pair counts differ between folds), hence the 1e-4 tolerance.
    for k, (f, t) in enumerate(zip(folds, tests)):
        alone = est.fit_many([X[f]], [y[f]], model_indices=[k])[0].predict(X[t])
        np.testing.assert_allclose(fused[k], alone, rtol=1e-4, atol=1e-4)
    single = PairwiseRegressor(base=clone(base), random_state=0).fit(X[folds[0]], y[folds[0]])
    np.testing.assert_allclose(single.predict(X[tests[0]]), fused[0], rtol=1e-4, atol=1e-4)


def test_fold_predictions_uses_fit_predict_many() -> None:
    from n2react.cv import fold_predictions
    from n2react.splitters import Split

    X, y, _ = _linear(n=45, noise=0.2)
    pipe = Pipeline([("scale", StandardScaler()), ("model", PairwiseRegressor(base=Ridge()))])
    splits = [(np.arange(15, 45), np.arange(0, 15)), (np.arange(0, 30), np.arange(30, 45))]
    folds = [Split(k + 1, 1, tr, te) for k, (tr, te) in enumerate(splits)]
    preds = fold_predictions(lambda _s: clone(pipe), X, y, folds)
    for (tr, te), p in zip(splits, preds):
        ref = clone(pipe).fit(X[tr], y[tr]).predict(X[te])
        np.testing.assert_allclose(p, ref, rtol=1e-10, atol=1e-10)


def test_params_clone_and_pickle() -> None:
    est = PairwiseRegressor(base=Ridge(alpha=2.0), max_pairs=500, random_state=1)
    params = est.get_params()
    assert params["base__alpha"] == 2.0 and params["max_pairs"] == 500
    c = clone(est)
    c.set_params(base__alpha=5.0, symmetrize=False)
    assert c.base.alpha == 5.0 and not c.symmetrize and est.base.alpha == 2.0
    assert PairwiseRegressor().get_params()["base"] is None
    X, y, _ = _linear(n=25, noise=0.1)
    est.fit(X, y)
    other = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(other.predict(X), est.predict(X))


def test_dataframe_feature_names_and_errors() -> None:
    X, y, _ = _linear(n=20, p=3)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    est = PairwiseRegressor().fit(df, y)
    assert list(est.feature_names_in_) == ["a", "b", "c"]
    assert est.predict(df).shape == (20,)
    with pytest.raises(ValueError, match="at least 2 training rows"):
        PairwiseRegressor().fit(X[:1], y[:1])
    with pytest.raises(ValueError, match="max_pairs"):
        PairwiseRegressor(max_pairs=0).fit(X, y)
    with pytest.raises(ValueError, match="same length"):
        PairwiseRegressor().fit_predict_many([X], [y], [X, X])
    with pytest.raises(ValueError, match="model_indices"):
        PairwiseRegressor().fit_many([X, X], [y, y], model_indices=[0])
