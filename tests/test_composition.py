"""Formula-level descriptors: parsed from the cluster names, added by the loader and by predict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, compose_data, data_dir

from n2react.composition import feature_names, formula_features, parse_formula
from n2react.data import load_dataset
from n2react.errors import DataError
from n2react.inference import predict
from n2react.runstore import load_model_file

CONF = Path(__file__).resolve().parents[1] / "conf" / "data"


@pytest.mark.parametrize(
    ("name", "counts", "charge"),
    [
        ("Mo5S2C1\u00af", {"Mo": 5, "S": 2, "C": 1}, -1),
        ("Fe3C4\u02c9", {"Fe": 3, "C": 4}, -1),  # the 4 is a count, not a charge
        ("Ta3S1C", {"Ta": 3, "S": 1, "C": 1}, 0),
        ("Ta3N3H\u00af", {"Ta": 3, "N": 3, "H": 1}, -1),
        ("V+", {"V": 1}, 1),
        ("Co2--", {"Co": 2}, -2),
    ],
)
def test_parse_formula(name: str, counts: dict, charge: int) -> None:
    assert parse_formula(name) == (counts, charge)


@pytest.mark.parametrize("name", ["Mo3S4C1-1-M2", "abc", "", "3Mo"])
def test_parse_formula_rejects_non_formulas(name: str) -> None:
    with pytest.raises(ValueError, match="not a formula"):
        parse_formula(name)


def test_features_of_a_heteronuclear_cluster_average_the_metals() -> None:
    f = formula_features(["FeV2S3\u00af"]).iloc[0]
    assert f["0_n_metal"] == 3 and f["0_n_S"] == 3 and f["0_n_ligand"] == 3
    assert f["0_ligand/metal"] == 1.0 and f["0_charge"] == -1
    assert f["0_metal_group"] == pytest.approx((8 + 2 * 5) / 3)
    assert f["0_metal_χ"] == pytest.approx((1.83 + 2 * 1.63) / 3)


def test_unknown_element_and_bad_name_name_the_row() -> None:
    with pytest.raises(DataError, match=r"x.xlsx: row 3 \(cluster Mo2Cl\u00af\): element\(s\) Cl"):
        formula_features(["Mo2S\u00af", "Mo2Cl\u00af"], source="x.xlsx")
    with pytest.raises(DataError, match="row 2 .*not a formula"):
        formula_features(["cluster-7"], source="x.xlsx")


def test_loader_appends_formula_columns_for_all_159() -> None:
    cfg = compose_data("homonuclear_24")
    cfg["formula"] = True
    ds = load_dataset(cfg)
    assert ds.X.shape == (159, 24 + len(feature_names()))
    assert list(ds.X.columns[-len(feature_names()) :]) == feature_names()
    # the stray isomer digit is gone, so the formula is right: Fe3C4, not Fe3C41
    row = int(np.flatnonzero(ds.clusters == "Fe3C4\u00af")[0])
    assert ds.X.loc[row, "0_n_C"] == 4 and ds.X.loc[row, "0_n_metal"] == 3
    assert set(ds.X["0_charge"]) == {-1.0, 0.0}  # Ta-S clusters carry no anion mark
    assert not ds.X[feature_names()].isna().any().any()


def test_the_readme_counts_and_names_the_formula_columns_the_loader_adds() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Formula-level descriptors", 1)[1].split("\n## ", 1)[0]
    names = feature_names()
    assert f"`data.formula=true` reads {len(names)} descriptors" in " ".join(section.split())
    assert f"with all {len(names)} formula" in " ".join(section.split())
    assert all(f"| `{n}` | 0 |" in readme for n in names)  # each in the descriptor glossary


def test_a_formula_column_subset_without_ligand_counts_still_predicts(tmp_path: Path) -> None:
    """data.formula_columns=[0_n_metal,0_ligand/metal] keeps no ligand count, yet training read
    the names with every ligand; predict refused every cluster with a ligand ('S are neither a
    known metal nor one of the ligands'), its own training clusters included."""
    from n2react.compose import compose_config
    from n2react.run import run

    cfg = compose_config(["data=homonuclear_15", "model=ridge", "cv.outer_folds=3",
                          "tracking=none", "explain=false", "data.formula=true",
                          "data.formula_columns=[0_n_metal,0_ligand/metal]"])  # fmt: skip
    cfg.progress = False
    run(cfg, tmp_path / "run")
    ds = load_dataset(cfg.data)
    sheet = pd.read_excel(data_dir() / "homonuclear-159-15features.xlsx")
    sheet.to_csv(tmp_path / "own.csv", index=False)
    table, _ = predict(str(tmp_path / "run"), tmp_path / "own.csv", tmp_path / "own_pred.csv")
    assert len(table) == 159 and table["y_pred"].notna().all()
    # the formula columns computed for predict are the ones training computed
    model = load_model_file(tmp_path / "run" / "model.skops")
    np.testing.assert_allclose(table["y_pred"], model.predict(ds.X), rtol=1e-9)
    fev = "heteronuclear-FeV-18-15features.xlsx"
    table, _ = predict(str(tmp_path / "run"), data_dir() / fev, tmp_path / "fev_pred.csv")
    assert len(table) == 18 and table["y_pred"].notna().all()


def test_a_run_with_its_own_ligands_reads_names_as_it_did_in_predict_and_eval(
    tmp_path: Path, shared_data: Path
) -> None:
    """data.formula_ligands=[..., P] with formula_columns keeping no 0_n_P: predict (and
    eval.path, the calibration file) read the names with the default ligands and refused every
    phosphide ('P are neither a known metal nor one of the ligands'); the run's ligands are now
    saved with the final model (and the calibration file's composition units and the
    explanations' families use them). A model saved without them reads names as before."""
    from n2react.compose import compose_config
    from n2react.new_clusters import LIGANDS_ATTR
    from n2react.run import run
    from n2react.runstore import save_model

    sheet = pd.read_excel(shared_data / "homonuclear-159-15features.xlsx")
    mo = sheet["Clusters"].str.startswith("Mo")
    sheet.loc[mo, "Clusters"] = sheet.loc[mo, "Clusters"].str.replace("S", "P")  # Mo phosphides
    sheet.to_excel(tmp_path / "phosphides.xlsx", index=False)
    new = sheet.iloc[:30].copy()  # other descriptors, same names: clusters new to the model
    new.iloc[:, 2:] *= 1.05
    new.to_excel(tmp_path / "new.xlsx", index=False)
    cfg = compose_config([f"data.path={tmp_path / 'phosphides.xlsx'}", "model=ridge",
                          "cv.outer_folds=3", "tracking=none", "explain=false",
                          "data.formula=true", "data.formula_ligands=[H,C,N,O,S,P]",
                          "data.formula_columns=[0_n_metal,0_n_ligand,0_charge]",
                          f"eval.path={tmp_path / 'new.xlsx'}",
                          f"uncertainty.calibration_path={tmp_path / 'new.xlsx'}"])  # fmt: skip
    cfg.progress = False
    summary = run(cfg, tmp_path / "run")
    assert summary["transfer_n"] == 30
    # the calibration file's composition units see P as a ligand too (Mo2-P, not Mo2P-bare)
    units = pd.read_csv(tmp_path / "run" / "uncertainty" / "calibration_set.csv")["unit"]
    assert {u.split("-")[0] for u in units} <= {f"Mo{n}" for n in range(2, 10)}, set(units)
    assert "Mo2-P" in set(units)
    # and the explanations' families too (Mo-P, not each phosphide a family of its own)
    from n2react.explain.runner import explain_run

    explain_run(str(tmp_path / "run"), out_dir=tmp_path / "explain")
    fams = pd.read_csv(tmp_path / "explain" / "residuals_by_family.csv")["family"]
    assert "Mo-P" in set(fams) and not [f for f in fams if any(ch.isdigit() for ch in f)]
    table, _ = predict(str(tmp_path / "run"), tmp_path / "phosphides.xlsx", tmp_path / "p.csv")
    model = load_model_file(tmp_path / "run" / "model.skops")
    assert getattr(model, LIGANDS_ATTR) == ["H", "C", "N", "O", "S", "P"]
    # 0_n_ligand counts the P atoms, as in training
    np.testing.assert_allclose(table["y_pred"], model.predict(load_dataset(cfg.data).X), rtol=1e-9)

    delattr(model, LIGANDS_ATTR)  # a model file of an older run: the default ligands
    save_model(model, tmp_path / "run" / "model.skops")
    with pytest.raises(DataError, match=r"element\(s\) P are neither .* ligands H, C, N, O, S"):
        predict(str(tmp_path / "run"), tmp_path / "phosphides.xlsx", tmp_path / "q.csv")


def test_fold_file_names_are_not_formulas() -> None:
    cfg = compose_data("authors_folds")
    cfg["formula"] = True
    with pytest.raises(DataError, match="Mo3S4C1-1-M2' is not a formula"):
        load_dataset(cfg)


def test_predict_computes_formula_columns_from_the_names(tmp_path: Path, shared_data: Path) -> None:
    full = pd.read_excel(shared_data / "homonuclear-159-24features.xlsx")
    full.iloc[:100].to_excel(tmp_path / "subset.xlsx", index=False)
    cmd = [
        sys.executable, "-m", "train", f"data.path={tmp_path / 'subset.xlsx'}", "model=ridge",
        "data.formula=true", "cv.outer_folds=3", "progress=false", "tracking=none", "explain=false",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    new = full.iloc[100:]
    new.to_excel(tmp_path / "new.xlsx", index=False)
    table, metrics = predict(str(tmp_path / "run"), tmp_path / "new.xlsx", tmp_path / "p.csv")
    assert len(table) == 59 and table["y_pred"].notna().all() and metrics is not None
    bad = new.copy()
    bad.iloc[0, 0] = "Mo2Xe\u00af"
    bad.to_excel(tmp_path / "bad.xlsx", index=False)
    with pytest.raises(
        DataError, match=r"bad.xlsx: row 2 \(cluster Mo2Xe\u00af\): element\(s\) Xe"
    ):
        predict(str(tmp_path / "run"), tmp_path / "bad.xlsx", tmp_path / "b.csv")
    # below a blank row, written with U+02C9: the row the sheet shows and the name as written
    # (it said row 2 and Mo2Xe¯, the row counted without the blank one, the name normalised)
    blank = pd.DataFrame([[np.nan] * new.shape[1]], columns=new.columns)
    gap = pd.concat([blank, bad.iloc[:1], new.iloc[1:]], ignore_index=True)
    gap.iloc[1, 0] = "Mo2Xe\u02c9"
    gap.to_excel(tmp_path / "gap.xlsx", index=False)
    with pytest.raises(DataError, match=r"gap.xlsx: row 3 \(cluster Mo2Xe\u02c9\): element"):
        predict(str(tmp_path / "run"), tmp_path / "gap.xlsx", tmp_path / "g.csv")
