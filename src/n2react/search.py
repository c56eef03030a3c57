"""Hyperparameter search by inner cross-validation, driven by keras-tuner oracles.

One search-space format (YAML, see ``conf/model/*.yaml``) is translated once into keras-tuner
hyperparameters; grid, random, Bayesian and Hyperband searches are just different oracles over
it, for scikit-learn models and the Keras MLP alike. A trial's score is the mean inner-fold score
on the rows it is given (an outer training fold), so the outer test rows never reach the search.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline

from n2react.backend import import_quietly
from n2react.errors import ConfigError
from n2react.metrics import MAXIMIZE, regression_metrics

log = logging.getLogger(__name__)

Splits = Sequence[tuple[np.ndarray, np.ndarray]]


@dataclass
class SearchResult:
    """The chosen parameters (pipeline parameter names), their inner score and every trial."""

    best_params: dict[str, Any] = field(default_factory=dict)
    best_score: float = float("nan")
    trials: pd.DataFrame = field(default_factory=pd.DataFrame)


# --------------------------------------------------------------------------- inner CV


def _rows(X: pd.DataFrame | np.ndarray, idx: np.ndarray) -> Any:
    return X.iloc[idx] if isinstance(X, pd.DataFrame) else X[idx]


def cross_val_predictions(
    pipeline: Pipeline, X: pd.DataFrame | np.ndarray, y: np.ndarray, splits: Splits
) -> list[np.ndarray]:
    """Fit a fresh copy of ``pipeline`` per split and predict its held-out rows.

    A final estimator with ``fit_predict_many`` (the Keras MLP) trains all split models together
    in one compiled loop; its preprocessing is still fitted per split on the training rows only.
    """
    final = pipeline.steps[-1][1]
    if hasattr(final, "fit_predict_many"):
        pre = pipeline[:-1]
        X_trains, y_trains, X_tests = [], [], []
        for tr, te in splits:
            p = clone(pre)
            X_trains.append(np.asarray(p.fit_transform(_rows(X, tr), y[tr]), dtype=float))
            y_trains.append(y[tr])
            X_tests.append(np.asarray(p.transform(_rows(X, te)), dtype=float))
        model = clone(final)
        return [
            np.asarray(p, dtype=float).ravel()
            for p in model.fit_predict_many(X_trains, y_trains, X_tests)
        ]
    preds = []
    for tr, te in splits:
        est = clone(pipeline).fit(_rows(X, tr), y[tr])
        preds.append(np.asarray(est.predict(_rows(X, te)), dtype=float).ravel())
    return preds


def inner_cv_scores(
    pipeline: Pipeline, X: pd.DataFrame | np.ndarray, y: np.ndarray, splits: Splits
) -> dict[str, float]:
    """Mean of the per-fold scores (r, rmse, mae, r2) over ``splits``."""
    preds = cross_val_predictions(pipeline, X, y, splits)
    per_fold = [regression_metrics(y[te], p) for (_, te), p in zip(splits, preds)]
    return {k: float(np.nanmean([m[k] for m in per_fold])) for k in per_fold[0]}


# --------------------------------------------------------------------------- search space


def _default_for(spec: Mapping[str, Any], current: Any) -> Any:
    """The pipeline's configured value, when the hyperparameter can take it."""
    t = spec.get("type")
    if current is None or isinstance(current, bool) != (t == "bool"):
        return None
    if t == "choice":
        return current if current in list(spec.get("values", [])) else None
    if t in ("float", "int") and isinstance(current, int | float):
        lo, hi = spec.get("min"), spec.get("max")
        if lo is not None and hi is not None and lo <= current <= hi:
            if spec.get("step") is None:
                return int(current) if t == "int" else float(current)
    return None


