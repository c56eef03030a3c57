"""Read a spreadsheet of clusters for a trained model: its descriptors in the model's column
order, the cluster names and lg(k1) when measured (``python -m predict``, ``eval.path``, the
interval calibration file). Formula-level columns the sheet lacks are read off the names with
the ligand elements the run used, which the final model carries (:func:`keep_ligands`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from n2react.composition import DEFAULT_LIGANDS, ligands_in
from n2react.composition import feature_names as formula_names
from n2react.data import with_formula_features
from n2react.data.tables import looks_like_target, read_sheet, table_to_dataset
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


def read_new_clusters(
    file: str | Path,
    expected: list[str],
    sheet: str | int = 0,
    all_measured: bool = False,
    ligands: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """(descriptors in the model's column order, cluster names, lg(k1) or None). A blank lg(k1)
    cell is NaN (a cluster not measured) unless ``all_measured``, where it is an error naming
    the row; a column with no value at all is None. Formula-level columns the sheet lacks are
    read off the names with ``ligands`` (the run's, :func:`formula_ligands`)."""
    p = Path(file)
    if not p.is_file():
        raise DataError(
            f"{p}: " + ("a folder, not a spreadsheet" if p.is_dir() else "file not found")
        )
    df = read_sheet(p, sheet)  # blank rows are dropped by table_to_dataset, keeping row numbers
    if df.dropna(how="all").empty or df.shape[1] < 2:
        raise DataError(f"{p}: the sheet is empty (need a cluster name and descriptor columns)")
    name_col = df.columns[0]
    formula_cols, ligands = _formula_columns(expected, df.columns, ligands)
    from_file = [c for c in expected if c not in formula_cols]
    missing = [c for c in from_file if c not in df.columns]
    if missing:
        raise DataError(f"{p}: missing descriptor column(s): {', '.join(missing)}")
    labels = [c for c in df.columns[1:] if c not in expected and looks_like_target(c)]
    target = labels[0] if len(labels) == 1 else None
    extra = [c for c in df.columns[1:] if c not in expected and c != target]
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
    )
    if formula_cols:
        ds = with_formula_features(ds, ligands)
    measured = has_target and not np.isnan(ds.y).all()
    return ds.X[expected], ds.clusters, (ds.y if measured else None)


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
