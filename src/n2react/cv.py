"""Cross-validation: the one fold loop every protocol goes through.

:func:`fold_predictions` fits a fresh model per split on its training rows and predicts its test
rows. The outer nested CV (a model tuned by inner CV per fold,
:class:`n2react.search.TunedPipeline`), the inner CV of every search trial and the pair-split
protocol all call it; nothing here knows which model it runs. A pipeline whose final step
declares :class:`~n2react.capabilities.FitsMany` (the Keras MLP) trains all its split models
together, its preprocessing still fitted per split.
With groups, every fit gets its training rows' groups, so a group-aware model keeps them whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from n2react.bootstrap import score_intervals
from n2react.capabilities import (
    EpochTrained,
    FitsMany,
    GroupAware,
    SpreadPredictor,
    final_step,
    fitted_inner,
)
from n2react.data import Dataset
from n2react.metrics import METRICS, constant, figure, pooled_metrics, regression_metrics
from n2react.splitters import Split

log = logging.getLogger(__name__)

Rows = pd.DataFrame | np.ndarray


def _rows(X: Rows, idx: np.ndarray) -> Any:
    return X.iloc[idx] if isinstance(X, pd.DataFrame) else X[idx]


def fit_model(model: Any, X: Rows, y: np.ndarray, groups: np.ndarray | None = None) -> Any:
    """``model.fit(X, y)``, handing ``groups`` to a group-aware model (or pipeline step)."""
    if groups is None or not isinstance(final_step(model), GroupAware):
        return model.fit(X, y)
    if isinstance(model, Pipeline):
        return model.fit(X, y, **{f"{model.steps[-1][0]}__groups": groups})
    return model.fit(X, y, groups=groups)


def predict_mean_std(model: Any, X: Rows) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions, and their spread when the model gives one (pairwise: over references)."""
    if isinstance(final_step(model), SpreadPredictor):
        mean, std = model.predict(X, return_std=True)
        std = None if std is None else np.asarray(std, dtype=float).ravel()
        return np.asarray(mean, dtype=float).ravel(), std
    return np.asarray(model.predict(X), dtype=float).ravel(), None


def _fused(
    pipeline: Pipeline, X: Rows, y: np.ndarray, splits: Sequence[Split], groups: Any
) -> list:
    """All split models of a FitsMany final step trained in one call (preprocessing per split)."""
    pre, final = pipeline[:-1], pipeline.steps[-1][1]
    X_trains, y_trains, X_tests = [], [], []
    for s in splits:
        p = clone(pre)
        X_trains.append(np.asarray(p.fit_transform(_rows(X, s.train), y[s.train]), dtype=float))
        y_trains.append(y[s.train])
        X_tests.append(np.asarray(p.transform(_rows(X, s.test)), dtype=float))
    kwargs = {} if groups is None else {"groups": [groups[s.train] for s in splits]}
    preds = clone(final).fit_predict_many(X_trains, y_trains, X_tests, **kwargs)
    return [np.asarray(p, dtype=float).ravel() for p in preds]


def fold_predictions(
    make_model: Callable[[Split], Any],
    X: Rows,
    y: np.ndarray,
    splits: Sequence[Split],
    groups: np.ndarray | None = None,
    on_fold: Callable[[Split, Any, np.ndarray, np.ndarray | None], None] | None = None,
) -> list[np.ndarray]:
    """THE fold loop: for each split, a fresh ``make_model(split)`` is fitted on the training
    rows (with their groups) and predicts the test rows.

    ``on_fold(split, fitted_model, prediction, spread)`` sees each fold as soon as it is done
    (the outer CV logs it); without it, a FitsMany pipeline trains all folds together.
    """
    first = make_model(splits[0])
    if on_fold is None and isinstance(first, Pipeline) and isinstance(final_step(first), FitsMany):
        return _fused(first, X, y, splits, groups)
    preds = []
    for i, s in enumerate(splits):
        model = first if i == 0 else make_model(s)
        fit_model(model, _rows(X, s.train), y[s.train], None if groups is None else groups[s.train])
        pred, std = predict_mean_std(model, _rows(X, s.test))
        if on_fold is not None:
            on_fold(s, model, pred, std)
        preds.append(pred)
    return preds


