"""Missing descriptor cells of a table (blank, or a ``data.sentinels`` value such as -999): the
refusal of a row that has none of its descriptors, and the one warning that counts the others
and says what fills them, which depends on who reads the table (:data:`IN_TRAINING`,
:data:`BY_THE_MODEL`). Used by :func:`n2react.data.tables.table_to_dataset` for every table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from n2react.errors import DataError

#: What fills a missing cell of a file a run trains on: each training fold's own imputer.
IN_TRAINING = "imputed inside each training fold"
#: What fills one of a file a trained model reads (``predict``, ``eval.path``, a calibration
#: file): the model's imputer, fitted on the clusters the model was trained on.
BY_THE_MODEL = "filled in by the model's imputer (fitted on its training clusters)"


def refuse_empty_rows(mask: pd.DataFrame, names: np.ndarray, rows: np.ndarray, src: str) -> None:
    """One error line for the first row whose descriptors are all missing (``mask``): a name
    with no DFT values yet would be learned, or predicted, from the imputer's medians alone.
    ``names`` are the names as the file writes them, ``rows`` the spreadsheet rows."""
    empty = mask.to_numpy().all(axis=1) & (mask.shape[1] > 0)
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise DataError(
            f"{src}: row {rows[i]} (cluster {names[i]}) has a name but no descriptor value; "
            "fill in its descriptors or remove the row"
        )


def missing_summary(mask: pd.DataFrame, names: np.ndarray, rows: np.ndarray, fill: str) -> str:
    """One line: how many cells are missing, where (a few per column: the name as the file
    writes it and the spreadsheet row), and what fills them (``fill``)."""
    n = int(mask.to_numpy().sum())
    cols = [c for c in mask.columns if mask[c].any()]
    parts = []
    for col in cols[:4]:
        at = np.flatnonzero(mask[col].to_numpy())
        cells = [f"{names[r]} row {rows[r]}" for r in at[:3]]
        more = f", +{len(at) - 3} more" if len(at) > 3 else ""
        parts.append(f"{col}: {', '.join(cells)}{more}")
    if len(cols) > 4:
        parts.append(f"+{len(cols) - 4} more columns")
    cells_word = "cell" if n == 1 else "cells"
    where = f" in {len(cols)} columns" if len(cols) > 1 else ""
    return f"{n} missing {cells_word}{where} ({'; '.join(parts)}); {fill}"
