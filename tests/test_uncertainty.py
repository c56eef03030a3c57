"""Conformal intervals, expected error and the rebuilt domain flag, on real runs of the 159 clusters
(family-grouped, so the intervals are calibrated on held-out families) and the 18 FeV clusters
(the calibration's numbers worked out by hand: tests/test_uncertainty_by_hand.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, data_dir

from n2react.data import load_dataset
from n2react.errors import DataError
from n2react.figures import figure_text
from n2react.plan import build_plan
from n2react.run import cross_validate, run
from n2react.runstore import UNCERTAINTY_FILE
from n2react.uncertainty import (
    Calibration,
    UncertaintySpec,
    load_calibration,
    min_residuals,
)
from n2react.uncertainty_fit import calibrate

QUICK = ("model=extra_trees", "model.estimator.n_estimators=50", "cv.outer_folds=5")
GROUPED = ("data=homonuclear_15", "cv.groups=family", *QUICK, "explain=false")
FEV = "heteronuclear-FeV-18-15features.xlsx"
HOMO = "homonuclear-159-15features.xlsx"


@pytest.fixture(scope="module")
def grouped_run(tmp_path_factory: pytest.TempPathFactory):
    """A family-grouped run of extra trees with the FeV clusters as eval.path (tracked)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    tmp = tmp_path_factory.mktemp("grouped")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        over = [*GROUPED, f"data.path={data_dir() / HOMO}", f"eval.path={data_dir() / FEV}"]
        cfg = compose(config_name="config", overrides=over)
    with open_dict(cfg):
        cfg.tracking.uri = f"sqlite:///{tmp / 'mlflow.db'}"
        cfg.progress = False
    return run(cfg, tmp / "run"), tmp, cfg


@pytest.mark.slow
def test_grouped_run_logs_cross_fitted_coverage_near_nominal(grouped_run, n2react_runs) -> None:
    metrics, tmp, cfg = grouped_run
    # each held-out family's intervals come from the other folds' residuals: near 90 %
    assert 0.8 <= metrics["interval_coverage"] <= 0.98
    assert 0.5 < metrics["interval_width"] < 8.0
    table = pd.read_csv(tmp / "run" / "uncertainty" / "oof_uncertainty.csv")
    y = table["y_true"]
    inside = (y >= table["y_lower"]) & (y <= table["y_upper"])
    assert metrics["interval_coverage"] == pytest.approx(inside.mean())
    assert len(table) == 159 and (table["y_lower"] < table["y_pred"]).all()
    # per group, in group_scores.csv
    groups = pd.read_csv(tmp / "run" / "group_scores.csv")
    assert {"interval_coverage", "interval_width", "expected_error"} <= set(groups.columns)
    assert groups["interval_coverage"].between(0, 1).all()
    # the domain validation: flagged vs passed held-out clusters, and the ranking of errors
    for key in ("domain_mae_flagged", "domain_mae_in", "domain_n_flagged", "domain_n_in"):
        assert key in metrics
    assert metrics["domain_n_flagged"] + metrics["domain_n_in"] == 159
    err = (table["y_pred"] - y).abs()
    flagged = ~table["in_domain"].astype(bool)
    assert metrics["domain_mae_flagged"] == pytest.approx(err[flagged].mean())
    assert -1 <= metrics["uncertainty_spearman"] <= 1
    assert "descriptor_flag_mae_flagged" in metrics
    # logged to MLflow, with the calibration plot and the plain-JSON calibration
    (parent,), _ = n2react_runs(cfg.tracking.uri)
    for key in ("interval_coverage", "interval_width", "uncertainty_spearman", "transfer_coverage"):
        assert parent.data.metrics[key] == pytest.approx(metrics[key])
    plot = tmp / "run" / "uncertainty" / "calibration.png"
    text = figure_text(plot)["Description"]
    assert "nominal coverage" in text and "observed = nominal" in text and "lg(k1) units" in text
    calib = json.loads((tmp / "run" / UNCERTAINTY_FILE).read_text())
    assert len(calib["residuals"]) == 159 and calib["difficulty"] == "knn_residual"
    summary = json.loads((tmp / "run" / "summary.json").read_text())
    assert summary["interval_coverage"] == pytest.approx(metrics["interval_coverage"])


