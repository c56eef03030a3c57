"""Validate a table read from a spreadsheet or delimited text file, cell by cell, into a
:class:`Dataset`.

A table has one row per cluster: a name column, the target lg(k1) and numeric descriptors. Every
problem ends in a :class:`DataError` whose message names the file and the row or column at fault.
Finding the files is :mod:`n2react.data.files`'s job, reading a sheet or text file into a raw
table :mod:`n2react.data.sheets`'s (its :func:`read_sheet` and :func:`forget_warnings` can still
be imported from here, their home before it), the authors' fold files
:mod:`n2react.data.authors_folds`'s, and loading the data set a config names :mod:`n2react.data`'s.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from n2react.data.missing import IN_TRAINING, missing_summary, refuse_empty_rows
from n2react.data.sheets import forget_warnings, not_a_table, read_sheet, warn_once  # noqa: F401 (re-exports)
from n2react.errors import DataError

log = logging.getLogger(__name__)

#: The anion mark: U+00AF in some files, U+02C9 in others, a look-alike (− ⁻ ‾) in new sheets.
ANION_GLYPHS = {"\u02c9": "\u00af", "\u2212": "\u00af", "\u207b": "\u00af", "\u203e": "\u00af"}
#: Five Fe-C clusters carry a stray trailing digit in one file or another (an isomer label in the
#: authors' notes): ``Fe3C41¯`` in the 24-descriptor file is ``Fe3C4ˉ`` elsewhere, and so on. One
#: spelling everywhere, so files agree and the name reads as the cluster's formula.
MISSPELLINGS = {
    "Fe3C41\u00af": "Fe3C4\u00af",
    "Fe3C50\u00af": "Fe3C5\u00af",
    "Fe4C32\u00af": "Fe4C3\u00af",
    "Fe4C52\u00af": "Fe4C5\u00af",
    "Fe5C34\u00af": "Fe5C3\u00af",
}
TARGET_NAME = "lg(k1)"


class NotATable(DataError):
    """The sheet read is not a table of clusters (empty, no lg(k1) column, no descriptor): in a
    workbook of several sheets, likely the wrong one (the caller names the others)."""


@dataclass
class Dataset:
    """A validated table: cluster names, descriptors (NaN = missing) and the target."""

    name: str
    source: str
    clusters: np.ndarray
    X: pd.DataFrame
    y: np.ndarray
    target_name: str = TARGET_NAME
    #: Predefined outer splits as (train_idx, test_idx); None = the CV config decides.
    folds: list[tuple[np.ndarray, np.ndarray]] | None = None
    #: (cluster, column) of every cell that was blank or a sentinel.
    missing: list[tuple[str, str]] = field(default_factory=list)
    #: One group label per row (cv.groups): grouped splits keep a group on one side.
    groups: np.ndarray | None = None
    #: The names as the file writes them (``clusters`` are normalised); each row's sheet row.
    written: np.ndarray | None = None
    rows: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return len(self.y)

    @property
    def feature_names(self) -> list[str]:
        return [str(c) for c in self.X.columns]


def normalize_name(name: str) -> str:
    """One spelling per cluster: unify the two anion glyphs, strip whitespace and fix the known
    misspellings of the published files."""
    out = str(name).strip()
    for glyph, canonical in ANION_GLYPHS.items():
        out = out.replace(glyph, canonical)
    return MISSPELLINGS.get(out, out)


# --------------------------------------------------------------------------- columns


#: A header that names the target: lg(k1), Expt. lg(k1), lgk1, log k1, log10(k1) (any case/spaces).
TARGET_PATTERN = re.compile(r"(?:^|[^a-z0-9])(?:lg|log10|log)\(?k_?1\)?(?![0-9])")


def _column(df: pd.DataFrame, spec: str | int | None, default: int, what: str, src: str) -> str:
    cols = list(df.columns)
    if spec is None:
        if len(cols) <= default:
            raise DataError(f"{src}: no {what} column (the sheet has {len(cols)} columns)")
        return cols[default]
    if isinstance(spec, int):
        if not 0 <= spec < len(cols):
            raise DataError(f"{src}: {what} column index {spec} out of range (0..{len(cols) - 1})")
        return cols[spec]
    if spec not in cols:
        raise DataError(f"{src}: {what} column '{spec}' not found (columns: {', '.join(cols)})")
    return spec


def looks_like_target(name: str) -> bool:
    """Whether a header names lg(k1) (``lg(k1)``, ``Expt. lg(k1)``, ``lgk1``, ``log k1`` ...)."""
    return bool(TARGET_PATTERN.search(re.sub(r"\s+", "", str(name).lower())))


def find_target_column(df: pd.DataFrame, spec: str | int | None, src: str) -> str:
    """The target column: ``spec`` when given, else the one column whose header looks like
    lg(k1) (an exact ``lg(k1)`` wins over look-alikes)."""
    if spec is not None:
        return _column(df, spec, 1, "target", src)
    cols = [str(c) for c in df.columns]
    if TARGET_NAME in cols:
        return TARGET_NAME
    hits = [c for c in cols[1:] if looks_like_target(c)]
    if not hits:
        raise NotATable(
            f"{src}: no column looks like {TARGET_NAME} (columns: {short_list(cols)}); "
            "name it with data.target_column=..."
        )
    if len(hits) > 1:
        raise DataError(
            f"{src}: several columns look like {TARGET_NAME} ({', '.join(hits)}); "
            "name one with data.target_column=..."
        )
    return hits[0]


def short_list(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit})" if len(items) > limit else "")


def missing_columns(missing: Sequence[str], columns: Sequence[object]) -> str:
    """The descriptor columns a sheet lacks, then those it has with a close header (a renamed or
    retyped column: ``1_Qmin`` -> ``1_ΔQmin``), for an error line."""
    have = [str(c) for c in columns if str(c) not in missing]
    close: list[str] = []
    for name in missing:
        close += [c for c in difflib.get_close_matches(name, have, n=2) if c not in close]
    text = ", ".join(missing)
    return text + (f" (close headers in the sheet: {', '.join(close)})" if close else "")


#: Largest magnitude accepted in a descriptor or target cell: beyond it a value is a unit or typing
#: error, and squares of it (scaling, distances) would overflow to inf.
MAX_ABS_VALUE = 1e15


def table_to_dataset(
    df: pd.DataFrame,
    *,
    name: str,
    source: str,
    name_column: str | int | None = None,
    target_column: str | int | None = None,
    feature_columns: Sequence[str] | None = None,
    sentinels: Sequence[float] = (-999,),
    first_row: int = 2,
    has_target: bool = True,
    group_column: str | None = None,
    announce_target: bool = True,
    unmeasured_ok: bool = False,
    missing_fill: str = IN_TRAINING,
    duplicates_ok: bool = False,
) -> Dataset:
    """Validate a raw table and turn it into a :class:`Dataset`.

    ``first_row`` is the spreadsheet row number of the first data row (header = row 1), so that
    messages name the row a chemist sees in the spreadsheet. With ``has_target=False`` (new
    clusters to predict) there is no target column and ``y`` is all NaN. Without
    ``target_column`` the target is the column whose header looks like lg(k1); the choice is
    logged (``announce_target``). ``unmeasured_ok``: a blank lg(k1) cell is NaN (clusters to
    predict, some of them measured), not an error. A cell of spaces is blank. A row with no
    descriptor value is refused; the missing-cell warning ends with ``missing_fill``. Messages
    name a cluster as the file writes it. A name twice is refused unless ``duplicates_ok``
    (predict: isomers of one formula, each predicted on its own).
    """
    src = source
    dup = pd.Index(df.columns)[pd.Index(df.columns).duplicated()]
    if len(dup):
        raise DataError(f"{src}: duplicate column header '{dup[0]}' (after renaming); rename one")
    df = df.mask(df.apply(lambda c: c.map(lambda v: isinstance(v, str) and not v.strip())))
    # the spreadsheet row of each row kept: blank rows are dropped, not renumbered
    sheet_rows = first_row + np.flatnonzero(df.notna().any(axis=1).to_numpy())
    df = df.dropna(how="all")
    if df.empty or df.shape[1] < 3:
        what = not_a_table(df, "a name, a target and descriptor columns", fewest=3)
        raise NotATable(f"{src}: {what}")
    name_col = _column(df, name_column, 0, "cluster name", src)
    target_col = find_target_column(df, target_column, src) if has_target else None
    if target_col == name_col:
        raise DataError(
            f"{src}: column '{name_col}' is both the cluster name and the target column "
            "(data.name_column, data.target_column)"
        )
    if target_col is not None and announce_target:
        where = list(df.columns).index(target_col) + 1
        log.info("target: %s (column %d of %s)", target_col, where, src)
    if group_column is not None and group_column not in df.columns:
        raise DataError(
            f"{src}: group column '{group_column}' (cv.groups=column:{group_column}) not found "
            f"(columns: {', '.join(map(str, df.columns))})"
        )
    if feature_columns is None:
        features = [c for c in df.columns if c not in (name_col, target_col, group_column)]
    else:
        features = [str(c) for c in feature_columns]
        missing = [c for c in features if c not in df.columns]
        if missing:
            raise DataError(
                f"{src}: descriptor column(s) not found: {missing_columns(missing, df.columns)}"
            )
        roles = {name_col: "cluster name", target_col: "target", group_column: "group"}
        taken = [c for c in features if c in roles and c is not None]
        if taken:  # the target as a descriptor scores r 1.000: it would learn lg(k1) from itself
            raise DataError(
                f"{src}: data.feature_columns names '{taken[0]}', the {roles[taken[0]]} column; "
                "a descriptor column cannot be it"
            )
    if not features:
        raise NotATable(f"{src}: no descriptor columns")

    def pos_of(i: int) -> int:
        return int(np.flatnonzero(df.index == i)[0])

    def row_of(i: int) -> int:
        return int(sheet_rows[pos_of(i)])

    names_raw = df[name_col]
    for i, v in names_raw.items():
        if pd.isna(v) or str(v).strip() == "":
            raise DataError(f"{src}: empty cluster name in column '{name_col}', row {row_of(i)}")
    clusters = np.array([normalize_name(v) for v in names_raw], dtype=object)
    as_written = np.array([str(v).strip() for v in names_raw], dtype=object)
    seen: dict[str, int] = {}
    for pos, c in enumerate(clusters):
        if c in seen and not duplicates_ok:
            a, b = as_written[seen[c]], as_written[pos]
            raise DataError(
                f"{src}: duplicate cluster name '{a}' in rows {sheet_rows[seen[c]]} "
                f"and {sheet_rows[pos]}" + ("" if a == b else f" (written '{b}' there)")
            )
        seen[c] = pos

    def numeric(col: str, allow_missing: bool) -> pd.Series:
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        bad = num.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
        if bad.any():
            i = bad[bad].index[0]
            raise DataError(
                f"{src}: non-numeric value {raw[i]!r} in column '{col}', row {row_of(i)} "
                f"(cluster {as_written[pos_of(i)]})"
            )
        wild = num.notna() & ~(num.abs() <= MAX_ABS_VALUE)  # inf, -inf, 1e308 ...
        if wild.any():
            i = wild[wild].index[0]
            cell = raw[i]  # shown as the file has it: inf, not np.float64(inf)
            shown = cell.item() if isinstance(cell, np.generic) else cell
            raise DataError(
                f"{src}: value {shown!r} in column '{col}', row {row_of(i)} "
                f"(cluster {as_written[pos_of(i)]}) is not a finite number within "
                f"±{MAX_ABS_VALUE:g} (a unit or typing error?)"
            )
        if not allow_missing and num.isna().any():
            i = num[num.isna()].index[0]
            raise DataError(
                f"{src}: missing {col} in row {row_of(i)} (cluster {as_written[pos_of(i)]})"
            )
        return num.astype(float)

    if target_col is not None:
        y = numeric(target_col, allow_missing=unmeasured_ok)
    else:
        y = pd.Series(np.full(len(df), np.nan), index=df.index)
    X = pd.DataFrame({c: numeric(c, allow_missing=True) for c in features})
    X.index = pd.RangeIndex(len(X))
    sentinel_mask = (
        X.isin(list(sentinels)) if sentinels else pd.DataFrame(False, X.index, X.columns)
    )
    missing_mask = sentinel_mask | X.isna()
    empty = [str(c) for c in X.columns if missing_mask[c].all()]
    if empty:
        raise DataError(f"{src}: descriptor column(s) with no numeric value: {short_list(empty)}")
    missing_cells = [
        (str(clusters[pos]), str(col))
        for col in X.columns
        for pos in np.flatnonzero(missing_mask[col].to_numpy())
    ]
    refuse_empty_rows(missing_mask, as_written, sheet_rows, src)
    if missing_cells:
        warn_once(f"{src}: {missing_summary(missing_mask, as_written, sheet_rows, missing_fill)}")
    X = X.mask(sentinel_mask)
    groups = None
    if group_column is not None:
        raw_groups = df[group_column]
        if raw_groups.isna().any():
            i = raw_groups[raw_groups.isna()].index[0]
            raise DataError(f"{src}: empty group in column '{group_column}', row {row_of(i)}")
        groups = raw_groups.astype(str).str.strip().to_numpy(dtype=object)
    return Dataset(
        name=name,
        source=source,
        clusters=clusters,
        X=X,
        y=y.to_numpy(dtype=float),
        target_name=str(target_col) if target_col is not None else TARGET_NAME,
        missing=missing_cells,
        groups=groups,
        written=np.array([str(v) for v in names_raw], dtype=object),
        rows=sheet_rows,
    )
