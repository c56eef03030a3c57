"""Bootstrap intervals of the CV scores: they hold the point figure, resample the protocol's units
(clusters under KFold, whole groups under a grouped CV) and reach summary.json, MLflow and the
terminal."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from n2react.bootstrap import compare_oof, score_intervals
from n2react.errors import N2ReactError
from n2react.run import run

FAST = ("model=ridge", "explain=false", "final_model=false")


def _inside(summary: dict[str, float], key: str) -> bool:
    return summary[f"{key}_ci_low"] <= summary[key] <= summary[f"{key}_ci_high"]


def test_kfold_run_has_an_interval_beside_every_score(make_cfg, tmp_path: Path, capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    summary = run(make_cfg(*FAST, "cv.outer_folds=4", tracking_uri=uri), tmp_path / "run")
    # the terminal says once that 4 folds' "95% CI" is no confidence interval (159 clusters are
    # enough for the pooled ones); the keys and values below are kept
    said = " ".join(capsys.readouterr().err.split())
    assert said.count("too few units") == 1, said[-3000:]
    assert "the 95% CI of mean_* over 4 folds: too few units (fewer than 6)" in said
    scores = [k for k in summary if k.startswith(("mean_", "pooled_")) and "_ci_" not in k]
    assert len(scores) == 12  # mean_test_*, mean_train_* (4 each) and pooled_test_* (4)
    for key in scores:
        assert _inside(summary, key), key
        assert summary[f"{key}_ci_low"] < summary[f"{key}_ci_high"], key
    assert not any(k.startswith("std_") and "_ci_" in k for k in summary)  # a spread, no interval
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["pooled_test_mae_ci_low"] == pytest.approx(summary["pooled_test_mae_ci_low"])
    keys = list(on_disk)  # each interval right after its metric
    i = keys.index("pooled_test_mae")
    assert keys[i + 1 : i + 3] == ["pooled_test_mae_ci_low", "pooled_test_mae_ci_high"]
    client = MlflowClient(uri)
    (parent,) = [
        r
        for r in client.search_runs([client.get_experiment_by_name("n2react").experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    ]
    assert parent.data.metrics["pooled_test_mae_ci_high"] == pytest.approx(
        summary["pooled_test_mae_ci_high"]
    )
    assert parent.data.metrics["mean_test_r_ci_low"] == pytest.approx(summary["mean_test_r_ci_low"])


def test_grouped_run_resamples_whole_groups(make_cfg, tmp_path: Path) -> None:
    summary = run(make_cfg(*FAST, "cv.groups=metal", "tracking=none"), tmp_path / "run")
    for key in ("pooled_test_r", "pooled_test_rmse", "pooled_test_mae", "pooled_test_within"):
        assert _inside(summary, key), key
    oof = pd.read_csv(tmp_path / "run" / "oof_predictions.csv")
    folds = pd.read_csv(tmp_path / "run" / "folds.csv")
    again = score_intervals(oof, folds)
    assert again["pooled_test_mae_ci_low"] == pytest.approx(summary["pooled_test_mae_ci_low"])
    # the same predictions resampled cluster by cluster give a narrower interval: six metals
    # are a smaller sample than 159 clusters
    by_cluster = score_intervals(oof.drop(columns="group"), folds)
    width = summary["pooled_test_mae_ci_high"] - summary["pooled_test_mae_ci_low"]
    assert width > 1.2 * (
        by_cluster["pooled_test_mae_ci_high"] - by_cluster["pooled_test_mae_ci_low"]
    )


def _oof(errors: list[list[float]]) -> pd.DataFrame:
    """An out-of-fold table: one group (and fold) per inner list of prediction errors."""
    rows = [
        {
            "cluster": f"c{g}_{i}",
            "y_true": float(i),
            "y_pred": i + e,
            "fold": g + 1,
            "group": f"g{g}",
        }
        for g, errs in enumerate(errors)
        for i, e in enumerate(errs)
    ]
    return pd.DataFrame(rows)


def test_the_unit_is_the_group_when_there_are_groups() -> None:
    # every group has MAE 1 (errors 0, 1, 2): drawing whole groups cannot move the pooled MAE,
    # drawing clusters does
    oof = _oof([[0.0, 1.0, -2.0]] * 5)
    folds = pd.DataFrame({"test_mae": [1.0] * 5})
    grouped = score_intervals(oof, folds)
    assert grouped["pooled_test_mae_ci_low"] == pytest.approx(1.0)
    assert grouped["pooled_test_mae_ci_high"] == pytest.approx(1.0)
    clusters = score_intervals(oof.drop(columns="group"), folds)
    assert clusters["pooled_test_mae_ci_high"] - clusters["pooled_test_mae_ci_low"] > 0.3
    assert grouped["mean_test_mae_ci_low"] == grouped["mean_test_mae_ci_high"] == 1.0


def test_paired_comparison_sees_a_consistent_difference_that_marginals_miss() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(0.0, 1.0, size=(8, 10))  # hard and easy groups, shared by both runs
    a = _oof([list(r) for r in base])
    b = _oof([list(r + np.sign(r) * 0.05) for r in base])  # B is a little worse everywhere
    (mae,) = compare_oof(a, b, ["pooled_test_mae"])
    assert mae.diff < 0 and mae.high < 0 and mae.decided  # A better, and the interval says so
    assert mae.p_a_better == 1.0
    marginal = score_intervals(a, pd.DataFrame({"test_mae": [0.0]}))
    assert marginal["pooled_test_mae_ci_high"] > mae.b  # the marginal intervals overlap
    (same,) = compare_oof(a, a.copy(), ["pooled_test_rmse"])
    assert same.diff == 0 and same.low == same.high == 0 and not same.decided
    assert same.p_a_better == 0.5  # ties count half


def test_percentile_interval_repeats_and_ties() -> None:
    from n2react.bootstrap import interval

    # the 95 % percentile interval: 2.5 % in each tail
    assert interval(np.arange(1001.0)) == pytest.approx((25.0, 975.0))
    assert interval(np.arange(1001.0), 0.9) == pytest.approx((50.0, 950.0))
    # with repeats a pooled figure is the mean of each repeat's: repeat 1 exact, repeat 2 off
    # by 1 everywhere, so every resample's MAE is 0.5
    first = _oof([[0.0, 0.0, 0.0]] * 4).assign(repeat=1)
    second = _oof([[1.0, -1.0, 1.0]] * 4).assign(repeat=2)
    both = pd.concat([first, second], ignore_index=True)
    ci = score_intervals(both, pd.DataFrame({"test_mae": [0.0, 1.0]}))
    assert ci["pooled_test_mae_ci_low"] == ci["pooled_test_mae_ci_high"] == pytest.approx(0.5)
    # a run against itself on a larger-is-better metric: every resample a tie, counted half
    rng = np.random.default_rng(2)
    a = _oof([list(r) for r in rng.normal(size=(6, 8))])
    (r,) = compare_oof(a, a.copy(), ["pooled_test_r"])
    assert r.diff == 0 and r.p_a_better == 0.5 and not r.decided


def test_paired_comparison_refuses_other_measured_values() -> None:
    a = _oof([[0.1, 0.2, 0.3], [0.3, 0.1, 0.0]])
    with pytest.raises(N2ReactError, match="measured lg\\(k1\\) differ"):
        compare_oof(a, a.assign(y_true=a["y_true"] + 1.0))


def test_paired_comparison_refuses_other_folds() -> None:
    a = _oof([[0.1, 0.2, 0.3], [0.3, 0.1, 0.0]])
    b = a.assign(fold=[1, 2, 1, 2, 1, 2])
    with pytest.raises(N2ReactError, match="folds differ"):
        compare_oof(a, b)
    with pytest.raises(N2ReactError, match="groups differ"):
        compare_oof(a, a.drop(columns="group"))


def test_the_refusal_says_how_the_folds_differ() -> None:
    # it said only "their out-of-fold clusters or folds differ", for 4 folds against 3 as for
    # another seed or a grouped CV against KFold
    a = _oof([[0.1, 0.2, 0.3], [0.3, 0.1, 0.0]]).drop(columns="group")
    cases = {
        "A has 2 outer folds, B 3 outer folds": a.assign(fold=[1, 1, 2, 2, 3, 3]),
        "the same clusters fall in other folds": a.assign(fold=a["fold"].to_numpy()[::-1]),
        "A has 6 clusters, B 5, 1 in one run only": a.iloc[:5],
        "only B's CV is grouped by cv.groups": a.assign(group="Fe", fold=[1, 1, 2, 2, 3, 3]),
    }
    for how, b in cases.items():
        with pytest.raises(N2ReactError, match=f"folds differ \\({how}"):
            compare_oof(a, b)


def test_grouped_run_terminal_leads_with_pooled_figures(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    cmd = [
        sys.executable, "-m", "train", "model=ridge", "cv.groups=metal", "tracking=none",
        "explain=false", "final_model=false", "progress=false", f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    out = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=dict(os.environ)
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stderr + (tmp_path / "run" / "train.log").read_text()
    for metal in ("Co", "Fe", "Mo", "Rh", "Ta", "V"):  # each fold line names what it held out
        assert f"[held out: {metal}]" in text
    closing = [ln for ln in out.stderr.splitlines() if "(outputs in" in ln][-1]
    assert "pooled r " in closing and "mean test r" not in closing
    assert closing.index("pooled r") < closing.index("RMSE")
    assert "[" in closing  # with its interval
    assert "held out" in out.stderr  # the summary table's column of held-out groups
    assert "too few units" not in out.stderr  # six metals, six folds: intervals over enough


def _consistent_pair(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two out-of-fold tables on n groups (one fold each): B worse than A in every group."""
    base = np.random.default_rng(3).normal(0.0, 1.0, size=(n, 10))
    return _oof([list(r) for r in base]), _oof([list(r + np.sign(r) * 0.3) for r in base])


