"""Cluster groupings for colouring and error tables: the metal, the family, or a given label.

The labels themselves come from the one labeller, :func:`n2react.splitters.group_labels`, which
the CV folds and the terminal's per-group table use too."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from n2react.composition import DEFAULT_LIGANDS
from n2react.data import Dataset
from n2react.errors import ConfigError
from n2react.splitters import group_labels


def group_labels_of(
    clusters: Iterable[str],
    spec: Any = None,
    dataset: Dataset | None = None,
    ligands: Sequence[str] = DEFAULT_LIGANDS,
) -> pd.Series:
    """One label per cluster for colouring, indexed by cluster name, from the one labeller
    :func:`n2react.splitters.group_labels` (names that are not formulas keep their name).

    ``spec``: None or ``'metal'`` (default), ``'family'``, ``'column:<name>'`` (the data set's
    group column, or a descriptor column of that name), a mapping cluster -> label, or a Series
    indexed by cluster. ``ligands``: the run's ``data.formula_ligands``.
    """
    names = [str(c) for c in clusters]
    if spec is None or (isinstance(spec, str) and spec in ("metal", "none", "family")):
        kind = "family" if spec == "family" else "metal"
        labels = group_labels(kind, names, strict=False, ligands=ligands)
        return pd.Series(labels, index=names, name=kind, dtype=object)
    if isinstance(spec, str) and spec.startswith("column:"):
        col = spec.split(":", 1)[1]
        if dataset is not None and dataset.groups is not None:  # the run's cv.groups column
            values = np.asarray(dataset.groups)
        elif dataset is not None and col in dataset.X.columns:
            values = dataset.X[col].to_numpy()
        else:
            raise ConfigError(f"groups={spec}: no such column in the data set")
        lookup = pd.Series(values, index=dataset.clusters.astype(str))
        lookup = lookup[~lookup.index.duplicated()]
        return pd.Series(lookup.reindex(names).astype(str).to_numpy(), index=names, name=col)
    if isinstance(spec, Mapping | pd.Series):
        lookup = pd.Series(spec) if isinstance(spec, Mapping) else spec
        lookup.index = lookup.index.astype(str)
        missing = [n for n in names if n not in lookup.index]
        if missing:
            raise ConfigError(f"groups: no label for cluster(s) {', '.join(missing[:5])}")
        return pd.Series(lookup.reindex(names).astype(str).to_numpy(), index=names, name="group")
    raise ConfigError(f"groups={spec!r}: expected metal, family, column:<name> or a mapping")


def families(clusters: Iterable[str], ligands: Sequence[str] = DEFAULT_LIGANDS) -> list[str]:
    """The family of each cluster (:func:`n2react.composition.family_of`, with the run's
    ``ligands``; a name that is not a formula stays as it is)."""
    names = [str(c) for c in clusters]
    return list(group_labels("family", names, strict=False, ligands=ligands))


def family_table(
    oof: pd.DataFrame,
    ligands: Sequence[str] = DEFAULT_LIGANDS,
    labels: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per family: n, MAE, bias (mean of predicted - measured), RMSE, max |error|.

    ``oof`` has columns cluster, y_true, y_pred (with repeats, a cluster counts once per repeat).
    ``labels``: the family of each row of ``oof`` when not :func:`families`'. Sorted by MAE,
    worst first.
    """
    res = oof["y_pred"].to_numpy(float) - oof["y_true"].to_numpy(float)
    fams = list(labels) if labels is not None else families(oof["cluster"], ligands)
    df = pd.DataFrame({"family": fams, "residual": res})
    g = df.groupby("family")["residual"]
    table = pd.DataFrame(
        {
            "n": g.size(),
            "mae": g.apply(lambda r: float(np.abs(r).mean())),
            "bias": g.mean(),
            "rmse": g.apply(lambda r: float(np.sqrt((r**2).mean()))),
            "max_abs_error": g.apply(lambda r: float(np.abs(r).max())),
        }
    )
    return table.sort_values("mae", ascending=False)


def per_cluster(oof: pd.DataFrame) -> pd.DataFrame:
    """One row per held-out cluster (mean over repeats): cluster, y_true, y_pred, residual
    (predicted - measured)."""
    g = oof.groupby("cluster", sort=False)[["y_true", "y_pred"]].mean().reset_index()
    g["residual"] = g["y_pred"] - g["y_true"]
    return g
