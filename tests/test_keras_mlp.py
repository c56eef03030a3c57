"""Tests of n2react.models.keras_mlp.KerasMLPRegressor (fast; the JAX one runs a subprocess)."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_regression  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from n2react.models.keras_mlp import KerasMLPRegressor  # noqa: E402

FAST = {"units": 16, "max_epochs": 60, "patience": 10, "learning_rate": 1e-2}


def _data(n: int = 120, d: int = 6, noise: float = 5.0, seed: int = 0) -> tuple:
    X, y = make_regression(n, d, noise=noise, random_state=seed)
    return X.astype(np.float32), y / 50.0 - 12.0  # lg(k1)-like offset and scale


# All sklearn estimator checks pass (no expected failures): fit validates its input with
# validate_data, a single sample raises "n_samples=1", and fits are deterministic for a given
# random_state.  The checks fit ~60 small models (~10 s on 2 CPU cores).
@parametrize_with_checks(
    [KerasMLPRegressor(units=16, max_epochs=100, patience=10, learning_rate=1e-2, random_state=0)]
)
def test_sklearn_conformance(estimator, check) -> None:
    check(estimator)


def test_params_clone_and_units() -> None:
    est = KerasMLPRegressor(n_layers=3, units=416, units_decrement=32, l2=1e-4)
    params = est.get_params()
    assert params["units"] == 416 and params["l2"] == 1e-4 and params["batch_size"] is None
    assert est._hidden_units() == [416, 384, 352]
    assert KerasMLPRegressor(n_layers=4, units=8, units_decrement=4)._hidden_units() == [8, 4, 1, 1]
    c = clone(est)
    assert c.get_params() == params
    c.set_params(units=32, dropout=0.1)
    assert c.units == 32 and c.dropout == 0.1 and est.units == 416


def test_fit_predict_and_exported_model(tmp_path) -> None:
    import keras

    X, y = _data()
    est = KerasMLPRegressor(n_layers=2, dropout=0.1, random_state=0, **FAST).fit(X, y)
    pred = est.predict(X)
    assert pred.shape == (len(X),) and np.all(np.isfinite(pred))
    assert est.score(X, y) > 0.5
    assert est.n_features_in_ == X.shape[1]
    assert 1 <= est.n_epochs_ <= FAST["max_epochs"]
    assert len(est.history_["loss"]) == len(est.history_["val_loss"]) == est.n_epochs_
    assert not est.diverged_
    # Exported model: raw X -> original units, equal to predict, survives .keras round trip.
    np.testing.assert_allclose(est.model_.predict(X, verbose=0).ravel(), pred, rtol=1e-5, atol=1e-5)
    path = tmp_path / "mlp.keras"
    est.model_.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(X, verbose=0).ravel(), pred, rtol=1e-5, atol=1e-5)
    # skops (the run's model files: weights as arrays, no Keras config), pickle and deepcopy.
    from n2react.runstore import load_model_file, save_model

    skopsed = load_model_file(save_model(est, tmp_path / "mlp.skops"))
    for other in (skopsed, pickle.loads(pickle.dumps(est)), copy.deepcopy(est)):
        np.testing.assert_allclose(other.predict(X), pred, rtol=1e-6, atol=1e-6)
        assert other.history_ == est.history_
    assert hasattr(est, "model_")  # pickling must not strip the live estimator


def test_dataframe_feature_names() -> None:
    pd = pytest.importorskip("pandas")
    X, y = _data(d=3)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    est = KerasMLPRegressor(random_state=0, **FAST).fit(df, y)
    assert list(est.feature_names_in_) == ["a", "b", "c"]
    with pytest.warns(UserWarning, match="feature names"):
        from_array = est.predict(X)
    np.testing.assert_allclose(est.predict(df), from_array, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs", [{}, {"batch_size": 32, "dropout": 0.2, "reduce_lr_patience": 3}]
)
def test_determinism(kwargs: dict) -> None:
    X, y = _data()
    a = KerasMLPRegressor(random_state=3, **FAST, **kwargs).fit(X, y).predict(X)
    b = KerasMLPRegressor(random_state=3, **FAST, **kwargs).fit(X, y).predict(X)
    c = KerasMLPRegressor(random_state=4, **FAST, **kwargs).fit(X, y).predict(X)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert np.max(np.abs(a - c)) > 1e-4


def test_early_stopping_restores_best_weights() -> None:
    # Few noisy rows, a wide net and a high learning rate: the validation loss bottoms out early.
    X, y = _data(n=60, d=8, noise=40.0, seed=1)
    est = KerasMLPRegressor(
        n_layers=2,
        units=64,
        learning_rate=3e-2,
        max_epochs=400,
        patience=8,
        validation_fraction=0.3,
        random_state=0,
    ).fit(X, y)
    val = est.history_["val_loss"]
    assert est.n_epochs_ < 400
    assert est.n_epochs_ - est.best_epoch_ == 8
    assert est.best_epoch_ == int(np.argmin(val)) + 1
    assert val[-1] > min(val)
    idx = est.validation_indices_
    assert len(idx) == 18
    final_val_mse = float(np.mean((est.predict(X[idx]) - y[idx]) ** 2))
    np.testing.assert_allclose(final_val_mse, min(val), rtol=1e-4)


def test_validation_fraction_zero_monitors_training_loss() -> None:
    X, y = _data(n=50)
    est = KerasMLPRegressor(validation_fraction=0.0, random_state=0, **FAST).fit(X, y)
    assert len(est.validation_indices_) == 0
    train_mse = float(np.mean((est.predict(X) - y) ** 2))
    np.testing.assert_allclose(train_mse, min(est.history_["val_loss"]), rtol=1e-4)


@pytest.mark.parametrize("kwargs", [{}, {"batch_size": 16, "dropout": 0.1}])
def test_fit_predict_many_equals_single_fits(kwargs: dict) -> None:
    X, y = _data(n=200)
    sizes = [(0, 60), (60, 135), (100, 190)]  # different row counts per fold
    X_tr = [X[a:b] for a, b in sizes]
    y_tr = [y[a:b] for a, b in sizes]
    X_te = [X[190:], X[:10], X[150:170]]
    est = KerasMLPRegressor(random_state=7, **FAST, **kwargs)
    fused, infos = est.fit_predict_many(X_tr, y_tr, X_te, return_info=True)
    assert [p.shape for p in fused] == [(10,), (10,), (20,)]
    for k in range(3):
        alone = est.fit_predict_many([X_tr[k]], [y_tr[k]], [X_te[k]], model_indices=[k])[0]
        np.testing.assert_allclose(fused[k], alone, rtol=1e-4, atol=1e-4)
    # fit() is model index 0; fit_many returns fitted clones with their own model_.
    single = clone(est).fit(X_tr[0], y_tr[0])
    np.testing.assert_allclose(single.predict(X_te[0]), fused[0], rtol=1e-4, atol=1e-4)
    fitted = est.fit_many(X_tr, y_tr)
    assert not hasattr(est, "model_")
    for k, f in enumerate(fitted):
        np.testing.assert_allclose(f.predict(X_te[k]), fused[k], rtol=1e-5, atol=1e-5)
        assert f.n_epochs_ == infos[k]["n_epochs"]


def test_divergence_sets_flag_and_keeps_finite_model() -> None:
    # An absurd learning rate overflows the loss; training stops, diverged_ is set and the best
    # finite weights (here possibly the initial ones) are kept, so predictions stay finite.
    X, y = _data(n=60)
    est = KerasMLPRegressor(learning_rate=1e6, units=16, max_epochs=50, random_state=0)
    est.fit(X, y)
    assert est.diverged_
    assert est.n_epochs_ < 50
    assert np.all(np.isfinite(est.predict(X)))


def test_invalid_params_and_inputs() -> None:
    X, y = _data(n=20)
    with pytest.raises(ValueError, match="dropout"):
        KerasMLPRegressor(dropout=1.0).fit(X, y)
    # a negative penalty (rewarding large weights) and a growing "reduction" trained silently
    bad = [{"l2": -1.0}, {"reduce_lr_patience": -1}, {"reduce_lr_factor": 1.5}, {"min_lr": -1}]
    # units=64.5 was cut to 64, patience=2.5 to 2, standardize_target="maybe" read as true
    bad += [{"units": 64.5}, {"patience": 2.5}, {"batch_size": 16.5}, {"standardize_target": "no"}]
    for kwargs in bad:
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            KerasMLPRegressor(max_epochs=2, **kwargs).fit(X, y)
    with pytest.raises(ValueError, match="n_samples=1"):
        KerasMLPRegressor().fit(X[:1], y[:1])
    with pytest.raises(ValueError, match="same length"):
        KerasMLPRegressor().fit_predict_many([X], [y], [X, X])


def test_module_import_is_cheap() -> None:
    code = (
        "import sys, n2react.models.keras_mlp; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))


def test_jax_backend_subprocess() -> None:
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    probe = subprocess.run([sys.executable, "-c", "import jax"], env=env, capture_output=True)
    if probe.returncode != 0:
        pytest.skip("jax is not importable in this interpreter")
    code = textwrap.dedent(
        """
        import numpy as np, keras
        from sklearn.datasets import make_regression
        from n2react.models.keras_mlp import KerasMLPRegressor
        assert keras.backend.backend() == "jax"
        X, y = make_regression(80, 5, noise=1.0, random_state=0)
        X = X.astype("float32")
        kw = dict(units=16, max_epochs=40, patience=5, learning_rate=1e-2, random_state=0)
        est = KerasMLPRegressor(**kw).fit(X, y)
        p = est.predict(X)
        assert np.all(np.isfinite(p)) and est.score(X, y) > 0.5
        q = est.model_.predict(X, verbose=0).ravel()
        np.testing.assert_allclose(q, p, rtol=1e-5, atol=1e-3)
        kw.update(batch_size=16, dropout=0.1, reduce_lr_patience=2)
        preds = KerasMLPRegressor(**kw).fit_predict_many([X[:50], X[20:]], [y[:50], y[20:]],
                                                        [X[:5], X[:7]])
        assert [q.shape for q in preds] == [(5,), (7,)]
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ok" in out.stdout


