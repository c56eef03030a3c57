"""Tests of n2react.models.pairwise (pair construction and PairwiseRegressor)."""

from __future__ import annotations

import os
import pickle
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from sklearn.base import BaseEstimator, RegressorMixin, clone  # noqa: E402
from sklearn.linear_model import LinearRegression, Ridge  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.tree import DecisionTreeRegressor  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from n2react.capabilities import (  # noqa: E402
    EpochTrained,
    FitsMany,
    GroupAware,
    SpreadPredictor,
    Wrapper,
)
from n2react.models.pairwise import PairwiseRegressor, make_pairs, pair_indices  # noqa: E402


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


def test_keras_base_stops_early_on_held_out_clusters() -> None:
    """Cluster validation: no training pair touches a held-out cluster; the early-stopping rows
    are exactly the pairs between a held-out and a kept cluster, in both orders."""
    from n2react.models.keras_mlp import KerasMLPRegressor

    n = 30
    X = np.arange(n, dtype=float)[:, None] * np.ones((1, 3))  # row i is (i, i, i)
    y = np.arange(n, dtype=float)
    base = KerasMLPRegressor(max_epochs=3, units=8, validation_fraction=0.2, random_state=0)
    est = PairwiseRegressor(base=base, random_state=0)
    dX, dy, mask = est._build_pairs(X, y, 0)
    assert mask is not None and mask.dtype == bool
    held = 6  # round(0.2 * 30)
    kept = n - held
    assert (~mask).sum() == kept * (kept - 1) and mask.sum() == 2 * held * kept
    est.fit(X, y)
    assert est.n_pairs_ == kept * (kept - 1)
    assert len(est.base_.validation_indices_) == 2 * held * kept
    # 'pairs' keeps the old behaviour: all pairs go to the base, which carves out random ones
    old = PairwiseRegressor(base=clone(base), validation="pairs", random_state=0).fit(X, y)
    assert old.n_pairs_ == n * (n - 1)


def test_max_pairs_caps_the_validation_pairs_in_proportion() -> None:
    """max_pairs capped only the training pairs: at max_pairs=100 of 24 x 23 = 552, all 288
    held-out/kept validation pairs were still built (74% of each epoch instead of 34%). Now they
    are a seeded subset in the same proportion, both orders, still held-out/kept pairs only."""
    from n2react.models.keras_mlp import KerasMLPRegressor

    n, held, kept = 30, 6, 24  # round(0.2 * 30) held out
    r = np.arange(n, dtype=float)
    X, y = np.column_stack([r, r**2]), r  # a pair (i, j) is read back from (i - j, i^2 - j^2)

    def pairs_of(d: np.ndarray) -> list[tuple[int, int]]:
        s = d[:, 1] / d[:, 0]  # i + j
        return [(round((a + b) / 2), round((b - a) / 2)) for a, b in zip(d[:, 0], s)]

    base = KerasMLPRegressor(max_epochs=2, units=8, validation_fraction=0.2, random_state=0)
    est = PairwiseRegressor(base=base, max_pairs=100, random_state=0)
    dX, dy, mask = est._build_pairs(X, y, 0)
    share = 2 * held * kept / (2 * held * kept + kept * (kept - 1))
    assert (~mask).sum() == 100 and mask.sum() == 2 * round(100 * held / (kept - 1)) == 52
    assert abs(mask.mean() - share) < 0.01
    val = set(pairs_of(dX[mask]))
    assert len(val) == 52 and all((j, i) in val for i, j in val)  # both orders
    held_out = set(range(n)) - {c for p in pairs_of(dX[~mask]) for c in p}
    assert len(held_out) == held and all((i in held_out) != (j in held_out) for i, j in val)
    again = PairwiseRegressor(base=clone(base), max_pairs=100, random_state=0)._build_pairs(X, y, 0)
    assert np.array_equal(again[0], dX) and np.array_equal(again[2], mask)  # seeded
    est.fit(X, y)
    assert est.n_pairs_ == 100 and len(est.base_.validation_indices_) == 52
    # a cap at or above the kept clusters' pairs subsamples nothing: all validation pairs stay
    full = PairwiseRegressor(base=clone(base), max_pairs=kept * (kept - 1), random_state=0)
    assert full._build_pairs(X, y, 0)[2].sum() == 2 * held * kept


