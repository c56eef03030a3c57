"""Names on more than one row of a sheet to predict: isomers (one formula, other geometries, so
other descriptors) are predicted each on its own row; the warning line names them and their
rows, and says which rows are identical copies (a paste error?), which are scored once against a
measured lg(k1) (:func:`scored_once`). Tables and plots tell two rows of one name apart by their
spreadsheet row (predict's ``row`` column)."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: How many duplicated names the warning line lists (the rest are counted).
LISTED = 8


def duplicate_names_line(
    keys: np.ndarray, written: np.ndarray, rows: np.ndarray, X: pd.DataFrame
) -> str | None:
    """The warning line for names on several rows (``keys``: the normalised names, ``written``
    as the sheet writes them, ``rows`` the spreadsheet rows, ``X`` the descriptors); None when
    every name is on one row. Rows of one name whose descriptors are all equal (blank cells
    equal blank ones) are identical copies."""
    groups = [p for p in _rows_by_name(keys) if len(p) > 1]
    if not groups:
        return None
    values = X.to_numpy(dtype=float)
    parts = [_group_text(p, written, rows, values) for p in groups]
    shown = "; ".join(parts[:LISTED]) + (
        f"; ... (+{len(parts) - LISTED} more)" if len(parts) > LISTED else ""
    )
    n = len(groups)
    what = f"{n} names appear" if n > 1 else "1 name appears"
    return f"{what} more than once (isomers?): {shown}; each row predicted on its own"


def _group_text(pos: list[int], written: np.ndarray, rows: np.ndarray, values: np.ndarray) -> str:
    """``Fe2V2C- rows 4, 9`` with the other spellings and the identical copies among them."""
    first = str(written[pos[0]]).strip()
    text = f"{first} rows {', '.join(str(rows[p]) for p in pos)}"
    other = [f"'{str(written[p]).strip()}' in row {rows[p]}" for p in pos[1:]
             if str(written[p]).strip() != first]  # fmt: skip
    copies = _identical(pos, values)
    notes = [f"written {', '.join(other)}"] if other else []
    if len(copies) == 1 and len(copies[0]) == len(pos):
        notes.append("identical copies: likely a paste error")
    else:
        notes += [
            f"rows {', '.join(str(rows[p]) for p in c)} identical copies: likely a paste error"
            for c in copies
        ]
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _rows_by_name(keys: np.ndarray) -> list[list[int]]:
    """The rows of each normalised name, in the sheet's order."""
    where: dict[str, list[int]] = {}
    for pos, key in enumerate(keys):
        where.setdefault(str(key), []).append(pos)
    return list(where.values())


def _identical(pos: list[int], values: np.ndarray) -> list[list[int]]:
    """The sets (of two rows or more) among ``pos`` whose descriptors are all equal."""
    sets: list[list[int]] = []
    for p in pos:
        for s in sets:
            if np.array_equal(values[s[0]], values[p], equal_nan=True):
                s.append(p)
                break
        else:
            sets.append([p])
    return [s for s in sets if len(s) > 1]


def row_labels(table: pd.DataFrame, names: pd.Series | None = None) -> list[str]:
    """Each row's cluster name (``names``, default the ``cluster`` column), with ``(row N)``
    after a name the table holds more than once (and has a ``row`` column for)."""
    shown = [str(n) for n in (table["cluster"] if names is None else names)]
    if "row" not in table:
        return shown
    twice = table["cluster"].duplicated(keep=False).to_numpy()
    return [
        f"{n} (row {r})" if t else n for n, r, t in zip(shown, table["row"], twice, strict=True)
    ]


def scored_once(keys: np.ndarray, X: pd.DataFrame, y: np.ndarray | None) -> np.ndarray:
    """Which rows count in the scores against lg(k1): all but a later identical copy of an
    earlier row (the same name, descriptors and lg(k1), blank equal to blank), so that a row
    pasted twice is scored once. Rows of one name and descriptors with different lg(k1) are two
    measurements, each scored."""
    values = X.to_numpy(dtype=float)
    target = np.full(len(keys), np.nan) if y is None else np.asarray(y, dtype=float)
    measured = np.column_stack([values, target])  # a copy: the same descriptors and lg(k1)
    keep = np.ones(len(keys), dtype=bool)
    for pos in _rows_by_name(keys):
        for copies in _identical(pos, measured):
            keep[copies[1:]] = False  # the first of the copies is scored
    return keep
