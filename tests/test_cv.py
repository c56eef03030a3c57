"""Nested CV: no test row reaches any fitted step; same seed, same numbers; sane figures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

from n2react.data import load_dataset
from n2react.errors import ConfigError, DataError
from n2react.plan import build_plan
from n2react.run import cross_validate, run

SEEN: list[tuple[int, frozenset[int]]] = []
CURRENT = {"fold": 1}


class RowSpy(TransformerMixin, BaseEstimator):
    """Records which dataset rows every fit sees (first pipeline step, so X is a DataFrame)."""

    def fit(self, X, y=None):
        SEEN.append((CURRENT["fold"], frozenset(int(i) for i in X.index)))
        return self

    def transform(self, X):
        return X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing descriptors pass through to the imputer
        return tags


def test_no_outer_test_row_reaches_scaling_selection_search_or_fit(
    make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_cfg(
        "model=ridge", "selector=kbest", "search=grid", "cv.outer_folds=4", "cv.inner_folds=3"
    )
    plan = build_plan(cfg)
    real_build = plan.make_pipeline

    def spying_build():
        return Pipeline([("spy", RowSpy())] + real_build().steps)

    plan = replace(plan, make_pipeline=spying_build)
    SEEN.clear()
    CURRENT["fold"] = 1
    ds = load_dataset(cfg.data)
    splits = plan.outer_splits(ds)

    def next_fold(fold):
        CURRENT["fold"] = fold.split.fold + 1

    cross_validate(plan, ds, tmp_path, splits, on_fold_end=next_fold)
    assert len(SEEN) > 4 * 3  # inner fits and refits were all observed
    for fold, rows in SEEN:
        test_rows = set(splits[fold - 1].test.tolist())
        assert not rows & test_rows, f"fold {fold}: a fit saw {len(rows & test_rows)} test rows"
    # the inner searches fit on strict subsets of the outer training rows
    for s in splits:
        fits = [rows for fold, rows in SEEN if fold == s.fold]
        assert any(len(r) < len(s.train) for r in fits)
        assert all(r <= set(s.train.tolist()) for r in fits)


def test_same_seed_same_metrics_other_seed_other_split(make_cfg, tmp_path: Path) -> None:
    over = ("model=rfr", "model.estimator.n_estimators=30", "cv.outer_folds=4", "final_model=false",
            "explain=false")  # fmt: skip
    a = run(make_cfg(*over, "tracking=none"), tmp_path / "a")
    b = run(make_cfg(*over, "tracking=none"), tmp_path / "b")
    c = run(make_cfg(*over, "tracking=none", "seed=7"), tmp_path / "c")
    assert a == b
    assert a["mean_test_rmse"] != c["mean_test_rmse"]


def test_authors_folds_reproduce_their_random_forest(
    make_cfg, tmp_path: Path, n2react_runs
) -> None:
    # tracked, too: the fold files' headers (e.g. `Expt. lg(k1)`) must not break MLflow params
    # (they are not params: the whole config, renames included, is config_resolved.yaml)
    cfg = make_cfg("data=authors_folds", "model=rfr", "final_model=false", "explain=false")
    m = run(cfg, tmp_path)
    assert m["mean_test_r"] == pytest.approx(0.76, abs=0.02)
    assert m["mean_test_rmse"] == pytest.approx(0.97, abs=0.03)
    (parent,), _ = n2react_runs(cfg.tracking.uri)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["data.name"] == "authors_folds"
    assert "data.rename_columns" not in parent.data.params


def test_authors_folds_say_that_cv_outer_folds_does_not_apply(make_cfg, caplog) -> None:
    # cv.outer_folds=3 with the authors' 10 fold files ran 10 folds without a word, while the
    # run's name and params said outer_folds=3
    plan = build_plan(make_cfg("data=authors_folds", "cv.outer_folds=3", "tracking=none"))
    dataset = load_dataset(plan.data)
    with caplog.at_level("WARNING", logger="n2react.plan"):
        assert len(plan.validate(dataset)) == 10
    said = [r.getMessage() for r in caplog.records if r.name == "n2react.plan"]
    assert said == [
        "cv.outer_folds=3, cv.repeats=1 do not apply: data=authors_folds has its own 10 folds, "
        "and they are the ones used"
    ]
    caplog.clear()
    build_plan(make_cfg("data=authors_folds", "tracking=none")).validate(dataset)
    assert not [r for r in caplog.records if r.name == "n2react.plan"]  # the default: 10 folds


def test_more_folds_than_rows_is_a_data_error(make_cfg, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"159 rows, fewer than cv.outer_folds=500"):
        run(make_cfg("cv.outer_folds=500", "tracking=none"), tmp_path)


def test_impossible_inner_folds(make_cfg, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cv.inner_folds=1"):
        run(make_cfg("search=grid", "model=ridge", "cv.inner_folds=1", "tracking=none"), tmp_path)


def test_oof_table_covers_every_cluster_once(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("model=ridge", "cv.outer_folds=5")
    res = cross_validate(build_plan(cfg), load_dataset(cfg.data), tmp_path)
    oof = res.oof_table()
    assert len(oof) == 159 and oof["cluster"].is_unique
    assert set(oof["fold"]) == {1, 2, 3, 4, 5}
    assert np.isfinite(oof["y_pred"]).all()


def test_unshuffled_repeats_are_refused_not_ignored(make_cfg) -> None:
    with pytest.raises(ConfigError, match="cv.repeats=3 with cv.shuffle=false"):
        build_plan(make_cfg("cv.repeats=3", "cv.shuffle=false"))
    plan = build_plan(make_cfg("cv.repeats=2", "cv.outer_folds=4"))
    ds = load_dataset(plan.data)
    splits = plan.outer_splits(ds)
    assert len(splits) == 8 and {s.repeat for s in splits} == {1, 2}
    first, second = splits[0].test, splits[4].test
    assert set(first.tolist()) != set(second.tolist())  # each repeat reshuffles


def test_titles_count_repeated_folds_as_folds_and_repeats() -> None:
    # cv.outer_folds=3 cv.repeats=2 was titled "6 folds"
    from n2react.splitters import KFoldSplitter, fold_count_text

    assert fold_count_text(KFoldSplitter(3, repeats=2, seed=0).split(30)) == "3 folds x 2 repeats"
    assert fold_count_text(KFoldSplitter(5, seed=0).split(30)) == "5 folds"


def test_repeats_of_leave_one_group_out_are_refused_shuffled_group_folds_repeat() -> None:
    from n2react.splitters import KFoldSplitter

    groups = np.repeat(np.array(list("abcdef")), 5)
    with pytest.raises(ConfigError, match="leave one group out, the same folds in every repeat"):
        KFoldSplitter(10, repeats=2, seed=0).split(30, groups)
    splits = KFoldSplitter(3, repeats=2, seed=0).split(30, groups)
    first = [tuple(s.test) for s in splits if s.repeat == 1]
    second = [tuple(s.test) for s in splits if s.repeat == 2]
    assert len(first) == len(second) == 3 and set(first) != set(second)
