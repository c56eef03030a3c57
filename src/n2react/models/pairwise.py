"""Pairwise (difference) learning as a scikit-learn meta-estimator.

Pairwise learning (Mou et al., *ACS Catal.* 2025) turns ``n`` training rows into the
``n * (n - 1)`` ordered pairs ``(i, j)``, ``i != j``, and trains a base regressor ``f`` to predict
the *difference* of the targets from the difference of the descriptors::

    f(X[i] - X[j]) ~= y[i] - y[j]

A new row ``x`` is then predicted against every training row ``r`` (a *reference*) as
``f(x - X[r]) + y[r]``; the prediction is the mean over the references and their spread (the
standard deviation over the references) is a cheap uncertainty estimate.  With ~143 training
clusters per outer fold this gives ~20,000 training pairs, which suits data-hungry models such as
the Keras MLP.

No leakage: pairs are only ever built from the rows given to ``fit`` (or, in ``fit_many`` /
``fit_predict_many``, from each fold's own training rows), so splitting by cluster in the
(inner) cross-validation keeps every pair that contains a held-out cluster out of training.
With ``groups`` the clusters held out for the base's early stopping are whole groups, so no group
has clusters both in training pairs and among the held-out ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.linear_model import Ridge
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ..capabilities import (
    ChecksParams,
    EpochTrained,
    FitsMany,
    GroupAware,
    SpreadPredictor,
    Wrapper,
)
from ._groups import group_codes, group_target, hold_out_groups

logger = logging.getLogger(__name__)

__all__ = ["PairwiseRegressor", "make_pairs", "pair_indices"]

# Pair rows per base.predict call in predict (bounded memory: 50k x 24 float64 ~ 10 MB, doubled
# when symmetrizing).
_CHUNK_PAIRS = 50_000
_INT32_MAX = 2**31 - 1


def pair_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs ``(i, j)`` of ``range(n)`` with ``i != j``, in row-major order.

    Returns two int64 arrays of length ``n * (n - 1)``: ``i`` is ``0`` repeated ``n - 1`` times,
    then ``1`` ..., and for each ``i`` the ``j`` run over ``0..n-1`` skipping ``i``.
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy()
    i = np.repeat(np.arange(n, dtype=np.int64), n - 1)
    k = np.tile(np.arange(n - 1, dtype=np.int64), n)
    j = k + (k >= i)  # skip the diagonal
    return i, j


def make_pairs(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Difference inputs ``X[i] - X[j]`` and targets ``y[i] - y[j]`` over all ordered pairs.

    ``X`` is ``(n, p)`` array-like, ``y`` ``(n,)``; pairs are in :func:`pair_indices` order.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"expected X (n, p) and y (n,), got {X.shape} and {y.shape}")
    i, j = pair_indices(X.shape[0])
    return X[i] - X[j], y[i] - y[j]


def _fit_base(base: Any, dX: np.ndarray, dy: np.ndarray, mask: np.ndarray | None) -> Any:
    """A fitted clone of ``base``; ``mask`` marks its early-stopping pairs (None: its own).

    Only an :class:`~n2react.capabilities.EpochTrained` base (it stops early on validation rows,
    named by ``fit(..., validation_mask=...)`` and ``fit_many(..., validation_masks=...)``) ever
    gets a mask.
    """
    kwargs = {} if mask is None else {"validation_mask": mask}
    return clone(base).fit(dX, dy, **kwargs)


def _n_train(dy: np.ndarray, mask: np.ndarray | None) -> int:
    return len(dy) if mask is None else int((~mask).sum())


class PairwiseRegressor(
    RegressorMixin, BaseEstimator, FitsMany, GroupAware, SpreadPredictor, Wrapper, ChecksParams
):
    """Regress target differences on descriptor differences; predict by reference averaging.

    Parameters
    ----------
    base : regressor or None
        The difference model ``f``; ``None`` means ``sklearn.linear_model.Ridge()``.  It is
        cloned (``base_``), never fitted in place.  Nested parameters (``base__alpha``,
        ``base__units`` ...) work through ``get_params``/``set_params``.
    max_pairs : int or None
        Train on a random subset (without replacement, seeded by ``random_state``) of at most
        this many ordered pairs (at least 2: the base fitted on one pair is a constant);
        ``None`` uses all ``n * (n - 1)``.  With cluster validation the early-stopping pairs are
        subsampled in the same proportion (a seeded subset of the held-out/kept cluster pairs,
        both orders), so they keep their share of each epoch.
    symmetrize : bool
        Predict with the antisymmetric part ``f_sym(d) = (f(d) - f(-d)) / 2`` of the fitted
        difference model, so that ``f_sym(-d) == -f_sym(d)`` exactly (swapping the two rows of
        a pair flips the sign of the predicted difference and ``f_sym(0) == 0``).  Training
        needs no change: the training pairs already contain both orders ``(i, j)`` and
        ``(j, i)`` (unless ``max_pairs`` subsamples them).  For a linear base this just drops
        the intercept.
    validation : {"clusters", "pairs"}
        For a base with early stopping on validation rows (an ``EpochTrained`` one, such as the
        Keras MLP, whose ``fit`` takes a ``validation_mask``): ``"clusters"`` holds out a
        ``base.validation_fraction`` of the training *clusters* (whole groups when ``fit`` gets
        ``groups``), trains on the pairs among the others and stops early on the pairs (both
        orders) between a held-out cluster and a kept one, which is how a new cluster is
        predicted; ``"pairs"`` lets the base carve random pairs out, whose two clusters also sit
        in training pairs, so stopping is optimistic.  Ignored for bases without early stopping.
    random_state : int, RandomState instance or None
        Seeds the ``max_pairs`` subsample and the held-out validation clusters (the base has its
        own ``random_state``).  Model index ``k`` (``fit`` is index 0, ``fit_many`` fold ``k`` is
        index ``k``) draws from a seed derived from ``(random_state, k)``.

    Attributes
    ----------
    base_ : regressor
        The fitted difference model.
    X_ref_ : ndarray of shape (n_samples, n_features)
        The training rows, used as references at prediction time.
    y_ref_ : ndarray of shape (n_samples,)
        Their targets.
    n_pairs_ : int
        Number of pair rows ``base_`` was trained on.
    history_ : dict or None
        The fitted base's per-epoch ``{"loss": [...], "val_loss": [...]}`` (None when the base
        keeps no history).
    n_features_in_, feature_names_in_ : sklearn input metadata.
    """

    wrapped_param = "base"

    def __init__(
        self,
        base: Any = None,
        max_pairs: int | None = None,
        symmetrize: bool = True,
        validation: str = "clusters",
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.base = base
        self.max_pairs = max_pairs
        self.symmetrize = symmetrize
        self.validation = validation
        self.random_state = random_state

    # ------------------------------------------------------------------ helpers
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = False
        return tags

    def _base(self) -> Any:
        return Ridge() if self.base is None else self.base

    def check_params(self) -> None:
        mp = self.max_pairs
        if mp is not None and (isinstance(mp, bool) or not isinstance(mp, Integral) or mp < 2):
            # a base fitted on one pair is a constant: every cluster predicted the training mean
            raise ValueError(
                f"max_pairs must be None or a whole number >= 2 (one pair trains a constant "
                f"difference, the same prediction for every cluster), got {mp!r}"
            )
        if not isinstance(self.symmetrize, bool | np.bool_):
            raise ValueError(f"symmetrize must be true or false, got {self.symmetrize!r}")
        rs = self.random_state
        if (
            rs is not None
            and not isinstance(rs, np.random.RandomState)
            and (isinstance(rs, bool) or not isinstance(rs, Integral) or rs < 0)
        ):
            raise ValueError(f"random_state must be null or a whole number >= 0, got {rs!r}")
        if self.validation not in ("clusters", "pairs"):
            raise ValueError(f"validation must be 'clusters' or 'pairs', got {self.validation!r}")

    def _validate_train(self, est: PairwiseRegressor, X: Any, y: Any) -> tuple:
        X, y = validate_data(est, X, y, dtype=np.float64, y_numeric=True, multi_output=False)
        n = X.shape[0]
        if n < 2:
            raise ValueError(
                "PairwiseRegressor needs at least 2 training rows to build a pair, "
                f"got n_samples={n}"
            )
        return X, np.asarray(y, dtype=np.float64)

    def _pair_seed(self, index: int) -> int:
        rs = self.random_state
        if rs is None or isinstance(rs, np.random.RandomState):
            base = int(check_random_state(rs).randint(0, _INT32_MAX))
        else:
            base = int(rs)
        return int(np.random.SeedSequence([abs(base), int(index)]).generate_state(1)[0])

    def _validation_fraction(self) -> float:
        """The fraction of clusters held out for the base's early stopping (0 = none)."""
        base = self._base()
        if self.validation != "clusters" or not isinstance(base, EpochTrained):
            return 0.0
        return float(base.validation_fraction or 0.0)

    def _build_pairs(self, X: np.ndarray, y: np.ndarray, index: int, groups: Any = None) -> tuple:
        """One fold's pairs, from its own rows only: ``(dX, dy, validation_mask or None)``."""
        return self._pairs(X, y, index, groups)[:3]

    def _pairs(self, X: np.ndarray, y: np.ndarray, index: int, groups: Any) -> tuple:
        """``(dX, dy, validation_mask or None, fell_back)`` of one fold.

        Training pairs are the (optionally subsampled) ordered pairs among the kept clusters;
        with cluster validation, the pairs between a held-out and a kept cluster follow them
        (under ``max_pairs``, a subset in the same proportion, drawn after the training pairs).
        The held-out clusters are random ones, or whole random groups when ``groups`` is given
        (``fell_back``: there was a single group, so random clusters were held out).
        """
        seed = self._pair_seed(index)
        rng = np.random.default_rng(seed)
        n = X.shape[0]
        codes = None if groups is None else group_codes(groups, n)
        frac = self._validation_fraction()
        n_val = min(n - 2, int(round(frac * n))) if frac > 0 else 0
        fell_back = False
        if n_val >= 1:
            perm = rng.permutation(n)  # drawn with or without groups: max_pairs draws the same
            held, kept = np.sort(perm[:n_val]), np.sort(perm[n_val:])
            if codes is not None:
                # the groups draw from a generator of their own; at least 2 kept clusters
                target = max(n_val, group_target(frac, n))
                by_group = hold_out_groups(codes, target, np.random.default_rng([seed, 1]), 2)
                if by_group is None:
                    fell_back = True
                else:
                    held, kept = by_group, np.setdiff1d(np.arange(n), by_group)
        else:
            held, kept = np.empty(0, dtype=np.intp), np.arange(n)
        a, b = pair_indices(len(kept))
        i, j = kept[a], kept[b]
        capped = self.max_pairs is not None and int(self.max_pairs) < len(i)
        if capped:
            keep = np.sort(rng.choice(len(i), size=int(self.max_pairs), replace=False))
            i, j = i[keep], j[keep]
        if not len(held):
            return X[i] - X[j], y[i] - y[j], None, fell_back
        hv, kv = np.repeat(held, len(kept)), np.tile(kept, len(held))
        if capped:  # the validation pairs keep their share: max_pairs * held / (kept - 1) each way
            size = max(1, round(int(self.max_pairs) * len(held) / (len(kept) - 1)))
            keep = np.sort(rng.choice(len(hv), size=min(size, len(hv)), replace=False))
            hv, kv = hv[keep], kv[keep]
        i = np.concatenate([i, hv, kv])
        j = np.concatenate([j, kv, hv])
        mask = np.zeros(len(i), dtype=bool)
        mask[-2 * len(hv) :] = True
        return X[i] - X[j], y[i] - y[j], mask, fell_back

    def _set_refs(self, X: np.ndarray, y: np.ndarray, n_pairs: int) -> None:
        self.X_ref_ = X
        self.y_ref_ = y
        self.n_pairs_ = int(n_pairs)

    @property
    def history_(self) -> dict[str, list[float]] | None:
        """The fitted base's per-epoch ``{"loss", "val_loss"}``; None if the base keeps none."""
        check_is_fitted(self, "base_")
        return self.base_.history_ if isinstance(self.base_, EpochTrained) else None

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any, groups: Any = None) -> PairwiseRegressor:
        """Fit ``clone(base)`` on all ordered pairs of the rows of ``(X, y)`` (model index 0).

        ``groups`` (one label per row): the clusters held out for the base's early stopping
        (``validation="clusters"``) are whole groups, at least one group left for training.
        """
        return self._fit_all([self], [X], [y], [0], [groups], fused=False)[0]

    def difference(self, D: Any) -> np.ndarray:
        """The fitted difference function on difference rows ``D`` (n, p).

        ``f_sym(D) = (f(D) - f(-D)) / 2`` when ``symmetrize`` is true, else ``f(D)``.
        """
        check_is_fitted(self, "base_")
        D = np.asarray(D, dtype=np.float64)
        if self.symmetrize:
            both = np.asarray(self.base_.predict(np.concatenate([D, -D])), dtype=np.float64)
            both = both.reshape(2, len(D))
            return 0.5 * (both[0] - both[1])
        return np.asarray(self.base_.predict(D), dtype=np.float64).reshape(-1)

    def predict(
        self, X: Any, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Mean over references ``r`` of ``f(x - X_ref_[r]) + y_ref_[r]`` for each row ``x``.

        With ``return_std=True`` returns ``(mean, std)``, ``std`` being the (population)
        standard deviation of the per-reference predictions.  The ``(n_rows * n_ref, p)``
        difference matrix is built and predicted in chunks of ~50k pair rows.
        """
        check_is_fitted(self, "base_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        X_ref, y_ref = self.X_ref_, self.y_ref_
        n_ref = X_ref.shape[0]
        rows = max(1, _CHUNK_PAIRS // n_ref)
        mean = np.empty(X.shape[0], dtype=np.float64)
        std = np.empty(X.shape[0], dtype=np.float64)
        for start in range(0, X.shape[0], rows):
            xc = X[start : start + rows]
            D = (xc[:, None, :] - X_ref[None, :, :]).reshape(-1, X.shape[1])
            per_ref = self.difference(D).reshape(len(xc), n_ref) + y_ref[None, :]
            mean[start : start + len(xc)] = per_ref.mean(axis=1)
            std[start : start + len(xc)] = per_ref.std(axis=1)
        return (mean, std) if return_std else mean

    def fit_many(
        self,
        X_trains: Sequence[Any],
        y_trains: Sequence[Any],
        *,
        model_indices: Sequence[int] | None = None,
        groups: Sequence[Any] | None = None,
    ) -> list[PairwiseRegressor]:
        """One fitted clone per ``(X_trains[k], y_trains[k])``.

        Each fold's pairs come from its own rows only.  When the base is ``FitsMany`` (the
        Keras MLP) all fold base models are trained in one ``base.fit_many`` call; fold ``k`` is
        model index ``model_indices[k]`` (default ``k``), passed on to the base, so fold ``k``
        alone is reproduced by ``fit_many([X_k], [y_k], model_indices=[k])`` and ``fit`` equals
        index 0.  ``groups[k]`` (one label per row of fold k, or None) see :meth:`fit`.
        """
        if len(X_trains) != len(y_trains) or len(X_trains) == 0:
            raise ValueError("X_trains and y_trains must be non-empty and of the same length")
        indices = (
            list(range(len(X_trains))) if model_indices is None else [int(i) for i in model_indices]
        )
        if len(indices) != len(X_trains):
            raise ValueError("model_indices must have one entry per training set")
        if groups is not None and len(groups) != len(X_trains):
            raise ValueError("groups must have one entry per training set")
        ests = [clone(self) for _ in X_trains]
        return self._fit_all(ests, X_trains, y_trains, indices, groups, fused=True)

    def _fit_all(
        self,
        ests: list[PairwiseRegressor],
        X_trains: Sequence[Any],
        y_trains: Sequence[Any],
        indices: list[int],
        groups: Sequence[Any] | None,
        fused: bool,
    ) -> list[PairwiseRegressor]:
        """Fit ``ests[k]`` on fold k's pairs; with ``fused`` and a ``FitsMany`` base, all of
        them in one ``base.fit_many`` call (else one ``base.fit`` each)."""
        self.check_params()
        groups = [None] * len(ests) if groups is None else list(groups)
        refs, pair_X, pair_y, masks, fell_back = [], [], [], [], 0
        for est, X, y, idx, g in zip(ests, X_trains, y_trains, indices, groups, strict=True):
            X, y = self._validate_train(est, X, y)
            dX, dy, mask, fb = self._pairs(X, y, idx, g)
            refs.append((X, y))
            pair_X.append(dX)
            pair_y.append(dy)
            masks.append(mask)
            fell_back += fb
        if fell_back:
            logger.warning(
                "%d of %d folds got a single group: their held-out clusters are random ones",
                fell_back,
                len(ests),
            )
        base = self._base()
        if fused and isinstance(base, FitsMany):
            kwargs: dict[str, Any] = {"model_indices": indices}
            if any(m is not None for m in masks):  # a fold too small to hold any out has None
                kwargs["validation_masks"] = masks
            logger.debug("fitting %d pairwise base models in one fit_many call", len(ests))
            bases = list(clone(base).fit_many(pair_X, pair_y, **kwargs))
            if len(bases) != len(ests):
                raise RuntimeError("base.fit_many returned the wrong number of estimators")
        else:
            bases = [
                _fit_base(base, dX, dy, m) for dX, dy, m in zip(pair_X, pair_y, masks, strict=True)
            ]
        for est, b, (X, y), dy, m in zip(ests, bases, refs, pair_y, masks, strict=True):
            est.base_ = b
            est._set_refs(X, y, _n_train(dy, m))
        return ests

    def fit_predict_many(
        self,
        X_trains: Sequence[Any],
        y_trains: Sequence[Any],
        X_tests: Sequence[Any],
        *,
        model_indices: Sequence[int] | None = None,
        groups: Sequence[Any] | None = None,
        return_info: bool = False,
    ) -> list[np.ndarray] | tuple[list[np.ndarray], list[dict[str, Any]]]:
        """Fit one model per fold (see :meth:`fit_many`) and predict ``X_tests[k]`` with model k.

        Returns a list of 1-d float64 arrays (the reference-averaged predictions); with
        ``return_info=True`` also ``infos[k]``: fold k's ``history`` (the base's, or None) and
        ``n_pairs``.
        """
        if len(X_tests) != len(X_trains):
            raise ValueError("X_trains and X_tests must have the same length")
        fitted = self.fit_many(X_trains, y_trains, model_indices=model_indices, groups=groups)
        preds = [
            np.asarray(est.predict(Xt), dtype=np.float64)
            for est, Xt in zip(fitted, X_tests, strict=True)
        ]
        if not return_info:
            return preds
        return preds, [{"history": est.history_, "n_pairs": est.n_pairs_} for est in fitted]
