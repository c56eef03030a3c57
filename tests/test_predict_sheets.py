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
    fev = pd.read_excel(shared_data / FEV)
    y = fev.pop("lg(k1)").to_numpy(float)
    names = fev["Clusters"].str.replace("Fe", "#").str.replace("V", "Ta").str.replace("#", "Co")
    fev["Clusters"] = names.str.replace("\u00af", "\u02c9")
    return {"tmp": tmp, "run_dir": tmp / "run", "new": fev, "fev_y": y}


def _predict(run: dict, sheet: pd.DataFrame | None, name: str, *extra: str) -> tuple[Path, str]:
    """(the output CSV, the error line or ''); the process's stderr in ``run["stderr"]``."""
    path = run["tmp"] / name
    if sheet is not None:
        sheet.to_excel(path, index=False)
    out = path.with_suffix(".csv")
    cmd = [sys.executable, "-m", "predict", str(run["run_dir"]), str(path), "-o", str(out), *extra]
    res = subprocess.run(cmd, cwd=run["tmp"], capture_output=True, text=True, timeout=300)
    run["stderr"] = res.stderr
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
    assert table["domain_reasons"].str.contains("new metals Cr, Ni").all()
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
    assert "placeholder.xlsx: row 20 (cluster Co5Ta5C\u02c9) has a name but no descriptor" in err


def test_error_lines_name_the_cluster_as_the_sheet_writes_it(run: dict) -> None:
    """The sheet writes Co2TaCˉ (U+02C9): its error lines said Co2TaC¯ (U+00AF), a name the
    chemist's search of the sheet does not find. Two spellings of one cluster are both shown."""
    sheet = run["new"].astype({"1_ΔQmax": object})
    sheet.loc[0, "1_ΔQmax"] = "n/a?"
    _, err = _predict(run, sheet, "typo.xlsx")
    assert "'n/a?' in column '1_ΔQmax', row 2 (cluster Co2TaC\u02c9)" in err
    twice = pd.concat([run["new"], run["new"].iloc[[0]]], ignore_index=True)
    twice.loc[18, "Clusters"] = "Co2TaC\u00af"
    out, err = _predict(run, twice, "twice.xlsx")  # one name twice: predicted (isomers?)
    assert not err and pd.read_csv(out)["cluster"].tolist() == twice["Clusters"].tolist()
    assert "Co2TaC\u02c9 rows 2, 20 (written 'Co2TaC\u00af' in row 20; identical" in run["stderr"]


def test_the_missing_cell_warning_says_what_fills_them_at_predict_time(run: dict) -> None:
    """A blank cell is filled by the saved model's imputer (fitted on the training clusters):
    the warning said 'imputed inside each training fold', which is training's story."""
    sheet = run["new"].copy()
    sheet.loc[1, "1_ΔQmax"] = np.nan
    out, err = _predict(run, sheet, "one_blank.xlsx")
    assert not err and out.exists()
    (line,) = [ln for ln in run["stderr"].splitlines() if "missing cell" in ln]
    assert "1 missing cell (1_ΔQmax: " + sheet.loc[1, "Clusters"] + " row 3)" in line
    assert line.endswith("filled in by the model's imputer (fitted on its training clusters)")
    assert "training fold" not in line


def test_a_coverage_the_run_cannot_calibrate_names_the_flag(run: dict) -> None:
    """100 out-of-fold residuals cannot calibrate 99.5 % intervals: the refusal said
    'coverage=0.995', a config key, to a user who typed --coverage 0.995."""
    _, err = _predict(run, run["new"], "cover.xlsx", "--coverage", "0.995")
    assert "n2react: error: --coverage 0.995: too few out-of-fold residuals" in err
    _, err = _predict(run, run["new"], "cover.xlsx", "--coverage", "1.5")
    assert "n2react: error: --coverage 1.5: expected a fraction between 0 and 1" in err


def test_a_notes_sheet_first_names_the_other_sheets(run: dict) -> None:
    path = run["tmp"] / "two.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"readme": ["DFT: B3LYP"]}).to_excel(writer, sheet_name="notes", index=False)
        run["new"].to_excel(writer, sheet_name="data", index=False)
    _, err = _predict(run, None, "two.xlsx")
    # it said "the sheet is empty" of a sheet holding a note
    one = "two.xlsx: the sheet has one column ('readme'), not a cluster name and descriptors"
    assert one in err
    assert "(read sheet 'notes'; the file also has 'data'; choose one with --sheet NAME)" in err
    out, err = _predict(run, None, "two.xlsx", "--sheet", "data")
    assert not err and len(pd.read_csv(out)) == 18


