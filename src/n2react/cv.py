"""Nested cross-validation: the one outer loop every model goes through.

For each outer fold a fresh pipeline is built, tuned by inner CV on the outer-training rows only,
refitted with the best parameters on those rows and scored on the held-out rows. Nothing here
knows which model it runs: a model differs only by its estimator and its search space.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from sklearn.base import clone
from sklearn.model_selection import KFold, RepeatedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError

from n2react.data import Dataset
from n2react.errors import ConfigError, DataError
from n2react.metrics import METRICS, regression_metrics
from n2react.pipeline import build_pipeline, search_space
from n2react.search import SearchResult, tune

log = logging.getLogger(__name__)


@dataclass
class OuterSplit:
    fold: int  # 1-based, counted over repeats
    repeat: int  # 1-based
    train: np.ndarray
    test: np.ndarray


@dataclass
class FoldResult:
    """Everything one outer fold produced (plain data: logging and plots read it)."""

    split: OuterSplit
    metrics: dict[str, float]
    best_params: dict[str, Any]
    inner_score: float
    selected_features: list[str]
    y_pred_test: np.ndarray
    y_pred_train: np.ndarray
    trials: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: spread of the prediction (pairwise models: std over the reference clusters), else None
    y_std_test: np.ndarray | None = None
    #: the fitted outer-fold pipeline (for fold-model ensembles and selector diagnostics)
    model: Pipeline | None = None


@dataclass
class CVResult:
    dataset: Dataset
    folds: list[FoldResult]

    def fold_table(self) -> pd.DataFrame:
        """One row per outer fold: scores, best parameters, selected features."""
        rows = []
        for f in self.folds:
            row: dict[str, Any] = {"fold": f.split.fold, "repeat": f.split.repeat}
            row.update({"n_train": len(f.split.train), "n_test": len(f.split.test)})
            row.update(f.metrics)
            row["inner_score"] = f.inner_score
            row["best_params"] = repr(f.best_params)
            row["selected_features"] = "; ".join(f.selected_features)
            rows.append(row)
        return pd.DataFrame(rows)

    def oof_table(self) -> pd.DataFrame:
        """One row per (cluster, outer fold it was tested in): cluster, y_true, y_pred, fold."""
        ds = self.dataset
        frames = []
        for f in self.folds:
            frame = pd.DataFrame(
                {
                    "cluster": ds.clusters[f.split.test],
                    "y_true": ds.y[f.split.test],
                    "y_pred": f.y_pred_test,
                    "fold": f.split.fold,
                    "repeat": f.split.repeat,
                }
            )
            if f.y_std_test is not None:
                frame["y_std"] = f.y_std_test
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def train_table(self) -> pd.DataFrame:
        """In-fold (training) predictions, one row per (cluster, fold it was trained in)."""
        ds = self.dataset
        frames = [
            pd.DataFrame(
                {
                    "cluster": ds.clusters[f.split.train],
                    "y_true": ds.y[f.split.train],
                    "y_pred": f.y_pred_train,
                    "fold": f.split.fold,
                }
            )
            for f in self.folds
        ]
        return pd.concat(frames, ignore_index=True)

    def summary(self) -> dict[str, float]:
        """mean/std over outer folds of every train and test metric."""
        table = self.fold_table()
        out: dict[str, float] = {}
        for part in ("test", "train"):
            for m in METRICS:
                col = table[f"{part}_{m}"]
                out[f"mean_{part}_{m}"] = float(col.mean())
                out[f"std_{part}_{m}"] = float(col.std(ddof=1)) if len(col) > 1 else 0.0
        return out


def outer_splits(dataset: Dataset, cv: DictConfig) -> list[OuterSplit]:
    """The outer folds: the dataset's own (authors' files) or (Repeated)KFold from the config."""
    n = dataset.n_rows
    if dataset.folds is not None:
        log.info("using the %d predefined folds of %s", len(dataset.folds), dataset.name)
        return [
            OuterSplit(k, 1, np.asarray(tr), np.asarray(te))
            for k, (tr, te) in enumerate(dataset.folds, start=1)
        ]
    k, repeats = int(cv.outer_folds), int(cv.get("repeats", 1))
    if k < 2:
        raise ConfigError(f"cv.outer_folds={k}: need at least 2 folds")
    if k > n:
        raise DataError(f"{dataset.source}: {n} rows, fewer than cv.outer_folds={k}")
    if repeats < 1:
        raise ConfigError(f"cv.repeats={repeats}: need at least 1")
    shuffle = bool(cv.get("shuffle", True))
    seed = int(cv.seed) if cv.get("seed") is not None else None
    if repeats > 1:
        splitter: Any = RepeatedKFold(n_splits=k, n_repeats=repeats, random_state=seed)
    else:
        splitter = KFold(k, shuffle=shuffle, random_state=seed if shuffle else None)
    return [
        OuterSplit(i + 1, i // k + 1, tr, te)
        for i, (tr, te) in enumerate(splitter.split(np.arange(n)))
    ]


def check_inner(cfg: DictConfig, splits: list[OuterSplit]) -> None:
    """Fail early (before any training) when the inner CV cannot work."""
    if cfg.search.get("oracle") is None or not search_space(cfg):
        return
    inner = int(cfg.cv.inner_folds)
    smallest = min(len(s.train) for s in splits)
    if inner < 2:
        raise ConfigError(f"cv.inner_folds={inner}: need at least 2 folds for a search")
    if inner > smallest:
        raise ConfigError(f"cv.inner_folds={inner}: more than the {smallest} rows of an outer fold")


def predict_mean_std(model: Pipeline, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions, and their spread when the model gives one (pairwise: over references)."""
    final = model.steps[-1][1]
    if "return_std" in inspect.signature(final.predict).parameters:
        mean, std = model.predict(X, return_std=True)
        return np.asarray(mean, dtype=float).ravel(), np.asarray(std, dtype=float).ravel()
    return np.asarray(model.predict(X), dtype=float).ravel(), None


