"""`n2react compare` given what is not a finished run, as real processes: a run killed part-way
(its folder and its MLflow run), a sweep's folder, a run id that is not in the store. Each said
something wrong or unclear ("not an n2react parent run?" of an n2react run, "Run with id=X not
found" without the store); each is now one line that says what it is and what to give."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

QUICK = ["explain=false", "progress=false", "uncertainty.enabled=false"]


def _compare(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cmd = [sys.executable, "-m", "n2react.compare", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _one_error(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-1500:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("n2react: error: "), res.stderr[-1500:]
    return lines[0].removeprefix("n2react: error: ")


@pytest.mark.slow
def test_a_run_killed_part_way_is_named_unfinished(tmp_path: Path) -> None:
    # its folder said "no oof_predictions.csv (not a finished nested-CV run of python -m
    # train?)", its MLflow run (left RUNNING by SIGKILL) "no artifact oof_predictions.csv (not
    # an n2react parent run?)"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "killed"
    # (a search per fold: folds written one by one, as tests/test_resume.py's killed run)
    cmd = [sys.executable, "-m", "train", "model=rfr", "model.estimator.n_estimators=20",
           "search=random", "search.max_trials=3", "cv.outer_folds=4", "cv.inner_folds=2",
           *QUICK, f"tracking.uri={uri}", f"hydra.run.dir={run_dir}"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not (run_dir / "folds" / "fold_02" / "fold.json").exists():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, "fold 2 never finished"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert not (run_dir / "summary.json").exists()
    said = _one_error(_compare(str(run_dir), str(tmp_path), cwd=tmp_path))
    assert re.fullmatch(
        rf"{re.escape(str(run_dir))}: its run has not finished \(\d outer fold\(s\) done so far: "
        r"still running, or stopped part-way\); compare it once it has finished \(python -m "
        rf"train resume={re.escape(str(run_dir))} continues a stopped run\)",
        said,
    ), said
    client = MlflowClient(uri)
    (parent,) = [r for r in client.search_runs(["1"]) if "mlflow.parentRunId" not in r.data.tags]
    run_id = parent.info.run_id
    assert parent.info.status == "RUNNING"
    said = _one_error(_compare(run_id, str(tmp_path), "--tracking-uri", uri, cwd=tmp_path))
    assert said == (
        f"MLflow run {run_id} is RUNNING (still running, or its process died without a word): "
        "it has no oof_predictions.csv before its outer folds are done; compare it once it has "
        f"finished (python -m train resume={run_id} continues a KILLED or FAILED run)"
    )
    # a run id not in the store named no store: "Run with id=<id> not found"
    said = _one_error(_compare("0" * 32, run_id, "--tracking-uri", uri, cwd=tmp_path))
    assert said == f"MLflow run {'0' * 32}: no such run in {uri}"
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / "mlflow.db").write_bytes((tmp_path / "mlflow.db").read_bytes())
    said = _one_error(_compare("0" * 32, run_id, cwd=tmp_path / "cwd"))
    assert said == (
        f"MLflow run {'0' * 32}: no such run in sqlite:///mlflow.db (the default store; name "
        "yours with --tracking-uri)"
    )


@pytest.mark.slow
def test_a_sweep_folder_names_its_job_folders(tmp_path: Path) -> None:
    # "sweep: no oof_predictions.csv (not a finished nested-CV run of python -m train?)"
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "train", "-m", "model=ridge,svr", "cv.outer_folds=3", *QUICK,
           "final_model=false", "tracking=none", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-1500:]
    said = _one_error(_compare(str(sweep), str(sweep / "0_ridge"), cwd=tmp_path))
    assert said == (
        f"{sweep} is a sweep's folder (2 finished job folder(s) in it): name two of its job "
        f"folders, e.g. {sweep / '0_ridge'} {sweep / '1_svr'}; its leaderboard.csv compares "
        "every job with the best one"
    )
    res = _compare(str(sweep / "0_ridge"), str(sweep / "1_svr"), "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-1500:]
