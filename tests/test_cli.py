"""`python -m train` end to end: a real run, bad input, a multirun sweep, and SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient


def train(tmp_path: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    cmd = [sys.executable, "-m", "train", f"hydra.run.dir={tmp_path / 'run'}", *args]
    return subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_cli_runs_and_writes_outputs(tmp_path: Path) -> None:
    out = train(tmp_path, "model=ridge", "cv.outer_folds=3", "progress=false")
    assert out.returncode == 0, out.stderr[-2000:]
    run_dir = tmp_path / "run"
    for name in ("oof_predictions.csv", "parity.png", "folds.csv", "config_resolved.yaml"):
        assert (run_dir / name).exists(), name
    assert "mean" in out.stderr and "test r" in out.stderr
    assert (tmp_path / "mlflow.db").exists()  # the default store, in the working directory
    oof = pd.read_csv(run_dir / "oof_predictions.csv")
    assert list(oof.columns) == ["cluster", "y_true", "y_pred", "fold"]


def _bad_xlsx(tmp_path: Path) -> Path:
    p = tmp_path / "broken.xlsx"
    p.write_bytes(b"PK\x03\x04 not really a workbook")
    return p


BAD = {
    "unknown model": (["model=nosuchmodel"], "model=nosuchmodel: no such option (choose from"),
    "unknown key": (["cv.outerfolds=3"], "cv.outerfolds: no such key (cv has: outer_folds"),
    "malformed spreadsheet": (["data.path={tmp}/broken.xlsx"], "broken.xlsx"),
    "wrong column": (["data.target_column='lg(k2)'"], "target column 'lg(k2)' not found"),
    "missing file": (["data.path={tmp}/none.xlsx"], "none.xlsx does not exist"),
    "too many folds": (["cv.outer_folds=400"], "159 rows, fewer than cv.outer_folds=400"),
    "bad metric": (["optimized_metric=accuracy"], "optimized_metric='accuracy'"),
    "no gpu": (["device=gpu"], "device=gpu: no GPU is visible"),
    "bad space": (["search=grid", "model=svr", "model.space.C.type=complex"], "model.space.C"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gives_one_clear_line_and_nonzero_exit(case: str, tmp_path: Path) -> None:
    _bad_xlsx(tmp_path)
    args, expected = BAD[case]
    out = train(tmp_path, *(a.format(tmp=tmp_path) for a in args), "progress=false")
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert expected in out.stderr, out.stderr[-1500:]
    ours = [ln for ln in out.stderr.splitlines() if ln.startswith("n2react: error:")]
    if ours:  # our own errors: exactly one line, and it says what is wrong
        assert len(ours) == 1 and expected in ours[0]
    else:  # Hydra's composition errors: its first line names the override at fault
        first = next(ln for ln in out.stderr.splitlines() if ln.strip())
        assert expected in first or expected.split("'")[0] in first, out.stderr[-800:]


@pytest.mark.slow
def test_sweep_logs_one_parent_run_per_grid_point(tmp_path: Path, n2react_runs) -> None:
    env = {**os.environ}
    cmd = [
        sys.executable, "-m", "train", "model=svr", "+sweep=grid",
        "cv.outer_folds=3", "final_model=false", "explain=false", "progress=false",
        f"hydra.sweep.dir={tmp_path / 'multi'}", "-m",
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    # the terminal: per job, Hydra's launch line, the MLflow link and the closing scores; the
    # sweep adds its launch line, a data warning (once), the leaderboard (table excluded) and,
    # 3 folds being too few units for a verdict, one note under it (wrapped over two lines)
    text = out.stdout + out.stderr
    assert text.count("vs best: too few units (3 folds) to tell") == 1, text[-2000:]
    lines = [
        ln
        for ln in text.splitlines()
        if ln.strip() and ln.lstrip()[0] not in "┏┃┡│├└━" and "ranked by" not in ln
    ]
    assert len(lines) <= 3 * 12 + 3 + 2, "\n".join(lines)
    assert sum("MLflow run '" in ln for ln in lines) == 12
    parents, children = n2react_runs(tmp_path, "tags.model = 'svr'")
    grid = {
        (
            r.data.params["scaler.name"],
            r.data.params["selector.name"],
            r.data.params["model.estimator.C"],
        )
        for r in parents
    }
    assert len(parents) == 12 and len(grid) == 12  # 2 scalers x 2 selectors x 3 values of C
    assert all(r.info.status == "FINISHED" for r in parents + children)
    assert len(list((tmp_path / "multi").glob("*_svr/oof_predictions.csv"))) == 12
    # runs are told apart by name (what the sweep varies) and tagged with the sweep and job
    names = {r.info.run_name for r in parents}
    assert len(names) == 12 and "svr C=10 robust kbest" in names
    assert all(len(n) <= 30 for n in names) and "svr C=1 standard" in names
    assert all("model.estimator.C=" in r.data.tags["overrides"] for r in parents)
    assert {r.data.tags["sweep"] for r in parents} == {str(tmp_path / "multi")}
    assert sorted(int(r.data.tags["job"]) for r in parents) == list(range(12))
    # the leaderboard: one row per job, best first, the same ranks as tags in MLflow
    board = pd.read_csv(tmp_path / "multi" / "leaderboard.csv")
    assert len(board) == 12 and list(board["rank"]) == list(range(1, 13))
    assert board["mean_test_rmse"].is_monotonic_increasing
    assert (tmp_path / "multi" / "leaderboard.md").exists()
    assert "ranked by mean_test_rmse" in out.stderr
    # the rank sorts as a number: a metric, and a zero-padded tag (01 .. 12)
    ranks = {r.info.run_id: r.data.tags["leaderboard_rank"] for r in parents}
    assert all(ranks[i] == f"{k:02d}" for i, k in zip(board["run_id"], board["rank"]))
    assert sorted(ranks.values()) == [f"{k:02d}" for k in range(1, 13)]
    numeric = {r.info.run_id: r.data.metrics["leaderboard_rank"] for r in parents}
    assert all(numeric[i] == k for i, k in zip(board["run_id"], board["rank"]))
    # every job's figure with its interval, and its paired difference with the best job
    assert (board["mean_test_rmse_ci_low"] <= board["mean_test_rmse"]).all()
    assert (board["mean_test_rmse"] <= board["mean_test_rmse_ci_high"]).all()
    assert board["vs_best"].iloc[0] == 0 and (board["vs_best"].iloc[1:] >= 0).all()
    assert (board["vs_best_ci_low"] <= board["vs_best"]).all()
    assert board["p_best_better"].iloc[1:].between(0, 1).all()
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    best = board["run_id"].iloc[0]
    logged = {a.path for a in client.list_artifacts(best)}
    assert {"leaderboard.csv", "sweep_report.html", "sweep_report.png"} <= logged
    report = (tmp_path / "multi" / "sweep_report.html").read_text()
    assert "svr C=10 robust kbest" in report  # names in full


@pytest.mark.slow
def test_sigterm_ends_the_run_killed(tmp_path: Path) -> None:
    cmd = [
        sys.executable, "-m", "train", "model=rfr", "model.estimator.n_estimators=3000",
        "progress=false", f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    deadline = time.time() + 120
    run_id = None
    while time.time() < deadline and run_id is None:
        time.sleep(1)
        log = tmp_path / "run" / "train.log"
        # touch the store only once the run created it (a second process racing the schema
        # creation of a fresh SQLite file is exactly what n2react itself guards against)
        if log.exists() and "MLflow run" in log.read_text():
            try:
                client = MlflowClient(uri)
                exp = client.get_experiment_by_name("n2react")
                runs = client.search_runs([exp.experiment_id]) if exp else []
                run_id = runs[0].info.run_id if runs else None
            except Exception:  # the store may still be busy: try again
                run_id = None
    assert run_id is not None, f"the run never started: {proc.stderr.read().decode()[-1500:]}"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert MlflowClient(uri).get_run(run_id).info.status == "KILLED"
    assert b"n2react: interrupted (SIGTERM); the MLflow run is KILLED" in err, err[-1500:]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["parallel", "submitit_local"])
def test_parallel_launchers_share_one_fresh_sqlite_store(
    tmp_path: Path, launcher: str, n2react_runs
) -> None:
    """Two jobs at once on a store that does not exist yet: schema and experiment are created
    once (under a lock), every run lands in experiment n2react, none stays RUNNING."""
    cmd = [
        sys.executable, "-m", "train", "model=ridge", "cv.outer_folds=3", "final_model=false",
        "explain=false", "progress=false", "scaler=standard,robust,minmax",
        f"hydra/launcher={launcher}", f"hydra.sweep.dir={tmp_path / 'multi'}", "-m",
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    parents, children = n2react_runs(tmp_path)
    runs = parents + children
    assert sorted(r.data.params["scaler.name"] for r in parents) == ["minmax", "robust", "standard"]
    assert len(runs) == 3 * 4 and all(r.info.status == "FINISHED" for r in runs)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert not client.search_runs(["0"])  # nothing filed under the Default experiment
