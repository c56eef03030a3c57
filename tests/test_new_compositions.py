"""`experiment=new_compositions`, the config recommended for new compositions: it composes, runs end
to end under family-grouped folds with the FeV clusters scored (eval.path), and `python -m predict`
predicts the FeV file without its lg(k1) column, as the maintainers check it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from n2react.run import run

FEV = "heteronuclear-FeV-18-15features.xlsx"


def _benchmark():  # noqa: ANN202 - the benchmarks/transfer.py module
    spec = importlib.util.spec_from_file_location("transfer", ROOT / "benchmarks" / "transfer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_preset_is_the_benchmark_row_it_names(make_cfg) -> None:
    """The preset trains on the 159 homonuclear clusters with the winner row's model and data."""
    preset = make_cfg("experiment=new_compositions")
    rows = {key: overrides for key, _, overrides in _benchmark().CONFIGS}
    winner = make_cfg(*rows[_benchmark().RECOMMENDED].split())
    assert preset.cv.groups == "family" and preset.uncertainty.difficulty == "none"
    assert preset.uncertainty.expected_error == "knn_residual"
    assert preset.uncertainty.calibration_path == FEV  # found in $N2_DATA_DIR
    assert preset.data.file == winner.data.file == "homonuclear-159-15features.xlsx"
    assert preset.model == winner.model and preset.features == winner.features
    assert preset.pairwise == winner.pairwise and preset.data.formula == winner.data.formula


@pytest.fixture(scope="module")
def preset_run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path):
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    tmp = tmp_path_factory.mktemp("preset")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "experiment=new_compositions",
                "cv.outer_folds=4",
                "model.estimator.n_estimators=50",
                f"eval.path={shared_data / FEV}",
                "explain=false",
            ],
        )
    with open_dict(cfg):
        cfg.tracking.uri = f"sqlite:///{tmp / 'mlflow.db'}"
        cfg.progress = False
    return run(cfg, tmp / "run"), tmp


def test_preset_runs_grouped_and_scores_the_fev_clusters(preset_run) -> None:
    metrics, tmp = preset_run
    oof = pd.read_csv(tmp / "run" / "oof_predictions.csv")
    assert len(oof) == 159 and oof["y_pred"].notna().all()
    assert oof.groupby("group")["fold"].nunique().max() == 1  # whole families per fold
    assert oof["fold"].nunique() == 4
    fev = pd.read_csv(tmp / "run" / "transfer" / "transfer_predictions.csv")
    assert len(fev) == 18 and metrics["transfer_n"] == 18
    err = np.abs(fev["y_pred"] - fev["y_true"])
    assert metrics["transfer_mae"] == pytest.approx(err.mean())
    assert metrics["transfer_mae"] < 1.0  # predicting the mean lg(k1) of the 159 is worse


def test_predict_reads_the_fev_file_without_labels(preset_run, shared_data: Path) -> None:
    _, tmp = preset_run
    sheet = tmp / "fev_unlabelled.xlsx"
    pd.read_excel(shared_data / FEV).drop(columns=["lg(k1)"]).to_excel(sheet, index=False)
    out = tmp / "fev_pred.csv"
    cmd = [sys.executable, "-m", "predict", str(tmp / "run"), str(sheet), "-o", str(out)]
    res = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    table = pd.read_csv(out)
    assert len(table) == 18 and table["y_pred"].notna().all()
    assert "y_true" not in table and "in_domain" in table
    assert (table["y_lower"] < table["y_pred"]).all() and (table["y_pred"] < table["y_upper"]).all()
    assert (table["expected_error"] > 0).all() and table["expected_error"].nunique() > 1
    scored = pd.read_csv(tmp / "run" / "transfer" / "transfer_predictions.csv")
    np.testing.assert_allclose(table["y_pred"], scored["y_pred"])  # the same final model


def test_benchmark_units_and_paired_interval() -> None:
    """benchmarks/transfer.py: FeV units are metal core + ligand elements; the paired interval of
    a uniformly worse config lies above zero, and a config never beats itself."""
    bench = _benchmark()
    assert bench.composition_unit("Fe2V2C2\u02c9") == "Fe2V2-C"
    assert bench.composition_unit("FeVS3\u02c9") == "FeV-S"
    rng = np.random.default_rng(0)
    y = rng.normal(-12.5, 1.0, 40)
    names = [f"c{i}" for i in range(40)]
    good = pd.DataFrame({"cluster": names, "y_true": y, "y_pred": y + rng.normal(0, 0.3, 40)})
    worse = good.assign(y_pred=good["y_pred"] + np.sign(good["y_pred"] - y) * 0.2)
    units = np.repeat(np.arange(10), 4).astype(str)
    d, lo, hi, p_beats = bench.paired(worse, good, units)
    assert d == pytest.approx(0.2) and 0 < lo <= hi and p_beats == 0
    assert bench.paired(good, good, units)[:3] == (0.0, 0.0, 0.0)
    idx = bench.draws(units)  # whole units: each draw holds 4 rows of each drawn unit
    assert len(idx) == 2000 and all(len(i) == 40 for i in idx)
    assert all(np.all(np.bincount(i // 4, minlength=10) % 4 == 0) for i in idx[:50])