def test_a_sheet_named_by_a_number_is_read_by_its_name(run: dict) -> None:
    """--sheet 1 on a workbook of sheets '1' and '2' read the second ('2', index 1)."""
    path = run["tmp"] / "batches.xlsx"
    with pd.ExcelWriter(path) as writer:
        run["new"].to_excel(writer, sheet_name="1", index=False)
        run["new"].iloc[:5].to_excel(writer, sheet_name="2", index=False)
    out, err = _predict(run, None, "batches.xlsx", "--sheet", "1")
    assert not err and len(pd.read_csv(out)) == 18
    out.unlink()
    out, err = _predict(run, None, "batches.xlsx", "--sheet", "0")  # no sheet '0': the first
    assert not err and len(pd.read_csv(out)) == 18


def test_a_sheet_of_headers_without_rows_says_there_are_no_rows(run: dict) -> None:
    """A sheet with every descriptor header and no cluster below was called 'empty (need a
    cluster name and descriptor columns)', which it has."""
    _, err = _predict(run, run["new"].iloc[:0], "headers.xlsx")
    assert (
        err
        == f"n2react: error: {run['tmp'] / 'headers.xlsx'}: no cluster rows below the header row"
    )


def test_sheet_is_refused_for_a_csv(run: dict) -> None:
    """--sheet 1 on a CSV was ignored silently (the one table was predicted)."""
    path = run["tmp"] / "cota.csv"
    run["new"].to_csv(path, index=False)
    out = run["tmp"] / "cota_sheet.csv"
    cmd = [sys.executable, "-m", "predict", str(run["run_dir"]), str(path), "-o", str(out)]
    res = subprocess.run([*cmd, "--sheet", "1"], cwd=run["tmp"], capture_output=True, text=True)
    assert res.returncode == 2 and not out.exists() and "Traceback" not in res.stderr
    assert f"n2react: error: --sheet 1: {path} is a text file" in res.stderr.splitlines()[-1]


def _isomers(run: dict) -> pd.DataFrame:
    """The Co-Ta sheet measured (lg(k1) of the Fe-V file, one blank), with a blank row after
    row 3 (so positions are not rows), an isomer of Co2TaCˉ (other descriptors) at row 12 and
    an identical copy of row 6 at row 22."""
    sheet = run["new"].copy()
    sheet.insert(1, "lg(k1)", run["fev_y"])
    sheet.loc[9, "lg(k1)"] = np.nan
    isomer = sheet.iloc[[0]].copy()
    isomer.iloc[0, 2:5] = isomer.iloc[0, 2:5] * 1.3  # a geometry with other DFT descriptors
    blank = pd.DataFrame([[None] * sheet.shape[1]], columns=sheet.columns)
    parts = [sheet.iloc[:2], blank, sheet.iloc[2:9], isomer, sheet.iloc[9:], sheet.iloc[[3]]]
    return pd.concat(parts, ignore_index=True)


