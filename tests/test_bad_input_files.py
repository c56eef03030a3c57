"""Bad input, end to end (continued from test_bad_input.py): non-finite cells, degenerate
settings, where outputs go, model files that must not run code, and names a spreadsheet would
run. Each case is a real `python -m train` / `python -m predict` process: one `n2react: error:`
line (or the documented warning), a non-zero exit where it is an error, no traceback, no stray
file or MLflow run, nothing of the user's overwritten."""

from __future__ import annotations

import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bad_input_helpers import QUICK, _env, assert_one_error, cli, mlflow_runs

FILE15 = "homonuclear-159-15features.xlsx"
FEV = "heteronuclear-FeV-18-15features.xlsx"


def _table(src: Path, file: str = FILE15) -> pd.DataFrame:
    return pd.read_excel(src / file)


# --------------------------------------------------------------------------- non-finite cells


def _with_cell(tmp: Path, src: Path, value: object, name: str) -> Path:
    df = _table(src).astype({"2_Q": object})
    df.loc[9, "2_Q"] = value
    path = tmp / name
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_excel(path, index=False)
    return path


@pytest.mark.parametrize(
    ("value", "name", "shown"),
    [
        pytest.param(1e308, "huge.xlsx", "1e+308", id="1e308"),
        pytest.param(float("inf"), "inf.csv", "inf", id="inf in a CSV"),
        pytest.param("-inf", "minus_inf.xlsx", "-inf", id="'-inf' text"),
    ],
)
def test_non_finite_cell_in_training_data(
    value: object, name: str, shown: str, tmp_path: Path, shared_data: Path
) -> None:
    path = _with_cell(tmp_path, shared_data, value, name)
    out = cli(tmp_path, "train", "data=homonuclear_15", f"data.path={path}", *QUICK)
    line = assert_one_error(out, name, "'2_Q'", "row 11", shown)
    assert "np.float64" not in line  # the cell as the file has it
    assert mlflow_runs(tmp_path / "mlflow.db") == []
    assert not (tmp_path / "run").exists()  # a failed start leaves no run folder


def test_a_training_row_without_any_descriptor_is_refused(
    tmp_path: Path, shared_data: Path
) -> None:
    """A cluster with its lg(k1) but every descriptor blank or -999 was imputed from the
    training medians and trained on; it is refused as predict refuses it, before any run."""
    df = _table(shared_data).astype({"1_ΔQmax": object})
    cols = [c for c in df.columns if c not in ("Clusters", "lg(k1)")]
    df.loc[5, cols] = np.nan
    df.loc[5, "1_ΔQmax"] = -999
    written = df.loc[5, "Clusters"]  # Mo3S2ˉ, U+02C9 in this file
    df.to_excel(tmp_path / "blanked.xlsx", index=False)
    out = cli(tmp_path, "train", f"data.path={tmp_path / 'blanked.xlsx'}", *QUICK)
    assert out.returncode == 2
    assert_one_error(
        out, "blanked.xlsx: row 7", f"(cluster {written}) has a name but no descriptor value"
    )
    assert mlflow_runs(tmp_path / "mlflow.db") == []
    assert not (tmp_path / "run").exists()


def test_nan_text_is_a_missing_cell_with_the_documented_warning(
    tmp_path: Path, shared_data: Path
) -> None:
    path = _with_cell(tmp_path, shared_data, "nan", "nan.xlsx")
    out = cli(tmp_path, "train", "data=homonuclear_15", f"data.path={path}", *QUICK,
              "tracking=none")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    warning = [ln for ln in out.stderr.splitlines() if "nan.xlsx" in ln and "missing cell" in ln]
    assert len(warning) == 1 and "2_Q" in warning[0] and "imputed" in warning[0], out.stderr


