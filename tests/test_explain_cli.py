"""python -m n2react.explain on the command line: a bad run, a file or folder inside a run, an
--out that is a file, a pair-split run, --rows, --help; each one error line before any work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from explain_helpers import SMALL

from n2react.errors import ConfigError
from n2react.explain import Budget, explain_run
from n2react.run import run

ROOT = Path(__file__).resolve().parents[1]


def _one_error_line(args: list[str], cwd: Path) -> str:
    """``python -m n2react.explain ARGS`` exits 2 with one ``n2react: error:`` line: that line."""
    # without the store an earlier test's mlflow.set_tracking_uri left in the environment
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(ROOT / "src")
    p = subprocess.run([sys.executable, "-m", "n2react.explain", *args], capture_output=True,
                       text=True, env=env, cwd=cwd, timeout=120)  # fmt: skip
    assert p.returncode == 2
    assert p.stderr.startswith("n2react: error:") and p.stderr.count("\n") == 1, p.stderr
    return p.stderr


def test_cli_bad_run_is_one_error_line(tmp_path):
    (tmp_path / "empty").mkdir()
    for bad in (tmp_path / "missing", tmp_path / "empty"):
        assert str(bad) in _one_error_line([str(bad)], tmp_path)


def test_a_model_file_or_a_folder_inside_a_run_names_the_run_above_it(make_cfg, tmp_path):
    """A run's model file or its folds/fold_01 folder given as RUN: one line naming the run
    directory above it (and, for a model file, predict --explain), not a bare 'not found'."""
    run(make_cfg("model=ridge", "cv.outer_folds=3", "tracking=none", "explain=false"),
        tmp_path / "run")  # fmt: skip
    model = tmp_path / "run" / "model.skops"
    line = _one_error_line([str(model)], tmp_path)
    assert f"{model}: a file, not a run directory" in line
    assert f"the run above it: {tmp_path / 'run'})" in line
    assert f"python -m predict {model} NEW.xlsx --explain" in line
    fold = tmp_path / "run" / "folds" / "fold_01"
    line = _one_error_line([str(fold)], tmp_path)
    assert f"{fold}: no config_resolved.yaml" in line and "the run above it" in line
    assert not (tmp_path / "run" / "explain").exists()
    # a folder of runs (a sweep's, its multirun.yaml gone): one of its finished runs is named
    job = tmp_path / "sweep" / "0_ridge"
    job.mkdir(parents=True)
    for name in ("config_resolved.yaml", "oof_predictions.csv"):
        (job / name).write_text((tmp_path / "run" / name).read_text())
    line = _one_error_line([str(tmp_path / "sweep")], tmp_path)
    assert f"(1 finished run folder(s) in it): name one of its run folders, e.g. {job}" in line


def test_an_out_that_is_a_file_or_an_unknown_store_scheme_is_one_error_line(tmp_path):
    """--out naming a file (or a folder under one) was a FileExistsError traceback after the
    run was explained; --tracking-uri foo://bar an MLflow traceback. One line each now."""
    (tmp_path / "notes.txt").write_text("mine\n")
    run_dir = str(tmp_path / "missing")
    line = _one_error_line([run_dir, "--out", str(tmp_path / "notes.txt")], tmp_path)
    assert f"{tmp_path / 'notes.txt'}: a file, not a folder" in line
    line = _one_error_line([run_dir, "--out", str(tmp_path / "notes.txt" / "sub")], tmp_path)
    assert f"{tmp_path / 'notes.txt'} is a file" in line
    assert (tmp_path / "notes.txt").read_text() == "mine\n"
    run_id = "0123456789abcdef0123456789abcdef"
    line = _one_error_line([run_id, "--tracking-uri", "foo://bar"], tmp_path)
    assert f"MLflow run {run_id}:" in line and "foo://bar" in line


def test_a_pair_split_run_says_it_has_no_explanations(make_cfg, tmp_path, caplog):
    """cv.scheme=pair_split skipped explain=true (the default) in silence, and explaining its
    folder said 'oof_predictions.csv: not found (is this a finished nested-CV run?)'. The run
    now says in one line why there is no explain/, and explain names the scheme."""
    from mlflow.tracking import MlflowClient

    cfg = make_cfg("model=ridge", "pairwise=on", "data=homonuclear_8", "cv.scheme=pair_split")
    with caplog.at_level("INFO", logger="n2react"):
        run(cfg, tmp_path / "run")
    assert "explain: none for cv.scheme=pair_split" in caplog.text
    assert not (tmp_path / "run" / "explain").exists()
    line = _one_error_line([str(tmp_path / "run")], tmp_path)
    assert "a cv.scheme=pair_split run" in line and "cv.scheme=nested" in line
    # its MLflow run: was "no artifact oof_predictions.csv (not an n2react parent run?)"
    (found,) = MlflowClient(cfg.tracking.uri).search_runs(
        [e.experiment_id for e in MlflowClient(cfg.tracking.uri).search_experiments()]
    )
    line = _one_error_line([found.info.run_id, "--tracking-uri", cfg.tracking.uri], tmp_path)
    assert f"MLflow run {found.info.run_id}: a cv.scheme=pair_split run" in line
    # its config was downloaded into ./explain-<id>/artifacts/, left behind by the refusal
    assert not (tmp_path / f"explain-{found.info.run_id}").exists()


