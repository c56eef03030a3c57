"""Residuals for validating a run's intervals, expected errors and flags on models that never saw
the fold they are scored on (``uncertainty.validation=nested``).

The cross-fitted validation (:func:`n2react.uncertainty.calibrate`) scores outer fold *f* with a
calibration on the other folds' out-of-fold residuals. Those came from models that trained on
*f*'s clusters, so *f*'s lg(k1) reaches its own calibration: with ``knn_residual`` a cluster whose
lg(k1) is far from its neighbours' pulls their predictions, and so their residuals, its way, and
its own expected error looks right for a reason a new cluster never has.

Nested validation calibrates *f* as a run calibrates for a new cluster: for every other fold *g*
of the same repeat, fold *f*'s tuned pipeline (its best parameters, no new search) is refitted on
the rows outside *f* and *g* and predicts *g*. That is K(K-1) refits per repeat, K(K-1)/2 when
the two folds' tuned parameters agree (``search=none``: one model serves both). The intervals a
run saves for new clusters do not change; only the figures that validate them do.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from n2react.difficulty import model_spread
from n2react.errors import DataError

log = logging.getLogger(__name__)

#: uncertainty.validation: the refitted honest figures, or the cheap cross-fitted ones.
VALIDATIONS = ("nested", "crossfit")


@dataclass
class FoldResiduals:
    """The residuals (y - y_hat) of the rows of the other folds of one outer fold's repeat, from
    models that never trained on that fold (NaN elsewhere), and their spread when asked."""

    residual: np.ndarray
    spread: np.ndarray | None = None


def nested_residuals(
    result: Any,
    spread: bool = False,
    progress: Callable[[int], AbstractContextManager[Callable[[], None]]] | None = None,
) -> dict[tuple[int, int], FoldResiduals] | None:
    """``{(repeat, fold): FoldResiduals}`` for every outer fold of ``result`` (a CV result whose
    folds keep their fitted pipelines); ``spread``: also the refitted models' own spread;
    ``progress(total)``: a context giving the step to call per refit (a progress bar). None,
    with a warning, when a repeat has two outer folds (no rows outside both to refit on): the
    validation is then cross-fitted."""
    ds = result.dataset
    n = len(ds.y)
    folds = list(result.folds)
    per_repeat = Counter(f.split.repeat for f in folds)
    if min(per_repeat.values()) < 3:
        log.warning(
            "uncertainty.validation=nested needs 3 outer folds or more (with 2, no rows lie "
            "outside both to refit on): the intervals are validated cross-fitted instead"
        )
        return None
    missing = [f.split.fold for f in folds if f.model is None]
    if missing:
        raise DataError(
            f"uncertainty.validation=nested: outer fold {missing[0]} has no fitted model to refit"
        )
    pairs = {
        (f.split.repeat, frozenset((f.split.fold, g.split.fold)), repr(f.best_params))
        for f in folds
        for g in folds
        if g.split.repeat == f.split.repeat and g.split.fold != f.split.fold
    }
    log.info(
        "uncertainty.validation=nested: %d refits, each without the fold it validates", len(pairs)
    )
    cache: dict[tuple, dict[int, tuple[np.ndarray, np.ndarray | None]]] = {}
    out: dict[tuple[int, int], FoldResiduals] = {}
    with (progress or _no_bar)(len(pairs)) as advance:
        for f in folds:
            residual = np.full(n, np.nan)
            spreads = np.full(n, np.nan) if spread else None
            for g in folds:
                if g.split.repeat != f.split.repeat or g.split.fold == f.split.fold:
                    continue
                key = (f.split.repeat, frozenset((f.split.fold, g.split.fold)), repr(f.best_params))
                if key not in cache:
                    cache[key] = _refit(f, g, ds, spread)
                    advance()
                pred, std = cache[key][g.split.fold]
                residual[g.split.test] = ds.y[g.split.test] - pred
                if spreads is not None:
                    spreads[g.split.test] = std
            out[(f.split.repeat, f.split.fold)] = FoldResiduals(residual, spreads)
    return out


def _refit(
    f: Any, g: Any, ds: Any, spread: bool
) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
    """Fold ``f``'s pipeline refitted on the rows outside folds ``f`` and ``g``: its predictions
    (and spread) of both folds' rows, keyed by fold (the model itself is not kept)."""
    from sklearn.base import clone

    from n2react.cv import fit_model

    train = np.setdiff1d(f.split.train, g.split.test)
    groups = None if ds.groups is None else ds.groups[train]
    model = fit_model(clone(f.model), ds.X.iloc[train], ds.y[train], groups)
    preds = {}
    for fold in (f, g):
        X = ds.X.iloc[fold.split.test]
        pred = np.asarray(model.predict(X), dtype=float).ravel()
        preds[fold.split.fold] = (pred, model_spread(model, X) if spread else None)
    return preds


def nested_view(
    rep: pd.DataFrame, abs_res: np.ndarray, fold: int, honest: FoldResiduals
) -> tuple[pd.DataFrame, np.ndarray]:
    """One repeat's out-of-fold table and |residual| by row as outer fold ``fold``'s calibration
    sees them under nested validation: the other folds' residuals (and spread) from ``honest``."""
    rep = rep.copy()
    abs_res = abs_res.copy()
    other = rep["fold"].to_numpy() != fold
    rows = rep.loc[other, "row"].to_numpy()
    rep.loc[other, "residual"] = honest.residual[rows]
    rep.loc[other, "y_pred"] = rep.loc[other, "y_true"] - honest.residual[rows]
    if honest.spread is not None and "spread" in rep:
        rep.loc[other, "spread"] = honest.spread[rows]
    abs_res[rows] = np.abs(honest.residual[rows])
    return rep, abs_res


@contextlib.contextmanager
def _no_bar(total: int) -> Iterator[Callable[[], None]]:
    yield lambda: None
