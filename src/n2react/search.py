"""Hyperparameter search by inner cross-validation, driven by keras-tuner oracles.

One search-space format (YAML, see ``conf/model/*.yaml``) is translated once into keras-tuner
hyperparameters (:mod:`n2react.hyperparameters`); grid, random, Bayesian and Hyperband searches
are just different oracles over it, for scikit-learn models and the Keras MLP alike. A trial's
score is the mean inner-fold score on the rows it is given (an outer training fold), so the outer
test rows never reach the search. The search as configured (:class:`SearchSpec`: its space,
oracle and trial count) is read in :mod:`n2react.search_spec`, re-exported here.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.utils import get_tags
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted, validate_data

from n2react.backend import import_quietly
from n2react.capabilities import GroupAware, SpreadPredictor
from n2react.cv import fit_model, fold_predictions, predict_mean_std
from n2react.distributed import chief_search, fingerprint
from n2react.errors import ConfigError
from n2react.hyperparameters import make_hyperparameters
from n2react.metrics import MAXIMIZE, regression_metrics
from n2react.search_spec import SearchSpec
from n2react.splitters import Split, Splitter

log = logging.getLogger(__name__)


@dataclass
class SearchResult:
    """The chosen parameters (pipeline parameter names), their inner score and every trial."""

    best_params: dict[str, Any] = field(default_factory=dict)
    best_score: float = float("nan")
    trials: pd.DataFrame = field(default_factory=pd.DataFrame)


# --------------------------------------------------------------------------- inner CV


def inner_cv_scores(
    pipeline: Pipeline,
    X: pd.DataFrame | np.ndarray,
    y: np.ndarray,
    splits: Sequence[Split],
    groups: np.ndarray | None = None,
) -> dict[str, float]:
    """Mean of the per-fold scores (r, rmse, mae, r2) of ``pipeline`` over ``splits``."""
    preds = fold_predictions(lambda _split: clone(pipeline), X, y, splits, groups)
    per_fold = [regression_metrics(y[s.test], p) for s, p in zip(splits, preds)]
    return {k: float(np.nanmean([m[k] for m in per_fold])) for k in per_fold[0]}


# --------------------------------------------------------------------------- the search


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
            spec: SearchSpec,
            splits: Sequence[Split],
            groups: np.ndarray | None,
            on_trial_end: Callable[[], None] | None = None,
            **kwargs: Any,
        ) -> None:
            self._pipeline = pipeline
            self._spec = spec
            self._splits = splits
            self._groups = groups
            self._on_trial_end = on_trial_end
            super().__init__(oracle=oracle, hypermodel=None, **kwargs)

        def run_trial(self, trial: Any, X: Any, y: np.ndarray) -> dict[str, float]:
            params = self._spec.pipeline_params(trial.hyperparameters.values)
            est = clone(self._pipeline).set_params(**params)
            try:
                scores = inner_cv_scores(est, X, y, self._splits, self._groups)
            except Exception as exc:  # a failing trial is a configuration problem: stop now
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise kt.errors.FatalError(f"{type(exc).__name__}: {first}") from exc
            objective = self._spec.objective
            score = scores[objective]
            if not math.isfinite(score):
                score = -1e9 if objective in MAXIMIZE else 1e9
            return {"score": score, **{f"inner_{k}": v for k, v in scores.items()}}

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            self.count_trial()

        def count_trial(self) -> None:
            """One more trial ended (here or, in a distributed search, on a worker)."""
            if self._on_trial_end is not None:
                self._on_trial_end()

        def save_model(self, trial_id: str, model: Any, step: int = 0) -> None:
            return None

        def load_model(self, trial: Any) -> None:
            return None

    return InnerCVTuner


def _trials_table(oracle: Any) -> pd.DataFrame:
    """One row per trial: id, status, hyperparameters, metrics. A worker's view of the chief's
    oracle (no ``trials``) lists the completed trials it can ask for."""
    trials = getattr(oracle, "trials", None)
    if trials is None:
        trials = {t.trial_id: t for t in oracle.get_best_trials(10**6)}
    rows = []
    for trial in trials.values():
        row: dict[str, Any] = {"trial": trial.trial_id, "status": str(trial.status)}
        row.update(trial.hyperparameters.values)
        for name in trial.metrics.metrics:
            row[name] = trial.metrics.get_last_value(name)
        rows.append(row)
    return pd.DataFrame(rows)


def make_tuner(
    pipeline: Pipeline,
    spec: SearchSpec,
    splits: Sequence[Split],
    groups: np.ndarray | None,
    directory: str | Path,
    project_name: str,
    on_trial_end: Callable[[], None] | None = None,
) -> Any:
    """The inner-CV tuner of one search, its state in ``directory/project_name`` (resumed when
    it is there)."""
    hp = make_hyperparameters(spec.space, pipeline.get_params(), grid=spec.is_grid)
    oracle = spec.make_oracle(hp)
    said = io.StringIO()
    with contextlib.redirect_stdout(said):  # keras-tuner prints "Reloading Tuner from ..."
        tuner = _tuner_class()(
            oracle,
            pipeline,
            spec,
            splits,
            groups,
            on_trial_end=on_trial_end,
            directory=str(directory),
            project_name=project_name,
            overwrite=False,
        )
    if said.getvalue().strip():
        log.info("%s: resuming the search (%s)", project_name, said.getvalue().strip())
    tuner.oracle.verbose = 0  # progress is ours (rich), not keras-tuner's prints
    return tuner


def tune(
    pipeline: Pipeline,
    spec: SearchSpec,
    X: pd.DataFrame | np.ndarray,
    y: np.ndarray,
    *,
    splits: Sequence[Split],
    groups: np.ndarray | None = None,
    directory: str | Path,
    project_name: str,
    on_trial_end: Callable[[], None] | None = None,
) -> SearchResult:
    """Search ``spec.space`` by inner CV over ``splits`` of (X, y); return the best parameters.

    State lives in ``directory/project_name``: an interrupted search started again with the same
    directory resumes where it stopped; a new run directory starts afresh.
    """
    if not spec.active:
        return SearchResult()
    kt = import_quietly("keras_tuner")
    tuner = make_tuner(pipeline, spec, splits, groups, directory, project_name, on_trial_end)
    chief = spec.distributed is not None and spec.distributed.role == "chief"
    try:
        if chief:
            assert spec.distributed is not None
            data = fingerprint(X, y, splits, groups)
            chief_search(spec.distributed, tuner, X, y, data, project_name)
        else:
            tuner.search(X, y)
    except kt.errors.FatalError as exc:
        raise ConfigError(f"search: a trial failed: {exc}") from exc
    except RuntimeError as exc:  # keras-tuner: too many failed trials in a row
        raise ConfigError(f"search: {str(exc).strip().splitlines()[0]}") from exc
    trials = _trials_table(tuner.oracle)
    best = tuner.oracle.get_best_trials(1)
    if not best:
        raise ConfigError("search: no trial completed")
    best_trial = best[0]
    return SearchResult(
        best_params=spec.pipeline_params(best_trial.hyperparameters.values),
        best_score=float(best_trial.metrics.get_last_value(f"inner_{spec.objective}")),
        trials=trials,
    )


class TunedPipeline(GroupAware, SpreadPredictor, RegressorMixin, BaseEstimator):
    """A pipeline tuned by inner CV on the rows given to ``fit``, then refitted on all of them.

    What ``GridSearchCV`` is to scikit-learn, over keras-tuner oracles and grouped inner folds:
    with ``groups`` the inner folds keep groups whole, and so do the model's own carve-outs.
    The search state lives in ``directory/project_name`` (a run's folder: an interrupted search
    resumes from it); ``directory=None`` keeps it in a temporary folder for the fit only.
    """

    def __init__(
        self,
        make_pipeline: Callable[[], Pipeline],
        spec: SearchSpec,
        inner: Splitter,
        directory: str | Path | None = None,
        project_name: str = "search",
        on_trial_end: Callable[[], None] | None = None,
    ) -> None:
        self.make_pipeline = make_pipeline
        self.spec = spec
        self.inner = inner
        self.directory = directory
        self.project_name = project_name
        self.on_trial_end = on_trial_end

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # missing descriptors are the first step's to handle (the imputer): the pipeline's own
        # tags are its model's, which may not take NaN
        first = self.make_pipeline().steps[0][1]
        tags.input_tags.allow_nan = get_tags(first).input_tags.allow_nan
        return tags

    def _finite(self) -> bool | str:
        """What ``validate_data`` accepts: NaN when the pipeline imputes it, never infinity."""
        return "allow-nan" if self.__sklearn_tags__().input_tags.allow_nan else True

    def fit(self, X: Any, y: Any, groups: Any = None) -> TunedPipeline:
        # checked (and n_features_in_ / feature_names_in_ set) here; a table keeps its names
        X_checked, y = validate_data(
            self, X, y, ensure_all_finite=self._finite(), ensure_min_samples=2, y_numeric=True
        )
        X = X if isinstance(X, pd.DataFrame) else X_checked
        pipeline = self.make_pipeline()
        y = np.asarray(y, dtype=float)
        result = SearchResult()
        if self.spec.active:
            with _search_directory(self.directory) as directory:
                result = tune(
                    pipeline,
                    self.spec,
                    X,
                    y,
                    splits=self.inner.split(len(y), groups),
                    groups=groups,
                    directory=directory,
                    project_name=self.project_name,
                    on_trial_end=self.on_trial_end,
                )
        best = clone(pipeline).set_params(**result.best_params)
        try:
            fit_model(best, X, y, groups)
        except InvalidParameterError as exc:
            raise ConfigError(f"model/selector parameters: {str(exc).splitlines()[0]}") from exc
        self.pipeline_, self.search_ = best, result
        return self

    def predict(self, X: Any, return_std: bool = False) -> Any:
        check_is_fitted(self)
        validate_data(self, X, reset=False, ensure_all_finite=self._finite())
        mean, std = predict_mean_std(self.pipeline_, X)
        if return_std:
            return mean, std
        return mean


@contextlib.contextmanager
def _search_directory(directory: str | Path | None) -> Iterator[str | Path]:
    """``directory``, or a temporary folder removed after the search when it is None."""
    if directory is not None:
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix="n2react-search-") as tmp:
        yield tmp
