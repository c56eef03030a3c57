"""Terminal output for people: progress bars over folds and trials, a summary table."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from n2react.board import RUN_DELETED, SCORED, vs_best_note
from n2react.metrics import figure
from n2react.provenance import USED_MARKS, USED_TEXT

console = Console(stderr=True, width=None if sys.stderr.isatty() else 110)


class StdoutConsole(Console):
    """A console on stdout (a command's output, ``| head`` may close): rich answers a broken pipe
    itself, exiting 1; this one raises it, so that :func:`n2react.quiet.closed_stdout_ends_quietly`
    ends the command with 141 as every other command ends into a closed pipe."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


PLAIN_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


def log_handler(level: int | str = logging.NOTSET) -> logging.Handler:
    """The terminal's log handler (conf/hydra/job_logging/rich.yaml).

    On a terminal: rich's handler on the same console as the progress bars, so a log line prints
    above the bars instead of glued onto them. Otherwise (a file, CI, a pipe): plain one-line
    records that are easy to grep.
    """
    handler: logging.Handler
    if console.is_terminal:
        from rich.logging import RichHandler

        handler = RichHandler(
            console=console, show_path=False, markup=False, log_time_format="[%X]", level=level
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(level)
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    return handler


class OncePerProcess(logging.Filter):
    """Let an identical WARNING (same logger, same text) through once per process: the jobs of a
    sweep run in one process and would otherwise repeat the same data warning in every job."""

    _seen: ClassVar[set[tuple[str, str]]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        key = (record.name, record.getMessage())
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


class FoldProgress:
    """Two bars: outer folds, and the trials of the current search."""

    def __init__(self, n_folds: int, trials_per_fold: int, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.trials_per_fold = trials_per_fold
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not self.enabled,
            transient=False,
        )
        self._folds = self._progress.add_task("outer folds", total=n_folds)
        self._trials = self._progress.add_task(
            "search trials", total=max(trials_per_fold, 1), visible=trials_per_fold > 0
        )
        self._final: TaskID | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[FoldProgress]:
        with self._progress:
            yield self

    def trial_done(self) -> None:
        self._progress.advance(self._trials)

    def fold_done(self) -> None:
        self._progress.advance(self._folds)
        self._progress.reset(self._trials, total=max(self.trials_per_fold, 1))

    def start_final(self) -> None:
        """The refit on all clusters gets its own line (its clock runs while it fits)."""
        self._final = self._progress.add_task("final refit", total=1)
        self._progress.reset(self._trials, total=max(self.trials_per_fold, 1))

    def final_done(self) -> None:
        if self._final is not None:
            self._progress.update(self._final, completed=1)


@contextlib.contextmanager
def refit_bar(
    total: int, enabled: bool = True, what: str = "interval validation refits"
) -> Iterator[Callable[..., None]]:
    """A progress bar of the validation refits (or ``what``) on a terminal; yields the step to
    call per refit (or with the amount done)."""
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not (enabled and sys.stderr.isatty()),
    )
    with bar:
        task = bar.add_task(what, total=total)
        yield lambda amount=1: bar.advance(task, amount)


COLUMNS = ("test_r", "test_rmse", "test_mae", "test_r2", "train_r", "train_rmse")


def ci(summary: dict[str, float], key: str, digits: int = 2, sep: str = ", ") -> str:
    """``[low, high]``: the bootstrap interval of ``key`` in ``summary`` ('' when it has none)."""
    low, high = summary.get(f"{key}_ci_low"), summary.get(f"{key}_ci_high")
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return ""
    return f"[{low:.{digits}f}{sep}{high:.{digits}f}]"


def mean_sd(mean: float | None, sd: float | None, sep: str = " ± ") -> str:
    """``mean ± sd`` over the folds; ``-`` where the mean is undefined (not ``nan ± nan``)."""
    return "-" if figure(mean) == "-" else f"{figure(mean)}{sep}{figure(sd)}"


def held_out(groups: str, width: int = 24) -> str:
    """The held-out group(s) of a fold, shortened to ``width`` characters."""
    return groups if len(groups) <= width else groups[: width - 1] + "…"


def summary_table(
    folds: pd.DataFrame, summary: dict[str, float], title: str, note: str = ""
) -> Table:
    """Per-fold scores, mean ± std and pooled figures, each with its 95 % bootstrap interval;
    ``note`` under it (:func:`n2react.bootstrap.few_units_note`: intervals over too few units).

    A grouped run (``folds`` has a ``groups`` column) names each fold's held-out group(s) and
    leads with the pooled figures: a fold of three Co clusters has no meaningful r of its own.
    """
    grouped = "groups" in folds
    table = Table(title=title, title_style="bold", show_lines=False, caption=note or None)
    table.add_column("fold", justify="right")
    if grouped:
        table.add_column("held out", justify="left")
    for col in ("test r", "test RMSE", "test MAE", "test R²", "train r", "train RMSE"):
        table.add_column(col, justify="right")
    pad = [""] if grouped else []
    for _, row in folds.iterrows():
        name = [held_out(str(row["groups"]))] if grouped else []
        table.add_row(str(row["fold"]), *name, *(figure(row[c]) for c in COLUMNS))
    table.add_section()

    def mean_rows() -> None:
        table.add_row(
            "mean" if grouped else "[bold]mean",
            *pad,
            *(mean_sd(summary["mean_" + k], summary["std_" + k], "±") for k in COLUMNS),
        )
        table.add_row("95% CI", *pad, *(ci(summary, "mean_" + k, sep=",") for k in COLUMNS))

    def pooled_rows() -> None:
        if "pooled_test_r" not in summary:
            return
        keys = ("r", "rmse", "mae")
        table.add_row("[bold]pooled", *pad, *(figure(summary[f"pooled_test_{k}"]) for k in keys))
        table.add_row("95% CI", *pad, *(ci(summary, f"pooled_test_{k}", sep=",") for k in keys))

    first, second = (pooled_rows, mean_rows) if grouped else (mean_rows, pooled_rows)
    first()
    second()
    return table


def closing_line(summary: dict[str, float], grouped: bool) -> str:
    """The run's last log line: its figures with their 95 % intervals; a grouped run leads with
    the pooled ones (its per-fold r is no figure of merit: a fold may hold three clusters)."""

    def fig(key: str) -> str:
        return f"{figure(summary[key])} {ci(summary, key)}".rstrip()

    pooled = ""
    if "pooled_test_r" in summary:
        pooled = "pooled r {}, RMSE {}, MAE {}, {} within ±0.477".format(
            *(fig(f"pooled_test_{k}") for k in ("r", "rmse", "mae")),
            f"{summary['pooled_test_within']:.0f} {ci(summary, 'pooled_test_within', 0)}".rstrip(),
        )
    mean = "mean test r {}, RMSE {}".format(
        *(
            f"{mean_sd(summary[f'mean_test_{k}'], summary[f'std_test_{k}'])} "
            f"{ci(summary, f'mean_test_{k}')}".rstrip()
            for k in ("r", "rmse")
        )
    )
    if grouped:
        rmse = figure(summary["mean_test_rmse"])
        return f"{pooled}; per-fold mean RMSE {rmse}" if pooled else mean
    return f"{mean}; {pooled}" if pooled else mean


def show(table: Table, width: int | None = None) -> None:
    """Print ``table`` on the terminal; off a terminal (a log file, CI), ``width`` columns wide."""
    if width is not None and not console.is_terminal:
        Console(stderr=True, width=width).print(table)
    else:
        console.print(table)


def group_table(groups: pd.DataFrame, title: str) -> Table:
    """Pooled out-of-fold scores per group (one row per metal or family)."""
    table = Table(title=title, title_style="bold")
    for col in ("group", "n", "r", "RMSE", "MAE", "bias", "within ±0.477"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for _, row in groups.iterrows():
        r = figure(row["r"] if row["n"] >= 3 else None)  # undefined: '-' (it printed n/a)
        table.add_row(
            str(row["group"]),
            f"{row['n']:.0f}",
            r,
            f"{row['rmse']:.3f}",
            f"{row['mae']:.3f}",
            f"{row['bias']:+.3f}",
            f"{row['within']:.0f} / {row['n']:.0f}",
        )
    return table


def leaderboard_table(board: pd.DataFrame, metrics: list[str], title: str) -> Table:
    """The sweep's jobs, best first (n2react.leaderboard): the ranking metric (the first) with its
    95 % interval and its paired difference with the best job (interval, P(best better)), the
    other metrics plain; failed jobs last (their errors are in leaderboard.csv/.md and the report);
    a job whose MLflow run was deleted while it ran ranked by its scores, its run id "deleted".
    A comparison on too few units (3 outer folds) says so under the table.
    """
    metrics = list(dict.fromkeys(metrics))
    paired = bool("vs_best" in board and board["vs_best"].notna().any())
    extra = ["vs best", "P(best\nbetter)"] if paired else []
    rows = []
    for _, row in board.iterrows():
        if row["status"] not in SCORED:
            values = [str(row["status"]), *[""] * (len(metrics) - 1 + len(extra))]
        else:
            value = row[metrics[0]]  # undefined (NaN: r of constant predictions): '-'
            shown = figure(value)
            if shown != "-":
                shown = f"{shown} {ci(row.to_dict(), metrics[0], sep=',')}"
            values = [shown.rstrip()]
            if paired:
                if row["rank"] == 1:
                    values += ["best", ""]
                elif pd.notna(row["vs_best"]):
                    low, high = row["vs_best_ci_low"], row["vs_best_ci_high"]
                    values += [
                        f"{row['vs_best']:+.3f} [{low:+.2f},{high:+.2f}]",
                        f"{row['p_best_better']:.2f}",
                    ]
                else:
                    values += ["-", ""]
            values += [f"{row[m]:.3f}" if pd.notna(row[m]) else "-" for m in metrics[1:]]
        run_id = str(row["run_id"])[:8] if row["run_id"] else "-"
        if row["status"] == RUN_DELETED:  # ranked by its scores; no run left to show them
            run_id = "deleted"
        rows.append([str(row["rank"]), str(row["job"]), str(row["name"]), *values, run_id])
    short = [m.replace("_test_", " ") for m in metrics[1:]]  # mean_test_r -> mean r
    cols = ["rank", "job", "run name", metrics[0], *extra, *short, "run id"]
    table = Table(title=title, title_style="bold", caption=vs_best_note(board, metrics[0]) or None)
    for i, col in enumerate(cols):
        widest = max([len(r[i]) for r in rows] + [1])
        left = col in ("run name", "run id")
        table.add_column(
            col, justify="left" if left else "right", min_width=None if i == 2 else widest
        )
    for r in rows:
        table.add_row(*r)
    return table


def file_title(what: str, source: str) -> tuple[str, list[str]]:
    """A table's title naming the file ``source`` by its name (short enough to wrap, if at all, at
    a space on an 80-column terminal), and the caption line giving its whole path when it has a
    folder (a path wraps mid-word: below the table, not in the title)."""
    name = Path(source).name
    return f"{what} of {name}", [f"file: {source}"] if name != source else []


def predictions_table(table: pd.DataFrame, source: str, coverage: float, limit: int = 40) -> Table:
    """predict's clusters of the file ``source`` as a chemist reads them: predicted lg(k1), the
    interval, the expected |error|, whether the cluster is in the domain (and why not), measured
    values when given; the first ``limit`` rows (the caption says how many more the CSV holds)."""
    title, notes = file_title("predicted lg(k1)", source)
    t = Table(title=title, title_style="bold", pad_edge=False)
    has_iv = {"y_lower", "y_upper"} <= set(table.columns)
    has_ee = "expected_error" in table.columns
    labelled = "y_true" in table.columns
    cols = ["cluster", "predicted"]
    cols += [f"{100 * coverage:g} %\ninterval"] if has_iv else []
    cols += ["expected\n|error|"] if has_ee else []
    cols += ["measured", "error"] if labelled else []
    cols += ["in domain"]
    for col in cols:  # numbers never wrap (80 columns hold them), names and reasons may
        left = col in ("cluster", "in domain")
        t.add_column(col, justify="left" if left else "right", no_wrap=not left)
    from n2react.isomers import row_labels

    labels = row_labels(table)  # a name on several rows (isomers): each with its row
    for i, (_, row) in enumerate(table.head(limit).iterrows()):
        used = row.get("used_by_run")  # the run's own training or calibration cluster
        cells = [f"{labels[i]}{USED_MARKS.get(used, '')}", f"{row['y_pred']:.2f}"]
        if has_iv:
            cells.append(f"[{row['y_lower']:.1f}, {row['y_upper']:.1f}]")
        if has_ee:
            cells.append(f"{row['expected_error']:.2f}")
        if labelled and pd.notna(row["y_true"]):
            cells += [f"{row['y_true']:.2f}", f"{row['y_pred'] - row['y_true']:+.2f}"]
        elif labelled:  # a cluster the file gives no lg(k1) for
            cells += ["-", ""]
        reasons = row.get("domain_reasons")
        why = str(reasons) if isinstance(reasons, str) and reasons else "outside"
        cells.append("yes" if bool(row["in_domain"]) else f"[red]no[/red]: {why}")
        t.add_row(*cells)
    if len(table) > limit:
        notes.append(f"first {limit} of {len(table)} clusters; all of them in the CSV")
    shown = set(table.head(limit).get("used_by_run", pd.Series(dtype=object)))
    notes += [f"{mark} {USED_TEXT[u]}" for u, mark in USED_MARKS.items() if u in shown]
    t.caption = "\n".join(notes) or None
    return t


def scores_table(rows: list[tuple[str, Mapping[str, float]]], source: str) -> Table:
    """predict's scores against the measured lg(k1) of the file ``source``, one row per set of
    clusters (all of them; those the model was not trained on, when some were)."""
    title, notes = file_title("predicted vs measured lg(k1)", source)
    t = Table(title=title)
    for col in ("clusters", "n", "r", "RMSE", "MAE", "R²", "within ±0.477"):
        t.add_column(col, justify="left" if col == "clusters" else "right")
    for name, m in rows:
        t.add_row(
            name,
            f"{m['n']:.0f}",
            figure(m["r"]),
            f"{m['rmse']:.3f}",
            f"{m['mae']:.3f}",
            figure(m["r2"]),
            f"{m['within_error']:.0f} / {m['n']:.0f}",
        )
    if any(not np.isfinite(m["r"]) for _, m in rows):
        notes.append("- : r and R² need at least 3 clusters with different values")
    t.caption = "\n".join(notes) or None
    return t
