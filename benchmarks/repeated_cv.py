"""Run the README's repeated-CV table: the tree models under KFold with ``cv.repeats=5`` (five
different shuffles of the 10 outer folds, 50 outer folds), on the file's 24 descriptors and with
the formula descriptors added.

    python benchmarks/repeated_cv.py                  # print the table
    python benchmarks/repeated_cv.py --write-readme   # replace it in README.md
    python benchmarks/repeated_cv.py --repeats 3      # another number of shuffles

Each cell is ``python -m train <row> [data.formula=true] cv.repeats=5`` run by the same task
function as the CLI without MLflow, explanations or the final refit (none changes the CV
figures): the mean over all outer folds of the per-fold test r and RMSE. With --write-readme the
block between the README's repeated-table markers is replaced; nothing else changes.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

from n2react.arguments import Parser, at_least

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- repeated-table-begin -->", "<!-- repeated-table-end -->"
ROWS = [
    ("random forest", "model=rfr"),
    ("extra trees", "model=extra_trees"),
    ("gradient boosting", "model=gbr"),
    ("ensemble", "model=ensemble"),
]
COLUMNS = [("file's 24 descriptors", []), ("+ formula descriptors", ["data.formula=true"])]


def _cell(overrides: list[str], out: Path) -> str:
    from n2react.compose import compose_config
    from n2react.run import run

    quiet = {"tracking.enabled": False, "progress": False, "final_model": False, "explain": False}
    m = run(compose_config(overrides, quiet), out)
    return f"{m['mean_test_r']:.3f} / {m['mean_test_rmse']:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--repeats", type=at_least(1), default=5, help="shuffles of the 10 outer folds (5)"
    )
    ap.add_argument("--out", default=None, help="folder for the run directories (default: temp)")
    ap.add_argument("--write-readme", action="store_true", help="update README.md's table")
    args = ap.parse_args(argv)
    if args.write_readme and args.repeats != 5:
        ap.error(f"--write-readme: the README's table is the cv.repeats=5 one; --repeats "
                 f"{args.repeats} only prints")  # fmt: skip
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    out = Path(args.out or tempfile.mkdtemp(prefix="n2react-repeated-"))
    lines = [
        "| model | " + " | ".join(f"{c}: r / RMSE" for c, _ in COLUMNS) + " |",
        "| --- | " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    print("\n".join(lines), flush=True)
    for i, (label, row) in enumerate(ROWS):
        cells = [
            _cell([*row.split(), *extra, f"cv.repeats={args.repeats}"], out / f"{i}_{j}")
            for j, (_, extra) in enumerate(COLUMNS)
        ]
        lines.append(f"| {label} | {' | '.join(cells)} |")
        print(lines[-1], flush=True)
    if args.write_readme:
        readme = ROOT / "README.md"
        text = readme.read_text(encoding="utf-8")
        if BEGIN not in text or END not in text:
            raise SystemExit(f"{readme}: no {BEGIN} ... {END} block to replace")
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        from n2react.runstore import write_text

        write_text(readme, f"{head}{BEGIN}\n" + "\n".join(lines) + f"\n{END}{tail}")
        print("README.md: repeated-CV table updated", file=sys.stderr)
    print(f"\nrun directories: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from n2react.errors import run_script

    raise SystemExit(run_script(main))