@pytest.mark.slow
def test_transfer_set_gets_coverage_width_and_validation_figures(grouped_run) -> None:
    metrics, tmp, _ = grouped_run
    pred = pd.read_csv(tmp / "run" / "transfer" / "transfer_predictions.csv")
    assert len(pred) == 18
    inside = (pred["y_true"] >= pred["y_lower"]) & (pred["y_true"] <= pred["y_upper"])
    assert metrics["transfer_coverage"] == pytest.approx(inside.mean())
    width = (pred["y_upper"] - pred["y_lower"]).mean()
    assert metrics["transfer_width"] == pytest.approx(width)
    assert metrics["transfer_domain_n_flagged"] + metrics["transfer_domain_n_in"] == 18
    for name in ("transfer_calibration.png", "transfer_errors.png"):
        assert (tmp / "run" / "transfer" / name).stat().st_size > 10_000
    # the domain figure shows the run's verdict (new element or high expected error), the one
    # its title counts and the CSV holds; the descriptor checks are notes there, not flags
    text = figure_text(tmp / "run" / "transfer" / "transfer_domain.png")
    flagged = int((~pred["in_domain"].astype(bool)).sum())
    assert f"in domain ({18 - flagged})" in text["Description"]
    title = " ".join(text["Title"].split())
    assert title.startswith(f"{FEV}: {flagged} of 18 clusters outside the training domain")
    assert "outside: descriptor range" not in text["Description"]
    assert "outside: kNN distance" not in text["Description"]


@pytest.mark.slow
def test_predict_writes_the_interval_and_expected_error(grouped_run) -> None:
    _, tmp, _ = grouped_run
    fev = pd.read_excel(data_dir() / FEV).drop(columns=["lg(k1)"])
    fev.to_excel(tmp / "fev.xlsx", index=False)
    widths = {}
    for cov in ("0.9", "0.8"):
        out = tmp / f"fev_{cov}.csv"
        args = [str(tmp / "run"), str(tmp / "fev.xlsx"), "-o", str(out)]
        args += [] if cov == "0.9" else ["--coverage", cov]
        done = _predict(args, tmp)
        assert done.returncode == 0, done.stderr[-2000:]
        table = pd.read_csv(out)
        for col in ("y_lower", "y_upper", "expected_error", "in_domain", "domain_reasons"):
            assert col in table
        assert list(table.columns[:4]) == ["cluster", "y_pred", "y_std", "in_domain"]
        assert (table["y_lower"] < table["y_pred"]).all()
        assert (table["y_pred"] < table["y_upper"]).all()
        assert (table["expected_error"] > 0).all()
        widths[cov] = (table["y_upper"] - table["y_lower"]).to_numpy()
    assert (widths["0.8"] < widths["0.9"]).all()
    # a coverage the 159 residuals cannot calibrate: one clear error line
    done = _predict([str(tmp / "run"), str(tmp / "fev.xlsx"), "-o", str(tmp / "x.csv"),
                     "--coverage", "0.999"], tmp)  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith("n2react: error:"))
    assert "too few out-of-fold residuals" in line and "1000" in line
    assert not (tmp / "x.csv").exists()


def _predict(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "predict", *args], capture_output=True, text=True, cwd=cwd,
        env=env, timeout=300,
    )  # fmt: skip


def test_cross_fitted_intervals_never_see_their_own_fold(make_cfg, tmp_path: Path) -> None:
    """Spoiling one fold's predictions changes every other fold's intervals, never its own."""
    plan = build_plan(make_cfg(*GROUPED, "tracking=none"))
    dataset = plan.attach_groups(load_dataset(plan.data, plan.group_column))
    result = cross_validate(plan, dataset, tmp_path)
    spec = UncertaintySpec()
    _, before = calibrate(result, spec)
    spoiled = replace(result.folds[0], y_pred_test=result.folds[0].y_pred_test + 5.0)
    result.folds[0] = spoiled
    calib, after = calibrate(result, spec)
    own = before["fold"] == result.folds[0].split.fold
    half_before = (before["y_upper"] - before["y_pred"])[own]
    half_after = (after["y_upper"] - after["y_pred"])[own]
    np.testing.assert_allclose(half_after, half_before)
    width_before = (before["y_upper"] - before["y_lower"])[~own]
    assert ((after["y_upper"] - after["y_lower"])[~own] > width_before).all()
    # the saved calibration round-trips through plain JSON
    path = calib.save(tmp_path / UNCERTAINTY_FILE)
    back = load_calibration(path)
    np.testing.assert_allclose(back.residuals, calib.residuals)
    X = dataset.X.iloc[:5]
    pd.testing.assert_frame_equal(back.predict(X, np.zeros(5)), calib.predict(X, np.zeros(5)))


