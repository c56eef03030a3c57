"""No outer test fold's lg(k1) reaches what scores it, checked from the outside.

The outer CV runs twice with the same seeds: once on the real data and once with the lg(k1) of
one outer test fold replaced by random values. The models that predict that fold were trained on
the other folds only, so its predictions must not change by a single bit, whatever the scaler,
selector, search, model, pairwise wrapper, early stopping, grouping or repeats; any difference is
a leak (or a fit that is not reproducible with its seed). Its interval, expected error and
domain flag must not depend on its own residuals either.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from n2react.composition import DEFAULT_LIGANDS
from n2react.cv import CVResult
from n2react.data import load_dataset
from n2react.plan import build_plan
from n2react.run import cross_validate

TINY = ("cv.outer_folds=3", "cv.inner_folds=2", "search.max_trials=2", "final_model=false",
        "explain=false", "tracking=none")  # fmt: skip
#: one case per line, options combined so that every one is covered at least once
CASES = {
    "svr_kbest_standard_grid_interactions_formula": (
        "model=svr", "selector=kbest", "scaler=standard", "search=grid", "features=interactions",
        "data.formula=true",
    ),
    "extra_trees_rfe_robust_random_repeats": (
        "model=extra_trees", "model.estimator.n_estimators=10", "selector=rfe",
        "selector.step.estimator.n_estimators=5", "scaler=robust", "search=random",
        "cv.repeats=2",
    ),
    "gbr_rfe_vote_minmax_family": (
        "model=gbr", "model.estimator.n_estimators=20", "selector=rfe_vote",
        "selector.step.n_resamples=3", "selector.step.estimator.n_estimators=5",
        "scaler=minmax", "search=random", "cv.groups=family",
    ),
    "ensemble_metal": (
        "model=ensemble", "model.estimator.estimators.0.1.n_estimators=20",
        "model.estimator.estimators.1.1.n_estimators=10", "search=random", "cv.groups=metal",
    ),
    "ridge_trees": ("model=ridge_trees", "model.estimator.n_estimators=10", "search=random"),
    "anchored_ensemble": (
        "model=anchored_ensemble", "model.estimator.estimators.0.1.n_estimators=10",
        "model.estimator.estimators.1.1.base.n_estimators=5", "search=random",
    ),
    "pairwise_ridge": ("model=ridge", "pairwise=on", "scaler=robust", "search=random"),
    "keras_mlp_early_stopping": (
        "model=keras_mlp", "model.estimator.units=16", "model.estimator.max_epochs=30",
        "model.estimator.patience=3", "search=random", "device=cpu",
    ),
    "pairwise_keras_mlp_family": (
        "model=keras_mlp", "model.estimator.units=16", "model.estimator.max_epochs=20",
        "model.estimator.patience=3", "pairwise=on", "pairwise.wrapper.max_pairs=2000",
        "cv.groups=family", "device=cpu",
    ),
}  # fmt: skip
#: the outer fold whose lg(k1) is replaced (not the first: nothing special about its model)
FOLD = 2


def _outer_cv(cfg, tmp: Path, y: np.ndarray | None = None) -> CVResult:
    plan = build_plan(cfg)
    dataset = plan.attach_groups(load_dataset(plan.data, plan.group_column))
    splits = plan.validate(dataset)
    if y is not None:
        dataset = replace(dataset, y=y)
    return cross_validate(plan, dataset, tmp, splits)


def _scrambled(y: np.ndarray, rows: np.ndarray, seed: int = 0) -> np.ndarray:
    """``y`` with the values of ``rows`` replaced by random ones over its range."""
    out = y.copy()
    out[rows] = np.random.default_rng(seed).uniform(y.min(), y.max(), len(rows))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_a_test_folds_targets_never_reach_its_predictions(
    case: str, make_cfg, tmp_path: Path
) -> None:
    cfg = make_cfg(*TINY, *CASES[case])
    real = _outer_cv(cfg, tmp_path / "real")
    test = real.folds[FOLD - 1].split.test
    other = _outer_cv(cfg, tmp_path / "scrambled", _scrambled(real.dataset.y, test))
    assert np.array_equal(other.dataset.y[test], real.dataset.y[test]) is False
    for a, b in zip(real.folds, other.folds, strict=True):
        assert np.array_equal(a.split.test, b.split.test)
        if a.split.fold == FOLD:
            assert np.array_equal(a.y_pred_test, b.y_pred_test), (
                f"{case}: outer fold {FOLD}'s predictions moved (by up to "
                f"{np.max(np.abs(a.y_pred_test - b.y_pred_test)):.3g}) when only its own lg(k1) "
                "changed: they reached its training, or the fit is not reproducible"
            )
            assert a.best_params == b.best_params
        else:  # the scrambled values were training rows here: the check can see a change
            assert not np.array_equal(a.y_pred_test, b.y_pred_test)


@pytest.mark.parametrize(
    "over",
    [
        ("uncertainty.difficulty=knn_residual",),
        ("uncertainty.difficulty=knn_distance", "uncertainty.expected_error=knn_residual"),
        (
            "model=extra_trees",
            "model.estimator.n_estimators=10",
            "uncertainty.difficulty=spread_knn",
            "cv.groups=family",
            "cv.repeats=2",
        ),
    ],  # fmt: skip
    ids=["knn_residual", "knn_distance", "spread_knn_family_repeats"],
)
def test_a_test_folds_residuals_never_reach_its_interval_or_flag(
    over: tuple[str, ...], make_cfg, tmp_path: Path
) -> None:
    # the cross-fitted intervals, expected errors and domain flags of an outer fold come from a
    # calibration on the OTHER folds' residuals: with its own lg(k1) replaced (its predictions,
    # and every other fold's, unchanged) they stay the same to the bit
    from n2react.uncertainty_report import evaluate_run

    cfg = make_cfg("model=ridge", "cv.outer_folds=4", *TINY[3:], *over)
    plan = build_plan(cfg)
    real = _outer_cv(cfg, tmp_path / "cv")
    test = real.folds[FOLD - 1].split.test
    scrambled = CVResult(replace(real.dataset, y=_scrambled(real.dataset.y, test)), real.folds)
    tables = []
    for name, result in (("real", real), ("scrambled", scrambled)):
        evaluate_run(result, plan.uncertainty, DEFAULT_LIGANDS, tmp_path / name, "", "")
        tables.append(pd.read_csv(tmp_path / name / "uncertainty" / "oof_uncertainty.csv"))
    a, b = tables
    cols = ["y_lower", "y_upper", "expected_error", "in_domain"]
    here = (a["fold"] == FOLD).to_numpy()
    assert here.sum() == len(test)
    assert a.loc[here, cols].equals(b.loc[here, cols])
    # the other folds ARE calibrated on this fold's residuals: their intervals move
    assert not a.loc[~here, ["y_lower", "y_upper"]].equals(b.loc[~here, ["y_lower", "y_upper"]])


@pytest.mark.parametrize("validation", ["nested", "crossfit"])
def test_nested_validation_keeps_a_folds_lg_k1_out_of_its_own_interval_and_flag(
    validation: str, make_cfg, tmp_path: Path
) -> None:
    # the whole outer CV again with fold 2's lg(k1) scrambled: under nested validation fold 2's
    # interval, expected error and flag come from refits that never saw it, so they stay the
    # same to the bit; cross-fitted, its neighbours' residuals came from models trained on it
    from n2react.uncertainty_report import evaluate_run

    cfg = make_cfg(
        "model=ridge", "cv.outer_folds=4", *TINY[3:], f"uncertainty.validation={validation}"
    )
    plan = build_plan(cfg)
    real = _outer_cv(cfg, tmp_path / "real")
    test = real.folds[FOLD - 1].split.test
    other = _outer_cv(cfg, tmp_path / "scrambled", _scrambled(real.dataset.y, test))
    tables = []
    for name, result in (("real", real), ("scrambled", other)):
        evaluate_run(result, plan.uncertainty, DEFAULT_LIGANDS, tmp_path / name, "", "")
        tables.append(pd.read_csv(tmp_path / name / "uncertainty" / "oof_uncertainty.csv"))
    a, b = tables
    here = (a["fold"] == FOLD).to_numpy()
    same = a.loc[here, ["y_lower", "y_upper", "expected_error"]].equals(
        b.loc[here, ["y_lower", "y_upper", "expected_error"]]
    )
    assert same is (validation == "nested")


def test_nested_validation_with_two_folds_says_it_is_cross_fitted(make_cfg, tmp_path, caplog):
    # two outer folds leave no rows outside both to refit on: the cross-fitted figures, said
    from n2react.uncertainty_report import evaluate_run

    figures = []
    for validation in ("nested", "crossfit"):
        cfg = make_cfg("model=ridge", "cv.outer_folds=2", *TINY[3:],
                       f"uncertainty.validation={validation}")  # fmt: skip
        plan = build_plan(cfg)
        result = _outer_cv(cfg, tmp_path / validation)
        caplog.clear()
        _, metrics, _, _ = evaluate_run(
            result, plan.uncertainty, DEFAULT_LIGANDS, tmp_path / validation, "", ""
        )
        figures.append(metrics)
        said = "validated cross-fitted instead" in caplog.text
        assert said is (validation == "nested")
    assert figures[0] == figures[1]


def _recorded(procedure, projects: list[str]):
    """``procedure``, noting the project of each fold procedure it makes in ``projects``."""

    def make(project: str):
        projects.append(project)
        return procedure(project)

    return make


def test_a_searched_runs_nested_refits_search_again_without_both_folds(
    make_cfg, tmp_path: Path, caplog
) -> None:
    # fold 2's lg(k1) scrambled moves what the other folds' searches pick (their inner CV scored
    # it); the nested refits that predict fold 2 for another fold search again on the rows
    # outside both, as the outer CV does for a fold, so their predictions of it stay the same
    # to the bit (refitted with the fold's own best parameters, they moved with them)
    from n2react.nested_residuals import nested_residuals, nested_searches
    from n2react.run import fold_procedure

    cfg = make_cfg("model=ridge", "search=grid", "cv.outer_folds=4", *TINY[3:])
    plan = build_plan(cfg)
    real = _outer_cv(cfg, tmp_path / "real")
    test = real.folds[FOLD - 1].split.test
    other = _outer_cv(cfg, tmp_path / "scrambled", _scrambled(real.dataset.y, test))
    moved = [
        a.split.fold for a, b in zip(real.folds, other.folds) if a.best_params != b.best_params
    ]
    assert moved and FOLD not in moved  # the leak this guards against is there to be seen
    preds = []
    for name, result in (("real", real), ("scrambled", other)):
        procedure = fold_procedure(plan, tmp_path / name)
        assert procedure is not None
        projects: list[str] = []
        caplog.clear()
        with caplog.at_level("INFO", logger="n2react.nested_residuals"):
            nested = nested_residuals(result, procedure=_recorded(procedure, projects))
        assert "6 refits, each a new search (up to 7 trials, 42 in all)" in caplog.text
        # one search per pair of folds, in the order a distributed worker walks them
        splits = [f.split for f in result.folds]
        assert [p for p in projects if p] == [p for p, _ in nested_searches(splits)]
        assert nested is not None
        y = result.dataset.y
        preds.append({f: y[test] - r.residual[test] for (_, f), r in nested.items() if f != FOLD})
    for fold in moved:
        assert np.array_equal(preds[0][fold], preds[1][fold]), fold


def test_a_grouped_search_whose_fold_pairs_leave_one_group_is_not_searched_again() -> None:
    """Three groups in three outer folds: the rows outside two folds are one group, too few for
    the grouped inner CV a search needs, so no nested search is planned (the run validates
    cross-fitted, and a distributed worker's list of searches agrees with its chief's).
    End to end: tests/test_options.py's column_extra_trees and metal_rfe_svr cases."""
    from n2react.nested_residuals import nested_searches
    from n2react.splitters import Split

    groups = np.repeat(np.array(["a", "b", "c", "d"]), 4)
    three = [np.flatnonzero(groups == g) for g in "abc"]
    splits = [Split(i + 1, 1, np.setdiff1d(np.arange(12), te), te) for i, te in enumerate(three)]
    assert nested_searches(splits, groups) == []
    assert len(nested_searches(splits)) == 3  # ungrouped: one search per pair
    four = [np.flatnonzero(groups == g) for g in "abcd"]
    splits = [Split(i + 1, 1, np.setdiff1d(np.arange(16), te), te) for i, te in enumerate(four)]
    assert [name for name, _ in nested_searches(splits, groups)][:2] == [
        "nested_01_02",
        "nested_01_03",
    ]
    assert len(nested_searches(splits, groups)) == 6


