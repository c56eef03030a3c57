"""Descriptor importance of fitted pipelines: SHAP values and out-of-fold permutation importance.

Everything is computed in the space of the pipeline's INPUT descriptors, so imputers, interaction
features, selectors and pairwise wrappers need no special case:

* a tree model (random forest, extra trees, gradient boosting) behind a 1:1 transform (impute,
  scale: the transform keeps every column, in order) gets shap's exact ``TreeExplainer`` on the
  transformed rows (a monotone per-column rescaling moves no attribution between columns);
* everything else (SVR, ridge, the Keras MLP, pairwise models, voting ensembles, pipelines that
  select or combine columns) gets model-agnostic permutation SHAP (shap's ``PermutationExplainer``
  algorithm, vectorised over rows) on the whole ``pipeline.predict``, with a fixed, seeded
  background sample and a fixed evaluation budget.

Permutation importance is measured on the OUTER TEST folds: each fold model is scored on its own
held-out clusters (RMSE increase when one descriptor's values are shuffled among them), so it
shows what generalises rather than what the model memorised.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeRegressor, ExtraTreeRegressor

from n2react.capabilities import final_step

log = logging.getLogger(__name__)

_TREES: tuple[type, ...] = (
    RandomForestRegressor,
    ExtraTreesRegressor,
    GradientBoostingRegressor,
    DecisionTreeRegressor,
    ExtraTreeRegressor,
)
#: Rows per predict call when scoring stacked permutations (keeps pairwise memory bounded).
_CHUNK = 4096
#: Cells (rows x descriptors) of one stacked block of masked rows for permutation SHAP.
_CELLS = 4_000_000


@dataclass(frozen=True)
class Budget:
    """How much work an explanation may do (all seeded, so reruns give the same numbers).

    background: rows of the model-agnostic explainer's background sample.
    max_rows: rows of the final model explained (a seeded subsample when there are more; None =
      all); fold_rows: the same for each outer-fold model (only their mean |SHAP| is kept).
    fold_trees: trees of a forest's outer-fold model that TreeSHAP walks (a seeded subsample;
      None = all). A forest predicts the mean of its trees, so each row's SHAP values are the
      mean of its trees' SHAP values and a subsample estimates them without bias: the fold
      spread costs a tenth, while the final model is always explained over every tree.
    permutations: antithetic permutation passes of the model-agnostic explainer (each costs
      2 (p + 1) evaluations per row for p descriptors, each evaluation ``background`` predictions).
    n_repeats: shuffles per descriptor and outer fold for the permutation importance.
    seconds: the most a run's model-agnostic explanation should take; a model that predicts so
      slowly that this budget would take longer gets a smaller one (:mod:`n2react.explain.cost`;
      None: this budget whatever it costs).
    """

    background: int = 20
    max_rows: int | None = 80
    fold_rows: int | None = 20
    fold_trees: int | None = 30
    permutations: int = 1
    n_repeats: int = 10
    seed: int = 0
    seconds: float | None = 600.0

    def __post_init__(self) -> None:
        """A budget of no rows, trees or shuffles explains nothing: refused, naming the field."""
        from n2react.errors import ConfigError

        for name in ("background", "max_rows", "fold_rows", "fold_trees", "permutations",
                     "n_repeats"):  # fmt: skip
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"Budget {name}={value}: need at least 1")


def explainer_kind(pipeline: Any, names: list[str]) -> str:
    """``'tree'`` when TreeExplainer applies to the final step exactly, else ``'permutation'``."""
    final = final_step(pipeline)
    if type(final) not in _TREES:  # exactly these classes: TreeExplainer reads their trees
        return "permutation"
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) == 1:
        return "tree"
    try:
        out = [str(n) for n in pipeline[:-1].get_feature_names_out(names)]
    except Exception:
        return "permutation"
    return "tree" if out == list(names) else "permutation"


def _rows(X: pd.DataFrame, n: int | None, seed: int, salt: int) -> pd.DataFrame:
    if n is None or len(X) <= n:
        return X
    rng = np.random.default_rng([seed, salt])
    return X.iloc[np.sort(rng.choice(len(X), n, replace=False))]


def _some_trees(model: Any, n: int | None, seed: int, salt: int) -> Any:
    """A copy of a forest (an average of its trees) that holds ``n`` of its trees, seeded; any
    other model as it is."""
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

    forest = isinstance(model, RandomForestRegressor | ExtraTreesRegressor)
    trees = getattr(model, "estimators_", [])
    if n is None or not forest or len(trees) <= n:
        return model
    keep = np.sort(np.random.default_rng([seed, salt, 2]).choice(len(trees), n, replace=False))
    some = copy.copy(model)
    some.estimators_ = [trees[i] for i in keep]
    some.n_estimators = n
    return some


def trees_walked(pipeline: Any, n: int | None) -> int | None:
    """How many of its trees TreeSHAP walks for a forest ``pipeline`` given ``trees=n`` (see
    :func:`shap_values`) when that is fewer than it has; else None (every tree, or no forest)."""
    final = final_step(pipeline)
    if n is None or not isinstance(final, RandomForestRegressor | ExtraTreesRegressor):
        return None
    return n if len(final.estimators_) > n else None


def shap_values(
    pipeline: Any,
    X: pd.DataFrame,
    budget: Budget = Budget(),
    salt: int = 0,
    max_rows: int | None = -1,
    trees: int | None = None,
) -> tuple[pd.DataFrame, str]:
    """SHAP values (rows of ``X`` explained x input descriptors) and the explainer used.

    ``X`` are the rows to explain (and, model-agnostic, to draw the background from): the
    model's own training rows. ``salt`` varies the seeded row/background samples per model;
    ``max_rows`` overrides ``budget.max_rows`` (None = all rows); ``trees``: TreeSHAP of a
    forest over a seeded subsample of that many trees (None = all; see ``Budget.fold_trees``).
    """
    names = [str(c) for c in X.columns]
    rows = _rows(X, budget.max_rows if max_rows == -1 else max_rows, budget.seed, salt)
    kind = explainer_kind(pipeline, names)
    if kind == "tree":
        import shap

        final = final_step(pipeline)
        final = _some_trees(final, trees, budget.seed, salt)
        Xt = pipeline[:-1].transform(rows) if isinstance(pipeline, Pipeline) else rows
        explainer = shap.TreeExplainer(final)
        vals = explainer.shap_values(np.asarray(Xt, dtype=float), check_additivity=False)
    else:
        vals = _permutation_shap(pipeline, X, rows, names, budget, salt)
    return pd.DataFrame(np.asarray(vals, dtype=float), index=rows.index, columns=names), kind


def _permutation_shap(
    pipeline: Any,
    X: pd.DataFrame,
    rows: pd.DataFrame,
    names: list[str],
    budget: Budget,
    salt: int,
    workers: int = 1,
    done: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Antithetic permutation SHAP (the algorithm of shap's ``PermutationExplainer``) with an
    independent background, vectorised over all explained rows.

    For each row and permutation the descriptors are switched from background to the row's
    values one at a time along the permutation, then along its reverse; a descriptor's SHAP value
    is the mean change of the prediction (averaged over the background rows) when it is switched.
    The values of a row sum exactly to f(row) - mean f(background). Every evaluation of every row
    is stacked and predicted in a few large calls, instead of one call per row (``workers``,
    ``done``: see :func:`_predict`).
    """
    rng = np.random.default_rng([budget.seed, salt, 1])
    data = X.to_numpy(dtype=float)
    bg = data[rng.choice(len(data), min(budget.background, len(data)), replace=False)]
    x_all = rows.to_numpy(dtype=float)
    n_all, p = x_all.shape
    out_all = np.zeros((n_all, p))
    block = max(1, _CELLS // ((p + 1) * len(bg) * p))  # rows per stacked block (bounds memory)
    for _ in range(max(1, budget.permutations)):
        perms_all = np.stack([rng.permutation(p) for _ in range(n_all)])
        for b in range(0, n_all, block):
            x, out, perms = x_all[b : b + block], out_all[b : b + block], perms_all[b : b + block]
            _antithetic(pipeline, x, bg, perms, out, names, workers, done)
    return out_all / (2 * max(1, budget.permutations))


def _antithetic(
    pipeline: Any,
    x: np.ndarray,
    bg: np.ndarray,
    perms: np.ndarray,
    out: np.ndarray,
    names: list,
    workers: int = 1,
    done: Callable[[int], None] | None = None,
) -> None:
    """Add the forward and the reverse pass of ``perms`` (one permutation per row) to ``out``."""
    n, p = x.shape
    for order in (perms, perms[:, ::-1]):
        # on[i, s, j]: descriptor j of row i takes the row's value at step s (0..p)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(p)[None, :].repeat(n, 0), axis=1)
        on = rank[:, None, :] < np.arange(p + 1)[None, :, None]  # (n, p + 1, p)
        masked = np.where(on[:, :, None, :], x[:, None, None, :], bg[None, None, :, :])
        f = _predict(pipeline, masked.reshape(-1, p), names, workers, done)
        f = f.reshape(n, p + 1, len(bg))
        f = f.mean(axis=2)  # (n, p + 1)
        gain = np.diff(f, axis=1)  # gain[:, s]: switching descriptor order[:, s]
        np.put_along_axis(out, order, np.take_along_axis(out, order, 1) + gain, axis=1)


def _predict(
    pipeline: Any,
    a: np.ndarray,
    names: list[str],
    workers: int = 1,
    done: Callable[[int], None] | None = None,
) -> np.ndarray:
    """``pipeline.predict`` of the rows ``a``, in chunks of :data:`_CHUNK` rows. ``workers`` > 1
    predicts that many chunks side by side in threads, for models that predict each row on its
    own, without the GIL (scikit-learn's trees, pairwise or not): the numbers are the same.
    ``done(rows)`` is called as each chunk is finished (a progress count)."""

    # with threads, at least one chunk each (a row's prediction does not depend on its chunk)
    size = _CHUNK if workers <= 1 else max(256, min(_CHUNK, -(-len(a) // workers)))

    def chunk(s: int) -> np.ndarray:
        part = np.asarray(pipeline.predict(pd.DataFrame(a[s : s + size], columns=names)))
        if done is not None:
            done(min(size, len(a) - s))
        return part.ravel()

    starts = range(0, len(a), size)
    if workers > 1 and len(starts) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(workers, len(starts))) as pool:
            parts = list(pool.map(chunk, starts))
    else:
        parts = [chunk(s) for s in starts]
    return np.concatenate(parts).astype(float)


def mean_abs(values: pd.DataFrame) -> pd.Series:
    """Mean |SHAP| per descriptor."""
    return values.abs().mean(axis=0)


def shap_importance_table(
    final: pd.Series | None, folds: Mapping[int, pd.Series], names: list[str]
) -> pd.DataFrame:
    """One row per descriptor: mean |SHAP| of the final model, and its mean, sd over the fold
    models (columns ``fold_NN`` hold each fold's), sorted by the final (else fold-mean) value."""
    from n2react.descriptors import label

    table = pd.DataFrame(index=pd.Index(names, name="descriptor"))
    table["label"] = [label(n) for n in names]
    table["final"] = final.reindex(names).to_numpy() if final is not None else np.nan
    per_fold = pd.DataFrame({f"fold_{k:02d}": s.reindex(names) for k, s in sorted(folds.items())})
    table["fold_mean"] = per_fold.mean(axis=1) if len(per_fold.columns) else np.nan
    table["fold_std"] = per_fold.std(axis=1, ddof=1) if len(per_fold.columns) > 1 else np.nan
    table = pd.concat([table, per_fold], axis=1)
    key = "final" if final is not None else "fold_mean"
    return table.sort_values(key, ascending=False)


def permutation_importance_fold(
    model: Any, X_test: pd.DataFrame, y_test: np.ndarray, *, n_repeats: int, seed: int
) -> pd.Series:
    """Mean increase of the held-out RMSE when one descriptor is shuffled among the test rows.

    The same quantity as ``sklearn.inspection.permutation_importance`` with RMSE scoring, but all
    shuffled copies are stacked and predicted in a few calls (a forest's predict costs the same
    for 16 rows as for thousands).
    """
    X = X_test.to_numpy(dtype=float)
    y = np.asarray(y_test, dtype=float)
    n, p = X.shape
    names = [str(c) for c in X_test.columns]
    rng = np.random.default_rng(seed)
    stacked = np.repeat(X[None], p * n_repeats + 1, axis=0)  # (p * repeats + 1, n, p)
    for j in range(p):
        for r in range(n_repeats):
            stacked[j * n_repeats + r, :, j] = X[rng.permutation(n), j]
    pred = _predict(model, stacked.reshape(-1, p), names)  # the last n rows: unshuffled
    preds = pred[: p * n_repeats * n].reshape(p, n_repeats, n)
    base = _rmse(y, pred[p * n_repeats * n :])
    perm = np.sqrt(((preds - y[None, None, :]) ** 2).mean(axis=2))  # (p, repeats)
    return pd.Series(perm.mean(axis=1) - base, index=names)


def _rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def permutation_table(folds: Mapping[int, pd.Series], names: list[str]) -> pd.DataFrame:
    """One row per descriptor: mean and sd over the outer folds of the RMSE increase."""
    from n2react.descriptors import label

    per_fold = pd.DataFrame({f"fold_{k:02d}": s.reindex(names) for k, s in sorted(folds.items())})
    table = pd.DataFrame(index=pd.Index(names, name="descriptor"))
    table["label"] = [label(n) for n in names]
    table["mean"] = per_fold.mean(axis=1)
    table["std"] = per_fold.std(axis=1, ddof=1) if per_fold.shape[1] > 1 else np.nan
    return pd.concat([table, per_fold], axis=1).sort_values("mean", ascending=False)


def kept_by_folds(fold_models: Mapping[int, Any], names: list[str]) -> pd.DataFrame | None:
    """Descriptor x outer fold (``fold_NN``, bool): whether that fold's descriptor selector
    (its pipeline's ``select`` step, a scikit-learn selector) kept it. Each fold fits its own
    selector, so together they keep more descriptors than one of them. None when the folds have
    no selector, or it chooses among derived columns (interactions) rather than the descriptors."""
    from sklearn.feature_selection import SelectorMixin

    cols = {}
    for k, model in sorted(fold_models.items()):
        steps = list(model.named_steps) if isinstance(model, Pipeline) else []
        select = model.named_steps["select"] if "select" in steps else None
        if not isinstance(select, SelectorMixin):
            return None
        before = model[: steps.index("select")]
        if [str(n) for n in before.get_feature_names_out(names)] != list(names):
            return None
        cols[f"fold_{k:02d}"] = pd.Series(select.get_support(), index=names, dtype=bool)
    return pd.DataFrame(cols) if cols else None


def fold_ranks(table: pd.DataFrame) -> pd.DataFrame:
    """Rank (1 = most important) of each descriptor within each ``fold_NN`` column."""
    return table[fold_columns(table)].rank(ascending=False, method="average")


def fold_columns(table: pd.DataFrame) -> list[str]:
    """The per-fold columns (``fold_01`` ...) of an importance table."""
    return [str(c) for c in table.columns if re.fullmatch(r"fold_\d+", str(c))]