def selected_features(pipeline: Pipeline, names: list[str]) -> list[str]:
    """Names of the descriptors that reach the model after selection."""
    pre = pipeline[:-1]
    try:
        return [str(n) for n in pre.get_feature_names_out(names)]
    except Exception:  # a custom step without get_feature_names_out
        return list(names)


def fit_and_tune(
    cfg: DictConfig,
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    directory: Path,
    project_name: str,
    on_trial_end: Callable[[], None] | None = None,
) -> tuple[Pipeline, SearchResult]:
    """Tune a fresh pipeline by inner CV on (X, y), then refit the best one on all of (X, y)."""
    pipeline = build_pipeline(cfg)
    result = tune(
        pipeline,
        search_space(cfg),
        X,
        y,
        search_cfg=cfg.search,
        inner_folds=int(cfg.cv.inner_folds),
        seed=int(cfg.seed),
        directory=directory,
        project_name=project_name,
        on_trial_end=on_trial_end,
    )
    best = clone(pipeline).set_params(**result.best_params)
    try:
        best.fit(X, y)
    except InvalidParameterError as exc:
        raise ConfigError(f"model/selector parameters: {str(exc).splitlines()[0]}") from exc
    return best, result


def nested_cv(
    dataset: Dataset,
    cfg: DictConfig,
    *,
    workdir: Path,
    on_fold_end: Callable[[FoldResult], None] | None = None,
    on_trial_end: Callable[[], None] | None = None,
    splits: list[OuterSplit] | None = None,
) -> CVResult:
    """Run every outer fold; ``on_fold_end`` sees each result as soon as it exists."""
    splits = splits if splits is not None else outer_splits(dataset, cfg.cv)
    check_inner(cfg, splits)
    X, y, names = dataset.X, dataset.y, dataset.feature_names
    results: list[FoldResult] = []
    for split in splits:
        X_tr, y_tr = X.iloc[split.train], y[split.train]
        X_te, y_te = X.iloc[split.test], y[split.test]
        model, search = fit_and_tune(
            cfg,
            X_tr,
            y_tr,
            directory=workdir / "search",
            project_name=f"outer_{split.fold:02d}",
            on_trial_end=on_trial_end,
        )
        pred_tr = predict_mean_std(model, X_tr)[0]
        pred_te, std_te = predict_mean_std(model, X_te)
        metrics = {f"train_{k}": v for k, v in regression_metrics(y_tr, pred_tr).items()}
        metrics.update({f"test_{k}": v for k, v in regression_metrics(y_te, pred_te).items()})
        fold = FoldResult(
            split=split,
            metrics=metrics,
            best_params=search.best_params,
            inner_score=search.best_score,
            selected_features=selected_features(model, names),
            y_pred_test=pred_te,
            y_pred_train=pred_tr,
            trials=search.trials,
            y_std_test=std_te,
            model=model,
        )
        log.info(
            "fold %d: test r %.3f  RMSE %.3f  (train r %.3f)",
            split.fold,
            metrics["test_r"],
            metrics["test_rmse"],
            metrics["train_r"],
        )
        results.append(fold)
        if on_fold_end is not None:
            on_fold_end(fold)
    return CVResult(dataset=dataset, folds=results)