# --------------------------------------------------------------------------- outer CV results


@dataclass
class FoldResult:
    """Everything one outer fold produced (plain data: logging and plots read it)."""

    split: Split
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


def selected_features(pipeline: Pipeline, names: list[str]) -> list[str]:
    """Names of the descriptors that reach the model after selection."""
    try:
        return [str(n) for n in pipeline[:-1].get_feature_names_out(names)]
    except Exception:  # a custom step without get_feature_names_out
        return list(names)


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
            if self.dataset.groups is not None:
                row["groups"] = ", ".join(sorted(set(self.dataset.groups[f.split.test])))
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
            if ds.groups is not None:
                frame["group"] = ds.groups[f.split.test]
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
        """mean/std over outer folds of every train and test metric, and the pooled test ones,
        each mean and pooled figure with its 95 % bootstrap interval (``<metric>_ci_low`` /
        ``<metric>_ci_high``, :mod:`n2react.bootstrap`: the folds for a mean, the protocol's units
        (clusters, or the groups of a grouped CV) for a pooled figure).

        Pooled: r, RMSE, MAE and the count within ±log10(3) of all out-of-fold predictions at
        once (over repeats, the mean of each repeat's pooled figure).
        """
        table = self.fold_table()
        out: dict[str, float] = {}
        for part in ("test", "train"):
            for m in METRICS:
                col = table[f"{part}_{m}"]
                out[f"mean_{part}_{m}"] = float(col.mean())
                out[f"std_{part}_{m}"] = float(col.std(ddof=1)) if len(col) > 1 else 0.0
        oof = self.oof_table()
        per_repeat = [pooled_metrics(g["y_true"], g["y_pred"]) for _, g in oof.groupby("repeat")]
        for m in per_repeat[0]:
            out[f"pooled_test_{m}"] = float(np.mean([p[m] for p in per_repeat]))
        intervals = score_intervals(oof, table)
        ordered: dict[str, float] = {}
        for key, value in out.items():  # each interval right after its metric
            ordered[key] = value
            for bound in ("ci_low", "ci_high"):
                if f"{key}_{bound}" in intervals:
                    ordered[f"{key}_{bound}"] = intervals[f"{key}_{bound}"]
        return ordered

    def constant_note(self) -> str:
        """One line naming the outer folds whose model predicted one value for all their test
        (or training) clusters, whose r is therefore undefined; '' when there is none."""

        def folds(table: pd.DataFrame) -> list[str]:  # (a one-cluster fold has no r anyway)
            pred = table.groupby("fold")["y_pred"]
            return [str(f) for f, p in pred if len(p) > 1 and constant(p)]

        test, train = folds(self.oof_table()), folds(self.train_table())
        if not test and not train:
            return ""
        if test == train:
            where = f"{_folds_text(test)} (test and training clusters)"
        else:
            sides = (("test", test), ("training", train))
            where = " and ".join(f"{_folds_text(f)} ({side} clusters)" for side, f in sides if f)
        return (
            f"r is undefined for constant predictions: the model predicted one value in {where}; "
            "r is shown as - there (null in summary.json) and left out of the mean r"
        )

    def group_table(self) -> pd.DataFrame | None:
        """Pooled scores per group (metal, family, ...) of the out-of-fold predictions."""
        if self.dataset.groups is None:
            return None
        rows = []
        for g, part in self.oof_table().groupby("group"):
            m = pooled_metrics(part["y_true"], part["y_pred"])
            bias = float(np.mean(part["y_pred"] - part["y_true"]))
            rows.append({"group": g, "n": len(part), **m, "bias": bias})
        return pd.DataFrame(rows).sort_values("n", ascending=False, ignore_index=True)


def _folds_text(folds: list[str]) -> str:
    return f"fold{'s' if len(folds) > 1 else ''} {', '.join(folds)}"