def test_isomers_are_each_predicted_on_their_own_row(run: dict) -> None:
    """Two rows of one name (isomers: other descriptors) were refused ('duplicate cluster name
    ... in rows 2 and 12'); each is predicted, in sheet order, with its sheet row, the copies
    named in one warning, the lg(k1) column scored row by row (an identical copy of a row, which
    counted twice, once, as the scores line says), and --explain kept per row. The --plot
    title gives the scores the terminal prints (it gave none)."""
    from n2react.figures import figure_text

    sheet = _isomers(run)
    out, err = _predict(run, sheet, "isomers.xlsx", "--explain", "--plot")
    assert not err, run["stderr"][-2000:]
    table = pd.read_csv(out)
    names = sheet["Clusters"].dropna().tolist()
    assert table["cluster"].tolist() == names and len(table) == 20
    rows = [2, 3, *range(5, 23)]  # row 4 is the blank one
    assert table["row"].tolist() == rows and table.columns[-1] == "row"
    first, isomer, copy_of, copy = (table[table["row"] == r].iloc[0] for r in (2, 12, 6, 22))
    assert first["cluster"] == isomer["cluster"] and first["y_pred"] != isomer["y_pred"]
    assert copy["cluster"] == copy_of["cluster"] and copy["y_pred"] == copy_of["y_pred"]
    (line,) = [ln for ln in run["stderr"].splitlines() if "more than once" in ln]
    assert line.endswith(
        "isomers.xlsx: 2 names appear more than once (isomers?): Co2TaC\u02c9 rows 2, 12; "
        f"{copy['cluster']} rows 6, 22 (identical copies: likely a paste error); "
        "each row predicted on its own"
    ), line
    # the terminal table tells the two apart by their rows
    assert "Co2TaC\u02c9 (row 2)" in run["stderr"] and "Co2TaC\u02c9 (row 12)" in run["stderr"]
    # scored row by row: the measured lg(k1) of each row, the blank one left out
    measured = sheet.dropna(how="all")["lg(k1)"].to_numpy(float)
    np.testing.assert_array_equal(table["y_true"].to_numpy(float), measured)
    np.testing.assert_allclose(table["residual"], table["y_pred"] - table["y_true"])
    once = table["row"] != 22  # row 22: an identical copy of row 6, lg(k1) too
    mae = f"{table.loc[once, 'residual'].abs().mean():.3f}"
    assert mae != f"{table['residual'].abs().mean():.3f}"
    (all_row,) = [ln for ln in run["stderr"].splitlines() if ln.startswith("│ all measured")]
    assert " 18 " in all_row and mae in all_row, run["stderr"][-3000:]
    assert "1 identical copy of a row scored once" in run["stderr"]
    scored = table[once & table["y_true"].notna()]
    r = f"{np.corrcoef(scored['y_true'], scored['y_pred'])[0, 1]:.3f}"
    assert r in all_row
    title = " ".join(figure_text(out.with_suffix(".png"))["Title"].split())
    assert (
        "; vs measured lg(k1), all measured (1 identical copy of a row scored once): n 18, "
        f"r {r}, MAE {mae};"
    ) in title, title
    assert "19 of 20 clusters have a measured lg(k1)" in run["stderr"]
    # --explain: one row per sheet row, the same rows, its values summing to each prediction
    shap = pd.read_csv(out.with_name(out.stem + "_explain.csv"))
    assert shap["row"].tolist() == rows and shap["cluster"].tolist() == names
    np.testing.assert_allclose(shap["y_pred_explained"], table["y_pred"], atol=1e-6)


def test_eval_path_and_training_still_refuse_a_name_twice(run: dict) -> None:
    """Only predict takes isomers: eval.path and a calibration file are matched to a run's
    clusters by name, and training's groups and pairs by cluster."""
    from n2react.errors import DataError
    from n2react.new_clusters import read_new_clusters

    path = run["tmp"] / "isomers_eval.xlsx"
    _isomers(run).to_excel(path, index=False)
    cols = [str(c) for c in run["new"].columns[1:]]
    with pytest.raises(DataError, match="duplicate cluster name 'Co2TaC\u02c9' in rows 2 and 12"):
        read_new_clusters(path, cols)


def test_a_non_finite_prediction_is_named_by_its_sheet_row() -> None:
    """check_finite named the row as position + 2, wrong below a blank row (or for isomers)."""
    from n2react.errors import DataError
    from n2react.inference import check_finite

    table = pd.DataFrame(
        {"cluster": ["A", "B", "B"], "y_pred": [1.0, 2.0, np.inf], "row": [2, 4, 7]}
    )
    with pytest.raises(DataError, match=r"^cluster B \(row 7\): the model gives y_pred = inf"):
        check_finite(table)


def test_the_warning_separates_isomers_from_copies_of_one_name() -> None:
    """Three rows of one name, two of them identical: the copies are named among the rows."""
    from n2react.isomers import duplicate_names_line

    X = pd.DataFrame({"a": [1.0, 2.0, 1.0, 5.0], "b": [np.nan, 3.0, np.nan, 6.0]})
    keys = np.array(["Fe2V2C\u00af", "Fe2V2C\u00af", "Fe2V2C\u00af", "Mo3"], dtype=object)
    line = duplicate_names_line(keys, keys, np.array([4, 5, 9, 10]), X)
    assert line == (
        "1 name appears more than once (isomers?): Fe2V2C\u00af rows 4, 5, 9 (rows 4, 9 "
        "identical copies: likely a paste error); each row predicted on its own"
    )
    assert duplicate_names_line(keys[2:], keys[2:], np.array([9, 10]), X.iloc[2:]) is None