@pytest.fixture(scope="module")
def run15(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """A ridge model on the 15-descriptor file (no MLflow), as predict reads it."""
    tmp = tmp_path_factory.mktemp("run15")
    out = cli(tmp, "train", "data=homonuclear_15", "model=ridge", "cv.outer_folds=3",
              "progress=false", "tracking=none", "explain=false")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return tmp / "run"


def test_predict_refuses_a_non_finite_cell_and_writes_nothing(
    run15: Path, tmp_path: Path, shared_data: Path
) -> None:
    df = _table(shared_data, FEV)
    df.iloc[4, 3] = 1e308
    df.to_excel(tmp_path / "new.xlsx", index=False)
    out = cli(tmp_path, "predict", str(run15), str(tmp_path / "new.xlsx"), "-o", "p.csv")
    assert_one_error(out, "new.xlsx", f"'{df.columns[3]}'", "row 6", "1e+308")
    assert not (tmp_path / "p.csv").exists()


# --------------------------------------------------------------------------- degenerate settings


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(("selector=kbest", "selector.step.k=0"), ("selector.step.k=0",), id="k=0"),
        pytest.param(
            ("selector=rfe", "selector.step.n_features_to_select=0"),
            ("n_features_to_select=0",),
            id="rfe 0 features",
        ),
        pytest.param(("selector=rfe", "selector.step.step=0"), ("step=0",), id="rfe step 0"),
        pytest.param(
            ("model=rfr", "model.estimator.n_estimators=0"), ("'n_estimators'",), id="0 trees"
        ),
        pytest.param(("model.estimator.alpha=-1",), ("'alpha'",), id="negative penalty"),
        # read as true and cut to 2, and (like the Keras MLP's) named by the key it came from
        pytest.param(
            ("pairwise=on", "pairwise.wrapper.symmetrize=maybe"),
            ("pairwise.wrapper.symmetrize: symmetrize must be true or false, got 'maybe'",),
            id="symmetrize=maybe",
        ),
        pytest.param(
            ("pairwise=on", "pairwise.wrapper.max_pairs=2.5"),
            ("pairwise.wrapper.max_pairs: ", "got 2.5"),
            id="max_pairs=2.5",
        ),
        # one pair trains a constant difference: the training mean for every cluster
        pytest.param(
            ("pairwise=on", "pairwise.wrapper.max_pairs=1"),
            ("pairwise.wrapper.max_pairs: ", ">= 2", "got 1"),
            id="max_pairs=1",
        ),
        pytest.param(("cv.outer_folds=1",), ("cv.outer_folds=1",), id="1 outer fold"),
        pytest.param(("cv.repeats=0",), ("cv.repeats=0",), id="0 repeats"),
    ],
)
def test_degenerate_setting_refused_before_training(
    args: tuple[str, ...], expected: tuple[str, ...], tmp_path: Path
) -> None:
    out = cli(tmp_path, "train", *QUICK, *args)
    assert_one_error(out, *expected)
    assert "fold 1" not in out.stderr  # refused before the first fold
    assert mlflow_runs(tmp_path / "mlflow.db") == []


def test_eval_path_with_other_descriptors_fails_before_training(
    tmp_path: Path, shared_data: Path
) -> None:
    out = cli(tmp_path, "train", *QUICK, "final_model=true", f"eval.path={shared_data / FEV}")
    assert_one_error(out, "eval.path", "missing descriptor column(s)")
    assert mlflow_runs(tmp_path / "mlflow.db") == []  # no FAILED parent, no FINISHED children


# --------------------------------------------------------------------------- where outputs go


def test_unwritable_run_dir_is_one_line(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "train", "hydra.run.dir=/proc/x", *QUICK, "tracking=none"]
    out = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert_one_error(out, "hydra.run.dir=/proc/x", "cannot create folders")