@pytest.mark.parametrize(
    "over",
    [
        ("scaler=none",),
        ("scaler=standard", "selector=kbest"),
        ("features=interactions", "scaler=standard"),
    ],
    ids=["unscaled_ridge", "standard_kbest", "interactions"],
)
def test_a_test_folds_descriptors_never_reach_its_model(
    over: tuple[str, ...], make_cfg, tmp_path: Path
) -> None:
    # the lg(k1) check above cannot see a step that learns from descriptors only (an imputer or
    # a scaler fitted on all rows before the folds): here fold 2's DESCRIPTORS are replaced, and
    # the model that predicts fold 2 (trained on the other folds) must not move by a single bit
    cfg = make_cfg("model=ridge", "search=grid", *TINY, *over)
    plan = build_plan(cfg)
    dataset = load_dataset(plan.data)
    real = _outer_cv(cfg, tmp_path / "real")
    test = real.folds[FOLD - 1].split.test
    # a missing cell among fold 2's training rows, for an all-rows imputer to fill differently
    assert dataset.X.iloc[real.folds[FOLD - 1].split.train].isna().any(axis=None)
    X = dataset.X.copy()  # (as read: not what the run made of it)
    rng = np.random.default_rng(0)
    for c in X.columns:
        lo, hi = np.nanmin(X[c]), np.nanmax(X[c])
        X.iloc[test, X.columns.get_loc(c)] = rng.uniform(lo, hi, len(test))
    splits = [f.split for f in real.folds]
    other = cross_validate(plan, replace(dataset, X=X), tmp_path / "other", splits)
    for a, b in zip(real.folds, other.folds, strict=True):
        if a.split.fold == FOLD:
            assert np.array_equal(a.y_pred_train, b.y_pred_train), (
                f"outer fold {FOLD}'s model moved when only its test rows' descriptors changed"
            )
            assert a.best_params == b.best_params
        else:  # the replaced rows trained these: the check can see a change
            assert not np.array_equal(a.y_pred_train, b.y_pred_train)