def test_no_verdict_below_six_units() -> None:
    # B was worse in every fold and every group: with 5 of them each resample agreed (P = 1.00,
    # an interval off zero) and the verdict was "A better", though an exact sign-flip test on 5
    # paired units cannot reach p < 0.05 (2 / 2**5 = 0.0625); from 6 on (0.031) it may
    from n2react.bootstrap import MIN_UNITS_FOR_VERDICT
    from n2react.compare import _verdict

    assert MIN_UNITS_FOR_VERDICT == 6 and 2 / 2**5 > 0.05 > 2 / 2**6
    for n, decided in ((5, False), (6, True)):
        a, b = _consistent_pair(n)
        mean, pooled = compare_oof(a, b, ["mean_test_mae", "pooled_test_mae"])
        assert (mean.units, mean.unit_kind) == (n, "folds")
        assert (pooled.units, pooled.unit_kind) == (n, "groups")
        for p in (mean, pooled):
            assert p.high < 0 and p.p_a_better == 1.0  # the figures are as before
            assert p.decided is decided, (n, p)
        if decided:
            assert _verdict(mean) == _verdict(pooled) == "A better"
        else:
            assert _verdict(mean) == "too few units (5 folds) to tell"
            assert _verdict(pooled) == "too few units (5 groups) to tell"
        # the same predictions resampled cluster by cluster: 10 n units, a verdict
        (clusters,) = compare_oof(
            a.drop(columns="group"), b.drop(columns="group"), ["pooled_test_mae"]
        )
        assert (clusters.units, clusters.unit_kind) == (10 * n, "clusters") and clusters.decided


