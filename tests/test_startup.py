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


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("--help",), 0),
        (("model=nosuch",), 2),  # group_options.option_problem, before Hydra
        (("cv.outer_fold=3",), 2),  # Hydra's composition, in its reporter
        (("--config-name", "nosuch"), 2),
        (("-m", "model=ridge", "resume=X"), 2),  # the sweep check on Hydra's composed config
    ],
    ids=["help", "option", "key", "config name", "sweep check"],
)
def test_help_and_a_refused_command_import_nothing_heavy(
    args: tuple[str, ...], code: int, tmp_path: Path
) -> None:
    """Every command imported pandas (0.4 to 0.6 s) before its first check: train.py imports
    n2react.output_dirs, then runstore, atomic_files and its top-level pandas. Now --help and a
    command refused before its run (exit_with's SystemExit) import none of the heavy modules."""
    code_line = (
        "import runpy, sys\n"
        f"sys.argv = ['train', *{args!r}, 'tracking=none', 'hydra.run.dir=r', "
        "'hydra.sweep.dir=m']\n"
        "try:\n    runpy.run_module('train', run_name='__main__')\n"
        "except SystemExit as exc:\n    print('exit', exc.code)\n"
        f"heavy = {HEAVY + ('mlflow', 'matplotlib', 'pandas', 'sklearn', 'scipy')!r}\n"
        "print('imported:', *[m for m in heavy if m in sys.modules])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code_line], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    lines = done.stdout.strip().splitlines()
    assert lines[-2:] == [f"exit {code}", "imported:"], (lines[-2:], done.stderr[-3000:])
    assert list(tmp_path.iterdir()) == []


# predict's --help is argparse's, which ignores a failed write (exit 0 as --help exits), on 3.10
# too (n2react.arguments.Parser.print_help: its argparse let the BrokenPipeError out, exit 141)
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


# --------------------------------------------------------------------------- bad arguments

BAD_ARGUMENTS = {
    "predict type": (
        ["-m", "predict", "model.skops", "x.csv", "--coverage", "abc"],
        "argument --coverage: invalid float value: 'abc'",
    ),
    "predict missing": (["-m", "predict"], "the following arguments are required: model, data"),
    "compare type": (
        ["-m", "n2react.compare", "a", "b", "--resamples", "x"],
        "argument --resamples: invalid int value: 'x'",
    ),
    "compare check": (
        ["-m", "n2react.compare", "a", "b", "--resamples", "5"],
        "--resamples 5: from 100 to 100000",
    ),
    "explain unknown": (["-m", "n2react.explain", "run", "--nosuch"], "unrecognized arguments"),
    "n2react command": (["-m", "n2react.cli", "nosuch"], "argument COMMAND: invalid choice"),
    "n2react predict": (
        ["-m", "n2react.cli", "predict", "m", "x.csv", "--coverage", "abc"],
        "argument --coverage: invalid float value: 'abc'",
    ),
    "benchmark at_least": (["benchmarks/repeated_cv.py", "--repeats", "0"], "0: at least 1"),
    "benchmark positive": (["benchmarks/keras_speed.py", "--lr", "-1"], "-1: expected a number"),
    "benchmark comma_list": (["benchmarks/paper_dnn_seeds.py", "--seeds", ","], "',': expected"),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_a_bad_argument_is_one_line(case: str, tmp_path: Path) -> None:
    # argparse printed its usage lines (four for predict) before the error line
    args, expected = BAD_ARGUMENTS[case]
    args = [str(ROOT / a) if a.startswith("benchmarks/") else a for a in args]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("n2react: error: ") and expected in done.stderr, done.stderr


def test_every_command_line_parser_is_the_shared_one() -> None:
    # a parser built with argparse.ArgumentParser prints usage lines before its error line
    sources = [*(ROOT / "src").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    built = [p.name for p in sources if "argparse.ArgumentParser(" in p.read_text()]
    assert built == [], built


def test_help_is_argparse_own(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "predict", "--help"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m predict [-h]")
    assert "--coverage COVERAGE" in done.stdout and done.stderr == ""


@pytest.mark.parametrize(
    ("args", "hydras"),
    [((), 2), (("-m", "hydra.sweep.dir=multi"), 1)],
    ids=["run", "sweep refused"],
)
def test_the_cli_composes_the_config_only_as_hydra_does(
    args: tuple[str, ...], hydras: int, tmp_path: Path
) -> None:
    """The sweep-folder check composed the whole config once more on every start (about 0.1 s),
    a single run's too: now it reads the composition Hydra makes to tell the mode. A run refused
    by its data (composed for the mode, then for the run) and a sweep refused by its folder (for
    the mode only)."""
    (tmp_path / "multi").mkdir()
    (tmp_path / "multi" / "multirun.yaml").write_text("earlier: sweep\n")
    code = (
        "import atexit, runpy, sys\n"
        "from hydra._internal.hydra import Hydra\n"
        "calls, compose = [], Hydra.compose_config\n"
        "def counted(self, *a, **k):\n    calls.append(1)\n    return compose(self, *a, **k)\n"
        "Hydra.compose_config = counted\n"
        "atexit.register(lambda: print('compositions:', len(calls)))\n"
        f"sys.argv = ['train', *{args!r}, 'data.path=missing.xlsx', 'tracking=none', "
        "'hydra.run.dir=r']\n"
        "runpy.run_module('train', run_name='__main__')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["compositions:", str(hydras)], done.stdout[-3000:]