def test_cluster_validation_never_pairs_a_held_out_cluster_in_training() -> None:
    from n2react.models.keras_mlp import KerasMLPRegressor

    n = 25
    rng = np.random.default_rng(3)
    X = rng.normal(size=(n, 4))
    y = rng.normal(size=n)
    base = KerasMLPRegressor(validation_fraction=0.2, random_state=0)
    dX, dy, mask = PairwiseRegressor(base=base, random_state=1)._build_pairs(X, y, 0)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    row_of = {tuple(np.round(X[i] - X[j], 12)): (i, j) for i, j in pairs}
    train = {row_of[tuple(np.round(d, 12))] for d in dX[~mask]}
    val = [row_of[tuple(np.round(d, 12))] for d in dX[mask]]
    in_train = {i for pair in train for i in pair}
    held = set(range(n)) - in_train
    assert len(held) == 5
    assert all((i in held) != (j in held) for i, j in val)  # one held-out, one kept
    assert {i for pair in val for i in pair} == set(range(n))


def test_bad_validation_option_and_mask_are_rejected() -> None:
    from n2react.models.keras_mlp import KerasMLPRegressor

    X, y, _ = _linear(n=12, p=2)
    with pytest.raises(ValueError, match="validation must be 'clusters' or 'pairs'"):
        PairwiseRegressor(validation="rows").fit(X, y)
    # pairwise.wrapper.symmetrize=maybe was read as true, max_pairs=2.5 as 2
    with pytest.raises(ValueError, match="symmetrize must be true or false, got 'maybe'"):
        PairwiseRegressor(symmetrize="maybe").fit(X, y)
    with pytest.raises(ValueError, match="max_pairs must be None or a whole number >= 2"):
        PairwiseRegressor(max_pairs=2.5).fit(X, y)
    # one pair trained a constant difference: every cluster got the training mean
    with pytest.raises(ValueError, match="max_pairs must be None or a whole number >= 2"):
        PairwiseRegressor(max_pairs=1).fit(X, y)
    with pytest.raises(ValueError, match="leave rows for both"):
        KerasMLPRegressor(max_epochs=2).fit(X, y, validation_mask=np.ones(12, bool))
    with pytest.raises(ValueError, match="boolean array of length 12"):
        KerasMLPRegressor(max_epochs=2).fit(X, y, validation_mask=np.ones(5, bool))


def test_fused_folds_mix_held_out_clusters_and_a_fold_too_small_to_hold_any() -> None:
    """A 4-cluster fold holds none out (0.1 * 4 rounds to 0) beside a 30-cluster fold that
    holds 3 out: each fold keeps its own early-stopping rows in the one fused run."""
    from n2react.models.keras_mlp import KerasMLPRegressor

    X, y, _ = _linear(n=34, p=3)
    base = KerasMLPRegressor(max_epochs=3, units=8, random_state=0)
    small, big = PairwiseRegressor(base=base, random_state=0).fit_many(
        [X[:4], X[4:]], [y[:4], y[4:]]
    )
    assert small.n_pairs_ == 4 * 3  # all pairs; the base carved its own validation pairs
    assert big.n_pairs_ == 27 * 26
    assert len(big.base_.validation_indices_) == 2 * 3 * 27


# --------------------------------------------------------------------------- capabilities, groups


class _EpochSpy(_SpyRegressor, EpochTrained):
    """A spy that stops early like the Keras MLP: it takes the validation mask and keeps it."""

    def __init__(self, alpha: float = 1.0, validation_fraction: float = 0.25) -> None:
        super().__init__(alpha)
        self.validation_fraction = validation_fraction

    def fit(self, X: np.ndarray, y: np.ndarray, validation_mask: Any = None) -> _EpochSpy:
        self.validation_mask_ = validation_mask
        return super().fit(X, y)


def test_declares_its_capabilities_and_asks_its_base_by_type() -> None:
    from n2react.capabilities import epochs_param, inner_model, uses_accelerator
    from n2react.models.keras_mlp import KerasMLPRegressor

    est = PairwiseRegressor(base=KerasMLPRegressor())
    for abc in (FitsMany, GroupAware, SpreadPredictor, Wrapper):
        assert isinstance(est, abc)
    assert isinstance(inner_model(est), KerasMLPRegressor) and uses_accelerator(est)
    assert epochs_param(est) == "base__max_epochs"
    assert not uses_accelerator(PairwiseRegressor(base=Ridge()))
    # Early stopping on held-out clusters is for EpochTrained bases, whatever fit's signature.
    X, y, _ = _linear(n=20)
    assert PairwiseRegressor(base=_EpochSpy(), random_state=0).fit(X, y).n_pairs_ == 15 * 14
    assert PairwiseRegressor(base=_SpyRegressor()).fit(X, y).n_pairs_ == 20 * 19


def _pair_rows(X: np.ndarray, dX: np.ndarray) -> list[tuple[int, int]]:
    n = len(X)
    row_of = {
        tuple(np.round(X[i] - X[j], 12)): (i, j) for i in range(n) for j in range(n) if i != j
    }
    return [row_of[tuple(np.round(d, 12))] for d in dX]


