"""Tests of n2react.models.pairwise: early stopping on held-out clusters (whole groups with
``groups``), the validation pairs under max_pairs, the wrapper's capabilities and history."""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from pairwise_helpers import _linear, _SpyRegressor  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402

from n2react.capabilities import (  # noqa: E402
    EpochTrained,
    FitsMany,
    GroupAware,
    SpreadPredictor,
    Wrapper,
)
from n2react.models.pairwise import PairwiseRegressor  # noqa: E402


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