@pytest.mark.parametrize("activation", ["tanh", "gelu", "mish"])  # mish: keras.ops fallback
def test_predict_matches_exported_model_for_activations(activation: str) -> None:
    X, y = _data(n=60)
    est = KerasMLPRegressor(activation=activation, random_state=0, **FAST).fit(X, y)
    np.testing.assert_allclose(
        est.model_.predict(X, verbose=0).ravel(), est.predict(X), rtol=1e-5, atol=1e-4
    )


# --------------------------------------------------------------------------- capabilities, groups


def test_declares_its_capabilities() -> None:
    from n2react.capabilities import (
        Accelerated,
        EpochTrained,
        FitsMany,
        GroupAware,
        epochs_param,
        uses_accelerator,
    )

    est = KerasMLPRegressor()
    for abc in (FitsMany, GroupAware, EpochTrained, Accelerated):
        assert isinstance(est, abc)
    assert uses_accelerator(est) and epochs_param(est) == "max_epochs"
    # pickles name the public path, so they load whatever the package's inner layout
    assert KerasMLPRegressor.__module__ == "n2react.models.keras_mlp"
    assert b"n2react.models.keras_mlp\nKerasMLPRegressor" in pickle.dumps(est, protocol=2)


def _groups(n: int, seed: int = 0) -> np.ndarray:
    """Labels of groups of 1..9 rows, in shuffled row order."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 10, size=n)
    labels = np.repeat(np.arange(n), sizes)[:n]
    return np.array([f"g{v}" for v in rng.permutation(labels)])


def _assert_whole_groups(groups: np.ndarray, val_idx: np.ndarray, frac: float) -> None:
    n = len(groups)
    val = np.zeros(n, bool)
    val[val_idx] = True
    assert set(groups[val]).isdisjoint(groups[~val])  # no group on both sides
    assert val.sum() >= frac * n - 1e-9 and (~val).any()


def test_groups_hold_out_whole_groups_for_early_stopping() -> None:
    X, y = _data(n=90)
    g = _groups(90)
    kw = dict(validation_fraction=0.2, random_state=0, **FAST)
    est = KerasMLPRegressor(**kw).fit(X, y, groups=g)
    _assert_whole_groups(g, est.validation_indices_, 0.2)
    plain = KerasMLPRegressor(**kw).fit(X, y)
    assert not set(g[plain.validation_indices_]).isdisjoint(
        np.delete(g, plain.validation_indices_)
    )  # the random row carve-out splits groups (this is what groups fix)
    with pytest.raises(ValueError, match="one label per row"):
        KerasMLPRegressor(**kw).fit(X, y, groups=g[:-1])


def test_fit_many_with_groups_equals_single_fits() -> None:
    X, y = _data(n=160)
    rows = [np.arange(0, 90), np.arange(50, 160)]
    g = _groups(160, seed=1)
    est = KerasMLPRegressor(validation_fraction=0.25, random_state=5, **FAST)
    fitted = est.fit_many([X[r] for r in rows], [y[r] for r in rows], groups=[g[r] for r in rows])
    preds, infos = est.fit_predict_many(
        [X[r] for r in rows],
        [y[r] for r in rows],
        [X, X],
        groups=[g[r] for r in rows],
        return_info=True,
    )
    for k, r in enumerate(rows):
        _assert_whole_groups(g[r], fitted[k].validation_indices_, 0.25)
        np.testing.assert_array_equal(infos[k]["validation_indices"], fitted[k].validation_indices_)
        alone = est.fit_many([X[r]], [y[r]], model_indices=[k], groups=[g[r]])[0]
        np.testing.assert_array_equal(alone.validation_indices_, fitted[k].validation_indices_)
        np.testing.assert_allclose(alone.predict(X), fitted[k].predict(X), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(preds[k], fitted[k].predict(X), rtol=1e-5, atol=1e-5)
    single = clone(est).fit(X[rows[0]], y[rows[0]], groups=g[rows[0]])  # fit is model index 0
    np.testing.assert_array_equal(single.validation_indices_, fitted[0].validation_indices_)


def test_a_single_group_falls_back_to_random_rows_with_one_warning(caplog) -> None:
    X, y = _data(n=60)
    est = KerasMLPRegressor(random_state=2, **FAST)
    with caplog.at_level("WARNING", logger="n2react.models.keras_mlp"):
        one = est.fit_many([X, X[:40]], [y, y[:40]], groups=[np.zeros(60), np.zeros(40)])
    assert sum("single group" in r.getMessage() for r in caplog.records) == 1
    plain = est.fit_many([X, X[:40]], [y, y[:40]])
    for a, b in zip(one, plain):  # the same carve-out and weights as without groups
        np.testing.assert_array_equal(a.validation_indices_, b.validation_indices_)
        np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_hold_out_groups_draws_whole_groups_and_leaves_one() -> None:
    from n2react.models._groups import group_codes, hold_out_groups

    codes = group_codes(["b", "a", "b", "c", "c", "c"], 6)
    np.testing.assert_array_equal(codes, [1, 0, 1, 2, 2, 2])
    rng = np.random.default_rng(0)
    for target in (1, 2, 3, 5, 6):
        held = hold_out_groups(codes, target, rng)
        assert set(codes[held]).isdisjoint(np.delete(codes, held))
        assert len(set(np.delete(codes, held))) >= 1  # a group always stays for training
        assert len(held) >= target or len(set(codes[held])) == 2
    assert hold_out_groups(np.zeros(5, np.intp), 2, rng) is None
    # min_keep: never fewer kept rows than asked, even if that holds fewer than the target
    assert len(hold_out_groups(np.array([0, 0, 0, 1]), 4, rng, min_keep=2)) <= 2


# --------------------------------------------------------------------------- defects fixed


def test_fit_result_y_scale_is_the_target_spread_folded_into_the_last_layer() -> None:
    from n2react.models.keras_mlp.driver import FitResult

    w = [np.ones((2, 3, 1), np.float32), np.full((2, 1), 0.5, np.float32)]
    res = FitResult(
        weights=w,
        y_mean=np.array([-12.0, 1.0]),
        y_scale=np.array([2.0, 3.0]),
        y_var=np.array([4.0, 9.0]),
        loss=[[], []],
        val_loss=[[], []],
        best_epoch=np.zeros(2, int),
        n_epochs=np.zeros(2, int),
        diverged=np.zeros(2, bool),
        val_indices=[np.array([], int)] * 2,
    )
    kernel, bias = res.exported_weights(1)
    np.testing.assert_allclose(kernel, 3.0 * np.ones((3, 1)))
    np.testing.assert_allclose(bias, [0.5 * 3.0 + 1.0])
    assert not hasattr(res, "y_std")  # y_std names a prediction spread elsewhere


def test_fit_predict_many_takes_validation_masks() -> None:
    X, y = _data(n=80)
    masks = [np.arange(60) < 15, np.arange(80) >= 70]
    est = KerasMLPRegressor(random_state=1, **FAST)
    preds, infos = est.fit_predict_many(
        [X[:60], X], [y[:60], y], [X, X], validation_masks=masks, return_info=True
    )
    fitted = est.fit_many([X[:60], X], [y[:60], y], validation_masks=masks)
    for k, m in enumerate(masks):
        np.testing.assert_array_equal(infos[k]["validation_indices"], np.flatnonzero(m))
        np.testing.assert_allclose(preds[k], fitted[k].predict(X), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="validation_masks must have one entry"):
        est.fit_predict_many([X], [y], [X], validation_masks=masks)


def test_best_epoch_never_counts_the_start_weights_and_target_var_is_the_mean_loss() -> None:
    # best_epoch_'s docstring said 0 meant "no epoch improved on the start", but the start
    # weights are never a candidate: one huge step worse than the start is still epoch 1
    X, y = _data(n=60)
    est = KerasMLPRegressor(random_state=0, units=16, max_epochs=1, learning_rate=50.0).fit(X, y)
    assert est.best_epoch_ == 1 and not est.diverged_
    assert est.target_var_ == pytest.approx(np.var(y))  # the MSE of predicting y's mean
    assert est.history_["val_loss"][0] > 10 * est.target_var_
