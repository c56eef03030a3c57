"""Distributed search: a chief and two workers as real processes on 127.0.0.1; one worker is
SIGKILLed while it holds a trial, and the chief still finishes every search in bounded time."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from n2react.run import run

pytest.importorskip("grpc")
ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 5
COMMON = [
    "model=rfr",
    "search=random",
    "search.max_trials=4",
    "cv.outer_folds=3",
    "cv.inner_folds=3",
    "tracking=none",
    "explain=false",
    "progress=false",
]
#: the chief's searches in order: the outer folds, the nested interval validation's (one per pair
#: of folds, on the rows outside both; the workers walk them too), the final model's
PROJECTS = ["outer_01", "outer_02", "outer_03", "nested_01_02", "nested_01_03", "nested_02_03",
            "final"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], run_dir: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "train", *args, f"hydra.run.dir={run_dir}"]
    out = log.open("w")
    return subprocess.Popen(cmd, cwd=run_dir.parent, env=env, stdout=out, stderr=subprocess.STDOUT)


def _holds_trial(project_dir: Path, tuner: str) -> bool:
    try:
        state = json.loads((project_dir / "oracle.json").read_text())
    except (OSError, ValueError):
        return False
    return tuner in state.get("ongoing_trials", {})


@pytest.mark.slow
def test_chief_survives_a_killed_worker(make_cfg, tmp_path: Path) -> None:
    port = _free_port()
    dist = [
        f"search.distributed.port={port}",
        f"search.distributed.trial_timeout_s={TIMEOUT_S}",
        "search.distributed.workers=2",
    ]
    chief_dir = tmp_path / "chief"
    procs: dict[str, subprocess.Popen] = {}
    try:
        procs["chief"] = _start(
            [*COMMON, *dist, "search.distributed.role=chief"], chief_dir, tmp_path / "chief.log"
        )
        for name in ("steady", "victim"):
            role = ["search.distributed.role=worker", f"search.distributed.worker_id={name}"]
            procs[name] = _start([*COMMON, *dist, *role], tmp_path / name, tmp_path / f"{name}.log")
        # kill the victim while the chief has a trial of it on its books
        deadline = time.monotonic() + 240
        killed_in = None
        while killed_in is None and time.monotonic() < deadline:
            assert procs["chief"].poll() is None, (tmp_path / "chief.log").read_text()[-3000:]
            for project in PROJECTS:
                if _holds_trial(chief_dir / "search" / project, "victim"):
                    procs["victim"].send_signal(signal.SIGKILL)
                    killed_in = project
                    break
            time.sleep(0.02)
        assert killed_in is not None, "the victim never held a trial"
        t_kill = time.monotonic()
        assert procs["chief"].wait(timeout=180) == 0, (tmp_path / "chief.log").read_text()[-3000:]
        assert procs["steady"].wait(timeout=60) == 0, (tmp_path / "steady.log").read_text()[-3000:]
        waited = time.monotonic() - t_kill
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()

    chief_log = (tmp_path / "chief.log").read_text()
    assert "worker victim silent for over" in chief_log
    assert waited < 150
    # every search ran its 4 trials to completion (the lost one was retried by someone else)
    for project in PROJECTS:
        files = (chief_dir / "search" / project).glob("trial_*/trial.json")
        trials = [json.loads(p.read_text()) for p in files]
        assert len(trials) == 4, project
        assert {t["status"] for t in trials} == {"COMPLETED"}, project
    steady_log = (tmp_path / "steady.log").read_text()
    assert "trial(s) run here" in steady_log
    # the same trials as a search in one process: the same choices and the same scores
    plain = run(make_cfg(*COMMON), tmp_path / "plain")
    distributed = json.loads((chief_dir / "summary.json").read_text())
    for key in ("mean_test_rmse", "mean_test_r", "pooled_test_rmse"):
        assert distributed[key] == pytest.approx(plain[key], rel=1e-9), key


def test_a_second_chief_on_the_same_port_is_refused(tmp_path: Path) -> None:
    """A chief started twice (same config, same port): the second one cannot listen, says so in
    one line and stops before any training, MLflow run or output (gRPC's default SO_REUSEPORT
    let it bind beside the first, share its workers and train into the same folder)."""
    from n2react.distributed import Distributed, chief

    port = _free_port()
    with chief(Distributed(role="chief", port=port)):
        cmd = [
            sys.executable, "-m", "train", *COMMON, "tracking=default",
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", "search.distributed.role=chief",
            f"search.distributed.port={port}", f"hydra.run.dir={tmp_path / 'second'}",
        ]  # fmt: skip
        out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-1500:]
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("n2react: error:")]
    assert len(errors) == 1 and f"cannot listen on 127.0.0.1:{port}" in errors[0], errors
    assert not (tmp_path / "second").exists() and not (tmp_path / "mlflow.db").exists()
