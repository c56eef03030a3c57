"""Residuals for validating a run's intervals, expected errors and flags on models that never saw
the fold they are scored on (``uncertainty.validation=nested``).

The cross-fitted validation (:func:`n2react.uncertainty_fit.calibrate`) scores outer fold *f* with a
calibration on the other folds' out-of-fold residuals. Those came from models that trained on
*f*'s clusters, so *f*'s lg(k1) reaches its own calibration: with ``knn_residual`` a cluster whose
lg(k1) is far from its neighbours' pulls their predictions, and so their residuals, its way, and
its own expected error looks right for a reason a new cluster never has.

Nested validation calibrates *f* as a run calibrates for a new cluster: for every other fold *g*
of the same repeat, fold *f*'s fitting procedure is run again on the rows outside *f* and *g*
and predicts *g*. Without a search that is *f*'s pipeline refitted: K(K-1) refits per repeat,
K(K-1)/2 when the two folds' parameters agree (``search=none``: one model serves both). With a
search, *f*'s best parameters were chosen by an inner CV over *f*'s training rows, *g*'s among
them, so the refit searches again, as the outer CV does for a fold (inner CV over its own rows
and groups, its keras-tuner state in its own project): the procedure is then the same for *f*
and *g*, and one search-and-refit per pair of folds, K(K-1)/2 per repeat, serves both. The
intervals a run saves for new clusters do not change; only the figures that validate them do.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from n2react.difficulty import model_spread
from n2react.errors import DataError
from n2react.splitters import Split

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
    procedure: Callable[[str], Any] | None = None,
) -> dict[tuple[int, int], FoldResiduals] | None:
    """``{(repeat, fold): FoldResiduals}`` for every outer fold of ``result`` (a CV result whose
    folds keep their fitted pipelines); ``spread``: also the refitted models' own spread;
    ``progress(total)``: a context giving the step to call per refit (a progress bar);
    ``procedure(name)``: a fresh fold procedure (the outer folds' tuned pipeline, its search
    state in project ``name``), needed when the folds were tuned by a search. None, with a
    warning, when a repeat has two outer folds (no rows outside both to refit on): the
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
    searched = any(f.best_params for f in folds)
    if searched and procedure is None:
        raise ValueError("nested_residuals: searched folds need their procedure to search again")
    if searched and not nested_searches([f.split for f in folds], ds.groups):
        log.warning(
            "uncertainty.validation=nested: the rows outside two outer folds hold a single "
            "group, too few for the grouped inner CV of a search: the intervals are validated "
            "cross-fitted instead"
        )
        return None
    missing = [f.split.fold for f in folds if f.model is None]
    if missing and not searched:
        raise DataError(
            f"uncertainty.validation=nested: outer fold {missing[0]} has no fitted model to refit"
        )

    def key(f: Any, g: Any) -> tuple:
        pair = (f.split.repeat, frozenset((f.split.fold, g.split.fold)))
        return pair if searched else (*pair, repr(f.best_params))

    pairs = {key(f, g) for f in folds for g in folds if _other(f, g)}
    _say(len(pairs), procedure if searched else None)
    cache: dict[tuple, dict[int, tuple[np.ndarray, np.ndarray | None]]] = {}
    out: dict[tuple[int, int], FoldResiduals] = {}
    with (progress or _no_bar)(len(pairs)) as advance:
        for f, g in ((f, g) for f in folds for g in folds if _other(f, g)):
            if key(f, g) not in cache:  # searched: in nested_searches' order (the workers')
                cache[key(f, g)] = _refit(f, g, ds, spread, procedure if searched else None)
                advance()
        for f in folds:
            residual = np.full(n, np.nan)
            spreads = np.full(n, np.nan) if spread else None
            for g in (g for g in folds if _other(f, g)):
                pred, std = cache[key(f, g)][g.split.fold]
                residual[g.split.test] = ds.y[g.split.test] - pred
                if spreads is not None:
                    spreads[g.split.test] = std
            out[(f.split.repeat, f.split.fold)] = FoldResiduals(residual, spreads)
    return out


def nested_searches(
    splits: Sequence[Split], groups: np.ndarray | None = None
) -> list[tuple[str, np.ndarray]]:
    """The searches a searched run's nested validation runs, in its order: per pair of outer
    folds of a repeat, its keras-tuner project and the rows it searches on (outside both);
    none when a repeat has two folds, or (``groups``: a grouped run) when the rows outside
    some pair hold one group, too few for a grouped inner CV (the validation is then
    cross-fitted)."""
    if min(Counter(s.repeat for s in splits).values(), default=0) < 3:
        return []
    searches = [
        _search_rows(a, b)
        for i, a in enumerate(splits)
        for b in splits[i + 1 :]
        if a.repeat == b.repeat and a.fold != b.fold
    ]
    if groups is not None and any(len(np.unique(groups[rows])) < 2 for _, rows in searches):
        return []
    return searches


def _search_rows(a: Split, b: Split) -> tuple[str, np.ndarray]:
    """The project and training rows of the search of outer folds ``a`` and ``b`` (either way
    round): the rows both trained on."""
    lo, hi = sorted((a.fold, b.fold))
    return f"nested_{lo:02d}_{hi:02d}", np.intersect1d(a.train, b.train)


def _other(f: Any, g: Any) -> bool:
    """Whether ``g`` is another outer fold of ``f``'s repeat."""
    return g.split.repeat == f.split.repeat and g.split.fold != f.split.fold


def _say(refits: int, procedure: Callable[[str], Any] | None) -> None:
    """The log line of what the validation will run (with a search: how many searches)."""
    if procedure is None:
        log.info(
            "uncertainty.validation=nested: %d refits, each without the fold it validates", refits
        )
        return
    trials = procedure("").spec.size()
    log.info(
        "uncertainty.validation=nested: %d refits, each a new search (up to %d trials, %d in "
        "all) then a fit on the rows outside the two folds it validates, as long as %d more "
        "outer folds (uncertainty.validation=crossfit skips them)",
        refits,
        trials,
        refits * trials,
        refits,
    )


def _refit(
    f: Any, g: Any, ds: Any, spread: bool, procedure: Callable[[str], Any] | None
) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
    """Fold ``f``'s pipeline refitted on the rows outside folds ``f`` and ``g`` (with
    ``procedure``: searched again there, in a project of its own): its predictions (and
    spread) of both folds' rows, keyed by fold (the model itself is not kept)."""
    from sklearn.base import clone

    from n2react.cv import fit_model

    name, train = "", np.setdiff1d(f.split.train, g.split.test)
    if procedure is not None:  # the same rows for (f, g) and (g, f): one search serves both
        name, train = _search_rows(f.split, g.split)
    groups = None if ds.groups is None else ds.groups[train]
    if procedure is None:
        model = fit_model(clone(f.model), ds.X.iloc[train], ds.y[train], groups)
    else:
        model = fit_model(procedure(name), ds.X.iloc[train], ds.y[train], groups).pipeline_
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
