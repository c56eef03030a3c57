"""Tests of n2react.selectors.RFEVoteSelector (RFE stability selection)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from n2react.selectors import RFEVoteSelector

INFORMATIVE = [1, 4, 8]


def _data(n: int = 80, p: int = 10, seed: int = 0) -> tuple:
    """3 informative features out of ``p`` drive y (plus a little noise)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = 2.0 * X[:, 1] - 2.0 * X[:, 4] + 1.5 * X[:, 8] + 0.1 * rng.normal(size=n)
    return X, y


# All sklearn checks pass with tiny forests and few resamples (~1 s).  n_features_to_select=1 so
# the RFE voting path runs on the checks' 2+ feature data sets.
@parametrize_with_checks(
    [
        RFEVoteSelector(
            estimator=RandomForestRegressor(n_estimators=5),
            n_features_to_select=1,
            n_resamples=3,
            random_state=0,
        )
    ]
)
def test_sklearn_conformance(estimator, check) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "keeping all features" on 1-feature data
        check(estimator)


def test_selects_informative_features() -> None:
    X, y = _data()
    sel = RFEVoteSelector(n_features_to_select=3, n_resamples=8, random_state=0).fit(X, y)
    assert np.flatnonzero(sel.support_).tolist() == INFORMATIVE
    assert np.all(sel.selection_frequency_[INFORMATIVE] >= 0.9)
    assert sel.selection_frequency_.shape == sel.ranking_mean_.shape == (10,)
    assert np.all((sel.selection_frequency_ >= 0) & (sel.selection_frequency_ <= 1))
    assert np.all(sel.ranking_mean_[INFORMATIVE] < 1.5)
    assert sel.transform(X).shape == (80, 3)
    np.testing.assert_array_equal(sel.get_support(indices=True), INFORMATIVE)


def test_linear_estimator_and_step_fraction() -> None:
    X, y = _data(seed=1)
    sel = RFEVoteSelector(
        estimator=LinearRegression(), n_features_to_select=3, n_resamples=5, step=0.3
    ).fit(X, y)
    assert np.flatnonzero(sel.support_).tolist() == INFORMATIVE


def test_deterministic_for_fixed_random_state() -> None:
    X, y = _data(n=60, p=12, seed=2)
    kw = {"n_features_to_select": 5, "n_resamples": 4, "random_state": 7}
    a = RFEVoteSelector(**kw).fit(X, y)
    b = RFEVoteSelector(**kw).fit(X, y)
    np.testing.assert_array_equal(a.support_, b.support_)
    np.testing.assert_array_equal(a.selection_frequency_, b.selection_frequency_)
    np.testing.assert_array_equal(a.ranking_mean_, b.ranking_mean_)
    c = clone(a).set_params(n_jobs=2).fit(X, y)  # parallel resamples give the same result
    np.testing.assert_array_equal(a.ranking_mean_, c.ranking_mean_)
    np.testing.assert_array_equal(a.support_, c.support_)


@pytest.mark.parametrize("k, expected", [(1, [0]), (2, [0, 2]), (3, [0, 1, 2])])
def test_ties_broken_by_ranking_then_column_order(
    monkeypatch: pytest.MonkeyPatch, k: int, expected: list
) -> None:
    import n2react.selectors as selectors

    # Scripted RFE results: features 0, 1, 2 are each kept 2 of 3 times; mean rankings are
    # 4/3, 5/3, 4/3.  So 0 and 2 tie on frequency and ranking: column order puts 0 first.
    script = iter(
        [
            ([1, 1, 0, 0], [1, 1, 2, 3]),
            ([0, 1, 1, 0], [2, 1, 1, 3]),
            ([1, 0, 1, 0], [1, 3, 1, 2]),
        ]
    )

    def fake(*args: object, **kwargs: object) -> tuple:
        support, ranking = next(script)
        return np.array(support, dtype=bool), np.array(ranking)

    monkeypatch.setattr(selectors, "_one_resample", fake)
    X, y = _data(n=20)
    sel = RFEVoteSelector(n_features_to_select=k, n_resamples=3, random_state=0).fit(X[:, :4], y)
    np.testing.assert_allclose(sel.selection_frequency_, [2 / 3, 2 / 3, 2 / 3, 0])
    np.testing.assert_allclose(sel.ranking_mean_, [4 / 3, 5 / 3, 4 / 3, 8 / 3])
    assert np.flatnonzero(sel.support_).tolist() == expected


def test_dataframe_feature_names_out() -> None:
    X, y = _data()
    cols = [f"f{i}" for i in range(X.shape[1])]
    df = pd.DataFrame(X, columns=cols)
    sel = RFEVoteSelector(n_features_to_select=3, n_resamples=4, random_state=0).fit(df, y)
    assert list(sel.feature_names_in_) == cols
    assert list(sel.get_feature_names_out()) == ["f1", "f4", "f8"]
    sel.set_output(transform="pandas")
    assert list(sel.transform(df).columns) == ["f1", "f4", "f8"]


def test_in_pipeline_with_regressor() -> None:
    X, y = _data()
    pipe = Pipeline(
        [
            ("select", RFEVoteSelector(n_features_to_select=3, n_resamples=4, random_state=0)),
            ("model", Ridge(alpha=0.1)),
        ]
    )
    pipe.set_params(select__n_resamples=3)
    pipe.fit(X[:60], y[:60])
    assert pipe.named_steps["model"].n_features_in_ == 3
    assert pipe.score(X[60:], y[60:]) > 0.95


def test_keep_all_when_too_many_requested() -> None:
    X, y = _data(p=10)
    with pytest.warns(UserWarning, match="keeping all features"):
        sel = RFEVoteSelector(n_features_to_select=10, n_resamples=2).fit(X, y)
    assert sel.support_.all() and sel.transform(X).shape == X.shape
    np.testing.assert_array_equal(sel.selection_frequency_, 1.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"n_features_to_select": 0}, {"n_resamples": 0}, {"sample_fraction": 0.0}],
)
def test_invalid_params(kwargs: dict) -> None:
    X, y = _data(n=20)
    with pytest.raises(ValueError):
        RFEVoteSelector(**kwargs).fit(X, y)