def outer_fold_result(
    split: Split, model: Any, dataset: Dataset, pred_te: np.ndarray, std_te: np.ndarray | None
) -> FoldResult:
    """The outer fold's scores and diagnostics from its fitted :class:`TunedPipeline`."""
    X, y = dataset.X, dataset.y
    pipeline, search = model.pipeline_, model.search_
    pred_tr = predict_mean_std(pipeline, X.iloc[split.train])[0]
    metrics = {f"train_{k}": v for k, v in regression_metrics(y[split.train], pred_tr).items()}
    metrics.update({f"test_{k}": v for k, v in regression_metrics(y[split.test], pred_te).items()})
    held = ""
    if dataset.groups is not None:  # a grouped fold: name what it held out
        held = f" [held out: {', '.join(sorted(set(dataset.groups[split.test])))}]"
    log.info(
        "fold %d%s: test r %s  RMSE %s  MAE %s  (train r %s)",  # "-": r undefined, not nan
        split.fold,
        held,
        *(figure(metrics[k]) for k in ("test_r", "test_rmse", "test_mae", "train_r")),
    )
    return FoldResult(
        split=split,
        metrics=metrics,
        best_params=search.best_params,
        inner_score=search.best_score,
        selected_features=selected_features(pipeline, dataset.feature_names),
        y_pred_test=pred_te,
        y_pred_train=pred_tr,
        trials=search.trials,
        y_std_test=std_te,
        model=pipeline,
    )


def nested_cv(
    dataset: Dataset,
    make_model: Callable[[Split], Any],
    splits: Sequence[Split],
    on_fold_end: Callable[[FoldResult], None] | None = None,
    done: Mapping[int, FoldResult] | None = None,
) -> CVResult:
    """The outer CV: ``make_model(split)`` is a tuned pipeline (inner search + refit) per fold.

    ``done`` maps fold numbers to folds already finished (a resumed run read them back): they are
    not fitted again, nor passed to ``on_fold_end``, and keep their place in the result.
    """
    done = dict(done or {})
    results: dict[int, FoldResult] = {}
    warned: list[int] = []

    def on_fold(split: Split, model: Any, pred: np.ndarray, std: np.ndarray | None) -> None:
        fold = outer_fold_result(split, model, dataset, pred, std)
        results[split.fold] = fold
        where, once = f"outer fold {split.fold}", "said for the first such outer fold only"
        if not warned and unconverged(where, fold.model, fold.best_params, once):
            warned.append(split.fold)
        if on_fold_end is not None:
            on_fold_end(fold)

    todo = [s for s in splits if s.fold not in done]
    if todo:
        fold_predictions(make_model, dataset.X, dataset.y, todo, dataset.groups, on_fold=on_fold)
    folds = [done[s.fold] if s.fold in done else results[s.fold] for s in splits]
    return CVResult(dataset=dataset, folds=folds)


#: A network whose best validation loss is above this many times the loss of predicting the mean
#: of its training targets did not converge (a learning rate far too high): a warning says so.
WORSE_THAN_MEAN = 10.0


def unconverged(where: str, model: Any, best_params: Mapping[str, Any], note: str = "") -> bool:
    """Warn (and say True) when the network of the fitted ``model`` (a pipeline or an estimator,
    tuned to ``best_params``) kept weights whose validation loss is over :data:`WORSE_THAN_MEAN`
    times its training targets' variance, naming ``where`` (``outer fold 2``, ``final model``,
    ``pair split``) and the key to change, then ``note``. The one check of every network a run
    fits: the outer folds, the final model and the pair split all call it."""
    net = fitted_inner(final_step(model))
    if not isinstance(net, EpochTrained) or net.best_epoch_ < 1 or net.target_var_ <= 0:
        return False  # not trained in epochs, or diverged at once (said by the engine)
    ratio = net.history_["val_loss"][net.best_epoch_ - 1] / net.target_var_
    if not ratio > WORSE_THAN_MEAN:
        return False
    key = net.rate_param
    searched = any(k.endswith(f"__{key}") for k in best_params)
    log.warning(
        "%s: the network's best validation loss (MSE %.3g) is %.3g times that of "
        "predicting the mean of its training rows (%.3g): training did not converge; lower "
        "model.%s.%s (%g here)%s",
        where,
        ratio * net.target_var_,
        ratio,
        net.target_var_,
        "space" if searched else "estimator",
        key,
        net.get_params()[key],
        f"; {note}" if note else "",
    )
    return True
