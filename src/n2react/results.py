"""Results of a run as files: fold folders, tables, plots; each handed to the tracker.

Everything here reads plain result tables (:class:`n2react.cv.CVResult`), so the same files can be
regenerated from a logged run without training.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from n2react import runstore
from n2react.capabilities import SelectionFrequency
from n2react.cv import CVResult, FoldResult
from n2react.errors import ConfigError, first_line
from n2react.figures import parity_plot, selection_frequency_plot
from n2react.runstore import FOLD_FILE, PREDICTIONS_FILE, fold_dir
from n2react.splitters import Split
from n2react.tracking import TAG_NOTE, Tracker


def write_fold(fold: FoldResult, run_dir: Path) -> tuple[list[Path], Path]:
    """The fold's files: artifacts of its child run, and its fitted model (for the parent).

    ``predictions.csv`` (row, part, y_pred, y_std) and ``fold.json`` (scores, best parameters)
    let a resumed run read the fold back (:func:`read_fold`); ``fold.json`` comes last.
    """
    d = fold_dir(run_dir, fold.split.fold)
    d.mkdir(parents=True, exist_ok=True)
    (d / FOLD_FILE).unlink(missing_ok=True)
    # the fold models give predict its spread over folds
    runstore.keep_version(fold.model)  # in its model file, as the final model's
    model_file = runstore.save_model(fold.model, d / runstore.MODEL_FILE)
    selected = d / runstore.SELECTED_FILE
    paths = [runstore.write_text(selected, "\n".join(fold.selected_features) + "\n")]
    if len(fold.trials):
        paths.append(runstore.write_csv(d / runstore.TRIALS_FILE, fold.trials))
    s = fold.split
    std = fold.y_std_test if fold.y_std_test is not None else np.full(len(s.test), np.nan)
    preds = pd.DataFrame(
        {
            "row": np.concatenate([s.test, s.train]),
            "part": ["test"] * len(s.test) + ["train"] * len(s.train),
            "y_pred": np.concatenate([fold.y_pred_test, fold.y_pred_train]),
            "y_std": np.concatenate([std, np.full(len(s.train), np.nan)]),
        }
    )
    runstore.write_csv(d / PREDICTIONS_FILE, preds)
    meta = {
        "fold": s.fold,
        "repeat": s.repeat,
        "metrics": fold.metrics,
        "best_params": fold.best_params,
        "inner_score": fold.inner_score,
        "selected_features": fold.selected_features,
        "has_std": fold.y_std_test is not None,
    }
    runstore.write_json(d / FOLD_FILE, meta)
    return paths, model_file


#: what a finished fold's files hold (:func:`write_fold`), read back by :func:`read_fold`
_FOLD_KEYS = {"metrics", "best_params", "inner_score", "selected_features"}
_FOLD_COLUMNS = {"part", "row", "y_pred"}


def _read_fold_files(d: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """``fold.json`` and ``predictions.csv`` of the finished fold folder ``d``; one line naming
    the file when one cannot be read (cut off, emptied or edited by hand), which says how to fit
    the fold again."""
    file = d / FOLD_FILE
    try:
        meta = json.loads(file.read_text())
        if not isinstance(meta, dict):
            raise ValueError("not a mapping")
        if missing := _FOLD_KEYS - meta.keys():
            raise ValueError(f"lacks {', '.join(sorted(missing))}")
        file = d / PREDICTIONS_FILE
        preds = pd.read_csv(file, float_precision="round_trip")
        if missing := _FOLD_COLUMNS - set(preds.columns):
            raise ValueError(f"lacks column(s) {', '.join(sorted(missing))}")
    except (OSError, ValueError) as exc:  # JSON, CSV and UTF-8 errors are ValueErrors
        raise ConfigError(
            f"resume: {file}: cannot be read ({first_line(exc)}); remove {d} to fit that outer "
            "fold again"
        ) from exc
    return meta, preds


def read_fold(run_dir: Path, split: Split) -> FoldResult | None:
    """The finished fold ``split`` of ``run_dir`` as written by :func:`write_fold`; None when the
    fold did not finish. Rows other than ``split``'s are a ConfigError (another config's folds)."""
    d = fold_dir(run_dir, split.fold)
    model_file = runstore.model_path(d)
    if not (d / FOLD_FILE).exists() or model_file is None:
        return None
    meta, preds = _read_fold_files(d)
    test, train = preds[preds["part"] == "test"], preds[preds["part"] == "train"]
    if (
        meta.get("repeat") != split.repeat
        or not np.array_equal(test["row"].to_numpy(), split.test)
        or not np.array_equal(train["row"].to_numpy(), split.train)
    ):
        raise ConfigError(
            f"resume: {d} holds other rows than outer fold {split.fold} of this config; "
            "it cannot be resumed with it"
        )
    trials = d / "trials.csv"
    return FoldResult(
        split=split,
        metrics={k: runstore.number(v) for k, v in meta["metrics"].items()},
        best_params=dict(meta["best_params"]),
        inner_score=runstore.number(meta["inner_score"]),  # NaN (null) without a search
        selected_features=list(meta["selected_features"]),
        y_pred_test=test["y_pred"].to_numpy(dtype=float),
        y_pred_train=train["y_pred"].to_numpy(dtype=float),
        trials=runstore.read_csv(trials) if trials.exists() else pd.DataFrame(),
        y_std_test=test["y_std"].to_numpy(dtype=float) if meta.get("has_std") else None,
        model=runstore.load_model_file(model_file),
    )


def fold_artifacts(fold: FoldResult, run_dir: Path) -> tuple[list[Path], Path]:
    """The files :func:`write_fold` wrote for ``fold`` (child-run artifacts, model file)."""
    d = fold_dir(run_dir, fold.split.fold)
    paths = [p for p in (d / runstore.SELECTED_FILE, d / runstore.TRIALS_FILE) if p.exists()]
    return paths, runstore.model_path(d) or d / runstore.MODEL_FILE


#: The longest ``held_out`` tag: the names that fit, then how many there are in all.
HELD_OUT_LEN = 250


def held_out_tags(split: Split) -> dict[str, str]:
    """A grouped fold's tag ``held_out`` (its test groups, comma-joined, cut to
    :data:`HELD_OUT_LEN` characters at a name) and its description saying so; none otherwise."""
    names = split.held_out
    if not names:
        return {}
    tag = ", ".join(names)
    if len(tag) > HELD_OUT_LEN:
        more = f", ... ({len(names)} in all)"
        shown: list[str] = []
        for name in names:
            if len(", ".join([*shown, name])) + len(more) > HELD_OUT_LEN:
                break
            shown.append(name)
        tag = ", ".join(shown) + more
    note = (
        f"outer fold {split.fold} (repeat {split.repeat}): held out {split.grouped_by} "
        f"{', '.join(names)} ({len(split.test)} clusters); trained on the other groups"
    )
    return {"held_out": tag, TAG_NOTE: note[:5000]}


def log_fold_run(
    tracker: Tracker, fold: FoldResult, artifacts: list[Path], model_file: Path
) -> None:
    """The fold's child run (scores, best parameters, files) and its model on the parent."""
    params: dict[str, Any] = {f"best.{k}": v for k, v in fold.best_params.items()}
    params["n_selected"] = len(fold.selected_features)
    params["selected_features"] = ", ".join(fold.selected_features)
    metrics = dict(fold.metrics)
    if np.isfinite(fold.inner_score):
        metrics["inner_score"] = fold.inner_score
    tags = {"repeat": str(fold.split.repeat), **held_out_tags(fold.split)}
    tracker.log_fold(fold.split.fold, metrics, params, tags, artifacts)
    for p in (model_file, runstore.sha256_path(model_file)):  # predict checks one by the other
        tracker.log_artifact(p, f"fold_models/fold_{fold.split.fold:02d}")


