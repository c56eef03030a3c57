"""How rows are split into folds, and which rows belong together (groups).

A splitter is a config option (``conf/cv/*.yaml``, one ``_target_``): it turns ``n`` rows, and
optionally one group label per row, into train/test index pairs. The same splitter class serves
the outer CV and the inner CV of a search; with groups, no group is ever on both sides of a split.
A new way to split is a YAML file plus, at most, one class implementing :class:`Splitter`.

Groups come from ``cv.groups``: ``none``, ``metal`` (the metal elements of the formula),
``family`` (metal plus ligand elements) or ``column:<name>`` (a column of the spreadsheet).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold, RepeatedKFold

from n2react.composition import DEFAULT_LIGANDS, as_written, cluster_at, family_of, metal_of
from n2react.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass
class Split:
    """One fold: 1-based number (counted over repeats), 1-based repeat, row indices; in a grouped
    protocol the groups its test rows hold and what they are (``cv.groups``: metal, family)."""

    fold: int
    repeat: int
    train: np.ndarray
    test: np.ndarray
    held_out: tuple[str, ...] = ()
    grouped_by: str = ""


class Splitter(ABC):
    """Turns ``n`` rows (and their groups, if any) into folds."""

    #: What the folds are called in messages ("cv.outer_folds", "cv.inner_folds").
    key: str = "cv"

    @abstractmethod
    def split(self, n: int, groups: np.ndarray | None = None) -> list[Split]:
        """The folds of ``n`` rows; with ``groups`` no group is on both sides of a fold."""

    @abstractmethod
    def n_folds(self, n: int, groups: np.ndarray | None = None) -> int:
        """How many folds :meth:`split` gives (for checks and progress bars)."""


class KFoldSplitter(Splitter):
    """K shuffled folds (repeated with new shuffles); grouped, K folds of whole groups.

    With groups and ``n_splits`` at least the number of groups, each fold is one group
    (leave one group out: with ``cv.groups=metal`` that is leave one metal out).
    """

    def __init__(
        self,
        n_splits: int,
        repeats: int = 1,
        shuffle: bool = True,
        seed: int | None = None,
        key: str = "cv.outer_folds",
    ) -> None:
        self.n_splits, self.repeats = _whole(n_splits, key), _whole(repeats, "cv.repeats")
        seed_key = "cv.seed" if key == "cv.outer_folds" else "seed"  # conf/cv/default.yaml
        if seed is not None and _whole(seed, seed_key) < 0:
            raise ConfigError(f"{seed_key}={seed}: expected a whole number >= 0")
        if not isinstance(shuffle, bool | np.bool_):
            raise ConfigError(f"cv.shuffle={shuffle!r}: expected true or false")
        self.shuffle, self.seed, self.key = bool(shuffle), seed, key
        if self.n_splits < 2:
            raise ConfigError(f"{key}={self.n_splits}: need at least 2 folds")
        if self.repeats < 1:
            raise ConfigError(f"cv.repeats={self.repeats}: need at least 1")
        if self.repeats > 1 and not self.shuffle:
            raise ConfigError(
                f"cv.repeats={self.repeats} with cv.shuffle=false would repeat the same folds; "
                "set cv.shuffle=true or cv.repeats=1"
            )

    def __repr__(self) -> str:  # stable across processes (an estimator's repr shows it)
        return (
            f"KFoldSplitter({self.n_splits}, repeats={self.repeats}, shuffle={self.shuffle}, "
            f"seed={self.seed})"
        )

    def n_folds(self, n: int, groups: np.ndarray | None = None) -> int:
        k = self.n_splits if groups is None else min(self.n_splits, len(np.unique(groups)))
        return k * self.repeats

    def split(self, n: int, groups: np.ndarray | None = None) -> list[Split]:
        if groups is None:
            return self._plain(n)
        return self._grouped(np.asarray(groups))

    def _plain(self, n: int) -> list[Split]:
        k = self.n_splits
        if k > n:
            raise DataError(f"{n} rows, fewer than {self.key}={k}")
        if self.repeats > 1:
            splitter: KFold | RepeatedKFold = RepeatedKFold(
                n_splits=k, n_repeats=self.repeats, random_state=self.seed
            )
        else:
            splitter = KFold(
                k, shuffle=self.shuffle, random_state=self.seed if self.shuffle else None
            )
        return [
            Split(i + 1, i // k + 1, tr, te)
            for i, (tr, te) in enumerate(splitter.split(np.arange(n)))
        ]

    def _grouped(self, groups: np.ndarray) -> list[Split]:
        labels = np.unique(groups)
        if len(labels) < 2:
            raise DataError(
                f"{self.key}: {len(labels)} group ({', '.join(map(str, labels))}) among these "
                "rows; grouped cross-validation needs at least 2"
            )
        k = min(self.n_splits, len(labels))
        if self.repeats > 1 and k == len(labels):
            raise ConfigError(
                f"cv.repeats={self.repeats}: {len(labels)} groups into {self.key}={self.n_splits} "
                "folds is leave one group out, the same folds in every repeat (counted as "
                f"independent in the means and intervals); set cv.repeats=1, or {self.key} below "
                f"{len(labels)} to shuffle the groups into folds anew each repeat"
            )
        out: list[Split] = []
        rows = np.arange(len(groups))
        for r in range(self.repeats):
            if k == len(labels):  # leave one group out, in label order
                folds = [(rows[groups != g], rows[groups == g]) for g in labels]
            else:
                seed = None if self.seed is None or not self.shuffle else int(self.seed) + r
                folds = _balanced_group_folds(groups, labels, k, seed)
            out += [Split(r * k + i + 1, r + 1, tr, te) for i, (tr, te) in enumerate(folds)]
        return out


def _whole(value: object, key: str) -> int:
    """``value`` as an int; a text, a fraction or a bool (``cv.outer_folds=abc``, ``=2.5``) is a
    ConfigError naming ``key``, not a crash or a silently truncated number of folds."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"{key}={value!r}: expected a whole number")
    return int(value)