def test_paired_counts_the_units_it_is_given() -> None:
    from n2react.bootstrap import _paired

    sa, sb = np.full(100, 1.0), np.full(100, 2.0)  # A's error lower in every resample
    few = _paired("mean_test_mae", 1.0, 2.0, sa, sb, (5, "folds"))
    enough = _paired("mean_test_mae", 1.0, 2.0, sa, sb, (6, "folds"))
    assert few.low == few.high == enough.high == -1.0 and few.p_a_better == 1.0
    assert (
        few.too_few_units and not few.decided and few.too_few == "too few units (5 folds) to tell"
    )
    assert not enough.too_few_units and enough.decided


def test_repeats_add_no_fold_units_and_the_run_says_when_its_intervals_rest_on_few() -> None:
    from n2react.bootstrap import few_units_note, fold_units

    a, b = _consistent_pair(3)
    twice = pd.concat([a.assign(repeat=1), a.assign(repeat=2)], ignore_index=True)
    assert fold_units(twice) == 3  # 6 fold scores, the same clusters twice
    (mean,) = compare_oof(twice, pd.concat([b.assign(repeat=1), b.assign(repeat=2)]),
                          ["mean_test_mae"])  # fmt: skip
    assert mean.units == 3 and not mean.decided
    note = few_units_note(a)
    assert "mean_* over 3 folds" in note and "pooled_* over 3 groups" in note
    assert "too few units (fewer than 6) to be a confidence interval" in note
    assert few_units_note(a.drop(columns="group")) == (
        "the 95% CI of mean_* over 3 folds: too few units (fewer than 6) to be a confidence "
        "interval; read it as their spread"
    )  # 30 clusters are enough for the pooled ones
    assert few_units_note(_consistent_pair(6)[0]) == ""


