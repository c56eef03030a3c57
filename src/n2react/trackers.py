"""Which tracker a job gets: :class:`~n2react.tracking.NullTracker` without a store, the MLflow
one with a store (imported only then). Apart from the interface (:mod:`n2react.tracking`) and its
MLflow implementation (:mod:`n2react.mlflow_tracking`, which imports the interface), so that
neither imports the other both ways."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from n2react.jobs import JobInfo
from n2react.tracking import NullTracker, Store, Tracker, store_of


def open_tracker(store: Store | Mapping[str, Any] | None, job: JobInfo | None = None) -> Tracker:
    """The tracker of a store (or of a ``tracking`` config). With a store, the store and its
    experiment are checked and prepared now, once: a problem is one ConfigError line, before any
    training."""
    if store is not None and not isinstance(store, Store):
        store = store_of(store)
    if store is None:
        return NullTracker()
    from n2react.mlflow_tracking import MlflowTracker

    return MlflowTracker(store, job)
