"""`python -m n2react.compare RUN_A RUN_B`: two runs on the same folds, paired.

RUN_A and RUN_B are run directories of `python -m train` or MLflow parent run ids. For each key
metric (pooled MAE, RMSE, r and the count within ±0.477 by default) it prints A, B, the
difference A - B with its 95 % paired bootstrap interval (the same clusters, or groups of a
grouped CV, drawn for both runs: :mod:`n2react.bootstrap`) and P(A better), the share of
resamples in which A is better. Say "A beats B" only where the interval excludes zero and it rests
on at least 6 units (:data:`n2react.bootstrap.MIN_UNITS_FOR_VERDICT`; with 3 outer folds the
verdict is "too few units (3 folds) to tell"). Runs whose out-of-fold clusters, folds or groups
differ are refused: they were not cross-validated alike.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from n2react.arguments import Parser
from n2react.bootstrap import (
    MIN_UNITS_FOR_VERDICT,
    RESAMPLES,
    SEED,
    Paired,
    check_metrics,
    compare_oof,
    folds_text,
    pooled_units,
)
from n2react.errors import N2ReactError
from n2react.metrics import figure
from n2react.runstore import OOF_FILE, json_text, read_oof
from n2react.tracking import DEFAULT_URI, default_uri, short_id_note

DEFAULT_METRICS = ("pooled_test_mae", "pooled_test_rmse", "pooled_test_r", "pooled_test_within")
MIN_RESAMPLES, MAX_RESAMPLES = 100, 100_000


def _no_table(p: Path) -> str:
    """Why the folder ``p`` has no out-of-fold table, in one line: a sweep's folder (its job
    folders hold the runs), a run not finished yet, or no run of python -m train at all."""
    from n2react.runstore import CONFIG_FILE
    from n2react.unfinished import folder_problem

    if why := folder_problem(p, "compare it", jobs=2):
        return why
    if (p / CONFIG_FILE).is_file():
        return f"{p}: no {OOF_FILE} (its run stopped before its outer folds were done?)"
    return f"{p}: no {OOF_FILE} (not a finished nested-CV run of python -m train?)"


def _check_store(uri: str) -> None:
    """A SQLite store that does not exist is an error, not a new empty store; a server that
    does not answer is one too, not minutes of retries."""
    from n2react.store_uri import unreadable

    if why := unreadable(uri):
        raise N2ReactError(why)


@dataclass(frozen=True)
class Loaded:
    """One side of a comparison: its out-of-fold table, a name, the run folder it was read from
    (a run directory, or the ``run_dir`` an MLflow run records) and its MLflow run id if any."""

    oof: pd.DataFrame
    name: str
    folder: Path | None
    run_id: str | None = None


def load_oof(run: str, tracking_uri: str) -> Loaded:
    """The out-of-fold table of a run directory or an MLflow parent run, and a name for it."""
    from n2react.tracking import RUN_ID

    p = Path(run)
    if p.is_dir():
        if not (p / OOF_FILE).is_file():
            raise N2ReactError(_no_table(p))
        return Loaded(read_oof(p / OOF_FILE, str(p)), str(p), p.resolve())
    if not RUN_ID.match(run):
        raise N2ReactError(
            f"{run}: neither a run directory nor an MLflow run id{short_id_note(run)}"
        )
    _check_store(tracking_uri)
    from n2react.mlflow_runs import RunReader
    from n2react.unfinished import status_problem, store_problem

    try:
        reader = RunReader(tracking_uri)
        info = reader.run(run)
        names = set(reader.list_artifacts(run))
    except Exception as exc:
        raise N2ReactError(f"MLflow run {run}: {store_problem(exc, tracking_uri)}") from exc
    if why := info.fold_run_problem():
        raise N2ReactError(why)
    if OOF_FILE not in names and (why := status_problem(info, "compare it")):
        raise N2ReactError(why)  # an n2react parent run ("not an n2react parent run?" said)
    if OOF_FILE not in names:
        raise N2ReactError(f"MLflow run {run}: no artifact {OOF_FILE} (not an n2react parent run?)")
    with tempfile.TemporaryDirectory(prefix="n2react-compare-") as tmp:
        local = reader.download(run, OOF_FILE, Path(tmp))
        oof = read_oof(Path(local), f"MLflow run {run}")
    recorded = info.tags.get("run_dir")
    folder = Path(recorded).resolve() if recorded else None
    return Loaded(oof, f"{info.tags.get('mlflow.runName') or run} ({run[:8]})", folder, run)


def _same_run(a: Loaded, b: Loaded) -> bool:
    """Whether both sides are one run: one folder, or a run directory and the MLflow run that
    wrote it (two MLflow runs are two runs, even in one folder: a later run replaces an earlier
    one's files, so a run id and its old folder are one run only while the files are its own)."""
    if a.folder is None or a.folder != b.folder or (a.run_id and b.run_id):
        return False
    return (a.run_id is None and b.run_id is None) or a.oof.equals(b.oof)


def compare_runs(
    run_a: str,
    run_b: str,
    tracking_uri: str,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[list[Paired], str, str, str]:
    """(the paired comparisons, A's name, B's name, what was resampled)."""
    check_metrics(metrics)  # before the runs are read (downloaded from a server, say)
    a, b = load_oof(run_a, tracking_uri), load_oof(run_b, tracking_uri)
    if run_a == run_b or _same_run(a, b):
        # every difference 0 [0, 0]: figures that look like a finding
        also = "" if run_a == run_b else f" (both are the run in {a.folder})"
        raise N2ReactError(f"{run_a} is compared with itself{also}: name two runs")
    oof_a = a.oof
    rows = compare_oof(oof_a, b.oof, metrics, resamples, seed)
    parts = []
    if any(m.startswith("pooled_") for m in metrics):
        units, kind = pooled_units(oof_a)
        parts.append(f"the {units} {kind} (pooled_*)")
    if any(m.startswith("mean_") for m in metrics):
        # one repeat's folds, as the verdict counts them (a repeat's folds hold the same
        # clusters again): "the 10 outer folds x 2 repeats", not "the 20 outer folds"
        parts.append(f"the {folds_text(oof_a)} (mean_*)")
    what = f"{' and '.join(parts)}, {resamples} resamples, seed {seed}"
    return rows, a.name, b.name, what


def _undefined(row: Paired) -> str:
    """'' or which run's figure is undefined (NaN: r of a run predicting one value per fold),
    so that there is no difference to judge."""
    which = [name for name, v in (("A", row.a), ("B", row.b)) if not np.isfinite(v)]
    if not which:
        return "" if np.isfinite(row.diff) else "undefined difference"
    return f"{' and '.join(which)}: {row.metric} undefined"


def _verdict(row: Paired) -> str:
    if undefined := _undefined(row):  # "no clear difference" said more than is known
        return undefined
    if row.too_few_units:  # its interval may exclude zero: the range of 3 folds' differences
        return row.too_few
    if not row.decided:
        return "no clear difference"
    return "A better" if row.p_a_better > 0.5 else "B better"


def few_units_caption(rows: list[Paired]) -> str:
    """'' or a line under the table: which rows rest on too few units, and why that is no
    finding."""
    few = dict.fromkeys(f"{r.units} {r.unit_kind}" for r in rows if r.too_few_units)
    if not few:
        return ""
    return (
        f"{' and '.join(few)}: too few units for a verdict (an exact sign-flip test on n paired "
        f"units cannot reach p < 0.05 below n = {MIN_UNITS_FOR_VERDICT}); "
        "their A - B, interval and P(A better) are no finding"
    )


def _table(rows: list[Paired], name_a: str, name_b: str, what: str):  # noqa: ANN202 - rich Table
    from rich.table import Table

    caption = "\n".join(filter(None, [f"paired bootstrap over {what}", few_units_caption(rows)]))
    table = Table(title=f"A = {name_a}\nB = {name_b}", caption=caption)
    for col in ("metric", "A", "B", "A - B", "95% CI of A - B", "P(A better)", ""):
        table.add_column(col, justify="left" if col in ("metric", "") else "right")
    for r in rows:
        d = 1 if r.metric.endswith("within") else 3
        undefined = bool(_undefined(r))  # its figures print '-' (they printed nan, +nan)
        table.add_row(
            r.metric,
            figure(r.a, f".{d}f"),
            figure(r.b, f".{d}f"),
            figure(r.diff, f"+.{d}f"),
            "-" if undefined else f"[{r.low:+.{d}f}, {r.high:+.{d}f}]",
            "-" if undefined else f"{r.p_a_better:.2f}",
            _verdict(r),
        )
    return table


def main(argv: list[str] | None = None, prog: str = "python -m n2react.compare") -> int:
    parser = Parser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("run_a", help="run directory of python -m train, or an MLflow run id")
    parser.add_argument("run_b", help="the other run (same data, same outer folds)")
    parser.add_argument(
        "--metric",
        action="append",
        default=None,
        help="pooled_test_{r,rmse,mae,within} or mean_test_{r,rmse,mae,r2}; repeat for more "
        f"(default: {', '.join(DEFAULT_METRICS)})",
    )
    parser.add_argument(
        "--resamples",
        type=int,
        default=RESAMPLES,
        help=f"bootstrap resamples, {MIN_RESAMPLES} to {MAX_RESAMPLES} (default {RESAMPLES})",
    )
    parser.add_argument(
        "--seed", type=int, default=SEED, help=f"bootstrap seed, 0 or more (default {SEED})"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--tracking-uri", default=None, help=f"default: $MLFLOW_TRACKING_URI, else {DEFAULT_URI}"
    )
    args = parser.parse_args(argv)
    args.tracking_uri = args.tracking_uri or default_uri()
    if not MIN_RESAMPLES <= args.resamples <= MAX_RESAMPLES:  # 100 000 hold ~1 GB of weights
        parser.error(f"--resamples {args.resamples}: from {MIN_RESAMPLES} to {MAX_RESAMPLES}")
    if args.seed < 0:  # numpy's generator raised its ValueError as a traceback
        parser.error(f"--seed {args.seed}: a seed is 0 or more")
    metrics = tuple(args.metric or DEFAULT_METRICS)
    try:
        rows, name_a, name_b, what = compare_runs(
            args.run_a, args.run_b, args.tracking_uri, metrics, args.resamples, args.seed
        )
    except N2ReactError as exc:
        sys.stderr.write(f"n2react: error: {exc}\n")
        return 2
    if args.json:
        out = {"a": name_a, "b": name_b, "resampled": what, "metrics": []}
        for r in rows:
            out["metrics"].append({**asdict(r), "decided": r.decided, "verdict": _verdict(r)})
        sys.stdout.write(json_text(out))  # an undefined figure (NaN) is null, as in summary.json
        return 0
    from n2react.terminal import StdoutConsole

    StdoutConsole(width=None if sys.stdout.isatty() else 120).print(
        _table(rows, name_a, name_b, what)
    )
    return 0


if __name__ == "__main__":  # stdout closed early (`| head`): exit 141, no traceback
    from n2react.quiet import closed_stdout_ends_quietly

    sys.exit(closed_stdout_ends_quietly(main))
