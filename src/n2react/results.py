"""Results of a run as files: fold folders, tables, plots; each handed to the tracker.

Everything here reads plain result tables (:class:`n2react.cv.CVResult`), so the same files can be
regenerated from a logged run without training.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from n2react.cv import CVResult, FoldResult
from n2react.plots import parity_plot, selection_frequency_plot
from n2react.predict import write_sha256
from n2react.tracking import Tracker


def write_fold(fold: FoldResult, run_dir: Path) -> tuple[list[Path], Path]:
    """The fold's files: artifacts of its child run, and its fitted model (for the parent)."""
    d = run_dir / "folds" / f"fold_{fold.split.fold:02d}"
    d.mkdir(parents=True, exist_ok=True)
    model_file = d / "model.joblib"  # the fold models give predict its spread over folds
    joblib.dump(fold.model, model_file)
    write_sha256(model_file)  # predict checks it before unpickling
    (d / "selected_features.txt").write_text("\n".join(fold.selected_features) + "\n")
    paths = [d / "selected_features.txt"]
    if len(fold.trials):
        fold.trials.to_csv(d / "trials.csv", index=False)
        paths.append(d / "trials.csv")
    return paths, model_file


def fold_logger(
    tracker: Tracker, run_dir: Path, done: Callable[[], None] | None = None
) -> Callable[[FoldResult], None]:
    """``on_fold_end`` of the outer CV: write the fold's files and log its child run."""

    def on_fold_end(fold: FoldResult) -> None:
        artifacts, model_file = write_fold(fold, run_dir)
        params: dict[str, Any] = {f"best.{k}": v for k, v in fold.best_params.items()}
        params["n_selected"] = len(fold.selected_features)
        params["selected_features"] = ", ".join(fold.selected_features)
        metrics = dict(fold.metrics)
        if np.isfinite(fold.inner_score):
            metrics["inner_score"] = fold.inner_score
        tracker.log_fold(
            fold.split.fold, metrics, params, {"repeat": str(fold.split.repeat)}, artifacts
        )
        tracker.log_artifact(model_file, f"fold_models/fold_{fold.split.fold:02d}")
        if done is not None:
            done()

    return on_fold_end


def selection_frequencies(result: CVResult) -> pd.DataFrame | None:
    """Descriptor x outer fold: how often the stability selector kept it (None: no such step)."""
    cols = {}
    for f in result.folds:
        select = f.model.named_steps.get("select") if f.model is not None else None
        freq = getattr(select, "selection_frequency_", None)
        if freq is None:
            return None
        before = f.model[: list(f.model.named_steps).index("select")]
        names = before.get_feature_names_out(result.dataset.feature_names)
        cols[f"fold_{f.split.fold:02d}"] = pd.Series(freq, index=[str(n) for n in names])
    return pd.DataFrame(cols) if cols else None


def write_results(
    result: CVResult, summary: dict[str, float], run_dir: Path, title: str
) -> list[Path]:
    """folds.csv, oof_predictions.csv, summary.json, the parity plot, per-group scores and the
    selector's selection frequencies (when there is one)."""
    oof = result.oof_table()
    paths = [run_dir / "folds.csv", run_dir / "oof_predictions.csv", run_dir / "summary.json"]
    result.fold_table().to_csv(paths[0], index=False)
    cols = ["cluster", "y_true", "y_pred", "fold"] + (["repeat"] if oof["repeat"].max() > 1 else [])
    cols += [c for c in ("group", "y_std") if c in oof]
    oof[cols].to_csv(paths[1], index=False)
    paths[2].write_text(json.dumps(summary, indent=2) + "\n")
    paths.append(parity_plot(oof, result.train_table(), run_dir / "parity.png", title=title))
    groups = result.group_table()
    if groups is not None:
        groups.to_csv(run_dir / "group_scores.csv", index=False)
        paths.append(run_dir / "group_scores.csv")
    freq = selection_frequencies(result)
    if freq is not None:
        freq.to_csv(run_dir / "selection_frequency.csv")
        paths.append(run_dir / "selection_frequency.csv")
        paths.append(selection_frequency_plot(freq, run_dir / "selection_frequency.png"))
    return paths
