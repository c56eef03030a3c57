"""Staging a run's MLflow run deleted while it runs, as the UI would: the child python (a real
``python -m train``) is held at the atomic write of a marker file by a sitecustomize until the
test has deleted its run (tests/test_run_deleted_*.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

#: The child python's sitecustomize (on its PYTHONPATH): an audit hook that holds the run at
#: the atomic rename (os.replace) of MARKER into place until GO exists, having written PAUSED.
PAUSE_HOOK = """import os, sys, time
MARKER, PAUSED, GO = {marker!r}, {paused!r}, {go!r}
def _pause(event, args):
    if event == "os.rename" and os.path.abspath(os.fspath(args[1])) == MARKER:
        if not os.path.exists(PAUSED):
            open(PAUSED, "w").close()
            while not os.path.exists(GO):
                time.sleep(0.02)
sys.addaudithook(_pause)
"""


def paused_env(marker: Path, tmp: Path) -> dict[str, str]:
    """The environment of a child python that waits as ``marker`` is written (summary.json:
    past the run's last fold check, its scores logged) until :func:`delete_when` has deleted
    its run."""
    hook = tmp / "pause_hook"
    hook.mkdir()
    paths = {"marker": str(marker), "paused": str(tmp / "paused"), "go": str(tmp / "go")}
    (hook / "sitecustomize.py").write_text(PAUSE_HOOK.format(**paths))
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def delete_when(tmp: Path, uri: str, job: subprocess.Popen, job_tag: str | None = None) -> str:
    """Delete the parent run (of sweep job ``job_tag``) from this process, as the UI would, while
    the run waits at its marker (:func:`paused_env`), then let it go on; its id. The run cannot
    end first: it waits until then, however slow this process is."""
    import time

    from mlflow.tracking import MlflowClient

    while not (tmp / "paused").exists():
        assert job.poll() is None, "the run ended before the marker"
        time.sleep(0.05)
    client = MlflowClient(uri)
    parents = [
        r
        for r in client.search_runs([client.get_experiment_by_name("n2react").experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
        and (job_tag is None or r.data.tags.get("job") == job_tag)
    ]
    (parent,) = parents
    assert parent.info.status == "RUNNING"  # held before its end
    client.delete_run(parent.info.run_id)
    (tmp / "go").touch()
    return parent.info.run_id


def train_deleted_at(
    cli: list[str], tmp: Path, marker: str, *extra: str
) -> tuple[str, str, Path, str]:
    """``cli`` (``python -m train ...``) whose parent run is deleted as the run folder's
    ``marker`` is written: (the run id, the store's uri, the run folder, stderr); exit status 2
    checked."""
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    run_dir = tmp / "run"
    cmd = [*cli, f"tracking.uri={uri}", f"hydra.run.dir={run_dir}", *extra]
    log = tmp / "stderr.txt"  # a file, not a pipe: a full pipe would stall the run
    with log.open("w") as stderr:
        env = paused_env(run_dir / marker, tmp)
        job = subprocess.Popen(cmd, cwd=tmp, stderr=stderr, text=True, env=env)
        try:
            run_id = delete_when(tmp, uri, job)
            job.wait(timeout=300)
        finally:
            job.kill()
    err = log.read_text()
    assert job.returncode == 2 and "Traceback" not in err, err[-2000:]
    return run_id, uri, run_dir, err