@pytest.mark.parametrize("grouped", [False, True], ids=["rows", "family"])
def test_the_fused_keras_folds_of_a_search_never_see_their_test_rows(
    grouped: bool, make_cfg
) -> None:
    # a search's inner CV trains all Keras fold models in one call (cv._fused); the early
    # stopping of each must come from its own training rows: with fold 2's lg(k1) replaced,
    # fold 2's predictions stay the same to the bit (a validation carved from the test fold,
    # or its targets in the target scaling, would move them)
    from n2react.cv import fold_predictions
    from n2react.splitters import KFoldSplitter

    cfg = make_cfg(
        "model=keras_mlp", "model.estimator.units=16", "model.estimator.max_epochs=30",
        "model.estimator.patience=3", "device=cpu", "tracking=none",
        *(("cv.groups=family",) if grouped else ()),
    )  # fmt: skip
    plan = build_plan(cfg)
    dataset = plan.attach_groups(load_dataset(plan.data, plan.group_column))
    splits = KFoldSplitter(3, seed=0, key="cv.inner_folds").split(dataset.n_rows, dataset.groups)
    test = splits[FOLD - 1].test
    preds = [
        fold_predictions(lambda _s: plan.make_pipeline(), dataset.X, y, splits, dataset.groups)
        for y in (dataset.y, _scrambled(dataset.y, test))
    ]
    for k, (a, b) in enumerate(zip(*preds, strict=True), start=1):
        assert np.array_equal(a, b) is (k == FOLD), k


