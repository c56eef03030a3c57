"""What start-up imports: `python -m train --help` and a default run stay off the deep-learning
stack, the tuner and shap unless the job needs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "keras_tuner", "shap", "torch", "jax", "grpc")


def _imported(code: str, cwd: Path) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return set(done.stdout.strip().splitlines()[-1].split()[1:])


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    code = (
        "import runpy, sys\n"
        "sys.argv = ['train', '--help']\n"
        "try:\n    runpy.run_module('train', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"heavy = {HEAVY + ('mlflow', 'matplotlib')!r}\n"
        "print('imported:', *[m for m in heavy if m in sys.modules])\n"
    )
    assert _imported(code, tmp_path) == set()


# predict's --help is argparse's, which ignores a failed write (exit 0 as --help exits)
@pytest.mark.parametrize(
    ("command", "code"), [(["train", "--help"], 141), (["predict", "--help"], 0)]
)
def test_help_into_a_closed_pipe_ends_quietly(
    command: list[str], code: int, tmp_path: Path, into_closed_pipe
) -> None:
    # `python -m train --help | head`: the reader gone before the help was written ended in a
    # BrokenPipeError traceback (Hydra's print); a real pipe whose read end is closed before the
    # command starts
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = into_closed_pipe([sys.executable, "-m", *command], tmp_path, env, 120)
    assert done.stderr == ""
    assert done.returncode == code


def test_a_default_run_without_search_or_keras_imports_neither(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from n2react.compose import compose_config\n"
        "from n2react.run import run\n"
        "cfg = compose_config(['cv.outer_folds=2', 'tracking=none', 'explain=false',\n"
        "                      'model.estimator.n_estimators=10'], {'progress': False})\n"
        "run(cfg, 'run')\n"
        f"print('imported:', *[m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    assert _imported(code, tmp_path) == set()


def test_explanations_import_shap_only_then(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from n2react.compose import compose_config\n"
        "from n2react.run import run\n"
        "cfg = compose_config(['cv.outer_folds=2', 'tracking=none',\n"
        "                      'model.estimator.n_estimators=10'], {'progress': False})\n"
        "run(cfg, 'run')\n"
        f"print('imported:', *[m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    assert _imported(code, tmp_path) == {"shap"}
