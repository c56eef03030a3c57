"""Intervals calibrated on labelled clusters of the kind to be predicted
(``uncertainty.calibration_path``, :mod:`n2react.calibration_set`): the final model's residuals on
the 18 FeV clusters set the width, the run's figures on that file are cross-fitted over its
composition units, and bad calibration files are refused before any training."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, data_dir
from scipy.stats import spearmanr

from n2react.calibration_set import composition_unit
from n2react.errors import DataError
from n2react.figures import figure_text
from n2react.run import run
from n2react.runstore import UNCERTAINTY_FILE

FEV = "heteronuclear-FeV-18-15features.xlsx"
QUICK = ("data=homonuclear_15", "model=extra_trees", "model.estimator.n_estimators=40",
         "cv.outer_folds=4", "cv.groups=family", "explain=false", "tracking=none")  # fmt: skip


def _conformal(abs_res: np.ndarray, level: float) -> float:
    """The split-conformal half-width: the ceil(level (n + 1))-th smallest |residual|."""
    a = np.sort(abs_res)
    return float(a[math.ceil(level * (len(a) + 1)) - 1])


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory):
    from n2react.compose import compose_config

    tmp = tmp_path_factory.mktemp("calset")
    cfg = compose_config([*QUICK, "uncertainty.difficulty=none",
                          "uncertainty.expected_error=knn_residual",
                          f"uncertainty.calibration_path={FEV}",  # found in $N2_DATA_DIR
                          f"eval.path={data_dir() / FEV}", "progress=false"])  # fmt: skip
    return run(cfg, tmp / "run"), tmp


@pytest.mark.slow
def test_the_calibration_file_sets_the_width_cross_fitted_by_unit(calibrated) -> None:
    metrics, tmp = calibrated
    table = pd.read_csv(tmp / "run" / "uncertainty" / "calibration_set.csv")
    assert len(table) == 18 and table["unit"].nunique() == 10
    # each unit's interval is the conformal quantile of the OTHER units' residuals, never its own
    for unit, part in table.groupby("unit"):
        others = table.loc[table["unit"] != unit, "residual"].abs().to_numpy()
        width = 2 * _conformal(others, 0.9)
        np.testing.assert_allclose(part["y_upper"] - part["y_lower"], width, rtol=1e-9)
    y = table["y_true"]
    # residual reads as in predict's CSV and the transfer table: predicted - measured
    np.testing.assert_allclose(table["residual"], table["y_pred"] - y)
    transfer = pd.read_csv(tmp / "run" / "transfer" / "transfer_predictions.csv")
    both = table.merge(transfer, on="cluster", suffixes=("", "_transfer"))
    assert len(both) == 18
    np.testing.assert_allclose(both["residual"], both["residual_transfer"])
    inside = (y >= table["y_lower"]) & (y <= table["y_upper"])
    assert metrics["calibration_set_coverage"] == pytest.approx(inside.mean())
    assert metrics["calibration_set_width"] == pytest.approx(
        (table["y_upper"] - table["y_lower"]).mean()
    )
    # eval.path is the same file: its transfer interval figures are the cross-fitted ones
    assert metrics["transfer_coverage"] == pytest.approx(metrics["calibration_set_coverage"])
    assert metrics["transfer_width"] == pytest.approx(metrics["calibration_set_width"])
    summary = json.loads((tmp / "run" / "summary.json").read_text())
    assert summary["calibration_set_coverage"] == pytest.approx(metrics["calibration_set_coverage"])
    # uncertainty/calibration.png draws the intervals the run ships (calibrated on the file,
    # cross-fitted) first, beside the held-out homonuclear ones, from the table written with it
    curves = pd.read_csv(tmp / "run" / "uncertainty" / "calibration_curve.csv")
    assert list(dict.fromkeys(curves["curve"])) == [
        f"{FEV} (18 clusters), the run's intervals: "
        "each composition unit calibrated on the other units",
        "held-out clusters, grouped by family (new compositions): "
        "each fold calibrated on the other folds' errors, refitted without it",  # nested
    ]
    fev = curves[curves["curve"].str.startswith(FEV)].set_index("nominal")
    assert fev.loc[0.9, "observed"] == pytest.approx(metrics["calibration_set_coverage"])
    assert fev.loc[0.9, "width"] == pytest.approx(metrics["calibration_set_width"])
    oof = curves[curves["curve"].str.startswith("held-out")].set_index("nominal")
    assert oof.loc[0.9, "observed"] == pytest.approx(metrics["interval_coverage"])
    text = " ".join(
        figure_text(tmp / "run" / "uncertainty" / "calibration.png")["Description"].split()
    )
    assert f"{FEV} (18 clusters), the run's intervals" in text and "held-out clusters" in text
    # the homonuclear out-of-fold figures are still those of the held-out families
    assert 0.8 <= metrics["interval_coverage"] <= 0.98
    # one width, but expected_error follows knn_residual: its ranking of held-out errors is logged
    oof = pd.read_csv(tmp / "run" / "uncertainty" / "oof_uncertainty.csv")
    err = (oof["y_pred"] - oof["y_true"]).abs()
    rho = spearmanr(oof["expected_error"], err)[0]
    assert metrics["uncertainty_spearman"] == pytest.approx(rho)


def test_eval_path_of_the_calibration_clusters_in_another_file_is_cross_fitted(
    make_cfg, tmp_path: Path, caplog
) -> None:
    # eval.path holding the 18 calibration clusters as a CSV (another file, reordered) was scored
    # with the intervals calibrated on those same 18 clusters: transfer_coverage 1.0, in-sample,
    # without a word (only a byte-identical file got the cross-fitted figures)
    from n2react.inference import load_model
    from n2react.transfer import evaluate_transfer

    fev = pd.read_excel(data_dir() / FEV)
    fev.iloc[::-1].to_csv(tmp_path / "fev.csv", index=False)
    over = ("uncertainty.difficulty=none", "uncertainty.expected_error=knn_residual",
            f"uncertainty.calibration_path={FEV}", f"eval.path={tmp_path / 'fev.csv'}")  # fmt: skip
    cfg = make_cfg(*QUICK, *over)
    m = run(cfg, tmp_path / "run")
    assert m["transfer_coverage"] == pytest.approx(m["calibration_set_coverage"])
    assert m["transfer_width"] == pytest.approx(m["calibration_set_width"])
    crossfit = pd.read_csv(tmp_path / "run" / "uncertainty" / "calibration_set.csv")
    got = pd.read_csv(tmp_path / "run" / "transfer" / "transfer_predictions.csv")
    both = got.merge(crossfit, on="cluster", suffixes=("", "_crossfit"))
    assert len(both) == 18
    np.testing.assert_allclose(both["y_lower"], both["y_lower_crossfit"])
    # each row's flag threshold, the one its reason quotes, is in the table a chemist reads (it
    # was only in calibration_set.csv): each unit's own, cross-fitted
    np.testing.assert_allclose(both["flag_threshold"], both["flag_threshold_crossfit"])
    assert (both["in_domain"] == ~both["flagged"]).all()
    assert both["flag_threshold"].nunique() > 1
    # some of them only: their intervals are in-sample, and a warning says so
    fev.iloc[:12].to_csv(tmp_path / "part.csv", index=False)
    with caplog.at_level("WARNING", logger="n2react.transfer"):
        evaluate_transfer(
            load_model(str(tmp_path / "run")), tmp_path / "part.csv", tmp_path / "out",
            held_out=crossfit,
        )  # fmt: skip
    said = [r.getMessage() for r in caplog.records if r.name == "n2react.transfer"]
    assert any("12 of 12 clusters" in s and "in-sample" in s for s in said), said
    # in-sample intervals: the run's own threshold, as predict's CSV has it
    part = pd.read_csv(tmp_path / "out" / "transfer" / "transfer_predictions.csv")
    threshold = load_model(str(tmp_path / "run")).uncertainty.threshold
    np.testing.assert_allclose(part["flag_threshold"], threshold)
    assert (part["in_domain"] == (part["expected_error"] <= threshold)).all()


@pytest.mark.slow
def test_predict_uses_all_calibration_residuals_and_ranks_by_the_error_difficulty(
    calibrated,
) -> None:
    _, tmp = calibrated
    saved = json.loads((tmp / "run" / UNCERTAINTY_FILE).read_text())
    assert saved["source"] == FEV and len(saved["residuals"]) == 18
    assert saved["difficulty"] == "none" and saved["error_difficulty"] == "knn_residual"
    fev = pd.read_excel(data_dir() / FEV).drop(columns=["lg(k1)"])
    fev.to_excel(tmp / "fev.xlsx", index=False)
    out = tmp / "fev.csv"
    done = subprocess.run(
        [sys.executable, "-m", "predict", str(tmp / "run"), str(tmp / "fev.xlsx"), "-o", str(out),
         "--plot"],
        capture_output=True, text=True, cwd=tmp, timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    pred = pd.read_csv(out)
    # --plot: every cluster on the figure, with its interval and the domain verdict
    text = figure_text(out.with_suffix(".png"))
    assert "90 % intervals" in text["Title"] and "90 % interval" in text["Description"]
    # which model and which calibration the intervals come from; the axis in lg(k1) with k1's unit
    title = " ".join(text["Title"].split())
    assert f"calibrated on {FEV}" in title  # and the run: its folder, model, data, protocol
    assert title.endswith("model: run (extra_trees on homonuclear_15: grouped by family (new "
                          "compositions))")  # fmt: skip
    assert "lg(k1)  (k1 in cm³ molecule⁻¹ s⁻¹)" in text["Description"]
    flagged = int((~pred["in_domain"]).sum())
    assert f"predicted, in domain ({len(pred) - flagged})" in text["Description"]
    assert all(c in text["Description"] for c in pred["cluster"])
    # the width: the conformal quantile of all 18 residuals, the same for every cluster (none)
    width = 2 * _conformal(np.abs(saved["residuals"]), 0.9)
    np.testing.assert_allclose(pred["y_upper"] - pred["y_lower"], width, rtol=1e-9)
    # expected_error follows knn_residual, so it differs between clusters
    assert pred["expected_error"].nunique() > 5
    # the terminal shows every cluster with its interval, expected error and domain verdict
    term = done.stderr
    head = " ".join(term.split())  # the table's headers break at a space on narrow columns
    assert all(w in head for w in ("90 %", "interval", "expected", "|error|", "in domain"))
    # the 18 are the run's calibration clusters: marked, and said once (their intervals are
    # in-sample)
    assert (pred["used_by_run"] == "calibration").all()
    assert sum(f"18 of 18 clusters have the descriptors of the clusters the run's intervals were "
               f"calibrated on ({FEV})" in ln for ln in term.splitlines()) == 1  # fmt: skip
    assert "† a cluster the run's intervals were calibrated on" in term
    for _, row in pred.iterrows():
        line = next(ln for ln in term.splitlines() if f"│{row['cluster']}† " in ln)
        assert f"[{row['y_lower']:.1f}, {row['y_upper']:.1f}]" in line
        assert ("yes" in line) == bool(row["in_domain"])
    # 95 % needs 20 residuals: refused in one line that names the calibration file
    done = subprocess.run(
        [sys.executable, "-m", "predict", str(tmp / "run"), str(tmp / "fev.xlsx"), "-o",
         str(tmp / "x.csv"), "--coverage", "0.95"],
        capture_output=True, text=True, cwd=tmp, timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith("n2react: error:"))
    assert f"too few {FEV} residuals" in line and "20" in line
    assert line.startswith("n2react: error: --coverage 0.95: ")  # the flag typed, not a key
    # a plot would replace a file of the user's: refused before any work, nothing written
    (tmp / "mine.png").write_bytes(b"not ours")
    done = subprocess.run(
        [sys.executable, "-m", "predict", str(tmp / "run"), str(tmp / "fev.xlsx"), "-o",
         str(tmp / "mine.csv"), "--plot"],
        capture_output=True, text=True, cwd=tmp, timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    assert done.returncode == 2 and "mine.png: the output exists" in done.stderr
    assert (tmp / "mine.png").read_bytes() == b"not ours" and not (tmp / "mine.csv").exists()


def test_a_missing_calibration_file_is_one_line_before_training(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "train", *QUICK, "uncertainty.calibration_path=nope.xlsx",
         f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("n2react: error:")]
    assert len(lines) == 1
    assert "uncertainty.calibration_path=nope.xlsx: file not found" in lines[0]
    assert not (tmp_path / "run" / "oof_predictions.csv").exists()


def test_too_few_or_unlabelled_calibration_clusters_are_refused(make_cfg, tmp_path: Path) -> None:
    fev = pd.read_excel(data_dir() / FEV)
    fev.iloc[:9].to_excel(tmp_path / "nine.xlsx", index=False)
    fev.drop(columns=["lg(k1)"]).to_excel(tmp_path / "unlabelled.xlsx", index=False)
    for name, message in (("nine", "9 labelled clusters cannot calibrate 90% intervals"),
                          ("unlabelled", r"no lg\(k1\) column")):  # fmt: skip
        cfg = make_cfg(*QUICK, f"uncertainty.calibration_path={tmp_path / name}.xlsx")
        with pytest.raises(DataError, match=message):
            run(cfg, tmp_path / name)
        assert not (tmp_path / name / "oof_predictions.csv").exists()  # refused before training


def test_a_calibration_file_of_training_clusters_is_refused(make_cfg, tmp_path: Path) -> None:
    """Residuals of the final model on its own training clusters are fits: calibrated on them,
    extra trees' intervals had width 0."""
    own = pd.read_excel(data_dir() / "homonuclear-159-15features.xlsx")
    fev = pd.read_excel(data_dir() / FEV)
    pd.concat([fev, own.iloc[[5]]]).to_excel(tmp_path / "mixed.xlsx", index=False)
    for name, message in (("homonuclear-159-15features.xlsx", "159 of 159 clusters"),
                          (str(tmp_path / "mixed.xlsx"), "1 of 19 clusters")):  # fmt: skip
        cfg = make_cfg("data=homonuclear_15", "model=ridge", "cv.outer_folds=3",
                       "tracking=none", f"uncertainty.calibration_path={name}")  # fmt: skip
        with pytest.raises(DataError, match=f"{message} .* training clusters of this run"):
            run(cfg, tmp_path / "run")
        assert not (tmp_path / "run" / "oof_predictions.csv").exists()  # before training


