"""Shared by tests/test_compare_unfinished.py and tests/test_unfinished_runs.py: what is not a
finished run, made by real processes (a run SIGKILLed after its second outer fold, or before its
final fit; a sweep's folder), and the one error line a command says of it."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient
from resume_helpers import KILLABLE, start_and_kill

QUICK = ["explain=false", "progress=false", "uncertainty.enabled=false"]


@dataclass(frozen=True)
class Killed:
    """A run killed part-way: its folder, its store and its MLflow parent run (left RUNNING)."""

    run_dir: Path
    uri: str
    run_id: str


def killed_run(tmp_path: Path) -> Killed:
    """A real run SIGKILLed once its second outer fold is written (of four), into ``tmp_path``."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "train", *KILLABLE, "uncertainty.enabled=false",
           f"tracking.uri={uri}", f"hydra.run.dir={run_dir}"]  # fmt: skip
    start_and_kill(cmd, tmp_path, run_dir)
    assert not (run_dir / "summary.json").exists()
    client = MlflowClient(uri)
    (parent,) = [r for r in client.search_runs(["1"]) if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "RUNNING"
    return Killed(run_dir, uri, parent.info.run_id)


def killed_before_final_fit(tmp_path: Path) -> Path:
    """A real run (without MLflow) SIGKILLed once its outer folds are scored
    (oof_predictions.csv written), before its final model is saved; its folder."""
    run_dir = tmp_path / "no_final"
    cmd = [sys.executable, "-m", "train", *KILLABLE, "uncertainty.enabled=false",
           "tracking=none", f"hydra.run.dir={run_dir}"]  # fmt: skip
    start_and_kill(cmd, tmp_path, run_dir, until="oof_predictions.csv")
    assert not (run_dir / "model.skops").exists()
    return run_dir


def sweep_folder(tmp_path: Path) -> Path:
    """A real sweep's folder (ridge and svr, 3 outer folds, no final models)."""
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "train", "-m", "model=ridge,svr", "cv.outer_folds=3", *QUICK,
           "final_model=false", "tracking=none", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-1500:]
    return sweep


def command(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python <argv>`` run in ``cwd`` without $MLFLOW_TRACKING_URI (unless ``env`` sets it)."""
    base = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cmd = [sys.executable, *argv]
    return subprocess.run(
        cmd, cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=300
    )


def one_error(res: subprocess.CompletedProcess[str]) -> str:
    """The one ``n2react: error:`` line ``res`` ended with (exit 2, no traceback), unprefixed."""
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-1500:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("n2react: error: "), res.stderr[-1500:]
    return lines[0].removeprefix("n2react: error: ")


def resume_as_told(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the command ``line`` (an error line) gives to continue its run, ``(python -m train
    ... continues ...)``, as a shell would split it, in ``cwd``."""
    found = re.search(r"\((python -m train .*?) continues ", line)
    assert found, line
    argv = shlex.split(found.group(1))
    assert argv[:3] == ["python", "-m", "train"] and "<its overrides>" not in line, line
    return command(argv[1:], cwd)


def resume_in_shell(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the command ``line`` (an error line) gives to continue its run, ``(... python -m
    train ... continues ...)``, as pasted into a shell in ``cwd`` (a ``cd <folder> &&`` before
    it included), its ``python`` the one running the tests."""
    found = re.search(r"\(((?:cd .*? && )?python -m train .*?) continues ", line)
    assert found and "<its overrides>" not in line, line
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    return subprocess.run(
        ["bash", "-c", found.group(1)], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
