"""Feature selectors usable as a pipeline step.

:class:`RFEVoteSelector` is the stability selection of the N2-reactivity authors: recursive
feature elimination (RFE) is repeated on random subsamples of the training rows and every feature
gets a vote each time RFE keeps it; the most frequently kept features win.  Voting over
subsamples makes the selection far less sensitive to a few clusters than a single RFE run.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.feature_selection import RFE, SelectorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from n2react.capabilities import ChecksParams, SelectionFrequency

logger = logging.getLogger(__name__)

__all__ = ["RFEVoteSelector"]

_INT32_MAX = 2**31 - 1


def _one_resample(
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    n_select: int,
    step: int | float,
) -> tuple[np.ndarray, np.ndarray]:
    """RFE on ``X[rows]``; returns its ``(support_, ranking_)``."""
    rfe = RFE(estimator, n_features_to_select=n_select, step=step)
    rfe.fit(X[rows], y[rows])
    return rfe.support_, rfe.ranking_


class RFEVoteSelector(SelectorMixin, BaseEstimator, ChecksParams, SelectionFrequency):
    """Keep the features most often selected by RFE over random row subsamples.

    Parameters
    ----------
    estimator : regressor or None
        Model ranking the features inside RFE (needs ``coef_`` or ``feature_importances_``).
        ``None`` means ``RandomForestRegressor(n_estimators=50)``.  In each resample a clone is
        used; if its ``random_state`` parameter is ``None`` it is set to a seed derived from
        ``(random_state, resample index)``, so the selection is deterministic for a fixed
        ``random_state``.
    n_features_to_select : int
        Number of features kept (and RFE's target size in every resample).  If it is ``>=`` the
        number of features, all features are kept (with a warning).
    n_resamples : int
        Number of subsamples (RFE runs).
    sample_fraction : float
        Fraction of the rows in each subsample (drawn without replacement; at least 1 row).
    step : int or float
        RFE's ``step``: features removed per iteration (a float in (0, 1) is a fraction).
    random_state : int, RandomState instance or None
        Seeds the subsamples and the per-resample estimator seeds.
    n_jobs : int or None
        Resamples run in parallel with joblib (``None`` = 1 unless in a joblib context).

    Attributes
    ----------
    selection_frequency_ : ndarray of shape (n_features_in_,)
        Fraction of the resamples whose RFE kept each feature.
    ranking_mean_ : ndarray of shape (n_features_in_,)
        Mean RFE ranking (1 = selected) of each feature over the resamples.
    support_ : ndarray of bool, shape (n_features_in_,)
        The kept features: the ``n_features_to_select`` highest frequencies, ties broken by the
        lower mean ranking, then by column order.
    n_features_in_, feature_names_in_ : sklearn input metadata.
    """

    def __init__(
        self,
        estimator: Any = None,
        n_features_to_select: int = 8,
        n_resamples: int = 20,
        sample_fraction: float = 0.8,
        step: int | float = 2,
        random_state: int | np.random.RandomState | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.estimator = estimator
        self.n_features_to_select = n_features_to_select
        self.n_resamples = n_resamples
        self.sample_fraction = sample_fraction
        self.step = step
        self.random_state = random_state
        self.n_jobs = n_jobs

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    def check_params(self) -> None:
        if int(self.n_features_to_select) < 1:
            raise ValueError(f"n_features_to_select must be >= 1, got {self.n_features_to_select}")
        if int(self.n_resamples) < 1:
            raise ValueError(f"n_resamples must be >= 1, got {self.n_resamples}")
        if not 0.0 < float(self.sample_fraction) <= 1.0:
            raise ValueError(f"sample_fraction must be in (0, 1], got {self.sample_fraction}")

    def _estimator_for(self, seed: int) -> Any:
        if self.estimator is None:
            return RandomForestRegressor(n_estimators=50, random_state=seed)
        est = clone(self.estimator)
        params = est.get_params(deep=False)
        if "random_state" in params and params["random_state"] is None:
            est.set_params(random_state=seed)
        return est

    def fit(self, X: Any, y: Any) -> RFEVoteSelector:
        """Run RFE on ``n_resamples`` subsamples of ``(X, y)`` and keep the top-voted features."""
        self.check_params()
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True, multi_output=False)
        n, p = X.shape
        k = int(self.n_features_to_select)
        n_res = int(self.n_resamples)
        if k >= p:
            warnings.warn(
                f"n_features_to_select={k} >= n_features={p}: keeping all features",
                UserWarning,
                stacklevel=2,
            )
            self.selection_frequency_ = np.ones(p, dtype=np.float64)
            self.ranking_mean_ = np.ones(p, dtype=np.float64)
            self.support_ = np.ones(p, dtype=bool)
            return self

        rs = self.random_state
        if rs is None or isinstance(rs, np.random.RandomState):
            base_seed = int(check_random_state(rs).randint(0, _INT32_MAX))
        else:
            base_seed = int(rs)
        n_sub = min(n, max(1, int(round(float(self.sample_fraction) * n))))
        jobs = []
        for r in range(n_res):
            ss = np.random.SeedSequence([abs(base_seed), r])
            rows_seed, est_seed = ss.generate_state(2)
            rng = np.random.default_rng(int(rows_seed))
            rows = np.sort(rng.choice(n, size=n_sub, replace=False))
            est = self._estimator_for(int(est_seed) & _INT32_MAX)
            jobs.append(delayed(_one_resample)(est, X, y, rows, k, self.step))
        results = Parallel(n_jobs=self.n_jobs)(jobs)

        supports = np.array([s for s, _ in results], dtype=bool)
        rankings = np.array([r for _, r in results], dtype=np.float64)
        self.selection_frequency_ = supports.mean(axis=0)
        self.ranking_mean_ = rankings.mean(axis=0)
        # Most votes first; ties by lower mean ranking, then by column order (lexsort: last key
        # is primary).
        order = np.lexsort((np.arange(p), self.ranking_mean_, -self.selection_frequency_))
        support = np.zeros(p, dtype=bool)
        support[order[:k]] = True
        self.support_ = support
        logger.debug(
            "RFEVoteSelector kept %d of %d features (frequencies %s)",
            k,
            p,
            np.array2string(self.selection_frequency_[support], precision=2),
        )
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return self.support_
