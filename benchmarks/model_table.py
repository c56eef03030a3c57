"""Run the README's model table: every row is the nested CV of one `python -m train` command,
under each protocol: KFold (known families) and grouped (new compositions).

    python benchmarks/model_table.py                      # all rows, all protocols (long)
    python benchmarks/model_table.py --skip-slow          # without the pairwise rows
    python benchmarks/model_table.py --only formula       # rows whose label contains 'formula'
    python benchmarks/model_table.py --exclude grid       # without rows whose label has 'grid'
    python benchmarks/model_table.py --protocols kfold    # only the KFold columns
    python benchmarks/model_table.py --write-readme       # replace the table in README.md

Each row runs the same task function as the CLI without MLflow, explanations or the final refit
(none changes the CV figures). KFold: 10 folds shuffled with seed 42, mean ± std over the folds
of the per-fold test r, RMSE and MAE. Grouped: `cv.groups=metal` (leave one metal out, 6 folds)
and `cv.groups=family` (10 folds of whole metal + ligand-element families), pooled r / RMSE / MAE
over all out-of-fold predictions (a fold of 3 Co clusters has no meaningful r of its own).
Each figure carries its 95 % bootstrap interval in brackets (n2react.bootstrap: the folds for a
KFold mean, the metals or families for a grouped pooled figure).
With --write-readme the rows replace the block between the README's model-table markers (a row
of the old table that was not re-run keeps its old line if it has the same columns); nothing
else in the README changes.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from n2react.arguments import Parser, comma_list, selection_text

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- model-table-begin -->", "<!-- model-table-end -->"

#: (label, the CLI overrides). Rows with pairwise=on are the slow ones (~5 min each).
ROWS: list[tuple[str, str]] = [
    ("random forest", "model=rfr"),
    ("random forest, grid", "model=rfr search=grid"),
    ("extra trees", "model=extra_trees"),
    ("gradient boosting", "model=gbr"),
    ("ridge, grid", "model=ridge search=grid"),
    ("SVR + k-best, grid", "model=svr selector=kbest search=grid"),
    ("Keras MLP, random search (20 trials)", "model=keras_mlp search=random"),
    ("ensemble (GBR + extra trees + SVR)", "model=ensemble"),
    ("ridge trend + extra trees on residuals", "model=ridge_trees"),
    ("pairwise extra trees", "model=extra_trees pairwise=on"),
    ("pairwise Keras MLP", "model=keras_mlp pairwise=on"),
    ("formula: random forest", "data.formula=true model=rfr"),
    ("formula: extra trees", "data.formula=true model=extra_trees"),
    ("formula: extra trees, grid", "data.formula=true model=extra_trees search=grid"),
    ("formula: gradient boosting", "data.formula=true model=gbr"),
    ("formula: gradient boosting, grid", "data.formula=true model=gbr search=grid"),
    ("formula: ridge, grid", "data.formula=true model=ridge search=grid"),
    ("formula: SVR, grid", "data.formula=true model=svr search=grid"),
    (
        "formula: Keras MLP, random search (20 trials)",
        "data.formula=true model=keras_mlp search=random",
    ),
    ("formula: ensemble", "data.formula=true model=ensemble"),
    ("formula: pairwise extra trees", "data.formula=true model=extra_trees pairwise=on"),
    ("formula: pairwise Keras MLP", "data.formula=true model=keras_mlp pairwise=on"),
    ("15 descriptors: extra trees", "data=homonuclear_15 model=extra_trees"),
    ("15 descriptors: gradient boosting", "data=homonuclear_15 model=gbr"),
    ("15 descriptors: ridge trend + extra trees", "data=homonuclear_15 model=ridge_trees"),
    ("15 + formula: extra trees", "data=homonuclear_15 data.formula=true model=extra_trees"),
    (
        "15 + ligand counts: ridge trend + extra trees (former new-compositions preset)",
        "data=homonuclear_15 model=ridge_trees data.formula=true data.formula_columns="
        "[0_n_metal,0_n_H,0_n_C,0_n_N,0_n_O,0_n_S,0_n_ligand,0_ligand/metal]",
    ),
]

PROTOCOLS = {"kfold": "cv.groups=none", "metal": "cv.groups=metal", "family": "cv.groups=family"}
HEADER = (
    "| model | command | KFold r | KFold RMSE | KFold MAE "
    "| leave-one-metal-out r / RMSE / MAE | family-grouped r / RMSE / MAE | wall |"
)
RULE = "| --- | --- | --- | --- | --- | --- | --- | --- |"


def _compose(overrides: list[str]):  # noqa: ANN202 - a DictConfig
    from n2react.compose import compose_config

    quiet = {"tracking.enabled": False, "progress": False, "final_model": False, "explain": False}
    return compose_config(overrides, quiet)


def _ci(m: dict[str, float], key: str) -> str:
    """The 95 % bootstrap interval of ``key`` (n2react.bootstrap), as ``[low, high]``."""
    low, high = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
    return "" if low is None or high is None else f" [{low:.2f}, {high:.2f}]"


def _cells(protocol: str, m: dict[str, float] | None) -> list[str]:
    if m is None:
        return ["not run"] if protocol != "kfold" else ["not run"] * 3
    if protocol == "kfold":
        keys = ("r", "rmse", "mae")
        return [
            f"{m[f'mean_test_{k}']:.3f} ± {m[f'std_test_{k}']:.3f}{_ci(m, f'mean_test_{k}')}"
            for k in keys
        ]
    keys = ("r", "rmse", "mae")
    return [" / ".join(f"{m[f'pooled_test_{k}']:.3f}{_ci(m, f'pooled_test_{k}')}" for k in keys)]


def run_row(overrides: list[str], protocols: list[str], out: Path) -> tuple[list[str], float]:
    """The row's cells (KFold x3, metal, family) and its wall time over the protocols run."""
    from transfer import run_logged

    cells: list[str] = []
    wall = 0.0
    for name in PROTOCOLS:
        m = None
        if name in protocols:
            t0 = time.perf_counter()
            m = run_logged(_compose(overrides + [PROTOCOLS[name]]), out / name)
            wall += time.perf_counter() - t0
        cells += _cells(name, m)
    return cells, wall


