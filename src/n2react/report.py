"""Terminal output for people: progress bars over folds and trials, a summary table."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True, width=None if sys.stderr.isatty() else 110)


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
        self._progress.update(self._folds, description="final refit")


def summary_table(folds: pd.DataFrame, summary: dict[str, float], title: str) -> Table:
    """Per-fold scores and mean ± std, the way a paper table reads."""
    table = Table(title=title, title_style="bold", show_lines=False)
    table.add_column("fold", justify="right")
    for col in ("test r", "test RMSE", "test MAE", "test R²", "train r", "train RMSE"):
        table.add_column(col, justify="right")
    for _, row in folds.iterrows():
        table.add_row(
            str(row["fold"]),
            *(
                f"{row[c]:.3f}"
                for c in ("test_r", "test_rmse", "test_mae", "test_r2", "train_r", "train_rmse")
            ),
        )
    table.add_section()

    def pm(key: str) -> str:
        return f"{summary['mean_' + key]:.3f} ± {summary['std_' + key]:.3f}"

    table.add_row(
        "[bold]mean",
        *(pm(k) for k in ("test_r", "test_rmse", "test_mae", "test_r2", "train_r", "train_rmse")),
    )
    if "pooled_test_r" in summary:
        table.add_row(
            "[bold]pooled",
            *(f"{summary[f'pooled_test_{k}']:.3f}" for k in ("r", "rmse", "mae")),
            "",
            "",
            "",
        )
    return table


def show(table: Table) -> None:
    console.print(table)


def group_table(groups: pd.DataFrame, title: str) -> Table:
    """Pooled out-of-fold scores per group (one row per metal or family)."""
    table = Table(title=title, title_style="bold")
    for col in ("group", "n", "r", "RMSE", "MAE", "bias", "within ±0.477"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for _, row in groups.iterrows():
        r = "n/a" if row["n"] < 3 or not np.isfinite(row["r"]) else f"{row['r']:.3f}"
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
