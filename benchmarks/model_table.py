"""Run the README's model table: every row is the nested CV of one `python -m train` command.

    python benchmarks/model_table.py                 # all rows (about 40 min on 2 CPU cores)
    python benchmarks/model_table.py --skip-slow     # without the pairwise rows (~5 min)
    python benchmarks/model_table.py --only formula  # rows whose label contains 'formula'

Each row runs the same task function as the CLI (10 outer folds, KFold shuffled with seed 42
unless the row says otherwise), without MLflow and without the final refit (neither changes the
CV figures), and prints a Markdown row: mean ± std over the outer folds of the per-fold test r,
RMSE and MAE, and the wall time. Run directories go under --out.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]

#: (label, the CLI overrides). Rows with pairwise=on are the slow ones (~7 min each).
ROWS: list[tuple[str, str]] = [
    ("random forest", "model=rfr"),
    ("random forest, grid", "model=rfr search=grid"),
    ("extra trees", "model=extra_trees"),
    ("gradient boosting", "model=gbr"),
    ("ridge, grid", "model=ridge search=grid"),
    ("SVR + k-best, grid", "model=svr selector=kbest search=grid"),
    ("Keras MLP, random search (20 trials)", "model=keras_mlp search=random"),
    ("ensemble (GBR + extra trees + SVR)", "model=ensemble"),
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
]


def _compose(overrides: list[str]):  # noqa: ANN202 - a DictConfig
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    with open_dict(cfg):
        cfg.tracking.enabled = False
        cfg.progress = False
        cfg.final_model = False
    return cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="run rows whose label contains this text")
    ap.add_argument("--skip-slow", action="store_true", help="skip the pairwise rows")
    ap.add_argument("--out", default=None, help="folder for the run directories (default: temp)")
    ap.add_argument("extra", nargs="*", help="overrides added to every row, e.g. seed=1")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    from n2react.run import run

    out = Path(args.out or tempfile.mkdtemp(prefix="n2react-table-"))
    rows = [
        (label, overrides.split())
        for label, overrides in ROWS
        if (args.only is None or args.only in label)
        and not (args.skip_slow and "pairwise=on" in overrides)
    ]
    print("| model | command | test r | test RMSE | test MAE | wall |")
    print("| --- | --- | --- | --- | --- | --- |")
    for i, (label, overrides) in enumerate(rows):
        overrides = overrides + list(args.extra)
        cfg = _compose(overrides)
        t0 = time.perf_counter()
        m = run(cfg, out / f"row_{i:02d}")
        wall = time.perf_counter() - t0
        cells = [
            f"{m[f'mean_test_{k}']:.3f} ± {m[f'std_test_{k}']:.3f}" for k in ("r", "rmse", "mae")
        ]
        cmd = "python -m train " + " ".join(overrides)
        print(f"| {label} | `{cmd}` | {' | '.join(cells)} | {wall:.0f} s |", flush=True)
    print(f"\nrun directories: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