def test_clusters_the_run_used_are_told_apart_by_their_descriptors(tmp_path: Path) -> None:
    """predict marks a cluster with a training cluster's descriptors (missing cells included)
    as 'training' and one with a calibration cluster's as 'calibration'; a changed descriptor
    makes a new cluster. The calibration clusters survive the JSON round trip."""
    from n2react.provenance import used_by_run, used_lines

    cols = ["a", "b"]
    calib = Calibration(
        difficulty="none", k=3, flag_quantile=0.9, residuals=np.zeros(10), sigmas=np.ones(10),
        columns=cols, train_X=np.array([[1.0, 2.0], [3.0, np.nan]]),
        train_abs_residual=np.ones(2), source="cal.xlsx", calib_X=np.array([[5.0, 6.0]]),
    )  # fmt: skip
    X = pd.DataFrame([[1, 2], [3, np.nan], [5, 6], [1, 2.001], [3, 4]], columns=cols)
    expected = ["training", "training", "calibration", "", ""]
    assert list(used_by_run(calib, X)) == expected
    back = load_calibration(calib.save(tmp_path / UNCERTAINTY_FILE))
    assert list(used_by_run(back, X)) == expected
    table = pd.DataFrame({"used_by_run": used_by_run(back, X)})
    lines = used_lines(table, back)
    assert len(lines) == 2 and lines[0].startswith("2 of 5 clusters") and "cal.xlsx" in lines[1]
    assert used_lines(table, back, calibration=False) == lines[:1]


def test_too_few_residuals_is_refused(make_cfg, tmp_path: Path) -> None:
    assert min_residuals(0.9) == 10 and min_residuals(0.95) == 20
    small = pd.read_excel(data_dir() / HOMO).iloc[:18]
    small.to_excel(tmp_path / "small.xlsx", index=False)
    cfg = make_cfg("data=homonuclear_15", f"data.path={tmp_path / 'small.xlsx'}", "model=ridge",
                   "cv.outer_folds=3", "tracking=none", "explain=false")  # fmt: skip
    with pytest.raises(DataError, match="too few out-of-fold residuals.*uncertainty.enabled=false"):
        run(cfg, tmp_path / "run")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not a readable n2react calibration"):
        load_calibration(bad)


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("[1]", "a JSON list"),
        ("5", "a JSON number"),
        (
            '{"format": 1}',
            "a JSON object lacking field(s) difficulty, k, flag_quantile, residuals, sigmas, "
            "columns, train_X, train_abs_residual",
        ),
        (
            '{"format": 1, "difficulty": "knn", "k": 3, "flag_quantile": 0.9, "residuals": [], '
            '"sigmas": [], "columns": [], "train_X": [], "train_abs_residual": [], "junk": 1}',
            "a JSON object with unknown field(s) junk",
        ),
    ],
)
def test_a_calibration_file_of_other_json_names_the_file(
    tmp_path: Path, text: str, what: str
) -> None:
    # [1] said "(pop expected at most 1 argument, got 2)", 5 was an AttributeError traceback,
    # {"format": 1} "(Calibration.__init__() missing 8 required positional arguments: ...)"
    bad = tmp_path / UNCERTAINTY_FILE
    bad.write_text(text)
    with pytest.raises(DataError) as err:
        load_calibration(bad)
    assert str(err.value) == (
        f"{bad}: cannot be read ({what}: not the interval calibration the run wrote)"
    )


def test_a_run_without_calibration_predicts_without_intervals(make_cfg, tmp_path: Path) -> None:
    from n2react.inference import load_model, prediction_table, read_new_clusters

    cfg = make_cfg("data=homonuclear_15", "model=ridge", "cv.outer_folds=3", "tracking=none",
                   "explain=false", "uncertainty.enabled=false")  # fmt: skip
    metrics = run(cfg, tmp_path / "run")
    assert "interval_coverage" not in metrics
    assert not (tmp_path / "run" / UNCERTAINTY_FILE).exists()
    loaded = load_model(str(tmp_path / "run"))
    names = [str(c) for c in loaded.model.feature_names_in_]
    X, clusters, y = read_new_clusters(data_dir() / FEV, names)
    table, _ = prediction_table(loaded, X, clusters, y)
    assert "y_lower" not in table and "expected_error" not in table
    assert table["in_domain"].notna().all()
    assert (table["used_by_run"] == "").all()
    # without a calibration the domain still tells the training clusters apart (Rh3¯'s
    # missing HOMO cell included)
    X, clusters, y = read_new_clusters(data_dir() / HOMO, names)
    table, _ = prediction_table(loaded, X, clusters, y)
    assert (table["used_by_run"] == "training").all() and len(table) == 159