def fold_logger(
    tracker: Tracker, run_dir: Path, done: Callable[[], None] | None = None
) -> Callable[[FoldResult], None]:
    """``on_fold_end`` of the outer CV: write the fold's files and log its child run."""

    def on_fold_end(fold: FoldResult) -> None:
        artifacts, model_file = write_fold(fold, run_dir)
        log_fold_run(tracker, fold, artifacts, model_file)
        if done is not None:
            done()

    return on_fold_end


def selection_frequencies(result: CVResult) -> pd.DataFrame | None:
    """Descriptor x outer fold: how often the stability selector kept it (None: no such step)."""
    cols = {}
    for f in result.folds:
        select = f.model.named_steps.get("select") if f.model is not None else None
        if not isinstance(select, SelectionFrequency):
            return None
        freq = select.selection_frequency_
        before = f.model[: list(f.model.named_steps).index("select")]
        names = before.get_feature_names_out(result.dataset.feature_names)
        cols[f"fold_{f.split.fold:02d}"] = pd.Series(freq, index=[str(n) for n in names])
    return pd.DataFrame(cols) if cols else None


def write_results(
    result: CVResult,
    summary: dict[str, float],
    run_dir: Path,
    title: str,
    group_extra: pd.DataFrame | None = None,
    selection_title: str | None = None,
    selector: str = "",
) -> list[Path]:
    """folds.csv, oof_predictions.csv, summary.json, the parity plot, per-group scores (with the
    columns of ``group_extra``, keyed by ``group``) and the selector's selection frequencies
    (when there is one; its figure titled ``selection_title``, default ``title``: the figure's
    own head names the selection, ``selector`` as the run's titles name it, so the model is said
    without its selector)."""
    oof = result.oof_table()
    paths = [
        runstore.write_csv(run_dir / runstore.FOLDS_TABLE_FILE, result.fold_table()),
        run_dir / runstore.OOF_FILE,
    ]
    cols = ["cluster", "y_true", "y_pred", "fold"] + (["repeat"] if oof["repeat"].max() > 1 else [])
    cols += [c for c in ("group", "y_std") if c in oof]
    runstore.write_csv(paths[1], oof[cols])
    paths.append(runstore.write_json(run_dir / runstore.SUMMARY_FILE, summary))
    paths.append(parity_plot(oof, result.train_table(), run_dir / "parity.png", title=title))
    groups = result.group_table()
    if groups is not None:
        if group_extra is not None:
            groups = groups.merge(group_extra, on="group", how="left")
        paths.append(runstore.write_csv(run_dir / "group_scores.csv", groups))
    freq = selection_frequencies(result)
    if freq is not None:
        paths.append(runstore.write_csv(run_dir / "selection_frequency.csv", freq, index=True))
        png = run_dir / "selection_frequency.png"
        paths.append(selection_frequency_plot(freq, png, selection_title or title, selector))
    return paths
