"""Transfer to mixed-metal clusters: train each candidate config on the 159 homonuclear clusters,
score the 18 labelled Fe-V clusters, and compare every candidate with the baseline, paired.

    python benchmarks/transfer.py                           # all rows (~15-25 min on 2 cores)
    python benchmarks/transfer.py --configs baseline,pairwise_trees
    python benchmarks/transfer.py --out /tmp/t --reuse       # re-score finished run folders
    python benchmarks/transfer.py --write-readme             # replace the README's table

Each row is one `python -m train <overrides> cv.groups=family eval.path=<FeV file>`, run through
the same task function as the CLI (`n2react.run.run`, composed with Hydra's compose API) without
MLflow, explanations or plots that change no figure. Its final model (refitted on all 159
clusters) predicts the FeV clusters; its family-grouped out-of-fold predictions are the second
check. Wall time on the 2-core box: seconds for the tree rows, ~5 min for each pairwise-tree row
(11 fits on ~20,000 pairs), ~5 min for the pairwise Keras row. The runs' model files are deleted
once scored (a pairwise-tree model takes ~1 GB) unless --keep-models.

Intervals: the project's bootstrap (`n2react.bootstrap`: 2000 draws, 95 % percentile intervals)
over composition units, not clusters: on FeV a unit is the metal core + ligand elements (Fe2V-C,
FeV2-S, ...: 10 units whose clusters differ only in ligand count), in the grouped CV the CV's
family. "vs baseline" is paired (`n2react.bootstrap.compare_oof`: the same resampled units for
both configs); P is the share of draws in which the row's MAE is lower (ties count half). The
interval, flag and ranking columns come from the run's conformal intervals (y_lower / y_upper /
expected_error / in_domain in its transfer predictions); "not run" for a run folder without them.
The statistics behind each figure are in bench_lib/transfer_stats.py (re-exported here).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

# the table's statistics (in benchmarks/bench_lib, found however this file is loaded: as a
# script, or by path from another benchmark or a test); other benchmarks import them from here
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lib.transfer_stats import (  # noqa: E402
    _mae,
    composition_unit,
    describe,
    draws,
    paired,
)
from bench_lib.transfer_stats import interval as interval  # noqa: E402

from n2react.arguments import Parser, comma_list
from n2react.metrics import figure

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- transfer-table-begin -->", "<!-- transfer-table-end -->"
FEV = "heteronuclear-FeV-18-15features.xlsx"

#: (key, label, overrides). Fixed before any FeV figure was computed; see the README for why
#: each is here. The first row is the baseline every other row is compared with.
CONFIGS: list[tuple[str, str, str]] = [
    ("baseline", "extra trees (baseline)", "data=homonuclear_15 model=extra_trees"),
    (
        "ridge_trees_formula",
        "ridge trend + extra trees + ligand counts (the former preset)",
        "data=homonuclear_15 model=ridge_trees data.formula=true "
        "data.formula_columns=[0_n_metal,0_n_H,0_n_C,0_n_N,0_n_O,0_n_S,0_n_ligand,0_ligand/metal]",
    ),
    (
        "pairwise_trees",
        "pairwise extra trees",
        "data=homonuclear_15 model=extra_trees pairwise=on",
    ),
    (
        "anchored_ensemble",
        "mean of extra trees and pairwise extra trees",
        "data=homonuclear_15 model=anchored_ensemble",
    ),
    (
        "pairwise_mlp",
        "pairwise Keras MLP on 15 + products",
        "data=homonuclear_15 features=interactions model=keras_mlp pairwise=on",
    ),
    ("preset", "the preset (`experiment=new_compositions`)", "experiment=new_compositions"),
    # the preset's interval calibration: on held-out homonuclear families (the former preset's),
    # and the FeV-calibrated alternatives to its constant width (uncertainty.difficulty)
    (
        "preset_oof",
        "the preset, intervals calibrated on held-out families (former)",
        "experiment=new_compositions uncertainty.calibration_path=null "
        "uncertainty.difficulty=spread_knn uncertainty.expected_error=same",
    ),
    (
        "preset_distance",
        "the preset, intervals scaled by distance",
        "experiment=new_compositions uncertainty.difficulty=knn_distance "
        "uncertainty.expected_error=same",
    ),
    (
        "preset_spread",
        "the preset, intervals scaled by the trees' spread",
        "experiment=new_compositions uncertainty.difficulty=spread uncertainty.expected_error=same",
    ),
    (
        "preset_residual",
        "the preset, intervals scaled by neighbours' errors",
        "experiment=new_compositions uncertainty.difficulty=knn_residual "
        "uncertainty.expected_error=same",
    ),
    (
        "preset_spread_knn",
        "the preset, intervals scaled by spread and neighbours' errors",
        "experiment=new_compositions uncertainty.difficulty=spread_knn "
        "uncertainty.expected_error=same",
    ),
]
#: The row `experiment=new_compositions` reproduces (chosen by the rule in the README).
RECOMMENDED = "baseline"


# ---------------------------------------------------------------------------- the runs
def fev_file() -> Path:
    """The 18 labelled Fe-V clusters, in ``$N2_DATA_DIR`` (no public copy to fetch)."""
    from n2react.data.files import DATA_DIR_ENV
    from n2react.errors import DataError

    env = os.environ.get(DATA_DIR_ENV)
    if env and (Path(env).expanduser() / FEV).is_file():
        return Path(env).expanduser() / FEV
    where = f"{DATA_DIR_ENV}={env}" if env else f"{DATA_DIR_ENV} is unset"
    raise DataError(f"{FEV} not found ({where}): set {DATA_DIR_ENV} to the folder holding it")


def _compose(overrides: list[str]):  # noqa: ANN202 - a DictConfig
    from n2react.compose import compose_config

    quiet = {"tracking.enabled": False, "progress": False, "final_model": True, "explain": False}
    return compose_config(overrides, quiet)


def run_logged(cfg, run_dir: Path) -> dict[str, float]:  # noqa: ANN001 - a DictConfig
    """``n2react.run.run`` with the run's terminal tables written to ``<run_dir>.log`` instead of
    the terminal, so a benchmark prints its own figures, not every run's fold tables; warnings
    and errors still reach the terminal."""
    import contextlib

    from n2react.run import run

    log_file = run_dir.with_name(run_dir.name + ".log")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    print(f"{run_dir.name}: running (its tables: {log_file})", file=sys.stderr, flush=True)
    with open(log_file, "w") as fh, contextlib.redirect_stderr(fh):
        return run(cfg, run_dir)


def recorded_wall(run_dir: Path) -> float | None:
    """The wall time a finished row recorded (``wall.json``, written last); None when the row
    has no outputs, or a missing or damaged ``wall.json`` (it ended in a JSON traceback)."""
    if not (run_dir / "transfer" / "transfer_predictions.csv").exists():
        return None
    try:
        return float(json.loads((run_dir / "wall.json").read_text())["wall_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def train_row(overrides: list[str], run_dir: Path, reuse: bool, keep_models: bool) -> float:
    """Run one config (unless ``reuse`` and its folder already holds the outputs); its wall time."""
    if reuse and (wall := recorded_wall(run_dir)) is not None:
        return wall
    from n2react.runstore import write_json

    t0 = time.perf_counter()
    run_logged(_compose(overrides), run_dir)
    wall = time.perf_counter() - t0
    write_json(run_dir / "wall.json", {"wall_s": wall})  # whole or not at all
    if not keep_models:  # a pairwise-tree row's models take ~1 GB each
        from n2react.runstore import LEGACY_MODEL_FILE, MODEL_FILE

        for name in (MODEL_FILE, LEGACY_MODEL_FILE):
            for p in run_dir.rglob(f"{name}*"):
                p.unlink()
    return wall


# ---------------------------------------------------------------------------- the table
def _tables(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    fev = pd.read_csv(run_dir / "transfer" / "transfer_predictions.csv")
    oof = pd.read_csv(run_dir / "oof_predictions.csv").sort_values("cluster", kind="stable")
    return fev, oof.reset_index(drop=True)


def _ci(v: tuple[float, float, float], fmt: str = ".2f") -> str:
    """A figure and its interval; an undefined one is ``-`` (:func:`n2react.metrics.figure`)."""
    value, lo, hi = v
    if not (np.isfinite(value) and np.isfinite(lo)):
        return figure(value, fmt)
    return f"{figure(value, fmt)} [{figure(lo, fmt)}, {figure(hi, fmt)}]"


def _diff(p: tuple[float, ...]) -> str:
    d, lo, hi, pb = p
    if d == lo == hi == 0:
        return "same predictions"
    return f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}], P {pb:.2f}"


def header(groups: str = "family") -> str:
    cv = {"family": "family-grouped", "metal": "leave-one-metal-out"}[groups]
    return (
        "| config | command | FeV MAE | FeV within ±0.477 | FeV r | FeV MAE vs baseline "
        "| 90 % interval coverage / width | flagged / in-domain MAE "
        f"| Spearman(uncertainty, abs error) | {cv} CV MAE | CV MAE vs baseline | wall |"
    )


RULE = "| --- " * 12 + "|"


def score_rows(
    runs: dict[str, Path], walls: dict[str, float], extra: list[str] | tuple[str, ...] = ()
) -> dict[str, str]:
    """One README line per run, scored against the baseline's run; ``extra``: the overrides
    added to every row, shown in its command."""
    fev0, oof0 = _tables(runs["baseline"])
    fev_units = fev0["cluster"].map(composition_unit).to_numpy()
    cv_units = oof0["group"].astype(str).to_numpy() if "group" in oof0 else None
    fev_idx = draws(fev_units)
    cv_idx = draws(cv_units) if cv_units is not None else None
    lines = {}
    for key, label, overrides in CONFIGS:
        if key not in runs:
            continue
        fev, oof = _tables(runs[key])
        if list(fev["cluster"]) != list(fev0["cluster"]) or list(oof["cluster"]) != list(
            oof0["cluster"]
        ):
            raise SystemExit(f"{key}: its clusters differ from the baseline's; cannot pair them")
        s = describe(fev, fev_idx)
        cv = describe(oof, cv_idx, ("mae",)) if cv_idx else {"mae": (_mae(oof), np.nan, np.nan)}
        vs = "—" if key == "baseline" else _diff(paired(fev, fev0, fev_units))
        cv_vs = "—" if key == "baseline" or cv_idx is None else _diff(paired(oof, oof0, cv_units))
        cov = flag = rank = "not run"  # a run without intervals (an old run folder)
        if "coverage" in s and "expected_error" in fev:
            cov = f"{_ci(s['coverage'])} / {_ci(s['width'])}"
            n_out = int((~fev["in_domain"].astype(bool)).sum())
            flag = f"{n_out} of {len(fev)} flagged"
            if n_out:  # no interval from 1 or 2 flagged clusters
                ratio = s["flag_ratio"] if n_out >= 3 else (s["flag_ratio"][0], np.nan, np.nan)
                flag = f"{_ci(ratio)}x ({flag})"
            rank = _ci(s["spearman"])
        cmd = " ".join(["python -m train", overrides, *extra])
        lines[key] = (
            f"| {label} | `{cmd}` | {_ci(s['mae'])} | {_ci(s['within'])} | {_ci(s['r'])} | {vs} "
            f"| {cov} | {flag} | {rank} | {_ci(cv['mae'])} | {cv_vs} "
            f"| {walls[key]:.0f} s |"
        )
    return lines


def write_readme(lines: dict[str, str], readme: Path, groups: str = "family") -> None:
    """Replace the block between the transfer-table markers; nothing else changes. A row not
    re-run here (``--configs`` picks some) keeps its old line, unless the old table was of the
    other grouped CV (``--groups``)."""
    from n2react.runstore import write_text

    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} block to replace")
    head, rest = text.split(BEGIN, 1)
    old_block, tail = rest.split(END, 1)
    old_lines = old_block.strip().splitlines()
    old: dict[str, str] = {}
    if old_lines and old_lines[0] == header(groups):
        for key, label, _ in CONFIGS:
            kept = [ln for ln in old_lines[2:] if ln.startswith(f"| {label} | ")]
            if kept:
                old[key] = kept[0]
    rows = [lines.get(k) or old.get(k) for k, _, _ in CONFIGS]
    block = "\n".join([header(groups), RULE, *[r for r in rows if r]])
    write_text(readme, f"{head}{BEGIN}\n{block}\n{END}{tail}")  # whole or not at all


def main(argv: list[str] | None = None) -> int:
    ap = Parser(description=__doc__.split("\n\n")[0])
    keys = [k for k, _, _ in CONFIGS]
    ap.add_argument(
        "--configs",
        type=comma_list(),
        default=",".join(keys),
        help=f"comma list of {', '.join(keys)}",
    )
    ap.add_argument("--out", default=None, help="folder for the run directories (default: temp)")
    ap.add_argument(
        "--groups", default="family", choices=["family", "metal"], help="the grouped CV's groups"
    )
    ap.add_argument("--reuse", action="store_true", help="re-score run folders already in --out")
    ap.add_argument("--keep-models", action="store_true", help="keep the runs' model files (large)")
    ap.add_argument("--write-readme", action="store_true", help="update README.md's table")
    ap.add_argument("extra", nargs="*", help="overrides added to every row, e.g. seed=1")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    chosen = list(args.configs)
    bad = [k for k in chosen if k not in keys]
    if bad:
        ap.error(f"unknown config(s) {', '.join(bad)}; expected {', '.join(keys)}")
    if args.reuse and not (args.out and Path(args.out).is_dir()):  # it trained every row afresh
        where = f"--out {args.out}: no such folder" if args.out else "no --out given"
        ap.error(f"--reuse: {where} (the --out of an earlier run, whose rows it re-scores)")
    if "baseline" not in chosen:
        chosen.insert(0, "baseline")  # every row is compared with it
    fev = fev_file()

    out = Path(args.out or tempfile.mkdtemp(prefix="n2react-transfer-"))
    runs: dict[str, Path] = {}
    walls: dict[str, float] = {}
    for key, _, overrides in CONFIGS:
        if key not in chosen:
            continue
        extra = [f"cv.groups={args.groups}", f"eval.path={fev}", *args.extra]
        runs[key] = out / key
        walls[key] = train_row(overrides.split() + extra, runs[key], args.reuse, args.keep_models)
        print(f"{key}: {walls[key]:.0f} s", file=sys.stderr, flush=True)
    lines = score_rows(runs, walls, args.extra)
    print(header(args.groups))
    print(RULE)
    for k in lines:
        print(lines[k])
    if args.write_readme:
        write_readme(lines, ROOT / "README.md", args.groups)
        print("README.md: transfer table updated", file=sys.stderr)
    print(f"\nrun directories: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from n2react.errors import run_script

    raise SystemExit(run_script(main))
