"""Checks made before any training, so that a run fails in its first seconds with one line
instead of after the whole CV: degenerate settings of the pipeline's steps, the columns of
``eval.path``, and where the outputs go (writable, enough free space).

Where the outputs go is checked by :mod:`n2react.output_dirs`, a search's settings by
:mod:`n2react.search_checks` (split from here: their names are re-exported here, where callers
import them).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from n2react.capabilities import Wrapper, epochs_param, inner_model, sub_models
from n2react.data import Dataset
from n2react.errors import ConfigError, DataError, N2ReactError, first_line
from n2react.output_dirs import MIN_FREE_BYTES as MIN_FREE_BYTES  # callers import these here
from n2react.output_dirs import check_output_dir as check_output_dir
from n2react.output_dirs import output_dir_problem as output_dir_problem
from n2react.output_dirs import remove_if_unused as remove_if_unused
from n2react.search_checks import GRID_WARN_POINTS as GRID_WARN_POINTS  # callers import these here
from n2react.search_checks import check_search as check_search
from n2react.search_checks import check_space_ends as check_space_ends
from n2react.search_checks import say_grid_size as say_grid_size

#: The fewest labelled clusters eval.path may hold (a Pearson r needs three).
MIN_EVAL_CLUSTERS = 3

log = logging.getLogger(__name__)
_NOT_USABLE = "a setting of the pipeline is not usable: "


def check_steps(pipeline: Any, dataset: Dataset) -> Any:
    """Fit a fresh copy of the pipeline on a small slice of the training rows and return it (for
    checks that need fitted steps, :func:`check_max_features`; the run never uses it): an invalid
    or degenerate parameter (``n_estimators=0``, ``k=0``, a negative penalty ...)
    fails here as one ConfigError line rather than in the first outer fold. A model trained in
    epochs gets a budget of 2 for it. The line names the key when the estimator's message starts
    with one of its parameters (``name_key=False``: the estimator's message alone)."""
    from sklearn.base import clone

    from n2react.cv import fit_model

    pipe = clone(pipeline)
    epochs = epochs_param(pipe.named_steps.get("model"), "model__")
    if epochs is not None:
        budget = pipe.get_params()[epochs]
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
            raise ConfigError(f"model.estimator.{epochs.rsplit('__', 1)[-1]}={budget}: need >= 1")
        pipe.set_params(**{epochs: 2})
    rng = np.random.default_rng(0)
    n = min(dataset.n_rows, 40)
    rows = np.sort(rng.choice(dataset.n_rows, n, replace=False))
    groups = None if dataset.groups is None else dataset.groups[rows]
    try:
        fit_model(pipe, dataset.X.iloc[rows], dataset.y[rows], groups)
    except N2ReactError:
        raise
    except (ValueError, TypeError) as exc:  # scikit-learn's InvalidParameterError is both
        first = first_line(exc)
        key = _key_named(pipe.named_steps.get("model"), first)
        key = key or _failing_step(pipe, dataset.X.iloc[rows], dataset.y[rows])
        prefix = f"{key}: " if key else _NOT_USABLE
        raise ConfigError(f"{prefix}{first}") from None
    return pipe


#: The config key of each step before the model (:class:`n2react.pipeline.PipelineFactory`).
STEP_KEYS = {"impute": "imputer", "features": "features.step", "scale": "scaler.step",
             "select": "selector.step"}  # fmt: skip


def _failing_step(pipe: Any, X: Any, y: np.ndarray) -> str | None:
    """The config key of the first step before the model that fails to fit (``MinMaxScaler``'s
    reversed ``feature_range`` -> ``scaler.step``); None when they all fit (the model failed)."""
    from sklearn.base import clone

    for name, step in pipe.steps[:-1]:
        try:
            X = clone(step).fit_transform(X, y)
        except (ValueError, TypeError):
            return STEP_KEYS.get(name)
    return None


def _key_named(model: Any, message: str) -> str | None:
    """The config key of the model parameter an estimator's own message starts with (``l2 must
    be >= 0`` -> ``model.estimator.l2``, scikit-learn's ``The 'alpha' parameter of Ridge ...``
    -> ``model.estimator.alpha``; a pairwise wrapper's -> ``pairwise.wrapper.max_pairs``)."""
    named = re.match(r"The '(\w+)' parameter of ", message)  # scikit-learn's own wording
    word = named.group(1) if named else message.split(" ", 1)[0]
    if isinstance(model, Wrapper):
        if word in model.get_params(deep=False) and word != model.wrapped_param:
            return f"pairwise.wrapper.{word}"
        model = inner_model(model)
    if model is None or word not in model.get_params(deep=False):
        return None
    return f"model.estimator.{word}"


def check_pairwise(model: Any, name: str, scheme: str, uses_model: Sequence[str] = ()) -> None:
    """Before a run folder exists: the pair split needs a model of pair differences and fits no
    model of clusters for the keys in ``uses_model`` (``eval.path`` ...) to use; a pairwise
    wrapper around a model that already learns from pairs (``model=anchored_ensemble``'s
    pairwise member) would train it on differences of differences, pairs of pairs (hours)."""
    if scheme == "pair_split" and not isinstance(model, Wrapper):
        raise ConfigError("cv.scheme=pair_split: needs pairwise=on (a model of pair differences)")
    if scheme == "pair_split" and uses_model:
        raise ConfigError(
            f"{uses_model[0]}: cv.scheme=pair_split scores pairs and fits no final model to "
            "use it with; drop it, or use cv.scheme=nested"
        )
    if not isinstance(model, Wrapper):
        return
    todo = [(name, getattr(model, model.wrapped_param))]
    while todo:
        where, est = todo.pop(0)
        if isinstance(est, Wrapper):
            raise ConfigError(
                f"pairwise=on: model={name} already learns from cluster pairs ({where}); "
                "wrapped again it would learn differences of differences: use pairwise=off"
            )
        todo += [(f"its member {p}", m) for p, _, m in sub_models(est)]


def check_spread_varies(fitted: Any, dataset: Dataset, spec: Any) -> None:
    """A model whose own spread is the same for every cluster (a pairwise model with a linear
    base: f(x - x_r) + y_r = f(x) + (y_r - f(x_r)), so its spread over the references r is that
    of its training residuals) gives ``uncertainty.difficulty=spread`` (or ``expected_error``)
    nothing to rank clusters by: refused, read off ``fitted`` (:func:`check_steps`'s pipeline)
    on a few clusters. ``spread_knn`` still ranks by its knn_residual half and passes."""
    from n2react.difficulty import model_spread

    key = "difficulty" if spec.difficulty == "spread" else "expected_error"
    if "spread" not in (spec.difficulty, spec.error_kind):
        return
    spread = model_spread(fitted, dataset.X.iloc[:20])
    if len(spread) > 1 and np.ptp(spread) <= 1e-9 * max(1.0, float(np.abs(spread).max())):
        raise ConfigError(
            f"uncertainty.{key}=spread: the model's spread is the same for every cluster (a "
            "pairwise model with a linear base spreads its references by its training residuals "
            "alone), so it ranks nothing; use knn_residual"
        )


def check_max_pairs(model: Any, n_rows: int, test_fraction: float | None = None) -> None:
    """A pairwise model's ``max_pairs`` at or above the most training pairs any of its fits can
    have (all ordered pairs of ``n_rows`` clusters; with ``test_fraction``, the pair split's
    training pairs) caps nothing: refused, naming null."""
    from n2react.models.pairwise import PairwiseRegressor

    cap = model.max_pairs if isinstance(model, PairwiseRegressor) else None
    pairs, of = n_rows * (n_rows - 1), f"ordered pairs of the {n_rows} clusters"
    if test_fraction is not None:
        pairs, of = pairs - round(test_fraction * pairs), "training pairs of the pair split"
    if cap is not None and cap >= pairs:
        raise ConfigError(
            f"pairwise.wrapper.max_pairs={cap}: at least all {pairs:,} {of}, so it caps "
            "nothing; give fewer, or null for all of them"
        )


def check_selector(params: dict[str, Any], space: dict[str, Any]) -> None:
    """Selector settings that would select nothing or never finish (``k=0``, ``step=0``,
    ``n_resamples=0``, ``sample_fraction`` outside (0, 1]), also as search-space bounds."""
    for key in ("k", "n_features_to_select", "n_resamples"):
        value = params.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
            raise ConfigError(f"selector.step.{key}={value}: must be at least 1")
        spec = space.get(f"select__{key}") or {}
        low = spec.get("min") if isinstance(spec, dict) else None
        if isinstance(low, int | float) and low <= 0:
            raise ConfigError(f"selector.space.{key}.min={low}: must be at least 1")
    step = params.get("step")
    if isinstance(step, int | float) and not isinstance(step, bool) and step <= 0:
        raise ConfigError(f"selector.step.step={step}: must be positive")
    frac = params.get("sample_fraction")
    if isinstance(frac, int | float) and not 0 < frac <= 1:
        raise ConfigError(f"selector.step.sample_fraction={frac}: must be in (0, 1]")


def check_max_features(fitted: Any, dataset: Dataset, space: dict[str, Any]) -> None:
    """An integer ``max_features`` above the descriptors that reach the model is refused, for the
    model and every model inside it fed the same columns (the members of ``model=ensemble`` and
    ``model=anchored_ensemble``, a pairwise base, :func:`n2react.capabilities.sub_models`):
    scikit-learn's trees take it as all of them (``max_features=100`` of 24 runs as 1.0). The
    count is the columns the steps before the model give (a selector's fixed ``k`` or
    ``n_features_to_select``), read off ``fitted``, the pipeline :func:`check_steps` fitted;
    with a searched selector size, its smallest value."""
    from n2react.pipeline import config_key

    model = fitted.named_steps.get("model")
    if model is None:
        return
    at = list(fitted.named_steps).index("model")
    n_in = fitted[:at].transform(dataset.X.head(1)).shape[1]  # the columns reaching the model
    reach = f"the {n_in} descriptors reaching the model"
    for key in ("k", "n_features_to_select"):
        spec = space.get(f"select__{key}") or {}
        low = spec.get("min") if isinstance(spec, dict) else None
        if isinstance(low, int) and not isinstance(low, bool) and 0 < low < n_in:
            n_in = low
            reach = f"the {low} descriptors the selector keeps at selector.space.{key}.min"
    for param, key, est in _models_fed_the_inputs(model):
        if "max_features" not in est.get_params(deep=False):
            continue
        spec = space.get(f"{param}max_features") or {}
        values = (spec.get("values") or []) if isinstance(spec, dict) else []
        named = f"{config_key(param + 'max_features')}.values holds "
        for where, v in [(f"{key}max_features=", est.get_params(deep=False)["max_features"])] + [
            (named, v) for v in values
        ]:
            if isinstance(v, int) and not isinstance(v, bool) and v > n_in:
                raise ConfigError(
                    f"{where}{v}: more than {reach} (an integer counts descriptors; give at "
                    f"most {n_in}, or a fraction such as 1.0)"
                )


def _models_fed_the_inputs(model: Any) -> list[tuple[str, str, Any]]:
    """The pipeline's model and each model inside it fed the same columns, as (pipeline
    parameter prefix, config key prefix, model): ``model__``, ``model.estimator.``; a pairwise
    wrapper (``pairwise=on``) wraps ``model.estimator`` itself."""
    if isinstance(model, Wrapper):
        inner = getattr(model, model.wrapped_param)
        start = [(f"model__{model.wrapped_param}__", "model.estimator.", inner)]
    else:
        start = [("model__", "model.estimator.", model)]
    out: list[tuple[str, str, Any]] = []
    while start:
        param, key, est = start.pop(0)
        out.append((param, key, est))
        start += [(f"{param}{p}__", f"{key}{k}.", m) for p, k, m in sub_models(est)]
    return out


def check_eval_columns(eval_path: str, expected: list[str], ligands: list[str]) -> None:
    """``eval.path`` must hold the descriptors the model will be trained on and an lg(k1)
    column; read now (its names with the run's ``ligands``), so a wrong file fails before the
    CV rather than after the refit."""
    from n2react.new_clusters import read_labelled

    _, _, y = read_labelled(eval_path, expected, "eval.path", "there is nothing to score", ligands)
    if len(y) < MIN_EVAL_CLUSTERS:  # r of two clusters is +-1, a coverage of one is 0 or 100 %
        raise DataError(
            f"eval.path={eval_path}: {len(y)} labelled cluster(s); transfer scores need at least "
            f"{MIN_EVAL_CLUSTERS} (python -m predict RUN FILE predicts and scores a few clusters)"
        )