@pytest.fixture
def full_disk(tmp_path: Path):
    """A real 2 MiB file system filled to the last byte (a tmpfs: needs root, else skipped)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2M", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        with (mnt / "filler").open("wb") as fh:
            try:
                fh.write(b"\0" * (4 << 20))
            except OSError:
                pass
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_full_disk_is_one_line_before_training(
    tmp_path: Path, full_disk: Path, run15: Path, shared_data: Path
) -> None:
    run_dir = full_disk / "run"
    cmd = [sys.executable, "-m", "train", f"hydra.run.dir={run_dir}", *QUICK, "tracking=none"]
    out = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert_one_error(out, f"hydra.run.dir={run_dir}", "MiB free")
    assert not run_dir.exists()
    csv = full_disk / "out.csv"  # predict: one line, and no half-written output
    fev = shared_data / "heteronuclear-FeV-18-15features.xlsx"
    cmd = [sys.executable, "-m", "predict", str(run15), str(fev), "-o", str(csv)]
    out = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert_one_error(out, str(csv), "No space left on device")
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


def test_no_data_leaves_no_run_folder(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "train", "data.path=nothing.xlsx", *QUICK, "tracking=none"]
    out = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert_one_error(out, "nothing.xlsx")
    assert not (tmp_path / "outputs").exists()


def test_sigterm_is_named(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "train", f"hydra.run.dir={tmp_path / 'run'}", "model=rfr",
           "tracking=none", "progress=false", "explain=false"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    done = tmp_path / "run" / "folds" / "fold_01" / "fold.json"
    for line in proc.stderr:
        if "fold 1:" in line:
            while not done.exists() and proc.poll() is None:  # fold 1's files are written
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130
    assert "n2react: interrupted (SIGTERM)" in rest and "Traceback" not in rest
    assert "MLflow" not in rest  # tracking=none: no MLflow run to call KILLED
    # the line says how to continue it
    assert f"to continue, run the same command plus resume={tmp_path / 'run'}" in rest


def test_an_interrupt_before_the_first_output_leaves_no_folder_and_no_run(tmp_path: Path) -> None:
    # it said "the MLflow run is KILLED" with no MLflow run started, and left the run folder
    # holding only Hydra's files, where a failure at the same point removes it
    cmd = [sys.executable, "-m", "train", f"hydra.run.dir={tmp_path / 'run'}", *QUICK]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "missing cell" in line:  # the data are being read: no output, no MLflow run yet
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130
    ours = [ln for ln in rest.splitlines() if ln.startswith("n2react:")]
    assert ours == ["n2react: interrupted (SIGTERM)"], rest[-1500:]
    assert not (tmp_path / "run").exists()
    assert mlflow_runs(tmp_path / "mlflow.db") == []


def test_a_run_folder_in_use_is_refused_and_kept(tmp_path: Path) -> None:
    # a second run (or resume=) into the folder of a run still training cleared its search state
    # and wrote into its folder; refused, it removed the folder of a first run that had written
    # only Hydra's files so far
    from n2react import runstore

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "train.log").write_text("the first run\n")
    with runstore.held(run):  # the first run, training: this process holds the folder
        assert runstore.in_use(run)
        out = cli(tmp_path, "train", *QUICK)
        assert_one_error(out, str(run), "in use by another n2react run")
        assert out.returncode == 2
        assert run.is_dir() and (run / ".hydra").is_dir()
        assert not (run / "oof_predictions.csv").exists()
    assert mlflow_runs(tmp_path / "mlflow.db") == []
    assert not runstore.in_use(run)
    out = cli(tmp_path, "train", *QUICK)  # once the first has ended, the folder is free
    assert out.returncode == 0, out.stderr[-2000:]
    assert (run / "oof_predictions.csv").exists()


# --------------------------------------------------------------------------- model files


class _Marker:
    """Unpickling this writes a marker file: what a crafted model file could do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # noqa: ANN204
        return (Path.write_text, (Path(self.path), "ran"))


def _plant(folder: Path, name: str, marker: Path) -> None:
    from n2react.runstore import write_sha256

    (folder / name).write_bytes(pickle.dumps(_Marker(str(marker))))
    write_sha256(folder / name)  # a matching hash: it tells nothing about who wrote the file


