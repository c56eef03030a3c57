"""Descriptors read off the cluster's formula: size, ligand counts, charge, and what the metal is.

A cluster name such as ``Mo5S2C1¯`` or ``Ta3S1C`` is a formula: metal and ligand element symbols
with optional counts, then an optional charge mark (``¯``/``-`` anion, ``+`` cation, none =
neutral). From it come the ``0_`` ("formula level") columns below. They need no DFT and exist
for every cluster, measured or not, and they carry what the DFT descriptors describe only
indirectly: which metal, how many atoms, which ligands. Metals enter through periodic-table
properties (group, period, Pauling electronegativity, averaged over the metal atoms), not a
one-hot code, so a cluster of a metal absent from training still gets sensible inputs.

Computed per row from the name alone (no fitting), so adding them cannot leak a test fold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from n2react.errors import DataError

#: Prefix of the formula-level columns (the spreadsheets use 1_/2_/3_ for site/local/cluster).
PREFIX = "0_"

#: d-block metals (and Al): (group, period, Pauling electronegativity).
METALS: dict[str, tuple[int, int, float]] = {
    "Sc": (3, 4, 1.36), "Ti": (4, 4, 1.54), "V": (5, 4, 1.63), "Cr": (6, 4, 1.66),
    "Mn": (7, 4, 1.55), "Fe": (8, 4, 1.83), "Co": (9, 4, 1.88), "Ni": (10, 4, 1.91),
    "Cu": (11, 4, 1.90), "Zn": (12, 4, 1.65),
    "Y": (3, 5, 1.22), "Zr": (4, 5, 1.33), "Nb": (5, 5, 1.60), "Mo": (6, 5, 2.16),
    "Tc": (7, 5, 1.90), "Ru": (8, 5, 2.20), "Rh": (9, 5, 2.28), "Pd": (10, 5, 2.20),
    "Ag": (11, 5, 1.93), "Cd": (12, 5, 1.69),
    "La": (3, 6, 1.10), "Hf": (4, 6, 1.30), "Ta": (5, 6, 1.50), "W": (6, 6, 2.36),
    "Re": (7, 6, 1.90), "Os": (8, 6, 2.20), "Ir": (9, 6, 2.20), "Pt": (10, 6, 2.28),
    "Au": (11, 6, 2.54), "Hg": (12, 6, 2.00),
    "Al": (13, 3, 1.61),
}  # fmt: skip

#: Ligand elements counted one column each.
DEFAULT_LIGANDS: tuple[str, ...] = ("H", "C", "N", "O", "S")

_TOKEN = re.compile(r"([A-Z][a-z]?)(\d*)")
#: Trailing charge marks: one per unit charge (digits before a mark are atom counts: Fe3C4¯).
#: Anion: ``-``, the macrons ¯ ˉ of the published files, and the look-alikes a spreadsheet or a
#: paper's text gives (minus sign −, superscript minus ⁻, overline ‾); cation: ``+`` or ⁺.
_CHARGE = re.compile(r"([+\u207a]+|[\-\u00af\u02c9\u2212\u207b\u203e]+)$")


def parse_formula(name: str) -> tuple[dict[str, int], int]:
    """``'Mo5S2C1¯'`` -> ``({'Mo': 5, 'S': 2, 'C': 1}, -1)``. Raises ValueError when the name
    is not a formula."""
    s = str(name).strip()
    charge = 0
    m = _CHARGE.search(s)
    if m:
        marks = m.group(1)
        charge = len(marks) if marks[0] in "+\u207a" else -len(marks)
        s = s[: m.start()]
    counts: dict[str, int] = {}
    pos = 0
    for tok in _TOKEN.finditer(s):
        if tok.start() != pos:
            break
        counts[tok.group(1)] = counts.get(tok.group(1), 0) + int(tok.group(2) or 1)
        pos = tok.end()
    if pos != len(s) or not counts:
        raise ValueError(f"'{name}' is not a formula like Mo5S2C1¯")
    return counts, charge


def _elements(name: str, ligands: Sequence[str]) -> tuple[list[str], list[str]]:
    counts, _ = parse_formula(name)
    metals = sorted(e for e in counts if e in METALS)
    ligs = sorted(e for e in counts if e not in METALS)
    unknown = [e for e in ligs if e not in ligands]
    if not metals or unknown:
        raise ValueError(f"'{name}' has no metal or an unknown element ({', '.join(unknown)})")
    return metals, ligs


def metal_of(name: str, ligands: Sequence[str] = DEFAULT_LIGANDS) -> str:
    """``'Mo5S2C1¯'`` -> ``'Mo'``; mixed metals are joined in alphabetical order (``'FeMo'``).
    Raises ValueError when the name is not a formula of known elements."""
    return "".join(_elements(name, ligands)[0])


def family_of(name: str, ligands: Sequence[str] = DEFAULT_LIGANDS) -> str:
    """The metal, a hyphen and the ligand elements, comma-separated: ``'Mo5S2C1¯'`` ->
    ``'Mo-C,S'``, ``'FeV2O3'`` -> ``'FeV-O'``; a bare ``'Rh3¯'`` -> ``'Rh'``. (The comma keeps
    ``C,S`` from reading as caesium; families sort as the metal, then the ligand list.) Raises
    ValueError when the name is not a formula of known elements."""
    metals, ligs = _elements(name, ligands)
    return "".join(metals) + ("-" + ",".join(ligs) if ligs else "")


def feature_names(ligands: Sequence[str] = DEFAULT_LIGANDS) -> list[str]:
    """The formula-level column names, in order."""
    cols = ["n_metal", *(f"n_{e}" for e in ligands), "n_ligand", "ligand/metal", "charge"]
    cols += ["metal_group", "metal_period", "metal_χ"]
    return [PREFIX + c for c in cols]


def ligands_in(columns: Iterable[str]) -> list[str]:
    """The ligand elements counted by the formula-level columns among ``columns`` (the inverse
    of :func:`feature_names`)."""
    counts = [str(c) for c in columns if str(c).startswith(PREFIX + "n_")]
    return [
        c[len(PREFIX) + 2 :] for c in counts if c not in (PREFIX + "n_metal", PREFIX + "n_ligand")
    ]


def cluster_at(
    i: int,
    name: str,
    first_row: int = 2,
    sheet_rows: Sequence[int] | None = None,
    written: Sequence[str] | None = None,
) -> tuple[int, str]:
    """(the sheet row, the name as the file writes it) of the ``i``-th cluster ``name``, for an
    error line: ``sheet_rows`` and ``written`` where the reader kept them, else the row counted
    from ``first_row`` and the (normalised) name."""
    row = sheet_rows[i] if sheet_rows is not None else first_row + i
    return row, str(written[i]).strip() if written is not None else str(name)


def as_written(exc: Exception, name: str, shown: str) -> str:
    """A formula error's text (which quotes the normalised ``name``) quoting ``shown``, the
    name as the file writes it."""
    return str(exc).replace(f"'{name}'", f"'{shown}'")


def formula_features(
    clusters: Iterable[str],
    *,
    ligands: Sequence[str] = DEFAULT_LIGANDS,
    source: str = "clusters",
    first_row: int = 2,
    sheet_rows: Sequence[int] | None = None,
    written: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row of formula-level descriptors per cluster name (see :func:`feature_names`).
    Errors name the row (``sheet_rows``, else counted from ``first_row``) and the cluster as
    the file writes it (``written``, else its name)."""
    ligands = list(ligands)
    rows = []
    for i, name in enumerate(clusters):
        row, shown = cluster_at(i, name, first_row, sheet_rows, written)
        where = f"{source}: row {row} (cluster {shown})"
        try:
            counts, charge = parse_formula(name)
        except ValueError as exc:
            raise DataError(f"{where}: {as_written(exc, name, shown)}") from None
        unknown = [e for e in counts if e not in METALS and e not in ligands]
        if unknown:
            raise DataError(
                f"{where}: element(s) {', '.join(unknown)} are neither a known metal nor one of "
                f"the ligands {', '.join(ligands)} (data.formula_ligands)"
            )
        metal = {e: n for e, n in counts.items() if e in METALS}
        if not metal:
            raise DataError(f"{where}: no metal atom in the formula")
        n_metal = sum(metal.values())
        n_lig = [counts.get(e, 0) for e in ligands]
        props = np.array([METALS[e] for e in metal], dtype=float)
        weights = np.array(list(metal.values()), dtype=float) / n_metal
        group, period, chi = weights @ props
        rows.append([n_metal, *n_lig, sum(n_lig), sum(n_lig) / n_metal, charge, group, period, chi])
    return pd.DataFrame(np.array(rows, dtype=float), columns=feature_names(ligands))