def write_readme(lines: dict[str, str], readme: Path) -> None:
    """Replace the table between the markers; old rows not re-run keep their line."""
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} block to replace")
    head, rest = text.split(BEGIN, 1)
    old_block, tail = rest.split(END, 1)
    width = HEADER.count("|")
    old = {
        m.group(1): line
        for line in old_block.splitlines()
        if (m := re.match(r"^\| (.+?) \| `", line)) and line.count("|") == width
    }
    rows = [lines.get(label) or old.get(label) for label, _ in ROWS]
    block = "\n".join([HEADER, RULE, *[r for r in rows if r]])
    from n2react.runstore import write_text

    write_text(readme, f"{head}{BEGIN}\n{block}\n{END}{tail}")  # whole or not at all


def main(argv: list[str] | None = None) -> int:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--only", type=selection_text, default=None, help="run rows whose label contains this text"
    )
    ap.add_argument("--skip-slow", action="store_true", help="skip the pairwise rows")
    ap.add_argument(
        "--exclude",
        type=selection_text,
        action="append",
        default=[],
        help="skip rows whose label contains this text",
    )
    ap.add_argument(
        "--protocols",
        type=comma_list(),
        default="kfold,metal,family",
        help="comma list of kfold, metal, family",
    )
    ap.add_argument("--out", default=None, help="folder for the run directories (default: temp)")
    ap.add_argument("--write-readme", action="store_true", help="update README.md's table")
    ap.add_argument("extra", nargs="*", help="overrides added to every row, e.g. seed=1")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    protocols = args.protocols
    bad = [p for p in protocols if p not in PROTOCOLS]
    if bad:
        ap.error(f"unknown protocol(s) {', '.join(bad)}; expected {', '.join(PROTOCOLS)}")

    rows = [
        (label, overrides.split())
        for label, overrides in ROWS
        if (args.only is None or args.only in label)
        and not (args.skip_slow and "pairwise=on" in overrides)
        and not any(text in label for text in args.exclude)
    ]
    if not rows:  # it printed the header and a temp folder, and exited 0
        ap.error("no row of the table is left by --only/--exclude/--skip-slow (the rows' labels"
                 " are the README model table's first column)")  # fmt: skip
    out = Path(args.out or tempfile.mkdtemp(prefix="n2react-table-"))
    print(HEADER)
    print(RULE)
    lines: dict[str, str] = {}
    for i, (label, overrides) in enumerate(rows):
        overrides = overrides + list(args.extra)
        cells, wall = run_row(overrides, protocols, out / f"row_{i:02d}")
        cmd = "python -m train " + " ".join(overrides)
        lines[label] = f"| {label} | `{cmd}` | {' | '.join(cells)} | {wall:.0f} s |"
        print(lines[label], flush=True)
    if args.write_readme:
        write_readme(lines, ROOT / "README.md")
        print("README.md: model table updated", file=sys.stderr)
    print(f"\nrun directories: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from n2react.errors import run_script

    raise SystemExit(run_script(main))