def test_spread_difficulty_runs_end_to_end_and_covers(make_cfg, tmp_path: Path) -> None:
    """difficulty=spread: each residual normalised by its own fold model's tree spread, a new
    cluster by the final model's; the cross-fitted coverage stays near nominal."""
    from n2react.difficulty import BETA, model_spread
    from n2react.inference import load_model, prediction_table, read_new_clusters

    cfg = make_cfg("data=homonuclear_15", *QUICK, "uncertainty.difficulty=spread", "tracking=none",
                   "explain=false", f"eval.path={data_dir() / FEV}")  # fmt: skip
    metrics = run(cfg, tmp_path / "run")
    assert 0.8 <= metrics["interval_coverage"] <= 0.98
    assert 0.5 < metrics["interval_width"] < 8.0 and "transfer_coverage" in metrics
    calib = load_calibration(tmp_path / "run" / UNCERTAINTY_FILE)
    assert calib.difficulty == "spread" and len(calib.sigmas) == 159
    assert np.ptp(calib.sigmas) > 0.05  # the trees disagree more on some clusters than others
    loaded = load_model(str(tmp_path / "run"))
    X, clusters, y = read_new_clusters(data_dir() / FEV, [str(c) for c in calib.columns])
    table, _ = prediction_table(loaded, X, clusters, y)
    spread = model_spread(loaded.model, X)
    trees = loaded.model[:-1].transform(X)
    per_tree = [t.predict(np.asarray(trees, np.float32)) for t in loaded.model[-1].estimators_]
    np.testing.assert_allclose(spread, np.std(per_tree, axis=0))
    # the width follows the final model's spread: half-width / (spread + BETA) is one constant
    ratio = (table["y_upper"] - table["y_pred"]) / (spread + BETA)
    np.testing.assert_allclose(ratio, ratio.iloc[0], rtol=1e-6)
    assert (table["y_lower"] < table["y_pred"]).all()


def test_spread_difficulty_needs_a_model_with_a_spread(make_cfg, tmp_path: Path) -> None:
    from n2react.errors import ConfigError

    cfg = make_cfg("data=homonuclear_15", "model=ridge", "uncertainty.difficulty=spread_knn",
                   "tracking=none", "explain=false")  # fmt: skip
    with pytest.raises(ConfigError, match="model=ridge gives no spread of its own") as err:
        run(cfg, tmp_path / "run")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run" / UNCERTAINTY_FILE).exists()


def test_a_log_line_with_every_cluster_flagged_says_so() -> None:
    # leave one metal out flags every cluster; the line read "vs in domain nan (0)"
    from n2react.uncertainty_report import flag_split_text

    everyone = {"domain_n_flagged": 159, "domain_n_in": 0, "domain_mae_flagged": 0.9951}
    assert flag_split_text(everyone) == (
        "all 159 clusters flagged (MAE 0.995): no in-domain cluster to compare"
    )
    both = {**everyone, "domain_n_flagged": 3, "domain_n_in": 15, "domain_mae_in": 0.41}
    assert flag_split_text(both) == "MAE flagged 0.995 (3) vs in domain 0.410 (15)"
    none = {**both, "domain_n_flagged": 0, "domain_mae_flagged": float("nan")}
    assert flag_split_text(none) == "no cluster flagged (MAE 0.410)"


def test_a_held_out_metal_is_never_in_domain(make_cfg, tmp_path: Path) -> None:
    """Left out by metal, every held-out cluster has an element its fold's training lacks:
    in_domain is false for all, whatever its expected error."""
    from n2react.composition import DEFAULT_LIGANDS
    from n2react.uncertainty_report import evaluate_run

    cfg = make_cfg("model=ridge", "cv.groups=metal", "tracking=none", "explain=false",
                   "uncertainty.validation=crossfit")  # fmt: skip
    plan = build_plan(cfg)
    dataset = plan.attach_groups(load_dataset(plan.data, plan.group_column))
    result = cross_validate(plan, dataset, tmp_path)
    _, metrics, _, _ = evaluate_run(result, plan.uncertainty, DEFAULT_LIGANDS, tmp_path, "", "")
    table = pd.read_csv(tmp_path / "uncertainty" / "oof_uncertainty.csv")
    assert table["new_element"].all() and not table["in_domain"].any()
    assert metrics["domain_n_in"] == 0 and metrics["domain_n_flagged"] == len(table)


