"""The reference paper's pair-level evaluation, kept to reproduce its figure (not an estimate).

Mou et al. build all ordered pairs of the 159 clusters and split the PAIRS 80/20 at random. A
test pair (i, j) then almost always has both i and j in other training pairs, so the score
measures interpolation between known clusters, not prediction of a new one. Here, as in the
paper, the preprocessing is fitted on all clusters; the model's own early-stopping rows come from
the training pairs (the paper's came from its test split, which we do not copy).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.base import clone

from n2react.capabilities import Wrapper
from n2react.cv import fold_predictions, unconverged
from n2react.data import Dataset
from n2react.errors import ConfigError
from n2react.metrics import pooled_metrics, regression_metrics
from n2react.models.pairwise import PairwiseRegressor, pair_indices
from n2react.plan import Plan
from n2react.splitters import Split

log = logging.getLogger(__name__)


def pair_split(dataset: Dataset, plan: Plan) -> tuple[dict[str, float], pd.DataFrame]:
    """Scores on held-out pairs (differences) and the table of test pairs."""
    pipeline = plan.make_pipeline()
    wrapper = pipeline.steps[-1][1]
    if not isinstance(wrapper, Wrapper):
        raise ConfigError("cv.scheme=pair_split: needs pairwise=on (a model of pair differences)")
    base = getattr(wrapper, wrapper.wrapped_param)
    pre = pipeline[:-1]
    Xt = np.asarray(pre.fit_transform(dataset.X, dataset.y), dtype=float)
    i, j = pair_indices(dataset.n_rows)
    rng = np.random.default_rng(plan.seed)
    order = rng.permutation(len(i))
    n_test = int(round(plan.pair_test_fraction * len(i)))
    test, train = order[:n_test], order[n_test:]
    cap = wrapper.max_pairs if isinstance(wrapper, PairwiseRegressor) else None
    if cap is not None and cap < len(train):  # pairwise.wrapper.max_pairs: a seeded subsample
        train = np.sort(rng.choice(train, size=int(cap), replace=False))
    if len(train) < 2 or len(test) < 1:
        raise ConfigError(
            f"cv.pair_test_fraction={plan.pair_test_fraction}: leaves {len(train)} training and "
            f"{len(test)} test pairs of {len(i)}; a split needs at least 2 and 1"
        )
    dX, dy = Xt[i] - Xt[j], dataset.y[i] - dataset.y[j]
    log.info("pair split: %d training pairs, %d test pairs", len(train), len(test))
    fitted: list = []
    (pred_test,) = fold_predictions(
        lambda _s: clone(base),
        dX,
        dy,
        [Split(1, 1, train, test)],
        on_fold=lambda _s, model, _p, _std: fitted.append(model),
    )
    unconverged("pair split", fitted[0], {})  # no search: the estimator's key
    pred_train = np.asarray(fitted[0].predict(dX[train]), dtype=float).ravel()
    m = {f"test_{k}": v for k, v in regression_metrics(dy[test], pred_test).items()}
    m.update({f"train_{k}": v for k, v in regression_metrics(dy[train], pred_train).items()})
    seen = set(i[train].tolist()) | set(j[train].tolist())
    both_seen = np.mean([(a in seen and b in seen) for a, b in zip(i[test], j[test])])
    log.info("%.1f%% of test pairs have both clusters in training pairs", 100 * both_seen)
    summary = {f"mean_{k}": v for k, v in m.items()}
    summary.update({f"std_{k}": 0.0 for k in m})
    # one test set: pooled over it = its scores (so every optimized_metric exists)
    summary.update({f"pooled_test_{k}": v for k, v in pooled_metrics(dy[test], pred_test).items()})
    summary["test_pairs_with_both_clusters_seen"] = float(both_seen)
    table = pd.DataFrame(
        {
            "cluster_i": dataset.clusters[i[test]],
            "cluster_j": dataset.clusters[j[test]],
            "y_true": dy[test],
            "y_pred": pred_test,
        }
    )
    return summary, table
