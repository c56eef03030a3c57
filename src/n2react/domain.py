"""Applicability domain: is a new cluster like the clusters the model was trained on?

A model trained on the 159 homonuclear clusters interpolates inside known families well and
extrapolates to new compositions badly. :class:`ApplicabilityDomain` learns from the training rows
what "known" means and flags each new cluster that is not, with the reasons a chemist can check:

* **new element**: an element in the cluster's name that no training cluster contains;
* **descriptor range**: a descriptor below the training minimum or above the training maximum by
  more than ``range_tolerance`` training standard deviations (which ones, how far);
* **kNN distance**: the mean Euclidean distance to the ``k`` nearest training clusters, in the
  training-standardised descriptor space, above the ``quantile`` of the same statistic over the
  training clusters themselves (each measured against the *other* training clusters).

The rule is an OR: a cluster is outside the domain when any one of the three holds. Missing (or
infinite) cells are filled with the training median (and named in the reasons); a filled cell
never counts as out of range. A name that is not a formula adds no elements (at fit) and is not
checked for new ones (at assess, said in the reasons). The fit sees training rows only, so using
it inside a CV fold leaks nothing.

On the 15-descriptor file, leave-one-metal-out, the descriptors alone (range or kNN distance)
flag all 42 Ta, 18 of 24 Fe, 16 of 53 Mo, 9 of 33 V, 4 of 4 Rh and 1 of 3 Co clusters; a random
20 % of the same metals is 82 % in domain (``benchmarks/domain_lomo.py``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from n2react.composition import DEFAULT_LIGANDS, METALS, parse_formula
from n2react.errors import ConfigError, DataError
from n2react.provenance import same_rows

log = logging.getLogger(__name__)

#: The element symbols a cluster name may hold (H..Og).
ELEMENTS = frozenset(
    """H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As
    Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb
    Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk
    Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og""".split()
)
#: Non-metals and metalloids (B Si Ge As Sb Te At): in a metal cluster's name, ligand elements.
NON_METALS = frozenset(
    "H He B C N O F Ne Si P S Cl Ar Ge As Se Br Kr Sb Te I Xe At Rn Ts Og".split()
)
#: A formula at the start of a structure label such as ``Mo3S4C1-1-M2`` (the authors' fold files).
_LEADING = re.compile(r"^((?:[A-Z][a-z]?\d*)+)(?:[\s_\-(\[.]|$)")
#: How many out-of-range descriptors the reasons name (the rest are counted).
TOP_RANGE = 3
#: How many nearest training clusters the table names.
N_NEAREST = 3


def cluster_elements(name: str, symbols: frozenset[str] = ELEMENTS) -> set[str] | None:
    """The element symbols of a cluster name, or None when the name is not a formula.

    ``'Mo5S2C1¯'`` -> ``{'Mo', 'S', 'C'}``; a structure label that starts with a formula and goes
    on after a separator (``'Mo3S4C1-1-M2'``) gives the formula's elements.
    """
    try:
        counts, _ = parse_formula(name)
    except ValueError:
        m = _LEADING.match(str(name).strip())
        if m is None:
            return None
        counts, _ = parse_formula(m.group(1))
    found = set(counts)
    return found if found <= symbols else None


def is_metal(symbol: str) -> bool:
    """Whether an element of a cluster name is a metal: one the formula features know
    (:data:`n2react.composition.METALS`) or any other element of the periodic table that is
    neither a non-metal nor a metalloid (:data:`NON_METALS`); a ligand symbol that is no element
    is not."""
    return symbol in METALS or (symbol in ELEMENTS and symbol not in NON_METALS)


def new_element_reasons(elements: Sequence[str]) -> list[str]:
    """``elements`` (new to a run's training clusters) in words, metals first: ``['new metal
    Ni', 'new ligand elements P, Se']`` (:func:`is_metal`); [] for none."""
    metals = sorted(e for e in elements if is_metal(e))
    ligands = sorted(e for e in elements if not is_metal(e))
    return [
        f"new {what}{'s' if len(els) > 1 else ''} {', '.join(els)}"
        for what, els in (("metal", metals), ("ligand element", ligands))
        if els
    ]


def _label(code: str) -> str:
    try:
        from n2react.descriptors import label  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return code
    return str(label(code))


class ApplicabilityDomain(BaseEstimator):
    """Flag the clusters outside the training domain (see the module docstring for the rule).

    Parameters
    ----------
    k: neighbours averaged in the kNN distance (capped at the number of training clusters - 1).
    quantile: the share of training clusters whose own kNN distance is within the threshold.
    range_tolerance: how far (training sd) beyond the training min/max a descriptor may lie and
        still count as in range; 0 = any excursion counts.
    ligands: symbols recognised in cluster names besides the periodic table's (the
        ``data.formula_ligands`` of the run; the defaults are all real elements).

    Fitted attributes: ``columns_``, ``median_``, ``mean_``, ``scale_`` (training sd, 1 for a
    constant column), ``min_``/``max_`` (raw training range), ``elements_`` (None when no
    training name is a formula: the element check is then off), ``knn_train_`` (each training
    cluster's leave-self-out kNN distance), ``threshold_``, ``clusters_``.
    """

    def __init__(
        self,
        k: int = 5,
        quantile: float = 0.95,
        range_tolerance: float = 0.0,
        ligands: Sequence[str] = DEFAULT_LIGANDS,
    ) -> None:
        self.k = k
        self.quantile = quantile
        self.range_tolerance = range_tolerance
        self.ligands = ligands

    # ------------------------------------------------------------------ fitting

    def _check_params(self) -> None:
        if int(self.k) < 1:
            raise ConfigError(f"domain.k must be >= 1 (got {self.k})")
        if not 0.0 < float(self.quantile) <= 1.0:
            raise ConfigError(f"domain.quantile must be in (0, 1] (got {self.quantile})")
        # written so that NaN fails too (nan < 0 is False: a NaN tolerance was accepted)
        if not 0.0 <= float(self.range_tolerance) < float("inf"):
            raise ConfigError(
                f"domain.range_tolerance must be a finite number >= 0 (got {self.range_tolerance})"
            )

    def fit(self, X: pd.DataFrame, clusters: Sequence[str]) -> ApplicabilityDomain:
        """Learn the domain from the training rows' raw descriptors (NaN allowed)."""
        self._check_params()
        names = _names(clusters, len(X))
        raw = _numeric(X, list(X.columns))
        if len(raw) < 2:
            raise DataError(
                f"applicability domain: need at least 2 training clusters, got {len(raw)}"
            )
        empty = [c for c in raw.columns if raw[c].isna().all()]
        if empty:
            raise DataError(
                f"applicability domain: no training value in column(s) {', '.join(empty)}"
            )
        self.columns_ = [str(c) for c in raw.columns]
        self.median_ = raw.median().to_numpy(dtype=float)
        self.min_ = raw.min().to_numpy(dtype=float)
        self.max_ = raw.max().to_numpy(dtype=float)
        filled = raw.fillna(pd.Series(self.median_, index=raw.columns)).to_numpy(dtype=float)
        self.mean_ = filled.mean(axis=0)
        sd = filled.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        self.Z_ = (filled - self.mean_) / self.scale_
        self.clusters_ = names
        symbols = ELEMENTS | frozenset(self.ligands) | frozenset(METALS)
        seen: set[str] = set()
        unparsed = []
        for n in names:
            els = cluster_elements(n, symbols)
            if els is None:
                unparsed.append(n)
            else:
                seen |= els
        if unparsed:
            log.warning(
                "applicability domain: %d training name(s) are not formulas (e.g. %s): "
                "no elements recorded for them",
                len(unparsed),
                unparsed[0],
            )
        self.elements_ = frozenset(seen) if seen else None
        d = _pairwise(self.Z_, self.Z_)
        np.fill_diagonal(d, np.inf)
        self.k_ = min(int(self.k), len(names) - 1)
        self.knn_train_ = np.sort(d, axis=1)[:, : self.k_].mean(axis=1)
        self.threshold_ = float(np.quantile(self.knn_train_, float(self.quantile)))
        return self

    # ------------------------------------------------------------------ assessing

    def assess(self, X: pd.DataFrame, clusters: Sequence[str]) -> pd.DataFrame:
        """One row per cluster: ``cluster``, ``in_domain``, ``reasons``, ``knn_distance``,
        ``knn_threshold``, ``n_outside_range``, ``new_elements`` ("Co, Nb" or ""),
        ``nearest_training`` (the 3 nearest training clusters, nearest first, comma-separated).

        ``X`` must hold every column seen at fit (others are ignored). The neighbours are all
        training clusters: a training cluster assessed again counts itself (distance 0, first in
        ``nearest_training``).
        """
        names = _names(clusters, len(X))
        filled, missing = self._filled(X)
        Z = (filled - self.mean_) / self.scale_
        d = _pairwise(Z, self.Z_)
        order = np.argsort(d, axis=1)
        knn = np.take_along_axis(d, order[:, : self.k_], axis=1).mean(axis=1)
        below = (self.min_ - filled) / self.scale_
        above = (filled - self.max_) / self.scale_
        tol = float(self.range_tolerance)
        news = self.new_elements(names)
        rows = []
        for i, name in enumerate(names):
            reasons: list[str] = []
            new = news[i] or []
            if news[i] is None:
                reasons.append("name is not a formula: elements not checked")
            elif new:
                reasons += new_element_reasons(new)
            out = [
                (max(below[i, j], above[i, j]), j, "above" if above[i, j] > 0 else "below")
                for j in range(len(self.columns_))
                if max(below[i, j], above[i, j]) > tol
            ]
            if out:
                out.sort(reverse=True)
                parts = [f"{_label(self.columns_[j])} {side} training range by {_sd(sd)} sd"
                         for sd, j, side in out[:TOP_RANGE]]  # fmt: skip
                more = f" (+{len(out) - TOP_RANGE} more)" if len(out) > TOP_RANGE else ""
                reasons.append("; ".join(parts) + more)
            far = bool(knn[i] > self.threshold_)
            if far:
                pct = f"{100 * float(self.quantile):g}"
                reasons.append(
                    f"far from training clusters (kNN distance {knn[i]:.2f} > "
                    f"{pct}th pct {self.threshold_:.2f})"
                )
            if missing[i].any():
                cols = [self.columns_[j] for j in np.flatnonzero(missing[i])]
                reasons.append(f"missing {', '.join(cols)}: filled with the training median")
            rows.append(
                {
                    "cluster": name,
                    "in_domain": not (new or out or far),
                    "reasons": "; ".join(reasons),
                    "knn_distance": float(knn[i]),
                    "knn_threshold": self.threshold_,
                    "n_outside_range": len(out),
                    "new_elements": ", ".join(new),
                    "nearest_training": ", ".join(
                        str(self.clusters_[j]) for j in order[i, :N_NEAREST]
                    ),
                }
            )
        table = pd.DataFrame(rows, columns=COLUMNS)
        return table.astype({"in_domain": bool, "n_outside_range": int})

    def new_elements(self, clusters: Sequence[str]) -> list[list[str] | None]:
        """Per cluster, the elements of its name no training cluster has (sorted; [] when none
        or when the training names were not formulas), None when the name is not a formula."""
        symbols = ELEMENTS | frozenset(self.ligands) | frozenset(METALS)
        news: list[list[str] | None] = []
        for name in clusters:
            els = cluster_elements(str(name), symbols)
            news.append(None if els is None else sorted(els - (self.elements_ or els)))
        return news

    def seen(self, X: pd.DataFrame) -> np.ndarray:
        """Whether each row has the descriptors of a training cluster (missing cells filled
        with the training median, as at fit): such a cluster's prediction is a fitted value."""
        filled, _ = self._filled(X)
        return same_rows((filled - self.mean_) / self.scale_, self.Z_)

    def _filled(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The rows' descriptors with missing cells filled by the training median, as at fit,
        and where they were missing."""
        check_is_fitted(self, "threshold_")
        absent = [c for c in self.columns_ if c not in X.columns]
        if absent:
            raise DataError(
                f"applicability domain: descriptor column(s) missing: {', '.join(absent)} "
                "(the model was trained with them)"
            )
        raw = _numeric(X, self.columns_).to_numpy(dtype=float)
        missing = np.isnan(raw)
        return np.where(missing, self.median_, raw), missing

    def summary(self, table: pd.DataFrame) -> str:
        """``'12 of 57 clusters outside the training domain (new element: 7, descriptor range:
        9, kNN distance: 4)'``; a cluster may count under several reasons."""
        n_out = int((~table["in_domain"].astype(bool)).sum())
        line = f"{n_out} of {len(table)} clusters outside the training domain"
        counts = {
            "new element": int((table["new_elements"].fillna("") != "").sum()),
            "descriptor range": int((table["n_outside_range"] > 0).sum()),
            "kNN distance": int((table["knn_distance"] > table["knn_threshold"]).sum()),
        }
        detail = ", ".join(f"{k}: {v}" for k, v in counts.items() if v)
        return f"{line} ({detail})" if detail else line


#: The columns of :meth:`ApplicabilityDomain.assess`, in order.
COLUMNS = [
    "cluster",
    "in_domain",
    "reasons",
    "knn_distance",
    "knn_threshold",
    "n_outside_range",
    "new_elements",
    "nearest_training",
]


def _names(clusters: Sequence[str], n: int) -> np.ndarray:
    names = np.asarray([str(c) for c in clusters], dtype=object)
    if len(names) != n:
        raise ValueError(f"{len(names)} cluster names for {n} descriptor rows")
    return names


def _numeric(X: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = {}
    for c in columns:
        col = pd.to_numeric(X[c], errors="coerce")
        bad = col.isna() & X[c].notna()
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"applicability domain: non-numeric value {X[c].iloc[pos]!r} in column '{c}' "
                f"(row {pos + 1} of the table)"
            )
        out[c] = col.astype(float).replace([np.inf, -np.inf], np.nan)
    return pd.DataFrame(out)


def _sd(v: float) -> str:
    return f"{v:.1f}" if v >= 0.05 else "< 0.1"


def _pairwise(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of A and of B."""
    sq = (A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2.0 * A @ B.T
    return np.sqrt(np.maximum(sq, 0.0))
