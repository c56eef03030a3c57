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
from omegaconf import DictConfig
from sklearn.base import clone

from n2react.data import Dataset
from n2react.errors import ConfigError
from n2react.metrics import regression_metrics
from n2react.models.pairwise import pair_indices
from n2react.pipeline import build_pipeline

log = logging.getLogger(__name__)


def pair_split(dataset: Dataset, cfg: DictConfig) -> tuple[dict[str, float], pd.DataFrame]:
    """Scores on held-out pairs (differences) and the table of test pairs."""
    pipeline = build_pipeline(cfg)
    wrapper = pipeline.steps[-1][1]
    base = getattr(wrapper, "base", None)
    if base is None:
        raise ConfigError("cv.scheme=pair_split: needs pairwise=on (a model of pair differences)")
    frac = float(cfg.cv.get("pair_test_fraction", 0.2))
    if not 0.0 < frac < 1.0:
        raise ConfigError(f"cv.pair_test_fraction={frac}: must be between 0 and 1")
    pre = pipeline[:-1]
    Xt = np.asarray(pre.fit_transform(dataset.X, dataset.y), dtype=float)
    i, j = pair_indices(dataset.n_rows)
    rng = np.random.default_rng(int(cfg.cv.seed))
    order = rng.permutation(len(i))
    n_test = int(round(frac * len(i)))
    test, train = order[:n_test], order[n_test:]
    dX, dy = Xt[i] - Xt[j], dataset.y[i] - dataset.y[j]
    log.info("pair split: %d training pairs, %d test pairs", len(train), len(test))
    model = clone(base).fit(dX[train], dy[train])
    pred_test = np.asarray(model.predict(dX[test]), dtype=float).ravel()
    pred_train = np.asarray(model.predict(dX[train]), dtype=float).ravel()
    m = {f"test_{k}": v for k, v in regression_metrics(dy[test], pred_test).items()}
    m.update({f"train_{k}": v for k, v in regression_metrics(dy[train], pred_train).items()})
    seen = set(i[train].tolist()) | set(j[train].tolist())
    both_seen = np.mean([(a in seen and b in seen) for a, b in zip(i[test], j[test])])
    log.info("%.1f%% of test pairs have both clusters in training pairs", 100 * both_seen)
    summary = {f"mean_{k}": v for k, v in m.items()}
    summary.update({f"std_{k}": 0.0 for k in m})
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