@pytest.mark.parametrize(("n", "level"), [(19, 0.9), (159, 0.9), (159, 0.8), (30, 0.95)])
def test_the_conformal_half_width_is_the_ceil_level_n_plus_1_th_score(n: int, level: float) -> None:
    # scores 1..n: the half-width is the ceil(level (n + 1))-th smallest; crepes' float index
    # took one rank higher where (1 - level)(n + 1) is whole (the 145th of 159, not the 144th)
    from n2react.uncertainty import conformal_intervals

    iv = conformal_intervals(np.arange(1.0, n + 1), np.ones(n), np.zeros(2), np.ones(2), level)
    k = math.ceil(round(level * (n + 1), 9))
    np.testing.assert_allclose(iv, [[-k, k], [-k, k]])


def test_the_conformal_intervals_are_crepes_where_its_rank_is_exact() -> None:
    # the well-kept library's ConformalRegressor gives the same intervals, normalised ones
    # included, except where (1 - level)(n + 1) is whole (its float rank is one too high there)
    from crepes import ConformalRegressor

    from n2react.uncertainty import conformal_intervals

    rng = np.random.default_rng(0)
    checked, whole = 0, 0
    for n in (29, 39, 40, 106, 143, 159):
        residuals, sigmas = rng.normal(size=n), rng.uniform(0.5, 2.0, size=n)
        y_hat, s = rng.normal(size=5), rng.uniform(0.5, 2.0, size=5)
        for level in (0.5, 0.8, 0.9, 0.95):
            ours = conformal_intervals(residuals, sigmas, y_hat, s, level)
            cr = ConformalRegressor().fit(residuals=residuals, sigmas=sigmas)
            theirs = cr.predict_int(y_hat, sigmas=s, confidence=level)
            product = (1 - level) * (n + 1)
            if abs(product - round(product)) > 1e-6:
                np.testing.assert_allclose(ours, theirs)
                checked += 1
            else:  # the exact rank gives the narrower interval
                assert np.all(ours[:, 1] - ours[:, 0] <= theirs[:, 1] - theirs[:, 0])
                whole += 1
    assert checked >= 10 and whole >= 5


def test_the_intervals_line_prints_an_undefined_spearman_as_a_dash(
    make_cfg, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # difficulty=none gives one expected error per fold: no ranking, and the held-out intervals
    # line printed "Spearman(expected error, |error|) +nan"; a defined rho is printed as before
    import logging
    import re

    said = {}
    for difficulty in ("none", "knn_residual"):
        cfg = make_cfg("data=homonuclear_15", "model=ridge", "cv.outer_folds=3", "cv.groups=family",
                       "tracking=none", "explain=false", "final_model=false",
                       f"uncertainty.difficulty={difficulty}")  # fmt: skip
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="n2react.uncertainty_report"):
            run(cfg, tmp_path / difficulty)
        (said[difficulty],) = [m for r in caplog.records if "intervals (" in (m := r.getMessage())]
    assert "Spearman(expected error, |error|) -; " in said["none"]
    assert "nan" not in said["none"]
    rho = said["knn_residual"].split("Spearman(expected error, |error|) ")[1].split(";")[0]
    assert re.fullmatch(r"[+-]\d\.\d\d", rho), said["knn_residual"]


def test_the_error_figure_titles_an_undefined_spearman_as_a_dash() -> None:
    # one expected error for every cluster (uncertainty.difficulty=none): the transfer figure's
    # title read 'Spearman +nan'
    import matplotlib.pyplot as plt

    from n2react.uncertainty_report import error_figure

    table = pd.DataFrame(
        {
            "expected_error": [0.5] * 4,
            "y_pred": [1.0, 2.0, 3.0, 4.0],
            "y_true": [1.5, 1.0, 3.2, 4.9],
            "in_domain": [True, True, False, True],
        }
    )
    flat = error_figure(table, "transfer: x:")
    assert flat.axes[0].get_title().endswith("Spearman -")
    table["expected_error"] = [0.4, 0.8, 0.1, 0.6]
    ranked = error_figure(table, "transfer: x:")
    assert ranked.axes[0].get_title().endswith("Spearman +1.00")
    plt.close("all")