def test_help_gives_the_groups_default_explain_uses(capsys):
    """--help said 'metal (default)', but a grouped run's parity is coloured by its cv.groups."""
    from n2react.explain.__main__ import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: the run's cv.groups when it was grouped, else metal)" in text


def test_rows_below_one_is_refused_by_the_cli_and_the_budget(tmp_path):
    """--rows 0 (or negative) was a numpy traceback after the run had been loaded; now one line
    naming the option, before any work; a Budget of no rows is refused naming its field."""
    for bad in ("0", "-5"):
        line = _one_error_line([str(tmp_path / "missing"), "--rows", bad], tmp_path)
        assert f"--rows={bad}: need at least 1" in line
    with pytest.raises(ConfigError, match="max_rows=0"):
        Budget(max_rows=0)
    with pytest.raises(ConfigError, match="n_repeats=0"):
        Budget(n_repeats=0)
    assert Budget(max_rows=None, fold_trees=None).max_rows is None


def test_cli_refuses_before_any_work_or_store(make_cfg, tmp_path):
    """--log with a run directory is refused before the figures are made; a run id where there
    is no store is refused without creating an empty mlflow.db."""
    run(make_cfg("model=ridge", "cv.outer_folds=3", "tracking=none", "explain=false"),
        tmp_path / "run")  # fmt: skip
    cases = {
        "--log needs an MLflow run id": [str(tmp_path / "run"), "--log"],
        "no MLflow store at mlflow.db": ["0123456789abcdef0123456789abcdef"],
    }
    for expected, args in cases.items():
        assert expected in _one_error_line(args, tmp_path)
    assert not (tmp_path / "run" / "explain").exists()
    assert not (tmp_path / "mlflow.db").exists()
    # --out: a folder of the user's holding files of the names explain writes is not written over
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "shap_importance.csv").write_text("my notes\n")
    line = _one_error_line([str(tmp_path / "run"), "--out", str(mine)], tmp_path)
    assert f"{mine}: already holds shap_importance.csv" in line and "--force" in line
    assert (mine / "shap_importance.csv").read_text() == "my notes\n"
    assert sorted(p.name for p in mine.iterdir()) == ["shap_importance.csv"]
    paths = explain_run(tmp_path / "run", budget=SMALL, out_dir=mine, force=True)
    assert (
        mine / "shap_importance.csv" in paths
        and "my notes" not in (mine / "shap_importance.csv").read_text()
    )
    # the run's own explain folder is redrawn in place, as before
    explain_run(tmp_path / "run", budget=SMALL)
    explain_run(tmp_path / "run", budget=SMALL, out_dir=tmp_path / "run" / "explain")


def test_log_to_a_deleted_run_is_refused_before_the_work(make_cfg, tmp_path):
    """python -m n2react.explain RUN --log, RUN deleted in the store (the UI's Delete): the
    figures were drawn and logged to the deleted run's artifacts (the artifact store does not ask
    the run's state), exit 0. Now one line before any work, nothing logged or drawn; without
    --log a deleted run is still read (it can be restored until mlflow gc purges it)."""
    from mlflow.tracking import MlflowClient

    cfg = make_cfg("model=ridge", "cv.outer_folds=3", "explain=false")
    run(cfg, tmp_path / "run")
    client = MlflowClient(cfg.tracking.uri)
    (parent,) = [
        r
        for r in client.search_runs([client.get_experiment_by_name("n2react").experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    ]
    run_id = parent.info.run_id
    client.delete_run(run_id)
    args = [run_id, "--tracking-uri", cfg.tracking.uri, "--out", str(tmp_path / "out")]
    line = _one_error_line([*args, "--log"], tmp_path)
    assert f"--log: MLflow run {run_id} was deleted in {cfg.tracking.uri}" in line
    assert "restore it in the MLflow UI first, or leave out --log" in line
    assert not (tmp_path / "out").exists()
    assert "explain" not in {a.path for a in client.list_artifacts(run_id)}
