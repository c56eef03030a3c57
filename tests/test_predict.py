"""`python -m predict`: new clusters from a model trained on a subset, by run dir and run id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from n2react.errors import DataError
from n2react.inference import predict
from n2react.runstore import UNCERTAINTY_FILE
from n2react.uncertainty import load_calibration


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, n2react_runs) -> dict:
    """A ridge model trained on the first 100 of the 159 clusters (the rest are 'new')."""
    tmp = tmp_path_factory.mktemp("predict")
    full = pd.read_excel(shared_data / "homonuclear-159-24features.xlsx")
    full.iloc[:100].to_excel(tmp / "subset.xlsx", index=False)
    cmd = [
        sys.executable, "-m", "train", f"data.path={tmp / 'subset.xlsx'}", "model=ridge",
        "cv.outer_folds=5", "explain=false", "progress=false", f"hydra.run.dir={tmp / 'run'}",
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    (parent,), _ = n2react_runs(tmp)
    return {"tmp": tmp, "run_dir": tmp / "run", "run_id": parent.info.run_id, "full": full}


def test_predict_all_159_from_the_run_directory(trained: dict, shared_data: Path) -> None:
    out = trained["tmp"] / "pred.csv"
    cmd = [
        sys.executable, "-m", "predict", str(trained["run_dir"]),
        str(shared_data / "homonuclear-159-24features.xlsx"), "-o", str(out),
    ]  # fmt: skip
    res = subprocess.run(cmd, cwd=trained["tmp"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    table = pd.read_csv(out)
    domain = ["in_domain", "domain_reasons", "nearest_training"]
    band = ["y_lower", "y_upper", "interval_coverage", "expected_error", "flag_threshold"]
    band += ["descriptor_notes"]
    assert list(table.columns) == [
        "cluster",
        "y_pred",
        "y_std",
        *domain,
        *band,
        "used_by_run",
        "y_true",
        "residual",
        "row",  # the sheet's row: last, so that the older columns keep their places
    ]
    assert len(table) == 159 and table["y_pred"].notna().all()
    assert (table["interval_coverage"] == 0.9).all()  # the level of y_lower..y_upper, by default
    assert (table["y_std"] > 0).all()  # spread over the 5 outer-fold models
    # the values behind the columns: residual = predicted - measured; the interval is centred
    # on y_pred; in_domain is false exactly for a new element or an expected error above the
    # threshold the run saved (the 59 held-back clusters include such ones)
    np.testing.assert_allclose(table["residual"], table["y_pred"] - table["y_true"])
    middle = (table["y_lower"] + table["y_upper"]) / 2
    np.testing.assert_allclose(middle, table["y_pred"], atol=1e-9)
    calib = load_calibration(trained["run_dir"] / UNCERTAINTY_FILE)
    high = table["expected_error"] > calib.threshold
    new_element = table["domain_reasons"].fillna("").str.contains("new (?:metal|ligand element)")
    assert high.any() and (~high).any()
    assert ((~table["in_domain"].astype(bool)) == (high | new_element)).all()
    # the threshold each row's flag compared its expected error with, beside it (as the
    # transfer table and uncertainty/calibration_set.csv have it)
    np.testing.assert_allclose(table["flag_threshold"], calib.threshold)
    assert "within ±0.477" in res.stderr and "RMSE" in res.stderr
    # the 100 training clusters are marked (their predictions are fitted), the 59 others not
    used = table["used_by_run"].fillna("")
    assert (used.iloc[:100] == "training").all() and (used.iloc[100:] == "").all()
    warn = [ln for ln in res.stderr.splitlines() if "100 of 159 clusters have" in ln]
    assert len(warn) == 1 and "fitted, not predicted" in warn[0]
    assert "Mo3¯* " in res.stderr or f"{table['cluster'].iloc[0]}* " in res.stderr
    # the scores of the 59 the model was not fitted on, on their own row beside all 159's
    new = table.iloc[100:]
    (row,) = [ln for ln in res.stderr.splitlines() if "not training clusters" in ln]
    mae = (new["y_pred"] - new["y_true"]).abs().mean()
    assert " 59 " in row and f"{mae:.3f}" in row
    assert any("all (100 training clusters)" in ln for ln in res.stderr.splitlines())


def test_predict_by_mlflow_run_id_without_labels(trained: dict) -> None:
    new = trained["full"].iloc[100:].drop(columns=["lg(k1)"])
    path = trained["tmp"] / "new.xlsx"
    new.to_excel(path, index=False)
    uri = f"sqlite:///{trained['tmp'] / 'mlflow.db'}"
    table, metrics = predict(trained["run_id"], path, trained["tmp"] / "new.csv", uri)
    assert metrics is None and len(table) == 59
    domain = ["in_domain", "domain_reasons", "nearest_training"]
    band = ["y_lower", "y_upper", "interval_coverage", "expected_error", "flag_threshold"]
    band += ["descriptor_notes"]
    assert list(table.columns) == [
        "cluster", "y_pred", "y_std", *domain, *band, "used_by_run", "row"
    ]  # fmt: skip
    assert table["row"].tolist() == list(range(2, 61))  # the sheet's rows, header = row 1
    assert table["y_std"].notna().all()
    assert (table["used_by_run"] == "").all()  # none of the 59 was trained on
    # --coverage 0.8: narrower intervals, and the CSV says which level they are
    narrow, _ = predict(trained["run_id"], path, trained["tmp"] / "new80.csv", uri, coverage=0.8)
    assert (pd.read_csv(trained["tmp"] / "new80.csv")["interval_coverage"] == 0.8).all()
    assert (narrow["y_upper"] - narrow["y_lower"] < table["y_upper"] - table["y_lower"]).all()


def test_default_output_lands_beside_the_input(trained: dict) -> None:
    sheets, elsewhere = trained["tmp"] / "sheets", trained["tmp"] / "elsewhere"
    sheets.mkdir()
    elsewhere.mkdir()
    trained["full"].iloc[100:110].to_excel(sheets / "new.xlsx", index=False)
    cmd = [sys.executable, "-m", "predict", str(trained["run_dir"]), str(sheets / "new.xlsx")]
    res = subprocess.run(cmd, cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(pd.read_csv(sheets / "new_predictions.csv")) == 10
    assert not list(elsewhere.iterdir())


def test_missing_descriptor_column_is_named(trained: dict) -> None:
    bad = trained["full"].drop(columns=["3_\u03b1", "2_Q"])
    path = trained["tmp"] / "bad.xlsx"
    bad.to_excel(path, index=False)
    cmd = [sys.executable, "-m", "predict", str(trained["run_dir"]), str(path)]
    env = {**os.environ}
    res = subprocess.run(cmd, cwd=trained["tmp"], capture_output=True, text=True, env=env)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    line = next(ln for ln in res.stderr.splitlines() if ln.startswith("n2react: error:"))
    assert "bad.xlsx: missing descriptor column(s): 3_\u03b1, 2_Q" in line


def test_a_file_that_is_no_model_is_one_line_naming_it(trained: dict) -> None:
    """The run's domain file is a verified skops file, but not a model."""
    path = trained["tmp"] / "domain_in.xlsx"
    trained["full"].iloc[100:105].to_excel(path, index=False)
    domain = trained["run_dir"] / "domain.skops"
    cmd = [sys.executable, "-m", "predict", str(domain), str(path), "-o", "dom.csv"]
    res = subprocess.run(cmd, cwd=trained["tmp"], capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("n2react: error:")]
    assert f"{domain}: the model does not record its descriptor names" in line
    assert not (trained["tmp"] / "dom.csv").exists()


