"""The calibration's numbers worked out by hand: the interval, expected error and flag of a saved
calibration, the cross-fitted table's coverage and flags, the trust metrics, and the flag of a
held-out metal against the calibration clusters."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from n2react.data import load_dataset
from n2react.plan import build_plan
from n2react.run import cross_validate
from n2react.uncertainty import Calibration, UncertaintySpec
from n2react.uncertainty_fit import calibrate


def test_a_calibrations_interval_expected_error_and_flag_by_hand() -> None:
    """The saved calibration's numbers, worked out by hand for knn_distance: the half-width is
    the ceil(0.9 (n + 1))-th smallest normalised score times the cluster's difficulty, the
    expected error the median normalised score times it, the flag above the 0.9 quantile of the
    calibration clusters' own expected errors."""
    rng = np.random.default_rng(3)
    r, sig = rng.normal(size=30), rng.uniform(0.5, 2.0, size=30)
    calib = Calibration(
        difficulty="knn_distance", k=1, flag_quantile=0.9, residuals=r, sigmas=sig,
        columns=["a"], train_X=np.arange(10.0).reshape(-1, 1), train_abs_residual=np.ones(10),
    )  # fmt: skip
    X = pd.DataFrame({"a": [0.5, 4.2, 50.0, 200.0]})
    y_pred = np.array([1.0, 2.0, 3.0, 4.0])
    band = calib.predict(X, y_pred, 0.9)
    s = calib.difficulty_of(X)
    scores = np.sort(np.abs(r) / sig)
    q = scores[math.ceil(0.9 * (len(r) + 1)) - 1]
    np.testing.assert_allclose(band["y_upper"] - y_pred, q * s, rtol=1e-9)
    np.testing.assert_allclose(y_pred - band["y_lower"], q * s, rtol=1e-9)
    scale = np.median(np.abs(r) / sig)
    np.testing.assert_allclose(band["expected_error"], scale * s, rtol=1e-9)
    threshold = np.quantile(scale * sig, 0.9)
    assert calib.threshold == pytest.approx(threshold)  # their 90th percentile
    assert list(band["flagged"]) == list(scale * s > threshold)
    assert band["flagged"].any() and not band["flagged"].all()


def test_cross_fitted_table_covers_and_flags_as_it_says(make_cfg, tmp_path: Path) -> None:
    """In the cross-fitted table a cluster is covered at a level when its lg(k1) lies inside that
    level's interval, and within a fold the flagged clusters are those with the highest expected
    error."""
    plan = build_plan(make_cfg("model=ridge", "cv.outer_folds=5", "tracking=none", "explain=false"))
    dataset = load_dataset(plan.data)
    _, table = calibrate(cross_validate(plan, dataset, tmp_path), UncertaintySpec())
    y, half = table["y_true"], (table["y_upper"] - table["y_lower"]) / 2
    inside = (y >= table["y_lower"]) & (y <= table["y_upper"])
    assert (table["covered_0.9"] == inside).all()
    assert (y > table["y_upper"]).any() and (y < table["y_lower"]).any()  # misses on both sides
    np.testing.assert_allclose(table["width_0.9"], 2 * half)
    for level in (0.5, 0.8):  # the narrower levels: covered within their own half-width
        off = (y - table["y_pred"]).abs()
        assert (table[f"covered_{level:g}"] == (off <= table[f"width_{level:g}"] / 2 + 1e-12)).all()
    for _, part in table.groupby("fold"):
        flagged = part[part["flagged"]]
        assert 0 < len(flagged) < len(part)
        assert flagged["expected_error"].min() > part.loc[~part["flagged"], "expected_error"].max()


def test_trust_metrics_by_hand() -> None:
    from n2react.uncertainty_report import trust_metrics

    y = np.zeros(6)
    y_pred = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 2.0])
    ee = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 1000.0])  # ranks like |error|; far from linear
    inside = np.array([True, True, True, True, False, False])
    m = trust_metrics(y, y_pred, y_pred - 0.35, y_pred + 0.35, ee, inside)
    assert m["interval_coverage"] == pytest.approx(0.5) and m["interval_width"] == pytest.approx(
        0.7
    )
    assert m["uncertainty_spearman"] == pytest.approx(1.0)
    assert m["domain_mae_flagged"] == pytest.approx(1.25) and m["domain_mae_in"] == pytest.approx(
        0.25
    )
    assert (m["domain_n_flagged"], m["domain_n_in"]) == (2, 4)


def test_the_saved_calibration_widens_by_the_out_of_fold_residuals(
    make_cfg, tmp_path: Path
) -> None:
    # predict's interval for a new cluster comes from the saved calibration: its residuals are
    # the out-of-fold ones (each from a model that never trained on the cluster), so with no
    # difficulty the half-width is the ceil(0.9 (n + 1))-th smallest |out-of-fold residual|,
    # wider than any in-sample residual would make it
    plan = build_plan(make_cfg("model=ridge", "cv.outer_folds=5", "tracking=none", "explain=false"))
    result = cross_validate(plan, load_dataset(plan.data), tmp_path)
    oof = result.oof_table()
    residuals = (oof["y_true"] - oof["y_pred"]).to_numpy()
    calib, _ = calibrate(result, UncertaintySpec())
    np.testing.assert_array_equal(np.sort(calib.residuals), np.sort(residuals))
    calib, _ = calibrate(result, UncertaintySpec(difficulty="none"))
    band = calib.predict(result.dataset.X.iloc[:3], np.zeros(3), 0.9)
    n = len(residuals)
    q = np.sort(np.abs(residuals))[math.ceil(round(0.9 * (n + 1), 9)) - 1]
    np.testing.assert_allclose(band["y_upper"], q, rtol=1e-12)
    np.testing.assert_allclose(band["y_lower"], -q, rtol=1e-12)
    train = result.train_table()
    assert q > np.quantile(np.abs(train["y_true"] - train["y_pred"]), 0.9)


def test_a_held_out_metal_is_flagged_against_the_calibration_not_its_own_fold(
    make_cfg, tmp_path: Path
) -> None:
    # the cross-fitted flag of a cluster compares its expected error with the 90th percentile
    # of the CALIBRATION clusters' (the other folds): leaving one metal out, by descriptor
    # distance, most of the tantalum clusters (far from the other metals) are flagged and no
    # iron one; a threshold taken from the held-out fold's own expected errors would flag about
    # its top 10 % whatever the fold
    plan = build_plan(make_cfg("model=ridge", "cv.groups=metal", "tracking=none", "explain=false"))
    dataset = plan.attach_groups(load_dataset(plan.data, plan.group_column))
    result = cross_validate(plan, dataset, tmp_path)
    _, table = calibrate(result, UncertaintySpec(difficulty="knn_distance"))
    rate = table.groupby("group")["flagged"].mean()
    assert rate["Ta"] > 0.5 and rate["Fe"] == 0.0 and rate["Mo"] == 0.0, rate.to_dict()
