"""Hold out whole groups: the carve-out the Keras MLP and the pairwise wrapper share.

With grouped cross-validation a carve-out of the training rows (early-stopping rows, held-out
reference clusters) must not split a group, or the early stopping watches rows whose group it also
trains on.  :func:`hold_out_groups` draws whole groups in random order until enough rows are held.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def group_target(fraction: float, n: int) -> int:
    """Rows to hold out in whole groups: at least ``fraction`` of ``n`` (and at least one)."""
    return max(1, math.ceil(float(fraction) * n - 1e-9))


def group_codes(groups: Any, n: int) -> np.ndarray:
    """Integer codes ``0..G-1`` (sorted label order) of one label per row; ValueError otherwise."""
    g = np.asarray(groups)
    if g.ndim != 1 or len(g) != n:
        raise ValueError(f"groups must hold one label per row: got shape {g.shape} for {n} rows")
    try:
        _, codes = np.unique(g, return_inverse=True)
    except TypeError:  # labels of mixed types: compare them as text
        _, codes = np.unique(g.astype(str), return_inverse=True)
    return codes.reshape(-1).astype(np.intp)


def hold_out_groups(
    codes: np.ndarray, target: int, rng: np.random.Generator, min_keep: int = 1
) -> np.ndarray | None:
    """Sorted row indices of whole groups, drawn in random order until ``>= target`` rows.

    At least one group, and at least ``min_keep`` rows, stay out of the held-out set (so fewer
    rows than ``target`` may be held, possibly none).  None when there are fewer than two groups:
    the caller falls back to a row carve-out.
    """
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    if n_groups < 2:
        return None
    if target <= 0:
        return np.empty(0, dtype=np.intp)
    order = rng.permutation(n_groups)
    cum = np.cumsum(np.bincount(codes, minlength=n_groups)[order])
    p = min(int(np.searchsorted(cum, target)) + 1, n_groups - 1)
    while p > 0 and len(codes) - cum[p - 1] < min_keep:
        p -= 1
    return np.flatnonzero(np.isin(codes, order[:p]))