# --------------------------------------------------------------------------- fast twins
# The end-to-end cases above are slow (searches, forests, Keras); these check the two leaks a
# refactor is most likely to bring back in a second or two each, on ridge without a search.


def test_a_selector_is_fitted_on_its_outer_training_fold_only(make_cfg, tmp_path: Path) -> None:
    # a selector fitted on all clusters (before the folds, or on the outer CV's X) sees the
    # test fold's lg(k1): with fold 2's replaced, fold 2 keeps the same descriptors and
    # predictions, and its selector's scores are those of its own training rows
    from sklearn.feature_selection import f_regression

    cfg = make_cfg(*TINY, "model=ridge", "selector=kbest", "scaler=standard")
    real = _outer_cv(cfg, tmp_path / "real")
    test = real.folds[FOLD - 1].split.test
    other = _outer_cv(cfg, tmp_path / "scrambled", _scrambled(real.dataset.y, test))
    for a, b in zip(real.folds, other.folds, strict=True):
        if a.split.fold == FOLD:
            assert a.selected_features == b.selected_features
            assert np.array_equal(a.y_pred_test, b.y_pred_test)
        else:  # the replaced values were training rows here: the selection can see them
            assert a.selected_features != b.selected_features
    for f in real.folds:
        assert f.model is not None
        names = [name for name, _ in f.model.steps]
        before = f.model[: names.index("select")]
        train = f.split.train
        Xt = before.transform(real.dataset.X.iloc[train])
        scores = f_regression(Xt, real.dataset.y[train])[0]
        np.testing.assert_allclose(f.model.named_steps["select"].scores_, scores, rtol=1e-10)