def test_a_crafted_pickle_never_runs_without_the_opt_in(
    run15: Path, tmp_path: Path, shared_data: Path
) -> None:
    fake = tmp_path / "fake"
    fake.mkdir()
    marker = tmp_path / "marker"
    _plant(fake, "model.joblib", marker)
    out = cli(tmp_path, "predict", str(fake), str(shared_data / FEV), "-o", "p.csv")
    assert_one_error(out, "model.joblib", "pickle", "--trust-pickle")
    assert not marker.exists() and not (tmp_path / "p.csv").exists()
    # a fold model swapped for one inside a real run: refused the same way
    run = tmp_path / "run"
    shutil.copytree(run15, run)
    fold = run / "folds" / "fold_01"
    (fold / "model.skops").unlink()
    _plant(fold, "model.joblib", marker)
    out = cli(tmp_path, "predict", str(run), str(shared_data / FEV), "-o", "p.csv")
    assert_one_error(out, "fold_01/model.joblib", "--trust-pickle")
    assert not marker.exists()
    # --force means "replace the output" only
    out = cli(tmp_path, "predict", str(fake), str(shared_data / FEV), "-o", "p.csv", "--force")
    assert_one_error(out, "--trust-pickle")
    assert not marker.exists()


def test_trust_pickle_says_loaded_only_once_the_pickle_loaded(
    tmp_path: Path, shared_data: Path
) -> None:
    # predict --trust-pickle warned "a pickle from an older run, loaded because of --trust-pickle"
    # before the sha256 check ran: above the error refusing the very file (its hash differs)
    fake = tmp_path / "fake"
    fake.mkdir()
    marker = tmp_path / "marker"
    _plant(fake, "model.joblib", marker)
    (fake / "model.joblib.sha256").write_text("0" * 64 + "\n")
    out = cli(tmp_path, "predict", str(fake), str(shared_data / FEV), "-o", "p.csv",
              "--trust-pickle")  # fmt: skip
    assert_one_error(out, "model.joblib", "differs from the 000000000000")
    assert "--trust-pickle" not in out.stderr and "WARNING" not in out.stderr, out.stderr
    assert not marker.exists() and not (tmp_path / "p.csv").exists()


def test_an_older_pickled_run_loads_with_the_opt_in(
    run15: Path, tmp_path: Path, shared_data: Path
) -> None:
    import joblib

    from n2react.runstore import load_model_file, write_sha256

    old = tmp_path / "old"
    shutil.copytree(run15, old)
    for skops in [old / "model.skops", old / "domain.skops", *old.glob("folds/*/model.skops")]:
        legacy = skops.with_name(skops.stem + ".joblib")
        joblib.dump(load_model_file(skops), legacy)
        write_sha256(legacy)
        skops.unlink()
        Path(str(skops) + ".sha256").unlink()
    out = cli(tmp_path, "predict", str(old), str(shared_data / FEV), "-o", "p.csv")
    assert_one_error(out, "model.joblib", "--trust-pickle")
    out = cli(tmp_path, "predict", str(old), str(shared_data / FEV), "-o", "p.csv",
              "--trust-pickle")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "its sha256 the one the run recorded, loaded because of --trust-pickle" in out.stderr
    # explain reads the same files: refused without the opt-in, explained with it
    out = cli(tmp_path, "n2react.explain", str(old), "--rows", "5", "--out", str(tmp_path / "ex"))
    assert_one_error(out, "model.joblib", "--trust-pickle")
    out = cli(tmp_path, "n2react.explain", str(old), "--rows", "5", "--out", str(tmp_path / "ex"),
              "--trust-pickle")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "ex" / "shap_importance.png").exists()
    new = cli(tmp_path, "predict", str(run15), str(shared_data / FEV), "-o", "q.csv")
    assert new.returncode == 0, new.stderr[-2000:]
    a, b = pd.read_csv(tmp_path / "p.csv"), pd.read_csv(tmp_path / "q.csv")
    np.testing.assert_allclose(a["y_pred"], b["y_pred"])