def test_repeated_cv_means_resample_k_fold_positions_not_r_times_k_folds() -> None:
    # with cv.repeats=2 the interval of mean_test_* drew all 2 K fold scores as independent,
    # though the repeats hold the same clusters again (the verdict counts K units): too narrow.
    # Now a resample draws K fold positions and takes the fold at each from every repeat.
    from n2react.bootstrap import RESAMPLES, SEED, interval

    k = 8
    first = np.random.default_rng(4).normal(1.0, 0.3, size=k)
    second = first + np.random.default_rng(5).normal(0.0, 0.02, size=k)  # the same clusters
    folds = pd.DataFrame(
        {"repeat": [1] * k + [2] * k, "fold": range(1, 2 * k + 1), "test_mae": [*first, *second]}
    )
    oof = _oof([[0.1, 0.2, -0.3]] * k)
    got = score_intervals(oof, folds)
    positions = np.random.default_rng(SEED).integers(0, k, size=(RESAMPLES, k))
    scheme = interval((first[positions].sum(axis=1) + second[positions].sum(axis=1)) / (2 * k))
    assert (got["mean_test_mae_ci_low"], got["mean_test_mae_ci_high"]) == pytest.approx(scheme)
    scores = folds["test_mae"].to_numpy()
    old = np.random.default_rng(SEED).integers(0, 2 * k, size=(RESAMPLES, 2 * k))
    low, high = interval(scores[old].mean(axis=1))
    assert scheme[1] - scheme[0] > 1.25 * (high - low)  # about sqrt(2) wider
    # one repeat: the same draws as before, bit for bit
    one = score_intervals(oof, folds.iloc[:k].drop(columns="repeat"))
    old_one = np.random.default_rng(SEED).integers(0, k, size=(RESAMPLES, k))
    assert (one["mean_test_mae_ci_low"], one["mean_test_mae_ci_high"]) == interval(
        first[old_one].mean(axis=1)
    )
    assert score_intervals(oof, folds.iloc[:k]) == one  # a repeat column of 1s changes nothing


def test_paired_means_of_a_repeated_cv_draw_fold_positions() -> None:
    # a run repeated twice on the very same folds resamples like the run once: each draw takes
    # the fold at its position from both repeats (before, 12 independent draws of 6 folds)
    a, b = _consistent_pair(6)
    once = compare_oof(a, b, ["mean_test_mae", "mean_test_r"])
    twice = compare_oof(
        pd.concat([a.assign(repeat=1), a.assign(repeat=2, fold=a["fold"] + 6)]),
        pd.concat([b.assign(repeat=1), b.assign(repeat=2, fold=b["fold"] + 6)]),
        ["mean_test_mae", "mean_test_r"],
    )
    for x, y in zip(once, twice, strict=True):
        assert (y.low, y.high, y.p_a_better, y.units) == pytest.approx(
            (x.low, x.high, x.p_a_better, x.units)
        )


def test_the_refusal_counts_repeated_folds_as_folds_x_repeats() -> None:
    # 3 folds x 2 repeats against 2 folds x 2 repeats said "A has 6 outer folds, B 4"
    a = _oof([[0.1, 0.2], [0.3, 0.1], [0.0, 0.2]]).drop(columns="group")
    twice = pd.concat([a.assign(repeat=1), a.assign(repeat=2, fold=a["fold"] + 3)])
    b = twice.assign(fold=[1, 1, 2, 2, 2, 1, 3, 3, 4, 4, 4, 3])
    with pytest.raises(N2ReactError, match="A has 3 outer folds x 2 repeats, B 2 outer folds x 2"):
        compare_oof(twice, b)
    with pytest.raises(N2ReactError, match="A has 2 outer folds, B 3 outer folds"):
        compare_oof(a.assign(fold=[1, 1, 2, 2, 1, 2]), a)


