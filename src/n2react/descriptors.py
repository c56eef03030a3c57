"""What the descriptor codes of the data files mean (for plot labels, tables and the README).

The published spreadsheets (Mou et al., *ACS Catal.* 2025, 15, 6618) name each descriptor by its
level and a short symbol: ``1_`` site level (the metal atoms that can bind N2: the most positive
and the most negative one), ``2_`` local environment (averaged or summed over the metal atoms),
``3_`` cluster level (the whole cluster, or its atoms' tabulated atomic values). ``0_`` marks the
formula-level columns computed from the cluster name (:mod:`n2react.composition`).

Charges, spin densities and orbital occupancies are from a natural population analysis of the
DFT ground state. Some details below were read off the data, not the paper, and say so:
``Δ`` quantities are the value minus that of the bare metal cluster of the same metal, size and
charge (the offset is one constant within most metal-size-charge families and 0 for the bare
Rh3¯), ``/NL`` divides by the number of ligand atoms (the bare Rh3¯ holds the -999 sentinel), and
``3_χ``/``3_EA``/``3_IE`` equal the sum over the cluster's atoms of tabulated atomic values
(Pauling electronegativity, electron affinity, first ionisation energy), their ``ave`` forms the
mean per atom.
"""

from __future__ import annotations

from dataclasses import dataclass

from n2react.composition import DEFAULT_LIGANDS, PREFIX


@dataclass(frozen=True)
class Descriptor:
    """One descriptor column: ``code`` as in the file, a short ``name`` for axes (no brackets:
    :func:`label` puts it in brackets, and "3_EA (electron affinity (sum))" nested them), what
    it is."""

    code: str
    name: str
    meaning: str
    unit: str = ""  # "" = dimensionless or a count
    note: str = ""  # what is uncertain about the entry

    @property
    def level(self) -> int:
        return int(self.code[0])


_REL = "relative to the bare metal cluster of the same metal, size and charge"
_INFERRED = "reference inferred from the data; the paper's SI defines it"

_ENTRIES: list[Descriptor] = [
    Descriptor("1_Qmax", "max. site charge", "largest natural charge on a metal atom", "e"),
    Descriptor("1_Qmin", "min. site charge", "smallest natural charge on a metal atom", "e"),
    Descriptor(
        "1_ΔQmax",
        "charge transfer at max. site",
        f"change of 1_Qmax {_REL}: charge the ligands draw from the most positive site",
        "e",
        _INFERRED,
    ),
    Descriptor(
        "1_ΔQmin",
        "charge transfer at min. site",
        f"change of 1_Qmin {_REL}",
        "e",
        _INFERRED,
    ),
    Descriptor("2_Q", "summed metal charge", "sum of the natural charges of the metal atoms", "e"),
    Descriptor("2_Qave", "avg. metal charge", "mean natural charge per metal atom (2_Q / n)", "e"),
    Descriptor(
        "2_σave",
        "avg. spin density",
        "mean spin density (α minus β electron population) per metal atom",
        "e",
        "whether absolute values are averaged is not stated in the data",
    ),
    Descriptor(
        "2_nsave", "avg. s occupancy", "mean valence s-orbital occupancy per metal atom", "e"
    ),
    Descriptor(
        "2_ndave", "avg. d occupancy", "mean valence d-orbital occupancy per metal atom", "e"
    ),
    Descriptor("2_Δnsave", "Δ avg. s occupancy", f"change of 2_nsave {_REL}", "e", _INFERRED),
    Descriptor("2_Δndave", "Δ avg. d occupancy", f"change of 2_ndave {_REL}", "e", _INFERRED),
    Descriptor(
        "3_VDE/VIE",
        "vertical detachment/ionisation energy",
        "vertical detachment energy (anions) or vertical ionisation energy (neutrals)",
        "eV",
    ),
    Descriptor(
        "3_α",
        "polarizability",
        "isotropic static polarizability of the cluster",
        "a.u.",
        "unit assumed atomic units (bohr³) from the magnitudes",
    ),
    Descriptor("3_μ", "dipole moment", "dipole moment of the cluster", "D", "unit assumed Debye"),
    Descriptor("3_EHOMO", "HOMO energy", "energy of the highest occupied orbital", "eV"),
    Descriptor(
        "3_ΔEHOMO",
        "Δ HOMO energy",
        f"3_EHOMO {_REL}",
        "eV",
        _INFERRED + "; the offset differs within some families",
    ),
    Descriptor(
        "3_EHOMO/NL",
        "HOMO energy per ligand atom",
        "3_EHOMO divided by NL, the number of ligand atoms (missing for bare clusters)",
        "eV",
    ),
    Descriptor(
        "3_ΔEHOMO/NL",
        "Δ HOMO energy per ligand atom",
        "3_ΔEHOMO divided by NL, the number of ligand atoms",
        "eV",
    ),
    Descriptor(
        "3_χ", "summed electronegativity", "sum of the atoms' Pauling electronegativities", ""
    ),
    Descriptor("3_EA", "summed electron affinity", "sum of the atoms' electron affinities", "eV"),
    Descriptor(
        "3_IE", "summed ionisation energy", "sum of the atoms' first ionisation energies", "eV"
    ),
    Descriptor("3_χave", "avg. electronegativity", "mean Pauling electronegativity per atom", ""),
    Descriptor("3_EAave", "avg. electron affinity", "mean atomic electron affinity per atom", "eV"),
    Descriptor(
        "3_IEave", "avg. ionisation energy", "mean atomic first ionisation energy per atom", "eV"
    ),
    # formula level (n2react.composition)
    Descriptor("0_n_metal", "metal atoms", "number of metal atoms"),
    Descriptor("0_n_ligand", "ligand atoms", "number of ligand atoms (NL)"),
    Descriptor("0_ligand/metal", "ligand/metal ratio", "ligand atoms per metal atom"),
    Descriptor("0_charge", "charge", "net charge of the cluster (-1 anion, 0 neutral)", "e"),
    Descriptor("0_metal_group", "metal group", "periodic-table group of the metal (mean)"),
    Descriptor("0_metal_period", "metal period", "periodic-table period of the metal (mean)"),
    Descriptor("0_metal_χ", "metal electronegativity", "Pauling electronegativity of the metal"),
]
_ENTRIES += [
    Descriptor(f"{PREFIX}n_{e}", f"{e} atoms", f"number of {e} ligand atoms")
    for e in DEFAULT_LIGANDS
]