def test_a_pairwise_models_references_are_its_training_clusters_only(
    make_cfg, tmp_path: Path
) -> None:
    # a test cluster among its own references is predicted from its own measured lg(k1) (the
    # anchor f(x - x) + y = y): each outer fold's references are its training clusters, and
    # with fold 2's lg(k1) replaced, fold 2's predictions and spreads stay the same to the bit
    cfg = make_cfg(*TINY, "model=ridge", "pairwise=on")
    real = _outer_cv(cfg, tmp_path / "real")
    y = real.dataset.y
    for f in real.folds:
        assert f.model is not None
        wrapper = f.model.named_steps["model"]
        np.testing.assert_array_equal(wrapper.y_ref_, y[f.split.train])
        assert wrapper.X_ref_.shape[0] == len(f.split.train)
    test = real.folds[FOLD - 1].split.test
    other = _outer_cv(cfg, tmp_path / "scrambled", _scrambled(y, test))
    for a, b in zip(real.folds, other.folds, strict=True):
        same = a.split.fold == FOLD
        assert np.array_equal(a.y_pred_test, b.y_pred_test) is same, a.split.fold
        assert np.array_equal(a.y_std_test, b.y_std_test) is same, a.split.fold


def test_the_fused_pairwise_folds_of_a_search_never_anchor_on_their_test_clusters(
    make_cfg,
) -> None:
    # a search's inner CV fits all pairwise fold models in one call (cv._fused): each fold's
    # pairs and references come from its own training rows, so with fold 2's lg(k1) replaced
    # fold 2's predictions stay the same to the bit
    from n2react.cv import fold_predictions
    from n2react.splitters import KFoldSplitter

    plan = build_plan(make_cfg("model=ridge", "pairwise=on", "tracking=none"))
    dataset = load_dataset(plan.data)
    splits = KFoldSplitter(3, seed=0, key="cv.inner_folds").split(dataset.n_rows)
    test = splits[FOLD - 1].test
    preds = [
        fold_predictions(lambda _s: plan.make_pipeline(), dataset.X, y, splits)
        for y in (dataset.y, _scrambled(dataset.y, test))
    ]
    for k, (a, b) in enumerate(zip(*preds, strict=True), start=1):
        assert np.array_equal(a, b) is (k == FOLD), k