def test_r_of_constant_predictions_is_undefined_not_rounding_noise() -> None:
    """53 equal predictions: their mean is not exactly their value, so r came out ~1e-16 (and
    its bootstrap interval [-3e-15, 3e-15]) instead of undefined."""
    from n2react.metrics import pearson_r

    y = np.random.default_rng(0).normal(-12.0, 1.4, 159)
    pred = np.full(159, -12.311873221737452)
    assert np.isnan(pearson_r(y, pred)) and np.isnan(pearson_r(pred, y))
    oof = pd.DataFrame(
        {"cluster": [f"c{i}" for i in range(159)], "y_true": y, "y_pred": pred,
         "fold": np.arange(159) % 3 + 1, "repeat": 1}
    )  # fmt: skip
    folds = pd.DataFrame({"fold": [1, 2, 3], "repeat": 1, "test_r": np.nan, "test_rmse": 1.0})
    intervals = score_intervals(oof, folds)
    for key in ("mean_test_r", "pooled_test_r"):
        assert np.isnan(intervals[f"{key}_ci_low"]) and np.isnan(intervals[f"{key}_ci_high"])
    assert intervals["pooled_test_rmse_ci_low"] < intervals["pooled_test_rmse_ci_high"]
    # a near-constant model is no constant one: its r stays defined
    assert np.isfinite(pearson_r(y, pred + 1e-9 * y))


def test_a_run_of_constant_predictions_says_r_is_undefined(
    make_cfg, tmp_path: Path, capsys, caplog
) -> None:
    """Ridge with alpha=1e300 predicts one value per fold: r is undefined there. The run is not
    refused; the summary says so in one line, and summary.json stays JSON (it held NaN). The
    fold lines, the table and the closing line show it as "-" (they printed nan, nan ± nan)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    over = (*FAST, "model.estimator.alpha=1e300", "cv.outer_folds=3")
    with caplog.at_level("INFO", logger="n2react"):
        summary = run(make_cfg(*over, tracking_uri=uri), tmp_path / "run")
    said = " ".join(capsys.readouterr().err.split())
    assert said.count("r is undefined for constant predictions") == 1, said[-3000:]
    assert (
        "the model predicted one value in folds 1, 2, 3 (test and training clusters); r is shown "
        "as - there (null in summary.json) and left out of the mean r"
    ) in said
    lines = caplog.text
    assert not re.search(r"\bnan\b", said + lines), (said + lines)[-3000:]
    assert re.search(r"fold 1: test r - +RMSE \d\.\d{3} .*\(train r -\)", lines), lines
    assert "│ mean │ - │" in said and "mean test r -, RMSE " in lines
    assert np.isnan(summary["mean_test_r"]) and np.isnan(summary["mean_test_r_ci_low"])
    assert np.isfinite(summary["mean_test_rmse"]) and _inside(summary, "pooled_test_r")

    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    text = (tmp_path / "run" / "summary.json").read_text()
    on_disk = json.loads(text, parse_constant=refuse)
    assert on_disk["mean_test_r"] is None and on_disk["mean_test_r_ci_high"] is None
    assert on_disk["pooled_test_r"] == pytest.approx(summary["pooled_test_r"])


def test_within_the_error_bar_counts_its_edge() -> None:
    # "within ±0.477" (README) is the closed band |predicted - measured| <= log10(3): a
    # prediction exactly on its edge counts, one just beyond does not, in both counts
    from n2react.metrics import EXPERIMENTAL_ERROR, pooled_metrics, score

    edge = EXPERIMENTAL_ERROR
    y_true = np.zeros(4)
    y_pred = np.array([edge, -edge, np.nextafter(edge, 1.0), 0.0])
    assert pooled_metrics(y_true, y_pred)["within"] == 3
    assert score(y_true, y_pred)["within_error"] == 3.0