def _check_no_group_on_both_sides(X, groups, dX, mask) -> None:
    train = _pair_rows(X, dX[~mask])
    val = _pair_rows(X, dX[mask])
    held = {i for pair in val for i in pair} - {i for pair in train for i in pair}
    assert held and all((i in held) != (j in held) for i, j in val)
    held_groups = {groups[i] for i in held}
    # no training pair touches a held-out group
    assert all(groups[i] not in held_groups and groups[j] not in held_groups for i, j in train)


def test_groups_keep_held_out_clusters_whole_in_fit_and_fit_many() -> None:
    rng = np.random.default_rng(4)
    n = 40
    X, y = rng.normal(size=(n, 3)), rng.normal(size=n)
    groups = rng.permutation(np.repeat(["Fe", "Co", "Ni", "Cu", "Zn", "Ag", "Au", "Pt"], 5))
    est = PairwiseRegressor(base=_EpochSpy(validation_fraction=0.2), random_state=0)
    one = est.fit(X, y, groups=groups)
    _check_no_group_on_both_sides(X, groups, one.base_.fit_X_, one.base_.validation_mask_)
    assert one.n_pairs_ == 30 * 29  # 2 groups of 5 held out: >= 0.2 * 40 clusters
    rows = [np.arange(0, 30), np.arange(10, 40)]
    fitted = est.fit_many(
        [X[r] for r in rows], [y[r] for r in rows], groups=[groups[r] for r in rows]
    )
    for f, r in zip(fitted, rows):
        _check_no_group_on_both_sides(X[r], groups[r], f.base_.fit_X_, f.base_.validation_mask_)
    with pytest.raises(ValueError, match="one label per row"):
        est.fit(X, y, groups=groups[:5])


def test_groups_with_the_fused_keras_base_equal_single_fits() -> None:
    from n2react.models.keras_mlp import KerasMLPRegressor

    X, y, _ = _linear(n=36, p=3, noise=0.1)
    groups = np.arange(36) // 4  # 9 groups of 4
    rows = [np.arange(0, 24), np.arange(12, 36)]
    base = KerasMLPRegressor(max_epochs=5, units=8, validation_fraction=0.2, random_state=0)
    est = PairwiseRegressor(base=base, random_state=0)
    fused = est.fit_many(
        [X[r] for r in rows], [y[r] for r in rows], groups=[groups[r] for r in rows]
    )
    for k, r in enumerate(rows):
        alone = est.fit_many([X[r]], [y[r]], model_indices=[k], groups=[groups[r]])[0]
        assert alone.n_pairs_ == fused[k].n_pairs_ == 16 * 15  # 2 whole groups of 4 held out
        np.testing.assert_allclose(alone.predict(X), fused[k].predict(X), rtol=1e-4, atol=1e-4)
    single = clone(est).fit(X[rows[0]], y[rows[0]], groups=groups[rows[0]])
    np.testing.assert_allclose(single.predict(X), fused[0].predict(X), rtol=1e-4, atol=1e-4)


def test_a_single_group_holds_out_random_clusters_with_one_warning(caplog) -> None:
    X, y, _ = _linear(n=30)
    est = PairwiseRegressor(base=_EpochSpy(), random_state=0)
    with caplog.at_level("WARNING", logger="n2react.models.pairwise"):
        a = est.fit(X, y, groups=np.zeros(30))
    assert sum("single group" in r.getMessage() for r in caplog.records) == 1
    b = est.fit(X, y)
    np.testing.assert_array_equal(a.base_.fit_X_, b.base_.fit_X_)  # as without groups


def test_history_is_the_bases() -> None:
    from sklearn.exceptions import NotFittedError

    from n2react.models.keras_mlp import KerasMLPRegressor

    X, y, _ = _linear(n=20, p=3)
    assert not hasattr(PairwiseRegressor(), "history_")  # NotFittedError is an AttributeError
    assert issubclass(NotFittedError, AttributeError)
    assert PairwiseRegressor(base=Ridge()).fit(X, y).history_ is None
    base = KerasMLPRegressor(max_epochs=4, units=8, random_state=0)
    est = PairwiseRegressor(base=base, random_state=0)
    fitted = clone(est).fit(X, y)
    assert fitted.history_ is fitted.base_.history_ and len(fitted.history_["val_loss"]) >= 1
    preds, infos = est.fit_predict_many([X, X[:12]], [y, y[:12]], [X, X], return_info=True)
    assert len(preds) == len(infos) == 2
    # fold 0 is fit's model 0 (equal up to the float round-off of the padded fused run)
    np.testing.assert_allclose(infos[0]["history"]["loss"], fitted.history_["loss"], rtol=1e-4)
    assert infos[1]["n_pairs"] == 11 * 10  # round(0.1 * 12) = 1 cluster held out