def make_hyperparameters(
    space: Mapping[str, Mapping[str, Any]], defaults: Mapping[str, Any] | None = None
) -> Any:
    """Translate the YAML search space into a ``keras_tuner.HyperParameters``."""
    kt = import_quietly("keras_tuner")
    hp = kt.HyperParameters()
    defaults = defaults or {}
    for name, spec in space.items():
        key = (
            name.replace("model__base__", "model.space.")
            .replace("model__", "model.space.")
            .replace("select__", "selector.space.")
        )
        t = spec.get("type")
        default = _default_for(spec, defaults.get(name))
        try:
            if t == "float":
                hp.Float(
                    name,
                    float(spec["min"]),
                    float(spec["max"]),
                    step=spec.get("step"),
                    sampling=spec.get("sampling", "linear"),
                    default=default,
                )
            elif t == "int":
                hp.Int(
                    name,
                    int(spec["min"]),
                    int(spec["max"]),
                    step=spec.get("step"),
                    sampling=spec.get("sampling", "linear"),
                    default=default,
                )
            elif t == "choice":
                values = list(spec["values"])
                if not values:
                    raise ValueError("`values` is empty")
                hp.Choice(name, values, default=default)
            elif t == "bool":
                hp.Boolean(name, default=bool(default) if default is not None else False)
            else:
                raise ValueError(f"unknown type {t!r} (expected float, int, choice or bool)")
        except KeyError as exc:
            raise ConfigError(f"{key}: missing `{exc.args[0]}`") from exc
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{key}: {str(exc).splitlines()[0]}") from exc
    return hp


# --------------------------------------------------------------------------- the tuner


def _tuner_class() -> type:
    kt = import_quietly("keras_tuner")

    class InnerCVTuner(kt.engine.base_tuner.BaseTuner):
        """A keras-tuner tuner whose trial score is the inner-CV score of a pipeline.

        It never builds a Keras model itself (no TensorBoard set-up, no checkpoints): each trial
        clones the pipeline, sets the trial's parameters and cross-validates it.
        """

        def __init__(
            self,
            oracle: Any,
            pipeline: Pipeline,
            splits: Splits,
            objective: str,
            on_trial_end: Callable[[], None] | None = None,
            **kwargs: Any,
        ) -> None:
            self._pipeline = pipeline
            self._splits = splits
            self._objective = objective
            self._callback = on_trial_end
            super().__init__(oracle=oracle, hypermodel=None, **kwargs)

        def run_trial(self, trial: Any, X: Any, y: np.ndarray) -> dict[str, float]:
            params = pipeline_params(trial.hyperparameters.values, self._pipeline)
            est = clone(self._pipeline).set_params(**params)
            try:
                scores = inner_cv_scores(est, X, y, self._splits)
            except Exception as exc:  # a failing trial is a configuration problem: stop now
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise kt.errors.FatalError(f"{type(exc).__name__}: {first}") from exc
            score = scores[self._objective]
            if not math.isfinite(score):
                score = -1e9 if self._objective in MAXIMIZE else 1e9
            return {"score": score, **{f"inner_{k}": v for k, v in scores.items()}}

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            if self._callback is not None:
                self._callback()

        def save_model(self, trial_id: str, model: Any, step: int = 0) -> None:
            return None

        def load_model(self, trial: Any) -> None:
            return None

    return InnerCVTuner


EPOCH_PARAMS = ("model__max_epochs", "model__base__max_epochs")


def epochs_param(pipeline: Pipeline) -> str | None:
    """The pipeline parameter holding the model's epoch budget, if it is trained in epochs."""
    params = pipeline.get_params()
    return next((p for p in EPOCH_PARAMS if p in params), None)


def pipeline_params(values: Mapping[str, Any], pipeline: Pipeline) -> dict[str, Any]:
    """A trial's values as pipeline parameters; Hyperband's epoch budget becomes max_epochs."""
    params = {k: v for k, v in values.items() if not k.startswith("tuner/")}
    epochs = epochs_param(pipeline)
    if "tuner/epochs" in values and epochs is not None:
        params[epochs] = int(values["tuner/epochs"])
    return params