def test_composition_units() -> None:
    assert composition_unit("Fe2V2C2¯") == "Fe2V2-C"
    assert composition_unit("FeV2S3ˉ") == "FeV2-S"
    assert composition_unit("Rh3¯") == "Rh3-bare"
    assert composition_unit("Mo2P2C1¯", ["C", "P"]) == "Mo2-PC"  # data.formula_ligands


def test_expected_error_can_follow_another_difficulty_than_the_width(make_cfg, tmp_path) -> None:
    """difficulty=none (one width) with expected_error=knn_residual: the out-of-fold calibration
    keeps one half-width per fold and ranks clusters by their neighbours' held-out errors; the
    saved JSON reads back to the same predictions."""
    from n2react.data import load_dataset
    from n2react.plan import build_plan
    from n2react.run import cross_validate
    from n2react.uncertainty import UncertaintySpec, load_calibration
    from n2react.uncertainty_fit import calibrate

    cfg = make_cfg("data=homonuclear_15", "model=ridge", "cv.outer_folds=4", "tracking=none")
    plan = build_plan(cfg)
    dataset = plan.attach_groups(load_dataset(plan.data, plan.group_column))
    result = cross_validate(plan, dataset, tmp_path)
    spec = UncertaintySpec(difficulty="none", expected_error="knn_residual")
    calib, table = calibrate(result, spec)
    assert calib.error_kind == "knn_residual" and calib.error_sigmas is not None
    spread = table.groupby("fold")["width_0.9"].agg(lambda w: w.max() - w.min())
    assert (spread < 1e-9).all()  # one width per fold
    assert table["expected_error"].nunique() > 100  # but an expected error per cluster
    same = calibrate(result, UncertaintySpec(difficulty="knn_residual"))[1]
    np.testing.assert_allclose(table["expected_error"], same["expected_error"])
    back = load_calibration(calib.save(tmp_path / "u.json"))
    X = dataset.X.iloc[:8]
    pd.testing.assert_frame_equal(back.predict(X, np.zeros(8)), calib.predict(X, np.zeros(8)))
    band = calib.predict(X, np.zeros(8))
    width = band["y_upper"] - band["y_lower"]
    assert width.max() - width.min() < 1e-9
    assert band["expected_error"].nunique() > 4