def _balanced_group_folds(
    groups: np.ndarray, labels: np.ndarray, k: int, seed: int | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds of whole groups with row counts as even as possible: groups, largest first (ties
    in an order shuffled by ``seed``), each go to the fold with the fewest rows so far.

    Not scikit-learn's ``GroupKFold``: it balances rows only without shuffling (ties then in
    reverse label order, so no seed varies the folds), and its ``shuffle=True`` (1.6+) deals the
    shuffled groups out in equal numbers of groups, not rows, so fold sizes are uneven (with
    ``cv.groups=family``: families of 1 to 25 clusters). These folds are the ones every grouped
    figure in the README was made with.
    """
    sizes = np.array([np.sum(groups == g) for g in labels])
    order = (
        np.arange(len(labels))
        if seed is None
        else np.random.default_rng(seed).permutation(len(labels))
    )
    order = order[np.argsort(-sizes[order], kind="stable")]
    load = np.zeros(k, dtype=int)
    fold_of: dict[object, int] = {}
    for i in order:
        f = int(np.argmin(load))
        fold_of[labels[i]] = f
        load[f] += sizes[i]
    assigned = np.array([fold_of[g] for g in groups])
    rows = np.arange(len(groups))
    return [(rows[assigned != f], rows[assigned == f]) for f in range(k)]


# --------------------------------------------------------------------------- groups


GROUPINGS = {"metal": metal_of, "family": family_of}


def check_grouping(spec: str | None) -> str | None:
    """``cv.groups`` as given, or None for no grouping; an unknown value is a ConfigError."""
    spec = None if spec is None else str(spec).strip()
    if spec in (None, "", "none", "null"):
        return None
    if spec in GROUPINGS or (spec.startswith("column:") and spec[len("column:") :].strip()):
        return spec
    raise ConfigError(f"cv.groups={spec!r}: expected none, metal, family or column:<name>")


def protocol_text(scheme: str, groups: str | None, fixed_folds: bool = False) -> str:
    """In words, what the outer folds hold out (the run's tag ``protocol``, and in titles)."""
    groups = check_grouping(groups)
    if scheme == "pair_split":
        return "random split of pairs (paper protocol)"
    if fixed_folds:
        return "the authors' predefined folds"
    if groups is None:
        return "KFold (known families)"
    return f"grouped by {groups} (new compositions)"


def held_out_text(scheme: str, groups: str | None, fixed_folds: bool = False) -> str:
    """What each outer fold holds out, as :class:`~n2react.uncertainty.Calibration` records it:
    ``metal``, ``family``, ``column:<name>`` (cv.groups), ``clusters`` (KFold), ``pairs`` (the
    paper protocol) or ``folds`` (the authors' predefined folds)."""
    groups = check_grouping(groups)
    if scheme == "pair_split":
        return "pairs"
    if fixed_folds:
        return "folds"
    return groups or "clusters"


def fold_counts(splits: Sequence[Split]) -> tuple[int, int]:
    """(folds per repeat, repeats) of the outer ``splits``: the folds actually run (one per
    metal with cv.groups=metal, whatever cv.outer_folds says), (0, 0) for none."""
    return sum(s.repeat == 1 for s in splits), len({s.repeat for s in splits})


def fold_count_text(splits: Sequence[Split], what: str = "folds") -> str:
    """The outer folds counted in words for titles: "10 folds", with repeats "5 folds x 2
    repeats" (not "10 folds"); ``what`` names them ("outer folds" in the run's note)."""
    per_repeat, repeats = fold_counts(splits)
    if repeats > 1:
        return f"{per_repeat} {what} x {repeats} repeats"
    return f"{per_repeat} {what}"


def group_column(spec: str | None) -> str | None:
    """The spreadsheet column named by ``cv.groups=column:<name>``, else None."""
    spec = check_grouping(spec)
    return spec[len("column:") :].strip() if spec and spec.startswith("column:") else None


def group_labels(
    spec: str | None,
    clusters: Sequence[str],
    *,
    source: str = "clusters",
    ligands: Sequence[str] = DEFAULT_LIGANDS,
    first_row: int = 2,
    sheet_rows: Sequence[int] | None = None,
    written: Sequence[str] | None = None,
    strict: bool = True,
) -> np.ndarray | None:
    """One group label per cluster for ``cv.groups=metal|family`` (None for none/column).

    The one labeller of metals and families: CV folds, the terminal's and CSVs' per-group
    scores and the plots all call it, so a family reads the same everywhere (``Mo-C,S``, a bare
    ``Rh``; see :func:`n2react.composition.family_of`). ``strict=False`` (plots of any file)
    labels a name that is not a formula with the name itself instead of raising DataError,
    which names the row (``sheet_rows``, else counted from ``first_row``) and the cluster as
    the file writes it (``written``, else its name).
    """
    spec = check_grouping(spec)
    if spec is None or spec.startswith("column:"):
        return None
    fn = GROUPINGS[spec]
    out = []
    for i, name in enumerate(clusters):
        try:
            out.append(fn(str(name), ligands))
        except ValueError as exc:
            if not strict:
                out.append(str(name))
                continue
            row, shown = cluster_at(i, name, first_row, sheet_rows, written)
            raise DataError(
                f"{source}: row {row} (cluster {shown}): cv.groups={spec} reads the "
                f"group off the formula, but {as_written(exc, name, shown)}"
            ) from None
    return np.asarray(out, dtype=object)
