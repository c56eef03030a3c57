"""Transfer scoring (eval.path) and the applicability domain, on files cut from the 159 clusters:
train without the Rh and Co clusters, score them as new compositions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, data_dir

from n2react.errors import DataError
from n2react.run import run

QUICK = ("model=extra_trees", "model.estimator.n_estimators=50", "cv.outer_folds=4")


@pytest.fixture(scope="module")
def cut_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the 152 clusters of Mo, Fe, V and Ta; the 7 of Rh and Co), from the 15-descriptor file."""
    tmp = tmp_path_factory.mktemp("cut")
    df = pd.read_excel(data_dir() / "homonuclear-159-15features.xlsx")
    new = df["Clusters"].str.startswith(("Rh", "Co"))
    df[~new].to_excel(tmp / "known.xlsx", index=False)
    df[new].to_excel(tmp / "rh_co.xlsx", index=False)
    return tmp / "known.xlsx", tmp / "rh_co.xlsx"


@pytest.fixture(scope="module")
def transfer_run(cut_files, tmp_path_factory: pytest.TempPathFactory):
    """A run trained on the known metals with eval.path = the Rh and Co clusters (tracked)."""
    from n2react.compose import compose_config

    known, new = cut_files
    tmp = tmp_path_factory.mktemp("run")
    cfg = compose_config(
        ["data=homonuclear_15", f"data.path={known}", f"eval.path={new}", *QUICK, "explain=false"],
        {"tracking.uri": f"sqlite:///{tmp / 'mlflow.db'}", "progress": False},
    )
    return run(cfg, tmp / "run"), tmp, cfg


def test_eval_path_is_scored_and_logged(transfer_run, n2react_runs) -> None:
    metrics, tmp, cfg = transfer_run
    table = pd.read_csv(tmp / "run" / "transfer" / "transfer_predictions.csv")
    assert len(table) == 7 and set(table["cluster"].str[:2]) == {"Rh", "Co"}
    err = np.abs(table["y_pred"] - table["y_true"])
    assert metrics["transfer_mae"] == pytest.approx(err.mean())
    assert metrics["transfer_within"] == int((err <= np.log10(3)).sum())
    # a new metal is outside the training domain, and says why
    assert not table["in_domain"].any() and metrics["transfer_in_domain"] == 0
    assert table["domain_reasons"].str.match("new metals? (Co|Rh)").all()
    (parent,), _ = n2react_runs(cfg.tracking.uri)
    for key in ("transfer_r", "transfer_rmse", "transfer_mae", "transfer_within"):
        assert parent.data.metrics[key] == pytest.approx(metrics[key])
    assert (tmp / "run" / "transfer" / "transfer_parity.png").stat().st_size > 10_000
    # the figure says what predicted the file: the model and what it was trained on
    from n2react.figures import figure_text

    title = " ".join(figure_text(tmp / "run" / "transfer" / "transfer_parity.png")["Title"].split())
    # (data.path=known.xlsx: the user's file names the data, not the option it came through)
    assert f"{cfg.model.name} trained on all 152 clusters of known)" in title, title
    text = figure_text(tmp / "run" / "transfer" / "transfer_parity.png")["Description"]
    assert "new clusters (no part in training)" in text and "out-of-fold" not in text
    # so do the domain, calibration and error figures (their titles named only the file)
    for name in ("transfer_domain.png", "transfer_calibration.png", "transfer_errors.png"):
        title = " ".join(figure_text(tmp / "run" / "transfer" / name)["Title"].split())
        assert "rh_co.xlsx" in title, (name, title)
        assert f"; model: {cfg.model.name} trained on all 152 clusters of known" in title, title


def test_the_run_lists_the_files_it_read_with_their_digests(
    transfer_run, cut_files, n2react_runs
) -> None:
    """MLflow's Datasets column named no file: which version of a spreadsheet trained (or scored)
    a run was nowhere in the store. The training table and eval.path are the run's inputs, each
    with the first 16 hex digits of the file's sha256 as its digest."""
    from n2react.runstore import file_sha256

    _, _, cfg = transfer_run
    known, new = cut_files
    (parent,), children = n2react_runs(cfg.tracking.uri)
    inputs = {
        d.dataset.name: (d.dataset, {t.key: t.value for t in d.tags})
        for d in parent.inputs.dataset_inputs
    }
    assert set(inputs) == {"known", "rh_co"}, inputs
    train, train_tags = inputs["known"]
    assert train_tags["mlflow.data.context"] == "training"
    assert train.digest == file_sha256(known)[:16] and str(known.resolve()) in train.source
    assert '"num_rows": 152' in train.profile and "lg(k1)" in train.schema
    scored, scored_tags = inputs["rh_co"]
    assert scored_tags["mlflow.data.context"] == "evaluation"
    assert scored.digest == file_sha256(new)[:16]
    assert not any(c.inputs.dataset_inputs for c in children)


