"""Read a spreadsheet of clusters for a trained model: its descriptors in the model's column
order, the cluster names and lg(k1) when measured (``python -m predict``, ``eval.path``, the
interval calibration file). Formula-level columns the sheet lacks are read off the names with
the ligand elements the run used, which the final model carries (:func:`keep_ligands`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from n2react.composition import DEFAULT_LIGANDS, ligands_in
from n2react.composition import feature_names as formula_names
from n2react.data import with_formula_features
from n2react.data.missing import BY_THE_MODEL
from n2react.data.sheets import not_a_table, other_sheets, read_sheet
from n2react.data.tables import looks_like_target, missing_columns, table_to_dataset
from n2react.errors import DataError

log = logging.getLogger(__name__)

#: The final model's attribute holding its run's ``data.formula_ligands`` (:func:`keep_ligands`).
LIGANDS_ATTR = "formula_ligands_"


def keep_ligands(model: Any, ligands: Sequence[str]) -> None:
    """Record on the final model the ligand elements its run read cluster names with
    (``data.formula_ligands``), so that its model file reads new names the same way."""
    setattr(model, LIGANDS_ATTR, [str(e) for e in ligands])


def formula_ligands(model: Any) -> list[str] | None:
    """The ligand elements recorded by :func:`keep_ligands`; None for a model saved before they
    were (its names are read with the default ligands and those its columns count)."""
    saved = getattr(model, LIGANDS_ATTR, None)
    return None if saved is None else [str(e) for e in saved]


@dataclass(frozen=True)
class SheetClusters:
    """The clusters of a sheet, as :func:`read_sheet_clusters` reads them."""

    #: descriptors in the model's column order (NaN: a blank or -999 cell)
    X: pd.DataFrame
    #: the names, as written or normalised (``as_written``)
    names: np.ndarray
    #: lg(k1), NaN where not measured; None when the sheet has no lg(k1) column or no value
    y: np.ndarray | None
    #: each cluster's spreadsheet row (header = row 1; blank rows counted)
    rows: np.ndarray
    #: the normalised names (one spelling per cluster): equal for two rows of the same name
    keys: np.ndarray


def read_new_clusters(
    file: str | Path,
    expected: list[str],
    sheet: str | int = 0,
    all_measured: bool = False,
    ligands: Sequence[str] | None = None,
    as_written: bool = False,
    sheet_option: str | None = None,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """(X, names, y) of :func:`read_sheet_clusters`; a name twice is refused (eval.path and a
    calibration file are matched to a run's clusters by name)."""
    s = read_sheet_clusters(file, expected, sheet, all_measured, ligands, as_written, sheet_option)
    return s.X, s.names, s.y


def read_sheet_clusters(
    file: str | Path,
    expected: list[str],
    sheet: str | int = 0,
    all_measured: bool = False,
    ligands: Sequence[str] | None = None,
    as_written: bool = False,
    sheet_option: str | None = None,
    duplicates_ok: bool = False,
) -> SheetClusters:
    """Descriptors in the model's column order, cluster names, lg(k1) or None, and each row's
    spreadsheet row. A name on two rows is refused unless ``duplicates_ok`` (predict: isomers,
    each its own row). A blank lg(k1)
    cell is NaN (a cluster not measured) unless ``all_measured``, where it is an error naming
    the row; a column with no value at all is None. Formula-level columns the sheet lacks are
    read off the names with ``ligands`` (the run's, :func:`formula_ligands`).

    The names are the column headed like ``Clusters``, else the first (unless a descriptor);
    normalised (one anion glyph) unless ``as_written`` (the file's own text, so
    that a table of predictions joins back onto the sheet by name). A row with a name and no
    descriptor value is an error naming it. When a workbook's sheet lacks the descriptors, the
    message names its other sheets (and ``sheet_option``, the option choosing one)."""
    p = Path(file)
    # a folder, a missing file or another type: one line each; blank rows are dropped by
    # table_to_dataset, keeping row numbers
    df = read_sheet(p, sheet)
    if df.dropna(how="all").empty or df.shape[1] < 2:
        # one column (a notes sheet), none, or column headers with no cluster below them
        what = not_a_table(df, "a cluster name and descriptor columns", fewest=2)
        raise DataError(f"{p}: {what}{other_sheets(p, sheet, sheet_option)}")
    formula_cols, ligands = _formula_columns(expected, df.columns, ligands)
    from_file = [c for c in expected if c not in formula_cols]
    missing = [c for c in from_file if c not in df.columns]
    if missing:
        raise DataError(
            f"{p}: missing descriptor column(s): {missing_columns(missing, df.columns)}"
            + other_sheets(p, sheet, sheet_option)
        )
    name_col = _name_column(p, df.columns, expected)
    rest = [c for c in df.columns if c != name_col]
    labels = [c for c in rest if c not in expected and looks_like_target(c)]
    target = labels[0] if len(labels) == 1 else None
    extra = [c for c in rest if c not in expected and c != target]
    if extra:
        log.warning("%s: ignoring column(s) the model was not trained on: %s", p, ", ".join(extra))
    has_target = target is not None
    ds = table_to_dataset(
        df,
        name=p.stem,
        source=str(p),
        name_column=name_col,
        target_column=target,
        feature_columns=from_file,
        has_target=has_target,
        unmeasured_ok=not all_measured,
        missing_fill=BY_THE_MODEL,  # a row with no descriptor value is refused there
        duplicates_ok=duplicates_ok,
    )
    if formula_cols:
        ds = with_formula_features(ds, ligands)
    measured = has_target and not np.isnan(ds.y).all()
    names = ds.written if as_written else ds.clusters
    y = ds.y if measured else None
    return SheetClusters(ds.X[expected], names, y, np.asarray(ds.rows), ds.clusters)


#: Headers of a name column that is not the first (lower case, spaces removed).
NAME_HEADERS = ("cluster", "clusters", "clustername", "name", "names", "formula")


def _name_column(p: Path, columns: Any, expected: list[str]) -> str:
    """The column headed like ``Clusters`` (the first such), else the first column unless that
    is one of the model's descriptors or lg(k1) (its numbers would become the names): an
    index or ID column before the names is not taken for them."""
    named = [str(c) for c in columns if str(c).lower().replace(" ", "") in NAME_HEADERS]
    if named:
        return named[0]
    first = str(columns[0])
    if first not in expected and not looks_like_target(first):
        return first
    raise DataError(
        f"{p}: the first column '{first}' is not the cluster names; put the names in the "
        "first column (or head their column 'Clusters')"
    )


def read_labelled(
    file: str | Path,
    expected: list[str],
    key: str,
    no_label: str,
    ligands: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """:func:`read_new_clusters` for a file that must carry lg(k1) (``eval.path``, a calibration
    file): its errors name the config ``key``; without labels, ``no_label`` says why it matters."""
    try:
        X, clusters, y = read_new_clusters(file, expected, all_measured=True, ligands=ligands)
    except DataError as exc:
        raise DataError(f"{key}: {exc}") from None
    if y is None:
        raise DataError(f"{key}={file}: no lg(k1) column, so {no_label}")
    return X, clusters, y


def _formula_columns(
    expected: list[str], present: Any, ligands: Sequence[str] | None
) -> tuple[list[str], list[str]]:
    """The model's formula-level columns the sheet lacks (computed from the cluster names), and
    the ligand elements to read the names with: the run's ``ligands``, or for a model that did
    not record them, those its columns count and the default ones, which training read the
    names with even when ``data.formula_columns`` kept no count of them (``0_n_ligand`` and
    ``0_ligand/metal`` still count them)."""
    if ligands is None:
        ligands = list(dict.fromkeys([*ligands_in(expected), *DEFAULT_LIGANDS]))
    ligands = list(ligands)
    return [c for c in formula_names(ligands) if c in expected and c not in present], ligands