def test_a_level_the_other_units_cannot_calibrate_is_left_out_not_refused() -> None:
    """20 calibration clusters, each its own unit: each is scored on the other 19, enough for a
    90 % interval (10) but not for 95 % (20): that level has no figure, the others are exact."""
    from n2react.calibration_set import _crossfit, curve
    from n2react.uncertainty import Calibration

    rng = np.random.default_rng(5)
    y, y_hat = rng.normal(size=20), np.zeros(20)
    ones = np.ones(20)
    calib = Calibration(difficulty="none", k=3, flag_quantile=0.9, residuals=y - y_hat,
                        sigmas=ones, columns=["a"], train_X=np.zeros((1, 1)),
                        train_abs_residual=np.ones(1))  # fmt: skip
    names = np.array([f"c{i}" for i in range(20)])
    table = _crossfit(calib, names, names, y, y_hat, ones, ones, 0.9)
    assert table["covered_0.95"].isna().all() and table["width_0.95"].isna().all()
    assert 0.95 not in set(curve(table)["nominal"]) and 0.9 in set(curve(table)["nominal"])
    for i in range(20):
        others = np.abs(np.delete(y, i))
        assert table["y_upper"].iat[i] == pytest.approx(_conformal(others, 0.9))


def test_a_units_own_lg_k1_never_reaches_its_cross_fitted_row() -> None:
    """The cross-fitted table of the calibration file: a unit's interval, expected error and
    flag come from the OTHER units only, so replacing its own lg(k1) leaves them the same to the
    bit (a scale of the expected error over every unit, its own included, moved them)."""
    from n2react.calibration_set import _crossfit
    from n2react.uncertainty import Calibration

    rng = np.random.default_rng(3)
    units = np.repeat(np.array(["A", "B", "C", "D"]), 6)
    names = np.array([f"c{i}" for i in range(24)])
    y_hat = rng.normal(size=24)
    sig = rng.uniform(0.5, 2.0, 24)  # a difficulty that varies: the scale matters
    y = y_hat + rng.normal(size=24) * sig
    calib = Calibration(difficulty="knn_distance", k=3, flag_quantile=0.8, residuals=y - y_hat,
                        sigmas=sig, columns=["a"], train_X=np.zeros((1, 1)),
                        train_abs_residual=np.ones(1))  # fmt: skip
    other = y.copy()
    other[units == "A"] += rng.normal(scale=5.0, size=6)
    a, b = (_crossfit(calib, names, units, t, y_hat, sig, sig, 0.9) for t in (y, other))
    cols = ["y_lower", "y_upper", "expected_error", "flagged"]
    here = units == "A"
    assert a.loc[here, cols].equals(b.loc[here, cols])
    # the other units ARE calibrated on unit A: theirs move, so the check can see a change
    assert not a.loc[~here, ["y_upper", "expected_error"]].equals(
        b.loc[~here, ["y_upper", "expected_error"]]
    )