def test_predict_flags_a_held_out_metal_and_explains_each_cluster(transfer_run, cut_files):
    _, tmp, _ = transfer_run
    known, new = cut_files
    out = tmp / "pred.csv"
    done = subprocess.run(
        [sys.executable, "-m", "predict", str(tmp / "run"), str(new), "-o", str(out), "--explain"],
        capture_output=True,
        text=True,
        cwd=tmp,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "7 of 7 clusters outside the training domain" in done.stderr
    pred = pd.read_csv(out)
    assert list(pred.columns[:4]) == ["cluster", "y_pred", "y_std", "in_domain"]
    assert not pred["in_domain"].any()
    shap = pd.read_csv(tmp / "pred_explain.csv")
    values = shap.filter(like="shap ")
    assert values.shape == (7, 15)  # one value per descriptor and cluster
    np.testing.assert_allclose(shap["base"] + values.sum(axis=1), pred["y_pred"], atol=1e-6)


def test_known_clusters_are_mostly_in_domain(transfer_run, cut_files) -> None:
    from n2react.inference import load_model, prediction_table, read_new_clusters

    _, tmp, _ = transfer_run
    known, _ = cut_files
    loaded = load_model(str(tmp / "run"))
    X, clusters, y = read_new_clusters(known, [str(c) for c in loaded.model.feature_names_in_])
    table, summary = prediction_table(loaded, X, clusters, y)
    # the training clusters themselves: no new element; flagged only where their expected error
    # is among the run's highest (uncertainty.flag_quantile 0.9 of the held-out clusters)
    assert table["in_domain"].mean() >= 0.8
    assert not table["domain_reasons"].str.contains("new ").any()
    assert "outside the training domain" in summary
    assert (table["used_by_run"] == "training").all()  # each one found by its descriptors


def test_eval_path_of_training_clusters_is_said_to_be_no_transfer(
    transfer_run, cut_files, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Scoring the training clusters as if they were new gives fitted values: one warning says
    so; the Rh and Co clusters of the run's own eval.path get none."""
    from n2react.inference import load_model
    from n2react.transfer import evaluate_transfer

    _, tmp, _ = transfer_run
    known, new = cut_files
    loaded = load_model(str(tmp / "run"))
    with caplog.at_level("WARNING", logger="n2react"):
        evaluate_transfer(loaded, new, tmp_path / "new")
    assert not [r for r in caplog.records if "trained on" in r.getMessage()]
    with caplog.at_level("WARNING", logger="n2react"):
        evaluate_transfer(loaded, known, tmp_path / "known")
    (warning,) = [r.getMessage() for r in caplog.records if "trained on" in r.getMessage()]
    assert warning.startswith(f"eval.path={known}: 152 of 152 clusters")


def test_eval_path_is_also_a_file_name_in_the_data_folder(make_cfg, tmp_path: Path) -> None:
    """As the calibration file: eval.path=<name> finds <name> in $N2_DATA_DIR (the README's
    eval.path=heteronuclear-FeV-18-15features.xlsx)."""
    over = ("data=homonuclear_15", "model=ridge", "cv.outer_folds=3", "explain=false")
    metrics = run(
        make_cfg(*over, "eval.path=heteronuclear-FeV-18-15features.xlsx", "tracking=none"),
        tmp_path / "run",
    )
    assert metrics["transfer_n"] == 18


def test_eval_path_with_a_new_element_is_warned_about_as_predict_does(
    make_cfg, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """predict warned about a cluster with an element no training cluster has (a metal or a
    ligand element, and what its interval was calibrated on); eval.path, scored with the same
    domain and intervals, said nothing. The Fe-V file itself has no new element: no warning,
    and the same figures as the file with Se for S in one name (same descriptors)."""
    from n2react.inference import load_model
    from n2react.transfer import evaluate_transfer

    fev = pd.read_excel(data_dir() / "heteronuclear-FeV-18-15features.xlsx")
    assert fev.loc[2, "Clusters"] == "Fe2VS2¯"
    fev.loc[2, "Clusters"] = "Fe2VSe2¯"
    fev.to_excel(tmp_path / "se.xlsx", index=False)
    over = ("data=homonuclear_15", "model=ridge", "cv.outer_folds=3", "explain=false")
    with caplog.at_level("WARNING", logger="n2react"):
        metrics = run(make_cfg(*over, f"eval.path={tmp_path / 'se.xlsx'}", "tracking=none"),
                      tmp_path / "run")  # fmt: skip
    (line,) = [
        r.getMessage() for r in caplog.records if "no training cluster has" in r.getMessage()
    ]
    assert line.startswith(
        f"eval.path={tmp_path / 'se.xlsx'}: 1 of 18 clusters have an element no training cluster "
        "has (new ligand element Se: Fe2VSe2¯ row 4): their intervals were calibrated on the "
        "run's held-out errors, KFold (known families); no calibration holds out a ligand element"
    )
    table = pd.read_csv(tmp_path / "run" / "transfer" / "transfer_predictions.csv")
    assert table["domain_reasons"].fillna("").tolist()[2:4] == ["new ligand element Se", ""]
    caplog.clear()
    with caplog.at_level("WARNING", logger="n2react"):
        fev_metrics, _ = evaluate_transfer(
            load_model(str(tmp_path / "run")), data_dir() / "heteronuclear-FeV-18-15features.xlsx",
            tmp_path / "fev",
        )  # fmt: skip
    assert not [r for r in caplog.records if "no training cluster has" in r.getMessage()]
    assert fev_metrics["transfer_in_domain"] == metrics["transfer_in_domain"] + 1 == 18
    for key in ("transfer_r", "transfer_rmse", "transfer_mae", "transfer_within"):
        assert fev_metrics[key] == pytest.approx(metrics[key])


def test_eval_path_must_exist_and_be_labelled(make_cfg, tmp_path: Path, cut_files) -> None:
    with pytest.raises(DataError, match="eval.path=.*nothing.xlsx: file not found"):
        run(make_cfg("model=ridge", f"eval.path={tmp_path / 'nothing.xlsx'}"), tmp_path / "a")
    _, new = cut_files
    unlabelled = tmp_path / "unlabelled.xlsx"
    pd.read_excel(new).drop(columns=["lg(k1)"]).to_excel(unlabelled, index=False)
    over = ("data=homonuclear_15", "model=ridge", "cv.outer_folds=3", "explain=false")
    with pytest.raises(DataError, match="no lg\\(k1\\) column"):
        run(make_cfg(*over, f"eval.path={unlabelled}", "tracking=none"), tmp_path / "b")
    two = tmp_path / "two.xlsx"  # r of two clusters is +-1: not a transfer score
    pd.read_excel(new).head(2).to_excel(two, index=False)
    with pytest.raises(
        DataError, match="2 labelled cluster\\(s\\); transfer scores need at least 3"
    ):
        run(make_cfg(*over, f"eval.path={two}", "tracking=none"), tmp_path / "c")
    assert not (tmp_path / "c" / "oof_predictions.csv").exists()  # refused before training


def test_an_undefined_transfer_r_prints_as_a_dash() -> None:
    # the closing line formatted r with %.3f: "r nan" for constant predictions; the per-group
    # table printed "n/a". Both print '-' through metrics.figure; defined figures as before
    import io

    from rich.console import Console

    from n2react.terminal import group_table
    from n2react.transfer import transfer_text

    scores = {"transfer_r": 0.6171, "transfer_rmse": 1.0661, "transfer_mae": 0.9061}
    line = transfer_text("fev.xlsx", 18, {**scores, "transfer_within": 4}, "3 outside")
    assert line == (
        "transfer (fev.xlsx, 18 clusters): r 0.617, RMSE 1.066, MAE 0.906, 4 within ±0.477; "
        "3 outside"
    )
    line = transfer_text("fev.xlsx", 18, {**scores, "transfer_r": np.nan, "transfer_within": 4}, "")
    assert "r -, RMSE 1.066" in line and "nan" not in line
    groups = pd.DataFrame(
        {"group": ["Co", "Rh", "Ni"], "n": [10, 2, 5], "r": [0.4567, 0.9, np.nan],
         "rmse": [1.0, 1.1, 1.2], "mae": [0.8, 0.9, 1.0], "bias": [0.1, -0.1, 0.0],
         "within": [5, 1, 2]}
    )  # fmt: skip
    out = io.StringIO()
    Console(file=out, width=120).print(group_table(groups, "per group"))
    rows = {ln.split("│")[1].strip(): ln.split("│")[3].strip() for ln in out.getvalue().splitlines()
            if ln.count("│") > 3}  # fmt: skip
    assert rows == {"Co": "0.457", "Rh": "-", "Ni": "-"}, out.getvalue()


def test_undefined_interval_figures_print_as_a_dash() -> None:
    # the intervals line printed "Spearman(expected error, |error|) +nan" (constant expected
    # errors: uncertainty.difficulty=none) and would print "mean width nan"; defined figures
    # as the old %-format did
    from n2react.transfer import intervals_text

    m = {"interval_coverage": 0.944, "interval_width": 4.7391, "uncertainty_spearman": 0.2853,
         "domain_n_flagged": 0, "domain_n_in": 18, "domain_mae_in": 0.5611}  # fmt: skip
    old = (  # the line as the old %-format wrote it
        "transfer 90% intervals: cover 94%, mean width 4.74; Spearman(expected error, |error|) "
        "+0.29; no cluster flagged (MAE 0.561)"
    )
    assert intervals_text(0.9, m) == old
    assert intervals_text(0.9, {**m, "uncertainty_spearman": -0.05}).endswith(
        "Spearman(expected error, |error|) -0.05; no cluster flagged (MAE 0.561)"
    )
    line = intervals_text(0.9, {**m, "interval_width": np.nan, "uncertainty_spearman": np.nan})
    assert "mean width -; Spearman(expected error, |error|) -;" in line and "nan" not in line