def check_search(pipeline: Pipeline, search_cfg: Mapping[str, Any]) -> None:
    """Fail before training when the search cannot drive this pipeline."""
    oracle = search_cfg.get("oracle")
    if oracle is None:
        return
    if "Hyperband" in str(oracle.get("_target_", "")):
        if epochs_param(pipeline) is None:
            raise ConfigError(
                "search=hyperband: the model is not trained in epochs (no max_epochs); "
                "use it with model=keras_mlp, or pick search=grid|random|bayesian"
            )


def _trials_table(oracle: Any) -> pd.DataFrame:
    rows = []
    for trial in oracle.trials.values():
        row: dict[str, Any] = {"trial": trial.trial_id, "status": str(trial.status)}
        row.update(trial.hyperparameters.values)
        for name in trial.metrics.metrics:
            row[name] = trial.metrics.get_last_value(name)
        rows.append(row)
    return pd.DataFrame(rows)


def tune(
    pipeline: Pipeline,
    space: Mapping[str, Mapping[str, Any]],
    X: pd.DataFrame | np.ndarray,
    y: np.ndarray,
    *,
    search_cfg: Mapping[str, Any],
    inner_folds: int,
    seed: int,
    directory: str | Path,
    project_name: str,
    on_trial_end: Callable[[], None] | None = None,
) -> SearchResult:
    """Search ``space`` by inner K-fold CV on (X, y); return the best parameters.

    State lives in ``directory/project_name``: an interrupted search started again with the same
    directory resumes where it stopped; a new run directory starts afresh.
    """
    if search_cfg.get("oracle") is None or not space:
        return SearchResult()
    from hydra.utils import instantiate

    kt = import_quietly("keras_tuner")

    objective = str(search_cfg.get("objective", "rmse"))
    if objective not in ("r", "rmse", "mae", "r2"):
        raise ConfigError(f"search.objective: {objective!r} is not one of r, rmse, mae, r2")
    direction = "max" if objective in MAXIMIZE else "min"
    check_search(pipeline, search_cfg)
    hp = make_hyperparameters(space, pipeline.get_params())
    try:
        oracle = instantiate(
            search_cfg["oracle"],
            objective=kt.Objective("score", direction=direction),
            hyperparameters=hp,
            _convert_="all",
        )
    except Exception as exc:
        raise ConfigError(f"search.oracle: cannot build it: {str(exc).splitlines()[-1]}") from exc
    splits = list(KFold(inner_folds, shuffle=True, random_state=seed).split(np.arange(len(y))))
    said = io.StringIO()
    with contextlib.redirect_stdout(said):  # keras-tuner prints "Reloading Tuner from ..."
        tuner = _tuner_class()(
            oracle,
            pipeline,
            splits,
            objective,
            on_trial_end=on_trial_end,
            directory=str(directory),
            project_name=project_name,
            overwrite=False,
        )
    if said.getvalue().strip():
        log.info("%s: resuming the search (%s)", project_name, said.getvalue().strip())
    tuner.oracle.verbose = 0  # progress is ours (rich), not keras-tuner's prints
    try:
        tuner.search(X, y)
    except kt.errors.FatalError as exc:
        raise ConfigError(f"search: a trial failed: {exc}") from exc
    trials = _trials_table(tuner.oracle)
    best = tuner.oracle.get_best_trials(1)
    if not best:
        raise ConfigError("search: no trial completed")
    best_trial = best[0]
    return SearchResult(
        best_params=pipeline_params(best_trial.hyperparameters.values, pipeline),
        best_score=float(best_trial.metrics.get_last_value(f"inner_{objective}")),
        trials=trials,
    )


def search_size(space: Mapping[str, Mapping[str, Any]], search_cfg: Mapping[str, Any]) -> int:
    """How many trials a search will run at most (for progress bars)."""
    if search_cfg.get("oracle") is None or not space:
        return 0
    max_trials = search_cfg.get("max_trials")
    grid = 1
    hp = make_hyperparameters(space)
    for p in hp.space:
        grid *= len(list(p.values)) if hasattr(p, "values") else 2
    if "Grid" in str(search_cfg["oracle"].get("_target_", "")):
        return min(grid, max_trials) if max_trials else grid
    return int(max_trials) if max_trials else 10