def test_a_bad_cell_below_a_blank_row_is_named_by_its_spreadsheet_row(trained: dict) -> None:
    new = trained["full"].iloc[100:110].astype({"2_Q": object}).reset_index(drop=True)
    new.loc[5, "2_Q"] = "n/a?"
    blank = pd.DataFrame([[None] * new.shape[1]], columns=new.columns)
    pd.concat([new.iloc[:2], blank, new.iloc[2:]]).to_excel(
        trained["tmp"] / "gap.xlsx", index=False
    )
    with pytest.raises(DataError, match=r"'n/a\?' in column '2_Q', row 8 "):
        predict(trained["run_dir"], trained["tmp"] / "gap.xlsx", trained["tmp"] / "gap.csv")


def test_predict_by_the_model_uri_the_run_records(trained: dict) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{trained['tmp'] / 'mlflow.db'}"
    model_uri = MlflowClient(uri).get_run(trained["run_id"]).data.tags["model_uri"]
    path = trained["tmp"] / "by_uri.xlsx"
    trained["full"].iloc[100:110].to_excel(path, index=False)
    by_uri, _ = predict(model_uri, path, trained["tmp"] / "by_uri.csv", uri)
    by_id, _ = predict(trained["run_id"], path, trained["tmp"] / "by_id.csv", uri)
    # the run's own final model: its intervals, domain and fold spread come with it
    pd.testing.assert_frame_equal(by_uri, by_id)
    assert {"y_lower", "y_upper", "in_domain"} <= set(by_uri.columns)


