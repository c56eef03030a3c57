"""Shared by tests/test_leaderboard*.py: ``python -m train`` in a folder of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _train(tmp_path: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m train args`` in ``tmp_path`` (its own MLflow store: no inherited URI)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cmd = [sys.executable, "-m", "train", *args]
    return subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
    )
