"""Checks :meth:`n2react.plan.Plan.validate` makes on the data before any training: sizes a
setting asks for that the clusters cannot give, and calibration clusters that are training ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from n2react.data import Dataset
from n2react.errors import ConfigError, DataError
from n2react.splitters import Split


def neighbourhood_size(k: int, splits: list[Split]) -> None:
    """``uncertainty.k`` must be below the number of clusters a held-out cluster's difficulty is
    measured against (the out-of-fold clusters of the other folds, one more fold left out while
    the intervals are scored): at or above it every cluster's neighbours are all of them, the
    same difficulty for every cluster, under the name of a kNN difficulty."""
    sizes: dict[int, list[int]] = {}
    for s in splits:
        sizes.setdefault(s.repeat, []).append(len(s.test))
    smallest = min(
        sum(v) - sum(sorted(v, reverse=True)[: 2 if len(v) > 2 else 1]) for v in sizes.values()
    )
    if k >= smallest:
        raise ConfigError(
            f"uncertainty.k={k}: a held-out cluster's difficulty is measured against as few as "
            f"{smallest} out-of-fold clusters here, so its {k} nearest would be all of them and "
            f"every cluster would get the same difficulty; use a k below {smallest}"
        )


def selector_sizes(pipeline: Pipeline, space: Mapping[str, Any] | None, dataset: Dataset) -> None:
    """A selector asked to keep more descriptors than reach it is refused (it would keep all);
    ``space`` is the search space when a search runs."""
    if "select" not in pipeline.named_steps:
        return
    at = list(pipeline.named_steps).index("select")
    head = dataset.X.head(min(20, dataset.n_rows))  # only to count the columns reaching it
    n_in = pipeline[:at].fit(head, dataset.y[: len(head)]).transform(head).shape[1]
    params = pipeline.named_steps["select"].get_params()
    for key in ("k", "n_features_to_select"):
        value = params.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > n_in:
            raise ConfigError(
                f"selector.step.{key}={value}: more than the {n_in} descriptors reaching the "
                "selector"
            )
        spec = space.get(f"select__{key}") if space else None
        if spec and isinstance(spec.get("max"), int) and spec["max"] > n_in:
            raise ConfigError(
                f"selector.space.{key}.max={spec['max']}: more than the {n_in} descriptors "
                "reaching the selector"
            )


def refuse_training_clusters(path: str, X: Any, names: Any, dataset: Dataset) -> None:
    """A calibration file must hold clusters the final model was not fitted on: on a training
    cluster its residual is a fit, not an error, and intervals calibrated on fits are too narrow
    (extra trees fit them exactly: width 0)."""
    from n2react.provenance import same_rows

    seen = same_rows(X.to_numpy(dtype=float), dataset.X.to_numpy(dtype=float))
    if seen.any():
        raise DataError(
            f"uncertainty.calibration_path={path}: {int(seen.sum())} of {len(seen)} clusters "
            f"(first: {names[int(np.flatnonzero(seen)[0])]}) have the descriptors of training "
            "clusters of this run; the final model's residuals on them are fits, not errors, so "
            "calibrate on clusters that take no part in training"
        )


def products_need_two(config: Mapping[str, Any], dataset: Dataset) -> None:
    """A features step of pairwise products on a single descriptor has none to make (it ran as
    features=raw, logged as interactions)."""
    n = dataset.X.shape[1]
    if n < 2:
        name = (config.get("features") or {}).get("name")
        raise ConfigError(
            f"features={name}: {dataset.source} has {n} descriptor; pairwise products need at "
            "least 2 (use features=raw)"
        )
