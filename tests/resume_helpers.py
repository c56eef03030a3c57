"""Shared by tests/test_resume*.py and tests/unfinished_helpers.py: the overrides of a quick
run (ridge, 3 outer folds), and a real run SIGKILLed once two of its outer folds (or another of
its files) are written."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

QUICK = ["model=ridge", "cv.outer_folds=3", "explain=false", "final_model=false"]
#: a run whose outer folds are written one by one (a search per fold), slow enough to kill
KILLABLE = [
    "model=rfr", "model.estimator.n_estimators=20", "search=random", "search.max_trials=3",
    "cv.outer_folds=4", "cv.inner_folds=2", "explain=false", "progress=false",
]  # fmt: skip


def start_and_kill(
    cmd: list[str], cwd: Path, run_dir: Path, until: str = "folds/fold_02/fold.json"
) -> None:
    """Start the real run ``cmd`` (writing into ``run_dir``) and SIGKILL it once ``until`` (a
    file in ``run_dir``; by default: two outer folds) is written."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not (run_dir / until).exists():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, f"{until} never written"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
