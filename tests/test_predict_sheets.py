"""`python -m predict` on the sheets chemists make of new clusters: names written with another
anion glyph, the name column moved, rows of spaces, a placeholder row, a notes sheet first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FEV = "heteronuclear-FeV-18-15features.xlsx"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict:
    """A ridge model trained on 100 homonuclear clusters (15 descriptors; no Ni, no Cr), and
    the 18 Fe-V clusters renamed Co-Ta with the U+02C9 anion mark, without lg(k1)."""
    tmp = tmp_path_factory.mktemp("predict_sheets")
    full = pd.read_excel(shared_data / "homonuclear-159-15features.xlsx")
    full.iloc[:100].to_excel(tmp / "subset.xlsx", index=False)
    cmd = [
        sys.executable, "-m", "train", f"data.path={tmp / 'subset.xlsx'}", "model=ridge",
        "cv.outer_folds=3", "explain=false", "progress=false", "tracking=none",
        f"hydra.run.dir={tmp / 'run'}",
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    fev = pd.read_excel(shared_data / FEV).drop(columns=["lg(k1)"])
    names = fev["Clusters"].str.replace("Fe", "#").str.replace("V", "Ta").str.replace("#", "Co")
    fev["Clusters"] = names.str.replace("\u00af", "\u02c9")
    return {"tmp": tmp, "run_dir": tmp / "run", "new": fev}


def _predict(run: dict, sheet: pd.DataFrame | None, name: str, *extra: str) -> tuple[Path, str]:
    path = run["tmp"] / name
    if sheet is not None:
        sheet.to_excel(path, index=False)
    out = path.with_suffix(".csv")
    cmd = [sys.executable, "-m", "predict", str(run["run_dir"]), str(path), "-o", str(out), *extra]
    res = subprocess.run(cmd, cwd=run["tmp"], capture_output=True, text=True, timeout=300)
    assert "Traceback" not in res.stderr
    if res.returncode != 0:
        assert res.returncode == 2 and not out.exists()
        (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("n2react: error:")]
        return out, line
    return out, ""


def test_cluster_names_come_back_as_the_sheet_writes_them(run: dict) -> None:
    """The names join back onto the sheet: U+02C9 stays U+02C9 (it came back as U+00AF)."""
    out, err = _predict(run, run["new"], "cota.xlsx")
    assert not err
    table = pd.read_csv(out)
    assert table["cluster"].tolist() == run["new"]["Clusters"].tolist()
    assert table["cluster"].iloc[0] == "Co2TaC\u02c9"


@pytest.mark.parametrize("mark", ["\u2212", "\u207b", "\u203e"])
def test_a_new_metal_is_flagged_whatever_the_anion_glyph(run: dict, mark: str) -> None:
    """Ni2CrC− (minus sign), ⁻ or ‾: read as a formula, so the new elements are caught (they
    were 'not a formula: elements not checked' and in the domain)."""
    sheet = run["new"].copy()
    sheet["Clusters"] = [
        n.replace("Co", "Ni").replace("Ta", "Cr").replace("\u02c9", mark) for n in sheet["Clusters"]
    ]
    out, err = _predict(run, sheet, f"nicr_{ord(mark):x}.xlsx")
    assert not err
    table = pd.read_csv(out)
    assert not table["in_domain"].astype(bool).any()
    assert table["domain_reasons"].str.contains("new element\\(s\\) Cr, Ni").all()
    assert not table["descriptor_notes"].fillna("").str.contains("not a formula").any()


def test_the_name_column_is_found_when_it_is_not_first(run: dict) -> None:
    """Clusters moved after three descriptors, or after a numbering column: the first column's
    numbers became the names."""
    cols = list(run["new"].columns)
    moved = run["new"][cols[1:4] + ["Clusters"] + cols[4:]]
    out, err = _predict(run, moved, "moved.xlsx")
    assert not err
    table = pd.read_csv(out)
    assert table["cluster"].tolist() == run["new"]["Clusters"].tolist()
    numbered = run["new"].copy()
    numbered.insert(0, "No.", range(1, 19))  # an index column first: not the names
    out, err = _predict(run, numbered, "numbered.xlsx")
    assert not err and pd.read_csv(out)["cluster"].tolist() == numbered["Clusters"].tolist()
    first_is_a_descriptor = moved.rename(columns={"Clusters": "sample id"})
    _, err = _predict(run, first_is_a_descriptor, "unnamed.xlsx")
    assert "unnamed.xlsx: the first column '3_VDE/VIE' is not the cluster names" in err


def test_rows_of_spaces_below_the_clusters_are_blank(run: dict) -> None:
    """Trailing rows whose cells hold only spaces look empty, and are (they were 'empty cluster
    name ... row 20')."""
    spaces = pd.DataFrame([[" "] + [None] * 15, ["  "] * 16], columns=run["new"].columns)
    out, err = _predict(run, pd.concat([run["new"], spaces]), "spaces.xlsx")
    assert not err
    assert pd.read_csv(out)["cluster"].tolist() == run["new"]["Clusters"].tolist()


def test_a_cluster_without_any_descriptor_is_refused(run: dict) -> None:
    """A placeholder row (a name, no DFT yet) was predicted from the training medians alone,
    in the domain; -999 sentinels count as blank."""
    sheet = run["new"].copy()
    sheet.loc[len(sheet)] = ["Co5Ta5C\u02c9", *([np.nan] * 14), -999]
    _, err = _predict(run, sheet, "placeholder.xlsx")
    assert "placeholder.xlsx: row 20 (cluster Co5Ta5C\u00af) has a name but no descriptor" in err


def test_a_notes_sheet_first_names_the_other_sheets(run: dict) -> None:
    path = run["tmp"] / "two.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"readme": ["DFT: B3LYP"]}).to_excel(writer, sheet_name="notes", index=False)
        run["new"].to_excel(writer, sheet_name="data", index=False)
    _, err = _predict(run, None, "two.xlsx")
    assert "two.xlsx: the sheet is empty" in err
    assert "(read sheet 'notes'; the file also has 'data'; choose one with --sheet NAME)" in err
    out, err = _predict(run, None, "two.xlsx", "--sheet", "data")
    assert not err and len(pd.read_csv(out)) == 18
