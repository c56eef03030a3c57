"""How long `python -m train` takes as a user runs it: `--help`, three refused commands and a tiny
real run, with the heavy modules `--help` imports.

    python benchmarks/startup.py                           # every command, 5 repeats of each
    python benchmarks/startup.py --repeats 1 --only help,option --json

Each command runs from a fresh empty temporary folder (PYTHONPATH: this checkout's src), the
commands in turn within each repeat (so a busy machine slows them alike). Prints, per command,
its exit status, the median wall time and the median CPU time (the child's user + sys, from
resource.getrusage(RUSAGE_CHILDREN) before and after it); then which of the heavy modules
`--help` imports (none is the goal: tests/test_startup.py checks it). A command that exits with
another status than a user gets (0 for --help and the run, 2 for a refusal) ends the benchmark
with one error line.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from n2react.arguments import Parser, at_least, comma_list
from n2react.errors import N2ReactError

ROOT = Path(__file__).resolve().parents[1]

#: name -> (train's arguments, the exit status a user gets)
COMMANDS: dict[str, tuple[tuple[str, ...], int]] = {
    "help": (("--help",), 0),
    "option": (("model=nosuch",), 2),  # group_options.option_problem, before Hydra
    "key": (("cv.outer_fold=3",), 2),  # Hydra's composition, in its reporter
    "config_name": (("--config-name", "nosuch"), 2),
    "run": (
        (
            "model=ridge",
            "tracking=none",
            "cv.outer_folds=2",
            "explain=false",
            "final_model=false",
            "uncertainty.enabled=false",
            "progress=false",
        ),
        0,
    ),
}

#: the modules --help should not import (tests/test_startup.py's, plus numpy)
HEAVY = (
    "tensorflow", "keras", "keras_tuner", "shap", "torch", "jax", "grpc", "mlflow", "matplotlib",
    "pandas", "sklearn", "scipy", "numpy",
)  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "3"}


def timed(args: tuple[str, ...], expected: int) -> tuple[float, float]:
    """Wall and CPU seconds of ``python -m train args`` run from a fresh empty folder."""
    with tempfile.TemporaryDirectory(prefix="n2react-startup-") as folder:
        cmd = [sys.executable, "-m", "train", *args]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=folder, env=_env(), capture_output=True, text=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != expected:
        last = done.stderr.strip().splitlines()[-1][:300] if done.stderr.strip() else ""
        raise N2ReactError(
            f"python -m train {' '.join(args)} exited {done.returncode}, expected {expected}"
            + (f": {last}" if last else "")
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def help_imports() -> tuple[list[str], int]:
    """The heavy modules ``python -m train --help`` imports, and how many modules in all."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['train', '--help']\n"
        "try:\n    runpy.run_module('train', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"heavy = {HEAVY!r}\n"
        "print('imported:', len(sys.modules), *[m for m in heavy if m in sys.modules])\n"
    )
    with tempfile.TemporaryDirectory(prefix="n2react-startup-") as folder:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=folder, env=_env(), capture_output=True, text=True
        )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith("imported:"):
        raise N2ReactError(f"python -m train --help (its imports) failed: {done.stderr[-300:]!r}")
    count, *heavy = lines[-1].split()[1:]
    return heavy, int(count)


def main(argv: list[str] | None = None) -> int:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--repeats", type=at_least(1), default=5, help="runs of each command (default 5)"
    )
    ap.add_argument(
        "--only",
        type=comma_list(),
        default=list(COMMANDS),
        help=f"comma list of the commands to time, of {','.join(COMMANDS)} (default all)",
    )
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args(argv)
    bad = [name for name in args.only if name not in COMMANDS]
    if bad:
        ap.error(f"--only: unknown command(s) {', '.join(bad)}; expected {', '.join(COMMANDS)}")
    names = list(dict.fromkeys(args.only))
    walls: dict[str, list[float]] = {name: [] for name in names}
    cpus: dict[str, list[float]] = {name: [] for name in names}
    for i in range(args.repeats):
        for name in names:
            wall, cpu = timed(*COMMANDS[name])
            walls[name].append(wall)
            cpus[name].append(cpu)
            if not args.json:
                shown = " ".join(COMMANDS[name][0])
                print(f"run {i + 1}: python -m train {shown}: {wall:.2f} s, cpu {cpu:.2f} s")
    heavy, modules = help_imports() if "help" in names else ([], 0)
    if args.json:
        out = {
            "repeats": args.repeats,
            "commands": {
                name: {
                    "command": "python -m train " + " ".join(COMMANDS[name][0]),
                    "exit": COMMANDS[name][1],
                    "median_wall_s": round(statistics.median(walls[name]), 3),
                    "median_cpu_s": round(statistics.median(cpus[name]), 3),
                    "wall_s": [round(t, 3) for t in walls[name]],
                    "cpu_s": [round(t, 3) for t in cpus[name]],
                }
                for name in names
            },
        }
        if "help" in names:
            out["help_imports"] = {"heavy": heavy, "modules": modules}
        print(json.dumps(out, indent=2))
        return 0
    print(f"\nmedian of {args.repeats}:  wall s   cpu s  exit  command")
    for name in names:
        line, code = COMMANDS[name]
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(f"{name:>14}:  {wall:6.2f}  {cpu:6.2f}  {code:4d}  python -m train {' '.join(line)}")
    if "help" in names:
        print(
            f"--help imports {modules} modules; of {', '.join(HEAVY)}: "
            + (", ".join(heavy) if heavy else "none")
        )
    return 0


if __name__ == "__main__":
    from n2react.errors import run_script

    raise SystemExit(run_script(main))
