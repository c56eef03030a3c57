"""A store that cannot be used: refused in one line before any training (server not answering,
deleted experiment, file store, unwritable folder, a lock held by another process), and a store
that is locked or a server that stops mid-run: one line, and resume= finishes the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import start_mlflow_server
from mlflow.tracking import MlflowClient

from n2react.mlflow_tracking import prepare_experiment


def train(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "train", "model=ridge", "cv.outer_folds=3", "progress=false"]
    cmd += [f"hydra.run.dir={cwd / 'run'}", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def _deleted(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.delete_experiment(prepare_experiment(uri, "gone"))
    return "tracking.experiment=gone"


def _under_a_file(tmp_path: Path) -> str:
    (tmp_path / "afile").write_text("x")
    return f"tracking.uri=sqlite:///{tmp_path / 'afile' / 'mlflow.db'}"


def _read_only(tmp_path: Path) -> str:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    return f"tracking.uri=sqlite:///{tmp_path / 'ro' / 'mlflow.db'}"


BAD_STORES = {
    "server not answering": (lambda t: "tracking.uri=http://127.0.0.1:9/", "no tracking server"),
    "empty experiment": (lambda t: "tracking.experiment=''", "tracking.experiment is empty"),
    "deleted experiment": (_deleted, "was deleted"),
    "file store": (lambda t: f"tracking.uri={(t / 'mlruns').as_uri()}", "sqlite:///"),
    "folder is a file": (_under_a_file, "cannot create"),
    "read-only folder": (_read_only, "is not writable"),
}


@pytest.mark.parametrize("case", list(BAD_STORES))
def test_unusable_store_is_one_line_before_any_training_and_no_stray_run(
    case: str, tmp_path: Path
) -> None:
    make_override, expected = BAD_STORES[case]
    override = make_override(tmp_path)
    t0 = time.monotonic()
    out = train(tmp_path, override)
    assert time.monotonic() - t0 < 60
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-1500:]
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("n2react: error:")]
    assert len(errors) == 1 and expected in errors[0], out.stderr[-1500:]
    assert not (tmp_path / "run" / "folds").exists()  # no outer fold was trained
    db = tmp_path / "mlflow.db"
    if db.exists():  # no run anywhere, the Default experiment included
        client = MlflowClient(f"sqlite:///{db}")
        ids = [e.experiment_id for e in client.search_experiments(view_type=3)]
        assert not client.search_runs(ids, run_view_type=3)


def test_bad_input_is_reported_before_the_store_is_touched(tmp_path: Path) -> None:
    """A wrong data path fails on its own line without creating a store: no mlflow.db appears
    in the working directory for a run that never started."""
    out = train(tmp_path, "data.path=/nonexistent/cluster.xlsx")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-1500:]
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("n2react: error:")]
    assert len(errors) == 1 and "/nonexistent/cluster.xlsx" in errors[0], out.stderr[-1500:]
    assert not list(tmp_path.glob("mlflow.db*"))


def _hold_lock(db: Path, after: Path | None = None) -> subprocess.Popen[str]:
    """Another process that takes an exclusive lock on the SQLite file ``db`` (once ``after``
    exists, when given), prints 'locked' and holds it until killed."""
    wait = f"while not pathlib.Path({str(after)!r}).exists(): time.sleep(0.05)\n" if after else ""
    script = (
        f"import pathlib, sqlite3, time\n{wait}"
        f"c = sqlite3.connect({str(db)!r}, isolation_level=None, timeout=60)\n"
        "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(120)"
    )
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)


def test_a_locked_store_is_one_line_and_loses_nothing(tmp_path: Path) -> None:
    """Another process holds an exclusive lock on the SQLite store: one error line that says so,
    before any training, and the runs already in the store are untouched."""
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    client = MlflowClient(uri)
    earlier = client.create_run(prepare_experiment(uri, "n2react"), run_name="earlier")
    client.log_metric(earlier.info.run_id, "pooled_test_r", 0.7)
    client.set_terminated(earlier.info.run_id)
    holder = _hold_lock(db)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        out = train(tmp_path, f"tracking.uri={uri}")
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-1500:]
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("n2react: error:")]
    assert len(errors) == 1 and "database is locked" in errors[0]
    assert "another process holds a write lock" in errors[0]
    assert not (tmp_path / "run" / "folds").exists()  # no outer fold was trained
    ids = [e.experiment_id for e in client.search_experiments(view_type=3)]
    (run,) = client.search_runs(ids, run_view_type=3)
    assert run.info.run_id == earlier.info.run_id and run.data.metrics["pooled_test_r"] == 0.7


@pytest.mark.slow
def test_a_store_locked_mid_run_is_one_line_and_resume_finishes_the_run(tmp_path: Path) -> None:
    """The store gets locked (longer than MLflow's 20 s busy timeout) after two outer folds:
    one error line naming the lock and the resume command, no traceback; resuming once the lock
    is gone finishes the same MLflow run with one fold run per fold."""
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    prepare_experiment(uri, "n2react")
    marker = tmp_path / "run" / "folds" / "fold_02" / "fold.json"
    holder = _hold_lock(db, after=marker)
    args = (f"tracking.uri={uri}", "model=gbr", "cv.outer_folds=5", "explain=false")
    try:
        out = train(tmp_path, *args)
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-1500:]
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("n2react: error:")]
    assert len(errors) == 1 and "database is locked" in errors[0], out.stderr[-1500:]
    assert f"resume={tmp_path / 'run'}" in errors[0]
    resumed = subprocess.run(
        [sys.executable, "-m", "train", "model=ridge", "cv.outer_folds=3", "progress=false",
         *args, f"resume={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(ids, run_view_type=3)
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "FINISHED" and "pooled_test_r" in parent.data.metrics
    # a fold run the lock broke is moved to MLflow's trash (deleted, not purged) and logged again
    active = [r for r in runs if r is not parent and r.info.lifecycle_stage == "active"]
    assert sorted(r.data.tags["fold"] for r in active) == ["1", "2", "3", "4", "5"]
    assert all(r.info.status == "FINISHED" and r.data.metrics for r in active)


@pytest.mark.slow
def test_a_server_that_stops_mid_run_is_one_line_in_a_minute_and_resume_finishes_it(
    tmp_path: Path,
) -> None:
    """The tracking server dies after two outer folds: the run stops within about a minute with
    one line that names the server and the resume command (MLflow's own retries took over 10
    minutes, and the line blamed the run's outputs); resuming once the server is back finishes
    the same MLflow run with one fold run per fold."""
    server, url = start_mlflow_server(tmp_path)
    marker = tmp_path / "run" / "folds" / "fold_02" / "fold.json"
    args = (f"tracking.uri={url}", "model=gbr", "cv.outer_folds=5", "explain=false")
    cmd = [sys.executable, "-m", "train", "progress=false", f"hydra.run.dir={tmp_path / 'run'}"]
    job = subprocess.Popen([*cmd, *args], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        while not marker.exists():
            assert job.poll() is None, "the run ended before its second fold"
            time.sleep(0.05)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        t0 = time.monotonic()
        _, err = job.communicate(timeout=600)
        elapsed = time.monotonic() - t0
    finally:
        job.kill()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    assert job.returncode == 2 and "Traceback" not in err, err[-1500:]
    errors = [ln for ln in err.splitlines() if ln.startswith("n2react: error:")]
    assert len(errors) == 1 and "tracking server stopped answering" in errors[0], err[-1500:]
    assert f"resume={tmp_path / 'run'}" in errors[0]
    # urllib3's "Retrying (Retry(total=2, ...)) after connection broken by ..." warnings, one per
    # request, printed five long lines above it: they stay in the run's log file
    assert "Retrying" not in err, err[-1500:]
    assert "Retrying" in (tmp_path / "run" / "train.log").read_text()
    assert elapsed < 120, elapsed
    server, url = start_mlflow_server(tmp_path, int(url.rsplit(":", 1)[1]))  # the same store
    try:
        resumed = subprocess.run(
            [*cmd, *args, f"resume={tmp_path / 'run'}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr[-1500:]
        client = MlflowClient(url)
        runs = client.search_runs([client.get_experiment_by_name("n2react").experiment_id])
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "FINISHED" and "pooled_test_r" in parent.data.metrics
    assert sorted(r.data.tags["fold"] for r in runs if r is not parent) == ["1", "2", "3", "4", "5"]
