"""What the explanations cost a default run: `python -m train` with and without `explain=false`.

    python benchmarks/explain_cost.py                  # the default job, 3 runs of each
    python benchmarks/explain_cost.py --runs 5 model=extra_trees

Runs the two commands alternately (so a busy machine slows both alike), each in a fresh folder
with its own MLflow store (the default `sqlite:///mlflow.db` of that folder), and prints every
wall time, the median of each and their ratio (the goal: at most 1.25).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from n2react.arguments import Parser, at_least

ROOT = Path(__file__).resolve().parents[1]


def wall_time(overrides: list[str], folder: Path) -> float:
    folder.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "train", *overrides, f"hydra.run.dir={folder / 'run'}"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return took


def main(argv: list[str] | None = None) -> int:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=at_least(1), default=3, help="runs of each command (default 3)")
    ap.add_argument("overrides", nargs="*", help="train overrides for both commands")
    args = ap.parse_args(argv)
    times: dict[str, list[float]] = {"explain": [], "explain=false": []}
    with tempfile.TemporaryDirectory(prefix="n2react-explain-cost-") as tmp:
        for i in range(args.runs):
            for name, extra in (("explain=false", ["explain=false"]), ("explain", [])):
                folder = Path(tmp) / f"{'with' if name == 'explain' else 'without'}-{i}"
                t = wall_time([*args.overrides, *extra], folder)
                times[name].append(t)
                shown = " ".join([*args.overrides, *extra])
                print(f"run {i + 1}: python -m train {shown}: {t:.1f} s", flush=True)
    with_, without = (statistics.median(times[k]) for k in ("explain", "explain=false"))
    print(
        f"median of {args.runs}: {with_:.1f} s with the explanations, {without:.1f} s with "
        f"explain=false; ratio {with_ / without:.2f} (explanations: {with_ - without:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    from n2react.errors import run_script

    raise SystemExit(run_script(main))
