"""Shared by tests/test_bad_input*.py and tests/test_override_errors.py: the real
`python -m train` / `python -m predict` in a subprocess, and the checks on what it left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import data_dir

ROOT = Path(__file__).resolve().parents[1]
FILE24 = "homonuclear-159-24features.xlsx"
QUICK = ("model=ridge", "cv.outer_folds=3", "final_model=false", "progress=false")


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    data = os.environ.get("N2_DATA_DIR") or str(data_dir())
    return {**os.environ, "PYTHONPATH": path, "HYDRA_FULL_ERROR": "0", "N2_DATA_DIR": data}


def cli(tmp: Path, module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    extra = [f"hydra.run.dir={tmp / 'run'}"] if module == "train" else []
    cmd = [sys.executable, "-m", module, *extra, *args]
    return subprocess.run(cmd, cwd=tmp, env=_env(), capture_output=True, text=True, timeout=timeout)


def mlflow_runs(store: Path) -> list:
    """Every run of every experiment in the SQLite store (none when there is no store)."""
    if not store.exists():
        return []
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids) if ids else []


def assert_one_error(out: subprocess.CompletedProcess, *expected: str) -> str:
    assert out.returncode != 0, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("n2react: error:")]
    assert len(lines) == 1, out.stderr[-3000:]
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]
