"""`python -m predict` on the files a chemist screening new compositions brings: the FeV sheet
saved again as .csv or .xls beside the .xlsx (one default output name), a sheet name mistyped,
a cluster of a metal or ligand element no training cluster has, under intervals calibrated on
Fe-V clusters or on held-out errors, an ``n/a`` cell or a text cell, an output folder that
does not exist yet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

FEV = "heteronuclear-FeV-18-15features.xlsx"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict:
    """A ridge model on 100 homonuclear clusters (no Ni), its intervals calibrated on the 18
    Fe-V clusters as experiment=new_compositions calibrates them; the Fe-V sheet without lg(k1)."""
    tmp = tmp_path_factory.mktemp("predict_inputs")
    full = pd.read_excel(shared_data / "homonuclear-159-15features.xlsx")
    full.iloc[:100].to_excel(tmp / "subset.xlsx", index=False)
    env = {**os.environ, "N2_DATA_DIR": str(shared_data)}
    cmd = [
        sys.executable, "-m", "train", f"data.path={tmp / 'subset.xlsx'}", "model=ridge",
        "cv.outer_folds=3", "explain=false", "progress=false", "tracking=none",
        f"uncertainty.calibration_path={shared_data / FEV}", f"hydra.run.dir={tmp / 'run'}",
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    fev = pd.read_excel(shared_data / FEV).drop(columns=["lg(k1)"])
    return {"tmp": tmp, "run_dir": tmp / "run", "fev": fev, "env": env}


def _predict(run: dict, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "predict", str(run["run_dir"]), *args]
    res = subprocess.run(
        cmd, cwd=run["tmp"], capture_output=True, text=True, timeout=300, env=run["env"]
    )
    assert "Traceback" not in res.stderr
    return res


def _error(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 2
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("n2react: error:")]
    return line


def test_a_default_output_of_another_file_says_whose_name_it_is(run: dict) -> None:
    """fev.xlsx and fev.csv both write fev_predictions.csv: predicting the CSV after the workbook
    said only 'fev_predictions.csv: the output exists', a file the chemist never named."""
    d = run["tmp"] / "same"
    d.mkdir()
    run["fev"].to_excel(d / "fev.xlsx", index=False)
    run["fev"].to_csv(d / "fev.csv", index=False)
    assert _predict(run, str(d / "fev.xlsx")).returncode == 0
    before = (d / "fev_predictions.csv").read_bytes()
    err = _error(_predict(run, str(d / "fev.csv")))
    assert err == (
        f"n2react: error: {d / 'fev_predictions.csv'}: the output exists (the default output "
        "name for fev.csv); name another with -o, or pass --force to replace it"
    )
    assert (d / "fev_predictions.csv").read_bytes() == before
    res = _predict(run, str(d / "fev.csv"), "-o", str(d / "fev_csv.csv"))
    assert res.returncode == 0, res.stderr[-2000:]
    pd.testing.assert_frame_equal(
        pd.read_csv(d / "fev_csv.csv"), pd.read_csv(d / "fev_predictions.csv")
    )


def test_an_xls_is_refused_as_an_xls_not_as_an_existing_output(run: dict) -> None:
    """fev.xls beside fev.xlsx's predictions was refused for 'the output exists'; with --force,
    then, for its type. The input is named first, with what to save it as."""
    d = run["tmp"] / "xls"
    d.mkdir()
    (d / "fev_predictions.csv").write_text("mine\n")
    for name in ("fev.xls", "fev.ods"):
        (d / name).write_bytes(b"not read")
        err = _error(_predict(run, str(d / name)))
        assert f"{d / name}: unknown file type '{Path(name).suffix}'" in err
        assert err.endswith("; save it as .xlsx or .csv)")
    assert (d / "fev_predictions.csv").read_text() == "mine\n"


def test_a_mistyped_sheet_name_lists_the_sheets(run: dict) -> None:
    path = run["tmp"] / "two.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"readme": ["DFT: B3LYP"]}).to_excel(writer, sheet_name="Info", index=False)
        run["fev"].to_excel(writer, sheet_name="Data", index=False)
    out = run["tmp"] / "two.csv"
    for sheet in ("data ", "5"):
        err = _error(_predict(run, str(path), "--sheet", sheet, "-o", str(out)))
        assert f"{path}: cannot read sheet" in err
        assert err.endswith("(the file has sheets 'Info', 'Data')")
        assert not out.exists()


def test_a_new_metal_under_fev_calibrated_intervals_is_warned_about(run: dict) -> None:
    """Ni2VC¯ got an interval calibrated on the Fe-V clusters and only 'no: new element(s) Ni':
    nothing said that interval promises nothing for a new metal, nor what the README runs
    for one."""
    sheet = run["fev"].copy()
    sheet.loc[0, "Clusters"] = "Ni2VC¯"
    sheet.loc[9, "Clusters"] = "Ni4VC¯"
    sheet.to_excel(run["tmp"] / "ni.xlsx", index=False)
    res = _predict(run, str(run["tmp"] / "ni.xlsx"))
    assert res.returncode == 0, res.stderr[-2000:]
    (line,) = [ln for ln in res.stderr.splitlines() if "no training cluster has" in ln]
    assert line.startswith("WARNING")
    assert (
        "2 of 18 clusters have an element no training cluster has (new metal Ni: Ni2VC¯ row 2, "
        in line
    )
    assert "Ni4VC¯ row 11)" in line
    assert f"calibrated on {FEV}" in line
    assert "cv.groups=metal uncertainty.calibration_path=null" in line
    table = pd.read_csv(run["tmp"] / "ni_predictions.csv")
    assert table["domain_reasons"].iat[0].startswith("new metal Ni")
    sheet.loc[[0, 9], "Clusters"] = ["Fe2VC¯", "Fe4VC¯"]
    sheet.to_excel(run["tmp"] / "fe.xlsx", index=False)
    res = _predict(run, str(run["tmp"] / "fe.xlsx"))
    assert res.returncode == 0 and "no training cluster has" not in res.stderr


def test_a_new_ligand_element_is_named_a_ligand_element_not_a_metal(run: dict) -> None:
    """Fe2VSe2¯ (Se), Fe2V2P¯ (P) and Fe3VO3¯ (O: no training cluster has one) were warned
    about as 'a new metal's level can be off by more than 1 lg unit', with the held-out-metal
    run as the remedy: neither is true of a ligand element."""
    sheet = run["fev"].copy()
    sheet.loc[[2, 3, 5], "Clusters"] = ["Fe2VSe2¯", "Fe2V2P¯", "Fe3VO3¯"]
    sheet.to_excel(run["tmp"] / "lig.xlsx", index=False)
    res = _predict(run, str(run["tmp"] / "lig.xlsx"))
    assert res.returncode == 0, res.stderr[-2000:]
    (line,) = [ln for ln in res.stderr.splitlines() if "no training cluster has" in ln]
    assert "(new ligand elements O, P, Se: Fe2VSe2¯ row 4, Fe2V2P¯ row 5, Fe3VO3¯ row 7)" in line
    assert "metal" not in line.split(": their intervals")[0]
    assert f"calibrated on {FEV}; no calibration holds out a ligand element" in line
    assert "a new metal's level" not in line and "cv.groups=metal uncertainty" not in line
    sheet.loc[0, "Clusters"] = "Ni2VC¯"  # both kinds: each named as what it is
    sheet.to_excel(run["tmp"] / "both.xlsx", index=False)
    res = _predict(run, str(run["tmp"] / "both.xlsx"))
    (line,) = [ln for ln in res.stderr.splitlines() if "no training cluster has" in ln]
    assert "4 of 18 clusters" in line and "(new metal Ni; new ligand elements O, P, Se: " in line
    assert "a new metal's level" in line and "No calibration holds out a ligand element" in line


def test_out_of_fold_intervals_warn_unless_calibrated_on_held_out_metals(run: dict) -> None:
    """Intervals calibrated on the run's held-out errors gave no new-element warning at all,
    though under KFold or family-grouped folds they cover fewer of a held-out metal's clusters
    than promised (leave-one-metal-out: 76 % and 85 % for 90 % intervals); only a run grouped
    by metal was calibrated on new metals. The run records what its folds held out."""
    from dataclasses import replace

    import numpy as np

    from n2react.inference import load_model, new_element_line
    from n2react.runstore import UNCERTAINTY_FILE
    from n2react.uncertainty import load_calibration

    assert load_calibration(run["run_dir"] / UNCERTAINTY_FILE).held_out == "clusters"  # KFold
    loaded = load_model(str(run["run_dir"]))
    out = pd.DataFrame({"cluster": ["Ni2VC¯", "Fe2VSe2¯", "Fe2VC¯"], "row": [2, 3, 4]})
    kfold = replace(loaded.uncertainty, source="out-of-fold", protocol="KFold (known families)")
    line = new_element_line(out, kfold, loaded.domain)
    assert line is not None and "2 of 3 clusters" in line
    assert "(new metal Ni; new ligand element Se: Ni2VC¯ row 2, Fe2VSe2¯ row 3)" in line
    assert "calibrated on the run's held-out errors, KFold (known families), not on held-out " in (
        line
    )
    assert "cv.groups=metal uncertainty.calibration_path=null" in line
    by_metal = replace(kfold, protocol="grouped by metal (new compositions)", held_out="metal")
    line = new_element_line(out, by_metal, loaded.domain)
    assert line is not None and line.startswith("1 of 3 clusters")  # Se only: Ni is calibrated
    assert "(new ligand element Se: Fe2VSe2¯ row 3)" in line and "Ni" not in line
    assert new_element_line(out.iloc[[0, 2]], by_metal, loaded.domain) is None
    # a file's intervals were not calibrated on held-out metals, whatever the run's folds were
    on_file = replace(by_metal, source="fev.xlsx", calib_X=np.zeros((1, 1)))
    assert "Ni" in (new_element_line(out, on_file, loaded.domain) or "")


def test_an_na_cell_is_a_missing_cell_and_text_is_refused(run: dict) -> None:
    """As the README says: n/a (and NA, nan, None, the markers pandas reads as missing) is a
    blank cell, filled by the imputer and named; other text is one error line naming the row."""
    sheet = run["fev"].copy().astype(object)
    sheet.loc[2, "3_EA"] = "n/a"
    sheet.to_excel(run["tmp"] / "na.xlsx", index=False)
    res = _predict(run, str(run["tmp"] / "na.xlsx"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "1 missing cell (3_EA: Fe2VS2¯ row 4); filled in by the model's imputer" in res.stderr
    table = pd.read_csv(run["tmp"] / "na_predictions.csv")
    assert "missing 3_EA: filled with the training median" in table["descriptor_notes"].iat[2]
    sheet.loc[2, "3_EA"] = "0,12"
    sheet.to_excel(run["tmp"] / "text.xlsx", index=False)
    err = _error(_predict(run, str(run["tmp"] / "text.xlsx")))
    assert err.endswith("non-numeric value '0,12' in column '3_EA', row 4 (cluster Fe2VS2¯)")
    # a number typed as text with a trailing space (a string cell) is that number, in a
    # workbook and in a CSV: the same prediction as the number itself
    sheet.loc[2, "3_EA"] = 0.12
    sheet.to_excel(run["tmp"] / "num.xlsx", index=False)
    sheet.loc[2, "3_EA"] = "0.12 "
    sheet.to_excel(run["tmp"] / "space.xlsx", index=False)
    sheet.to_csv(run["tmp"] / "space.csv", index=False)
    assert ",0.12 ," in (run["tmp"] / "space.csv").read_text()
    want = None
    for name in ("num.xlsx", "space.xlsx", "space.csv"):
        res = _predict(run, str(run["tmp"] / name), "-o", str(run["tmp"] / f"{name}.out.csv"))
        assert res.returncode == 0, res.stderr[-2000:]
        got = pd.read_csv(run["tmp"] / f"{name}.out.csv")["y_pred"].iat[2]
        want = got if want is None else want
        assert got == pytest.approx(want)
    import openpyxl

    ws = openpyxl.load_workbook(run["tmp"] / "space.xlsx").active
    col = [c.value for c in ws[1]].index("3_EA") + 1
    assert ws.cell(row=4, column=col).value == "0.12 "  # a string cell, as typed


def test_an_output_folder_that_does_not_exist_is_made(run: dict) -> None:
    """As the README says: -o results/new/fev.csv makes the folders, and the log line names the
    path written."""
    run["fev"].to_excel(run["tmp"] / "fev1.xlsx", index=False)
    out = run["tmp"] / "results" / "new" / "fev.csv"
    res = _predict(run, str(run["tmp"] / "fev1.xlsx"), "-o", str(out), "--plot")
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(pd.read_csv(out)) == 18 and out.with_suffix(".png").is_file()
    assert f"18 predictions written to {out}" in res.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["fev.csv", "fev.png"]


def test_a_flag_reason_says_what_its_threshold_is(run: dict) -> None:
    """'expected error 0.62 above the run's threshold 0.53' named a threshold the chemist could
    not place; the reason now says it in words (the flag rule is unchanged)."""
    run["fev"].to_excel(run["tmp"] / "fev2.xlsx", index=False)
    res = _predict(run, str(run["tmp"] / "fev2.xlsx"))
    assert res.returncode == 0, res.stderr[-2000:]
    table = pd.read_csv(run["tmp"] / "fev2_predictions.csv")
    reasons = table.loc[~table["in_domain"].astype(bool), "domain_reasons"]
    assert len(reasons) > 0
    pattern = (
        r"expected error \d\.\d\d above \d\.\d\d \(higher than 90 % of the calibration clusters'\)"
    )
    assert reasons.str.fullmatch(pattern).all(), reasons.tolist()


def test_an_output_under_a_file_is_refused_before_predicting(run: dict) -> None:
    """-o fev.xlsx/out.csv predicted, then failed with 'cannot write (File exists)'."""
    run["fev"].to_excel(run["tmp"] / "fev3.xlsx", index=False)
    out = run["tmp"] / "fev3.xlsx" / "out.csv"
    err = _error(_predict(run, str(run["tmp"] / "fev3.xlsx"), "-o", str(out)))
    assert err == f"n2react: error: {out}: {run['tmp'] / 'fev3.xlsx'} is a file, not a folder; " + (
        "choose another -o"
    )