def test_a_cross_fitted_flag_reason_quotes_the_threshold_its_unit_was_flagged_by(
    make_cfg, tmp_path: Path
) -> None:
    """eval.path = the calibration file: each composition unit's flag is decided against the
    threshold of a calibration on the OTHER units, but its reason quoted the whole run's
    ('expected error 0.53 above 0.53' for an error of 0.527 under a run threshold of 0.532).
    The reason now quotes the unit's own threshold, so the text and the flag agree."""
    import re

    from n2react.inference import load_model

    cfg = make_cfg("data=homonuclear_15", "model=ridge", "cv.outer_folds=3", "cv.groups=family",
                   "explain=false", "tracking=none", "uncertainty.difficulty=none",
                   "uncertainty.expected_error=knn_residual", f"uncertainty.calibration_path={FEV}",
                   f"eval.path={data_dir() / FEV}")  # fmt: skip
    run(cfg, tmp_path / "run")
    crossfit = pd.read_csv(tmp_path / "run" / "uncertainty" / "calibration_set.csv")
    got = pd.read_csv(tmp_path / "run" / "transfer" / "transfer_predictions.csv")
    both = got.merge(
        crossfit[["cluster", "unit", "flag_threshold", "flagged"]],
        on="cluster",
        suffixes=("_transfer", ""),
    )
    assert len(both) == 18
    # the transfer table has each unit's threshold too (its reason quotes it)
    np.testing.assert_allclose(both["flag_threshold_transfer"], both["flag_threshold"])
    flagged = ~both["in_domain"].astype(bool)
    assert (flagged == both["flagged"]).all()  # the flags are the cross-fitted ones
    assert flagged.any() and (~flagged).any()
    # a unit's threshold is its own calibration's: not the run's, and not the same for all units
    assert crossfit.groupby("unit")["flag_threshold"].nunique().eq(1).all()
    assert crossfit["flag_threshold"].nunique() > 1
    whole = load_model(str(tmp_path / "run")).uncertainty.threshold
    pattern = re.compile(
        r"expected error (\d+\.\d+) above (\d+\.\d+) \(higher than 90 % of the other "
        r"composition units' calibration clusters'\)"
    )
    quoted = []
    for _, row in both[flagged].iterrows():
        hit = pattern.fullmatch(row["domain_reasons"])
        assert hit, row["domain_reasons"]
        ee, limit = float(hit[1]), float(hit[2])
        assert row["expected_error"] > limit and ee > limit  # the error it compared exceeds it
        assert ee == pytest.approx(row["expected_error"], abs=0.005)
        assert limit == pytest.approx(row["flag_threshold"], abs=0.005)  # its unit's threshold
        quoted.append(limit)
    # the whole run's threshold is not what decided them (this run has one that differs)
    assert any(abs(q - whole) > 0.005 for q in quoted), (quoted, whole)
    passed = both[~flagged]
    assert (passed["expected_error"] <= passed["flag_threshold"]).all()
    assert passed["domain_reasons"].fillna("").eq("").all()