def test_plot_never_replaces_the_table_it_draws(trained: dict) -> None:
    path = trained["tmp"] / "to_plot.xlsx"
    trained["full"].iloc[100:105].to_excel(path, index=False)
    cmd = [sys.executable, "-m", "predict", str(trained["run_dir"]), str(path), "-o", "p.png"]
    res = subprocess.run([*cmd, "--plot"], cwd=trained["tmp"], capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("n2react: error:")]
    assert "p.png: --plot writes <output>.png" in line
    assert not (trained["tmp"] / "p.png").exists()


def test_predict_by_run_id_leaves_no_downloads_behind(trained: dict) -> None:
    """The models downloaded from MLflow (megabytes for a forest) are removed once loaded."""
    scratch = trained["tmp"] / "scratch"
    scratch.mkdir()
    path = trained["tmp"] / "by_id_tmp.xlsx"
    trained["full"].iloc[100:105].to_excel(path, index=False)
    cmd = [sys.executable, "-m", "predict", trained["run_id"], str(path), "-o", "tmp_pred.csv"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # ./mlflow.db
    env["TMPDIR"] = str(scratch)
    res = subprocess.run(cmd, cwd=trained["tmp"], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert not list(scratch.iterdir())


def test_clusters_without_a_measured_value_are_predicted_and_left_out_of_the_scores(
    trained: dict,
) -> None:
    """An lg(k1) column with blanks (some clusters measured, some not): every cluster is
    predicted, the scores are over the measured ones only; eval.path, which scores transfer,
    still refuses the file, naming the row."""
    from n2react.inference import score

    new = trained["full"].iloc[100:112].reset_index(drop=True)
    new.loc[[1, 4, 7], "lg(k1)"] = float("nan")
    path = trained["tmp"] / "some_measured.xlsx"
    new.to_excel(path, index=False)
    table, metrics = predict(trained["run_dir"], path, trained["tmp"] / "some_measured.csv")
    assert len(table) == 12 and table["y_pred"].notna().all()
    assert table["y_true"].isna().sum() == 3 and table["residual"].isna().sum() == 3
    kept = table["y_true"].notna()
    expected = score(table.loc[kept, "y_true"].to_numpy(), table.loc[kept, "y_pred"].to_numpy())
    assert metrics == pytest.approx(expected) and metrics["n"] == 9
    cmd = [sys.executable, "-m", "predict", str(trained["run_dir"]), str(path),
           "-o", str(trained["tmp"] / "some_measured_cli.csv")]  # fmt: skip
    res = subprocess.run(cmd, cwd=trained["tmp"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "9 of 12 clusters have a measured lg(k1)" in res.stderr
    assert "all measured" in res.stderr and "Traceback" not in res.stderr

    from n2react.new_clusters import read_labelled

    with pytest.raises(DataError, match=r"eval.path: .*missing lg\(k1\) in row 3 "):
        read_labelled(path, _descriptors(trained), "eval.path", "-")


def _descriptors(trained: dict) -> list[str]:
    return [str(c) for c in trained["full"].columns[2:]]


def test_two_measured_clusters_get_no_r(trained: dict) -> None:
    """Two measured clusters printed r -1.000 (or +1.000: r of two points is always +-1) and an
    R² of -54 as if they were scores; with fewer than 3 they are left blank, and said why."""
    two = trained["full"].iloc[120:122]
    path = trained["tmp"] / "two.xlsx"
    two.to_excel(path, index=False)
    cmd = [sys.executable, "-m", "predict", str(trained["run_dir"]), str(path), "-o",
           str(trained["tmp"] / "two.csv"), "--force"]  # fmt: skip
    res = subprocess.run(cmd, cwd=trained["tmp"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    (row,) = [ln for ln in res.stderr.splitlines() if ln.startswith("│ all ")]
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells[1:3] == ["2", "-"] and cells[5] == "-", row
    assert "1.000" not in row
    assert "r and R² need at least 3 clusters" in res.stderr
    _, metrics = predict(str(trained["run_dir"]), path, trained["tmp"] / "two_b.csv")
    assert metrics["n"] == 2 and metrics["rmse"] > 0
    assert metrics["r"] != metrics["r"] and metrics["r2"] != metrics["r2"]  # NaN


def test_a_folder_given_as_the_spreadsheet_is_named_as_a_folder(trained: dict) -> None:
    """A folder for the spreadsheet (predict FILE, eval.path) was refused as "unknown file type
    '(no extension)'", which sends a chemist looking for a file type."""
    folder = trained["tmp"] / "sheets.xlsx"  # a folder, even with a spreadsheet's suffix
    folder.mkdir(exist_ok=True)
    for name in ("sheets.xlsx", "."):
        with pytest.raises(DataError, match=r": a folder, not a spreadsheet$"):
            predict(str(trained["run_dir"]), folder.parent / name, trained["tmp"] / "f.csv")


def test_the_model_records_its_version_and_one_of_another_loads_with_a_warning(
    trained: dict, shared_data: Path, n2react_runs, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the model file nor the run said which n2react made them. The model records it
    (read back as saved), its run folder (run.json) and MLflow run (tag n2react.version) too; a
    model of another version still predicts, with one warning naming both versions, and one
    saved before versions were recorded predicts as before, without it."""
    import shutil

    import n2react
    from n2react import runstore

    run_dir = trained["run_dir"]
    model = runstore.load_model_file(run_dir / runstore.MODEL_FILE)
    assert runstore.saved_by(model) == n2react.__version__
    assert json.loads((run_dir / "run.json").read_text())["n2react_version"] == n2react.__version__
    (parent,), _ = n2react_runs(trained["tmp"])
    assert parent.data.tags["n2react.version"] == n2react.__version__
    sheet = shared_data / "homonuclear-159-24features.xlsx"
    reference, _ = predict(str(run_dir), sheet, trained["tmp"] / "v.csv")
    for saved, warned in (("0.0.9", True), (None, False)):
        copy = trained["tmp"] / f"run_{saved}"
        shutil.copytree(run_dir, copy)
        if saved is None:  # the model file as runs wrote it before versions were recorded
            delattr(model, runstore.VERSION_ATTR)
        else:
            setattr(model, runstore.VERSION_ATTR, saved)
        runstore.save_model(model, copy / runstore.MODEL_FILE)
        caplog.clear()
        with caplog.at_level("WARNING", logger="n2react.inference"):
            table, _ = predict(str(copy), sheet, trained["tmp"] / f"v_{saved}.csv")
        pd.testing.assert_frame_equal(table, reference)
        lines = [r.getMessage() for r in caplog.records if "n2react" in r.getMessage()]
        expected = f"saved by n2react {saved}, loaded by n2react {n2react.__version__}"
        assert lines == ([f"{copy / runstore.MODEL_FILE}: {expected}"] if warned else [])


def test_the_tables_titles_name_the_file_and_wrap_at_a_space_on_80_columns() -> None:
    # the title was '<the path given>: predicted lg(k1)', cut wherever the table's width fell
    # (mid-path, or 'lg(k1)' alone on a line) on an 80-column terminal
    import io

    from rich.console import Console

    from n2react.terminal import predictions_table, scores_table

    source = "/data/projects/n2/new_clusters/heteronuclear-FeV-18-15features.xlsx"
    table = pd.DataFrame(
        {"cluster": ["Fe2V1¯", "Fe1V2¯"], "y_pred": [-12.1, -11.4], "y_true": [-12.0, np.nan],
         "in_domain": [True, False], "domain_reasons": ["", "far from the training clusters"]}
    )  # fmt: skip
    metrics = {"n": 1, "r": np.nan, "rmse": 0.1, "mae": 0.1, "r2": np.nan, "within_error": 1}
    for made, title in [
        (predictions_table(table, source, 0.9), "predicted lg(k1) of"),
        (scores_table([("all", metrics)], source), "predicted vs measured lg(k1) of"),
    ]:
        console = Console(file=io.StringIO(), width=80)
        console.print(made)
        lines = [line.strip() for line in console.file.getvalue().splitlines()]
        # the title wraps, if at all, at the space before the file's name, never inside it
        assert lines[0] == f"{title} heteronuclear-FeV-18-15features.xlsx" or lines[:2] == [
            title, "heteronuclear-FeV-18-15features.xlsx"
        ]  # fmt: skip
        below = "".join(lines[lines.index(next(x for x in lines if x.startswith("└"))) + 1 :])
        assert below.startswith("file:") and source in below.replace(" ", "")  # whole path
    assert predictions_table(table, "new.xlsx", 0.9).caption is None  # no folder: no path line


def test_the_interval_cells_stay_on_one_line_on_80_columns() -> None:
    # '-15.31 .. -9.90' wrapped after '..' on an 80-column terminal with every column shown
    import io

    from rich.console import Console

    from n2react.terminal import predictions_table

    table = pd.DataFrame(
        {"cluster": ["Fe2V2C2¯", "Fe10V12¯"], "y_pred": [-12.56, -11.4],
         "y_lower": [-15.31, -13.02], "y_upper": [-9.9, -9.8], "expected_error": [1.18, 0.6],
         "y_true": [-13.26, np.nan], "in_domain": [False, True],
         "domain_reasons": ["expected error 1.18 above 1.17 (higher than 90 % of the "
                            "calibration clusters')", ""]}
    )  # fmt: skip
    console = Console(file=io.StringIO(), width=80)
    console.print(predictions_table(table, "new.xlsx", 0.9))
    lines = console.file.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = [line for line in lines if line.startswith("│")]
    first, second = (next(r for r in rows if name in r) for name in ("Fe2V2C2¯", "Fe10V12¯"))
    for row, cells in ((first, ("-12.56", "[-15.3, -9.9]", "1.18", "-13.26", "+0.70")),
                       (second, ("-11.40", "[-13.0, -9.8]", "0.60", "-"))):  # fmt: skip
        assert [c.strip() for c in row.split("│")[2 : 2 + len(cells)]] == list(cells)
    # the reasons wrap under their own column; no number cell continues on the next line
    for row in rows:
        if not row.split("│")[1].strip():
            assert not any(c.strip() for c in row.split("│")[2:7])


def _old_pickle_run(tmp_path: Path, n2react_runs) -> tuple[str, str]:
    """A run whose MLflow model is an older run's pickle (its sha256 tag matching): its run id
    and the tracking URI."""
    import hashlib
    import pickle
    from urllib.parse import urlparse

    from mlflow.tracking import MlflowClient

    from n2react.runstore import load_model_file

    cmd = [sys.executable, "-m", "train", "data=homonuclear_15", "model=ridge",
           "cv.outer_folds=3", "explain=false", "progress=false",
           f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    (parent,), _ = n2react_runs(tmp_path)
    run_id = parent.info.run_id
    model_dir = Path(urlparse(parent.info.artifact_uri).path) / "model"
    skops = model_dir / "model.skops"
    old = model_dir / "model.pkl"  # the MLflow model of a run saved before skops
    old.write_bytes(pickle.dumps(load_model_file(skops, expected=parent.data.tags["model_sha256"])))
    skops.unlink()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).set_tag(run_id, "model_sha256", hashlib.sha256(old.read_bytes()).hexdigest())
    return run_id, uri


@pytest.mark.slow
def test_an_mlflow_models_pickle_is_refused_by_its_name_and_loaded_with_a_shown_warning(
    tmp_path: Path, shared_data: Path, n2react_runs
) -> None:
    # without --trust-pickle the refusal named the download (/tmp/n2react-.../model/model.pkl),
    # a folder removed by then, instead of the run id or model URI the user typed; with it, the
    # warning was logged inside the block that points fd 2 at /dev/null (TensorFlow's chatter),
    # so predict --trust-pickle said nothing. One run serves both.
    run_id, uri = _old_pickle_run(tmp_path, n2react_runs)
    new = shared_data / "heteronuclear-FeV-18-15features.xlsx"
    for ref in (run_id, f"runs:/{run_id}/model"):
        cmd = [sys.executable, "-m", "predict", ref, str(new), "-o", "refused.csv",
               "--tracking-uri", uri]  # fmt: skip
        res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert res.returncode != 0
        assert "Traceback" not in res.stderr, res.stderr[-2000:]
        lines = [ln for ln in res.stderr.splitlines() if "a pickle (an older run" in ln]
        assert len(lines) == 1, res.stderr[-2000:]
        assert ref in lines[0] and "n2react-" not in lines[0] and "model.pkl" not in lines[0]
        assert "--trust-pickle" in lines[0]
        assert not (tmp_path / "refused.csv").exists()

        cmd = [sys.executable, "-m", "predict", ref, str(new), "-o", "p.csv", "--force",
               "--tracking-uri", uri, "--trust-pickle"]  # fmt: skip
        res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        warn = [ln for ln in res.stderr.splitlines() if "loaded because of --trust-pickle" in ln]
        assert len(warn) == 1, res.stderr[-2000:]
        assert f"runs:/{run_id}/model: a pickle from an older run" in warn[0]  # not a tmp path
