"""The run store: whole-or-nothing files, hashes that must match, model files that load without
running code, cells a spreadsheet would run as formulas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from n2react import runstore
from n2react.errors import N2ReactError


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "predictions.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), runstore.atomic_write(target) as fh:
        fh.write("half a ")
        raise RuntimeError("disk full in the middle")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.csv"]


def test_json_and_text_files_are_replaced_whole_not_rewritten_in_place(tmp_path: Path) -> None:
    # write_json / write_text go through atomic_write: the new file is renamed over the old, so
    # a reader that opened the old one (here: a second link to it) still reads it whole, never a
    # half-rewritten file; an in-place write would change what that reader sees
    for name, write, new in (
        ("summary.json", runstore.write_json, {"pooled_test_r": 0.9}),
        ("note.txt", runstore.write_text, "new\n"),
    ):
        target = tmp_path / name
        target.write_text("old\n")
        held = tmp_path / f"held-{name}"
        held.hardlink_to(target)
        write(target, new)
        assert held.read_text() == "old\n", name
        assert target.read_text() == (runstore.json_text(new) if name.endswith("json") else new)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "held-note.txt", "held-summary.json", "note.txt", "summary.json"
    ]  # fmt: skip


def test_an_unwritable_place_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(N2ReactError, match="p.json: cannot write"):
        runstore.write_json(tmp_path / "afile" / "p.json", {"a": 1})


def test_formula_cells_are_neutralised_and_read_back(tmp_path: Path) -> None:
    names = ['=cmd|" /C calc"!A0', "+1+1", "-x", "@SUM(A1)", "-1.5", "Mo5S2¯", "plain"]
    table = pd.DataFrame({"cluster": names, "y": np.arange(len(names), dtype=float)})
    runstore.write_csv(tmp_path / "t.csv", table)
    raw = pd.read_csv(tmp_path / "t.csv")["cluster"].tolist()
    assert raw == ["'" + names[0], "'+1+1", "'-x", "'@SUM(A1)", "-1.5", "Mo5S2¯", "plain"]
    back = runstore.read_csv(tmp_path / "t.csv")
    assert back["cluster"].tolist() == names


class _Foreign:
    """A type n2react does not trust."""

    def __init__(self) -> None:
        self.x = 1


def test_models_round_trip_and_foreign_types_are_refused(tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 3)), rng.normal(size=30)
    model = make_pipeline(StandardScaler(), RandomForestRegressor(5, random_state=0)).fit(X, y)
    path = runstore.save_model(model, tmp_path / "model.skops")
    assert runstore.recorded_sha256(path) == runstore.file_sha256(path)
    np.testing.assert_array_equal(runstore.load_model_file(path).predict(X), model.predict(X))
    foreign = runstore.save_model({"model": _Foreign()}, tmp_path / "foreign.skops")
    with pytest.raises(N2ReactError, match="does not trust.*_Foreign"):
        runstore.load_model_file(foreign)
    assert runstore.load_model_file(foreign, trust_pickle=True)["model"].x == 1


def test_a_changed_or_unhashed_model_file_is_refused(tmp_path: Path) -> None:
    from sklearn.linear_model import Ridge

    path = runstore.save_model(Ridge().fit([[0.0], [1.0]], [0.0, 1.0]), tmp_path / "m.skops")
    runstore.sha256_path(path).write_text("0" * 64 + "\n")
    with pytest.raises(N2ReactError, match="differs from"):
        runstore.load_model_file(path)
    runstore.sha256_path(path).unlink()
    with pytest.raises(N2ReactError, match="no sha256 recorded"):
        runstore.load_model_file(path)


def test_a_held_run_folder_is_refused_to_a_second_holder_until_released(tmp_path: Path) -> None:
    with runstore.held(tmp_path):
        assert runstore.in_use(tmp_path)
        with pytest.raises(N2ReactError, match="in use by another n2react run"):
            with runstore.held(tmp_path):
                pass
    assert not runstore.in_use(tmp_path)
    assert not runstore.in_use(tmp_path / "missing")
    assert list(tmp_path.iterdir()) == []  # no lock file left behind


def test_fold_folders_are_read_alike_in_a_run_and_its_artifacts(tmp_path: Path) -> None:
    # the fold-folder pattern was compiled twice, anchored in runstore (a run's folds/) and not
    # in explain.source (the MLflow artifacts' fold_models/), which took "old_fold_03" as fold 3
    for name in ("fold_01", "fold_02", "old_fold_03", "fold_04x", "fold_05"):
        (tmp_path / "folds" / name).mkdir(parents=True)
    for name in ("fold_01", "old_fold_03", "fold_04x"):
        (tmp_path / "folds" / name / runstore.MODEL_FILE).write_bytes(b"")
    (tmp_path / "folds" / "fold_06").write_text("a file, not a fold folder")
    want = {1: tmp_path / "folds" / "fold_01" / runstore.MODEL_FILE}
    assert runstore.fold_model_paths(tmp_path) == want
    assert runstore.fold_model_files(tmp_path / "folds") == want
    assert runstore.fold_model_files(tmp_path / "missing") == {}
    assert runstore.FOLD_DIR.match("fold_12") and not runstore.FOLD_DIR.match("xfold_12")


FEV = "heteronuclear-FeV-18-15features.xlsx"


@pytest.mark.parametrize(
    "over",
    [("uncertainty.enabled=false",),
     ("data=homonuclear_15", f"uncertainty.calibration_path={FEV}", f"eval.path={FEV}")],
    ids=["plain", "calibration_and_eval_files"],
)  # fmt: skip
def test_the_saved_final_model_is_its_best_parameters_fitted_on_every_cluster(
    over: tuple[str, ...], make_cfg, tmp_path: Path
) -> None:
    # the final model is the pipeline with final_params.json refitted on ALL the run's clusters
    # and on nothing else: fitted again here on them it predicts to the bit alike (one trained
    # on a subset, on the calibration or eval.path clusters too, or with other parameters than
    # the file says, would not)
    import json

    from n2react.data import load_dataset
    from n2react.plan import build_plan
    from n2react.run import run

    cfg = make_cfg("model=ridge", "search=random", "search.max_trials=2", "cv.outer_folds=3",
                   "cv.inner_folds=2", "final_model=true", "explain=false", "tracking=none",
                   *over)  # fmt: skip
    run(cfg, tmp_path / "run")
    saved = runstore.load_model_file(tmp_path / "run" / runstore.MODEL_FILE)
    params = json.loads((tmp_path / "run" / runstore.FINAL_PARAMS_FILE).read_text())
    assert params  # the search chose something
    plan = build_plan(cfg)
    ds = load_dataset(plan.data)
    expected = plan.make_pipeline().set_params(**params).fit(ds.X, ds.y)
    assert np.array_equal(saved.predict(ds.X), expected.predict(ds.X))


#: every public name n2react.runstore defined before atomic_files and model_files were split from
#: it (users' scripts import them from runstore)
RUNSTORE_NAMES = (
    "CONFIG_FILE DOMAIN_FILE FINAL_PARAMS_FILE FOLDS_DIR FOLDS_TABLE_FILE FOLD_DIR FOLD_FILE "
    "LEGACY_DOMAIN_FILE LEGACY_MODEL_FILE MODEL_FILE OOF_FILE PICKLE_SUFFIXES PREDICTIONS_FILE "
    "RUN_FILE SELECTED_FILE SHA256_SUFFIX SUMMARY_FILE TRIALS_FILE TRUSTED_PICKLE TRUSTED_TYPES "
    "TRUST_HINT UNCERTAINTY_FILE VERSION_ATTR atomic_write check_sha256 file_sha256 fold_dir "
    "fold_model_files fold_model_paths held in_use is_pickle json_text keep_version "
    "load_mlflow_model load_model_file made_by mlflow_model_file model_path number read_csv "
    "recorded_sha256 save_model saved_by sha256_path spreadsheet_safe write_csv write_json "
    "write_made_by write_sha256 write_text"
).split()


def test_the_names_split_from_runstore_are_still_importable_from_it() -> None:
    # runstore was at the 450-line limit: its writing helpers moved to n2react.atomic_files, its
    # model files and hashes to n2react.model_files; runstore re-exports them, the same objects
    from n2react import atomic_files, model_files

    assert [n for n in RUNSTORE_NAMES if not hasattr(runstore, n)] == []
    moved = {n: m for m in (atomic_files, model_files) for n in RUNSTORE_NAMES if n in vars(m)}
    assert {"write_json", "atomic_write", "write_csv", "json_text"} <= set(moved)
    assert {"load_model_file", "load_mlflow_model", "is_pickle", "TRUSTED_TYPES"} <= set(moved)
    assert [n for n, m in moved.items() if getattr(runstore, n) is not getattr(m, n)] == []


def test_atomic_files_is_below_every_other_file_module() -> None:
    # the lowest file module: anything may write through it without an import circle
    from test_imports import import_edges

    edges = import_edges()
    assert edges["n2react.atomic_files"] == {"n2react.errors"}
    assert "n2react.runstore" not in edges["n2react.model_files"]


def test_an_mlflow_model_folder_is_looked_through_once_per_load(tmp_path: Path) -> None:
    # predict and explain loaded an MLflow run's model (load_mlflow_model globbed its folder),
    # then globbed the folder again to ask whether the file was a pickle: read_mlflow_model
    # returns the model with the file it read, and is the one caller of mlflow_model_file
    import ast
    import hashlib
    import pickle

    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    model = Ridge().fit(X, y)
    (tmp_path / "skops").mkdir()
    skops = runstore.save_model(model, tmp_path / "skops" / "model.skops")
    read = runstore.read_mlflow_model(tmp_path / "skops", runstore.file_sha256(skops))
    assert read.file == skops and not read.pickled
    np.testing.assert_array_equal(read.model.predict(X), model.predict(X))
    old = tmp_path / "old" / "model.pkl"  # an older run's MLflow model
    old.parent.mkdir()
    old.write_bytes(pickle.dumps(model))
    sha = hashlib.sha256(old.read_bytes()).hexdigest()
    with pytest.raises(N2ReactError, match=r"^MLflow run x: a pickle .*--trust-pickle"):
        runstore.read_mlflow_model(old.parent, sha, name="MLflow run x")
    read = runstore.read_mlflow_model(old.parent, sha, trust_pickle=True)
    assert read.file == old and read.pickled
    np.testing.assert_array_equal(
        runstore.load_mlflow_model(old.parent, sha, trust_pickle=True).predict(X), model.predict(X)
    )

    src = Path(runstore.__file__).parent
    calls = [
        path.name
        for path in src.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", "")) == "mlflow_model_file"
    ]
    assert calls == ["model_files.py"]