GLOSSARY: dict[str, Descriptor] = {d.code: d for d in _ENTRIES}

#: The four descriptors the paper's SHAP analysis ranks as key.
PAPER_KEY_DESCRIPTORS: tuple[str, ...] = ("1_ΔQmax", "2_σave", "2_ndave", "3_ΔEHOMO")


def describe(code: str) -> Descriptor | None:
    """The glossary entry of a column name, or None for an unknown column.

    Formula-level ligand counts of any element (``0_n_Cl``) are recognised too.
    """
    code = str(code)
    if code in GLOSSARY:
        return GLOSSARY[code]
    if code.startswith(PREFIX + "n_"):
        e = code[len(PREFIX) + 2 :]
        return Descriptor(code, f"{e} atoms", f"number of {e} ligand atoms")
    return None


def label(code: str, *, unit: bool = False) -> str:
    """An axis label: ``'2_σave (avg. spin density)'``; unknown columns keep their name.

    A product column of the interaction features (``'2_Q 3_EA'``) keeps its codes. ``unit=True``
    appends the unit in brackets where there is one.
    """
    d = describe(code)
    if d is None:
        return str(code)
    out = f"{d.code} ({d.name})"
    return f"{out} [{d.unit}]" if unit and d.unit else out


def plot_label(code: str) -> str:
    """A descriptor's label on a figure's axis: :func:`label`, and a product column of the
    interaction features (``'2_Q 3_EA'``, the authors' header, which :func:`label` and the
    tables keep) joined by ``×`` so that it reads as the product it is (``'2_Q × 3_EA'``)."""
    parts = str(code).split()
    if describe(code) is None and len(parts) == 2 and all(describe(c) for c in parts):
        return " × ".join(parts)
    return label(code)


def glossary_markdown(codes: list[str] | None = None) -> str:
    """The glossary as a Markdown table (all entries, or those of ``codes`` in their order)."""
    entries = [describe(c) for c in codes] if codes is not None else list(GLOSSARY.values())
    lines = [
        "| code | level | name | what it is | unit |",
        "| --- | --- | --- | --- | --- |",
    ]
    for d in entries:
        if d is None:
            continue
        what = d.meaning + (f" ({d.note})" if d.note else "")
        lines.append(f"| `{d.code}` | {d.level} | {d.name} | {what} | {d.unit or '-'} |")
    return "\n".join(lines) + "\n"
