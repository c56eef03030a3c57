"""Cluster groupings for colouring and error tables: the metal, the family, or a given label."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from n2react.composition import METALS, parse_formula
from n2react.data import Dataset
from n2react.errors import ConfigError


def metal(name: str) -> str:
    """``'Mo5S2C1¯'`` -> ``'Mo'`` (mixed metals joined: ``'FeMo'``); the name when not a formula."""
    try:
        counts, _ = parse_formula(name)
    except ValueError:
        return str(name)
    return "".join(sorted(e for e in counts if e in METALS)) or str(name)


def family(name: str) -> str:
    """``'Mo5S2C1¯'`` -> ``'Mo-C,S'``: the metal and the ligand elements (``'Rh-bare'``)."""
    try:
        counts, _ = parse_formula(name)
    except ValueError:
        return str(name)
    metals = "".join(sorted(e for e in counts if e in METALS))
    ligands = ",".join(sorted(e for e in counts if e not in METALS))
    return f"{metals}-{ligands or 'bare'}"


def group_labels(
    clusters: Iterable[str], spec: Any = None, dataset: Dataset | None = None
) -> pd.Series:
    """One label per cluster, indexed by cluster name.

    ``spec``: None or ``'metal'`` (default), ``'family'``, ``'column:<name>'`` (a column of the
    data set's descriptor table), a mapping cluster -> label, or a Series indexed by cluster.
    """
    names = [str(c) for c in clusters]
    if spec is None or (isinstance(spec, str) and spec in ("metal", "none")):
        return pd.Series([metal(n) for n in names], index=names, name="metal")
    if isinstance(spec, str) and spec == "family":
        return pd.Series([family(n) for n in names], index=names, name="family")
    if isinstance(spec, str) and spec.startswith("column:"):
        col = spec.split(":", 1)[1]
        if dataset is None or col not in dataset.X.columns:
            raise ConfigError(f"groups={spec}: no such column in the data set")
        lookup = pd.Series(dataset.X[col].to_numpy(), index=dataset.clusters.astype(str))
        return pd.Series(lookup.reindex(names).astype(str).to_numpy(), index=names, name=col)
    if isinstance(spec, Mapping | pd.Series):
        lookup = pd.Series(spec) if isinstance(spec, Mapping) else spec
        lookup.index = lookup.index.astype(str)
        missing = [n for n in names if n not in lookup.index]
        if missing:
            raise ConfigError(f"groups: no label for cluster(s) {', '.join(missing[:5])}")
        return pd.Series(lookup.reindex(names).astype(str).to_numpy(), index=names, name="group")
    raise ConfigError(f"groups={spec!r}: expected metal, family, column:<name> or a mapping")


def family_table(oof: pd.DataFrame) -> pd.DataFrame:
    """One row per family: n, MAE, bias (mean of predicted - measured), RMSE, max |error|.

    ``oof`` has columns cluster, y_true, y_pred (with repeats, a cluster counts once per repeat).
    Sorted by MAE, worst first.
    """
    res = oof["y_pred"].to_numpy(float) - oof["y_true"].to_numpy(float)
    df = pd.DataFrame({"family": [family(c) for c in oof["cluster"]], "residual": res})
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