def test_a_file_that_is_not_a_model(tmp_path: Path, shared_data: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model\n")
    out = cli(tmp_path, "predict", str(tmp_path / "notes.txt"), str(shared_data / FEV))
    assert_one_error(out, "notes.txt")


def test_unknown_run_id_creates_nothing(tmp_path: Path, shared_data: Path) -> None:
    out = cli(tmp_path, "predict", "0" * 32, str(shared_data / FEV), "-o", "p.csv")
    assert_one_error(out, "0" * 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no mlflow.db, no p.csv


# ------------------------------------------------------------------ names a spreadsheet runs


def test_formula_like_and_huge_names_are_neutralised(tmp_path: Path, shared_data: Path) -> None:
    from PIL import Image

    df = _table(shared_data)
    evil, huge = '=cmd|" /C calc"!A0', "Mo" + "x" * 100_000
    df.loc[0, "Clusters"], df.loc[1, "Clusters"] = evil, huge
    df.loc[1, "lg(k1)"] = 5.0  # the worst error: labelled on the parity plot
    df.to_csv(tmp_path / "names.csv", index=False)  # (a workbook would store '=...' as a formula)
    out = cli(tmp_path, "train", "data=homonuclear_15", f"data.path={tmp_path / 'names.csv'}",
              "model=ridge", "cv.outer_folds=3", "tracking=none", "progress=false")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    run = tmp_path / "run"
    oof = pd.read_csv(run / "oof_predictions.csv")
    assert "'" + evil in set(oof["cluster"]) and evil not in set(oof["cluster"])
    for png in [*run.glob("*.png"), *run.glob("explain/*.png")]:
        with Image.open(png) as im:
            assert max(im.size) < 6000, (png.name, im.size)
    new = df.iloc[:3].copy()
    new.to_csv(tmp_path / "new.csv", index=False)
    out = cli(tmp_path, "predict", str(run), str(tmp_path / "new.csv"), "-o", "p.csv")
    assert out.returncode == 0, out.stderr[-2000:]
    raw = pd.read_csv(tmp_path / "p.csv", dtype=str, keep_default_na=False)
    assert "'" + evil in set(raw["cluster"])
    assert not any(str(v).startswith(("=", "+", "@")) for v in raw.to_numpy().ravel())


def test_a_crafted_pickle_in_an_mlflow_run_never_runs_without_the_opt_in(
    make_cfg, tmp_path: Path
) -> None:
    # predict by MLflow run id reads the fold models from the run's artifacts: a fold model
    # swapped there for a pickle (with a matching hash beside it) is refused unless
    # --trust-pickle, as it is in a run folder, and never run
    from mlflow.tracking import MlflowClient

    from n2react.errors import N2ReactError
    from n2react.inference import load_model
    from n2react.run import run

    cfg = make_cfg("data=homonuclear_15", "model=ridge", "cv.outer_folds=3", "explain=false")
    run(cfg, tmp_path / "run")
    uri = cfg.tracking.uri
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("n2react")
    (parent,) = [
        r for r in client.search_runs([exp.experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    ]  # fmt: skip
    fold = Path(parent.info.artifact_uri.removeprefix("file://")) / "fold_models" / "fold_01"
    assert (fold / "model.skops").is_file()
    (fold / "model.skops").unlink()
    (fold / "model.skops.sha256").unlink()
    marker = tmp_path / "marker"
    _plant(fold, "model.joblib", marker)
    with pytest.raises(N2ReactError, match=r"model\.joblib.*--trust-pickle"):
        load_model(parent.info.run_id, uri)
    assert not marker.exists()
    load_model(parent.info.run_id, uri, trust_pickle=True)  # the opt-in: it is read (and ran)
    assert marker.read_text() == "ran"
