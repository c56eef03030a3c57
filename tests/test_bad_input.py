"""Bad input, end to end: each case runs the real `python -m train` / `python -m predict` in a
subprocess and must end in exactly one `n2react: error:` line naming the file/row/key, a non-zero
exit, no traceback, and no MLflow run left in the store."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bad_input_helpers import FILE24, QUICK, assert_one_error, cli, mlflow_runs
from conftest import compose_data

# --------------------------------------------------------------------------- bad data files


def _table(src: Path) -> pd.DataFrame:
    return pd.read_excel(src / FILE24)


def dup_header(tmp: Path, src: Path) -> Path:
    df = _table(src)
    cols = list(df.columns)
    cols[4] = cols[3]  # two '3_α' columns: pandas would silently rename one '3_α.1'
    df.columns = cols
    df.to_excel(tmp / "dup.xlsx", index=False)
    return tmp / "dup.xlsx"


def no_target(tmp: Path, src: Path) -> Path:
    _table(src).rename(columns={"lg(k1)": "rate"}).to_excel(tmp / "rate.xlsx", index=False)
    return tmp / "rate.xlsx"


def one_column_text(tmp: Path, src: Path) -> Path:
    p = tmp / "colon.csv"
    _table(src).to_csv(p, sep=":", index=False)
    return p


def garbage_xlsx(tmp: Path, src: Path) -> Path:
    p = tmp / "garbage.xlsx"
    p.write_bytes(np.random.default_rng(0).bytes(20 * 1024 * 1024))
    return p


def unknown_type(tmp: Path, src: Path) -> Path:
    p = tmp / "data.json"
    _table(src).to_json(p)
    return p


def blank_descriptors(tmp: Path, src: Path) -> Path:
    df = _table(src)
    df.iloc[:, 2:] = np.nan
    df.to_excel(tmp / "blank.xlsx", index=False)
    return tmp / "blank.xlsx"


def constant_target(tmp: Path, src: Path) -> Path:
    df = _table(src)
    df["lg(k1)"] = -12.0
    df.to_excel(tmp / "flat.xlsx", index=False)
    return tmp / "flat.xlsx"


def constant_descriptors(tmp: Path, src: Path) -> Path:
    df = _table(src)
    df.iloc[:, 2:] = 1.0
    df.to_excel(tmp / "same.xlsx", index=False)
    return tmp / "same.xlsx"


def header_only(tmp: Path, src: Path) -> Path:
    _table(src).iloc[:0].to_excel(tmp / "empty.xlsx", index=False)
    return tmp / "empty.xlsx"


def non_numeric_cell(tmp: Path, src: Path) -> Path:
    df = _table(src).astype({"2_Q": object})
    df.loc[9, "2_Q"] = "0.3.1"  # (pandas reads "n/a" as a blank: imputed, not an error)
    df.to_excel(tmp / "text.xlsx", index=False)
    return tmp / "text.xlsx"


def values_under_no_header(tmp: Path, src: Path) -> Path:
    import openpyxl

    p = tmp / "scratch.xlsx"
    _table(src).to_excel(p, index=False)
    book = openpyxl.load_workbook(p)
    for row in range(2, 40):  # a scratch column right of the data, with no header
        book.active.cell(row, 27).value = row / 2
    book.save(p)
    return p


def five_rows(tmp: Path, src: Path) -> Path:
    _table(src).iloc[:5].to_excel(tmp / "five.xlsx", index=False)
    return tmp / "five.xlsx"


DATA_CASES: dict[str, tuple[Callable[[Path, Path], Path], tuple[str, ...]]] = {
    "duplicate header": (dup_header, ("dup.xlsx", "duplicate column header '3_\u03b1'")),
    "no target column": (no_target, ("rate.xlsx", "no column looks like lg(k1)", "target_column")),
    "one-column text": (one_column_text, ("colon.csv", "only 1 column(s)", "comma")),
    "garbage xlsx": (garbage_xlsx, ("garbage.xlsx: not a readable .xlsx spreadsheet",)),
    "unknown extension": (unknown_type, ("data.json: unknown file type '.json'",)),
    "all-blank descriptors": (blank_descriptors, ("blank.xlsx", "no numeric value", "3_VDE/VIE")),
    "constant target": (constant_target, ("flat.xlsx", "lg(k1) is constant")),
    "constant descriptors": (constant_descriptors, ("same.xlsx", "every descriptor is constant")),
    # it said "the sheet is empty" of a sheet with its headers (predict named it so)
    "header only": (header_only, ("empty.xlsx", "no cluster rows below the header row")),
    "non-numeric cell": (non_numeric_cell, ("text.xlsx", "'0.3.1'", "'2_Q'", "row 11")),
    # it was read as a descriptor 'Unnamed: 26', its blank rows imputed
    "values under no header": (values_under_no_header, ("scratch.xlsx", "column 27 (AA)")),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_file(case: str, tmp_path: Path, shared_data: Path) -> None:
    make, expected = DATA_CASES[case]
    path = make(tmp_path, shared_data)
    out = cli(tmp_path, "train", f"data.path={path}", *QUICK)
    assert_one_error(out, *expected)
    assert len(out.stderr.splitlines()) < 20  # no per-cell warning flood before the error
    assert mlflow_runs(tmp_path / "mlflow.db") == []


def test_semicolon_csv_with_decimal_commas_loads_like_the_spreadsheet(shared_data: Path) -> None:

    from n2react.data import load_dataset

    tmp = Path(os.environ["N2_CACHE_DIR"]).parent
    df = _table(shared_data)
    df.to_csv(tmp / "semi.csv", sep=";", decimal=",", index=False)
    df.to_csv(tmp / "tab.tsv", sep="\t", index=False)
    cfg = compose_data("homonuclear_24")
    ref = load_dataset(cfg)
    for name in ("semi.csv", "tab.tsv"):
        cfg["path"] = str(tmp / name)
        ds = load_dataset(cfg)
        assert list(ds.clusters) == list(ref.clusters)
        np.testing.assert_allclose(ds.X.to_numpy(), ref.X.to_numpy(), equal_nan=True)
        np.testing.assert_allclose(ds.y, ref.y)


def test_blank_columns_are_not_descriptors(tmp_path: Path, shared_data: Path) -> None:
    """A trailing comma on every line of a CSV (an empty last column) was refused ("descriptor
    column(s) with no numeric value: Unnamed: 26"); an empty column between the data and a
    blank A1 above the names are no problem either."""
    import openpyxl

    from n2react.data import load_dataset

    df = _table(shared_data)
    text = "\n".join(line + "," for line in df.to_csv(index=False).splitlines())
    (tmp_path / "trailing.csv").write_text(text + "\n", encoding="utf-8")
    df.insert(10, "", np.nan)  # an empty column in the middle
    df.to_excel(tmp_path / "gap.xlsx", index=False)
    book = openpyxl.load_workbook(tmp_path / "gap.xlsx")
    book.active.cell(1, 1).value = None  # no header over the names
    book.save(tmp_path / "gap.xlsx")
    cfg = compose_data("homonuclear_24")
    ref = load_dataset(cfg)
    for name in ("trailing.csv", "gap.xlsx"):
        cfg["path"] = str(tmp_path / name)
        ds = load_dataset(cfg)
        assert ds.feature_names == ref.feature_names and list(ds.clusters) == list(ref.clusters)
        np.testing.assert_allclose(ds.X.to_numpy(), ref.X.to_numpy(), equal_nan=True)


def test_target_found_by_name_and_named_in_the_first_lines(
    tmp_path: Path, shared_data: Path
) -> None:
    df = _table(shared_data)
    cols = ["Clusters", *df.columns[2:6], "lg(k1)"]  # the target is no longer column 2
    df[cols].rename(columns={"lg(k1)": "Expt. lg(k1)"}).to_excel(tmp_path / "m.xlsx", index=False)
    out = cli(tmp_path, "train", f"data.path={tmp_path / 'm.xlsx'}", *QUICK, "tracking=none")
    assert out.returncode == 0, out.stderr[-2000:]
    first = out.stderr.splitlines()[:3]  # the log goes to stderr
    assert any("target: Expt. lg(k1) (column 6 of" in ln for ln in first), first


def test_five_rows_three_folds(tmp_path: Path, shared_data: Path) -> None:
    path = five_rows(tmp_path, shared_data)
    out = cli(tmp_path, "train", f"data.path={path}", *QUICK)
    assert_one_error(out, "five.xlsx")
    assert mlflow_runs(tmp_path / "mlflow.db") == []


# --------------------------------------------------------------------------- predict


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """A ridge model trained on the 24-descriptor file (no MLflow)."""
    tmp = tmp_path_factory.mktemp("model")
    out = cli(tmp, "train", "model=ridge", "cv.outer_folds=3", "progress=false", "tracking=none",
              "explain=false")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return tmp / "run"


@pytest.fixture
def sheet(tmp_path: Path, shared_data: Path) -> Path:
    p = tmp_path / "new.xlsx"
    shutil.copy(shared_data / FILE24, p)
    return p


def test_predict_never_overwrites_its_input(run_dir: Path, sheet: Path, tmp_path: Path) -> None:
    before = sheet.read_bytes()
    out = cli(tmp_path, "predict", str(run_dir), str(sheet), "-o", str(sheet), "--force")
    assert_one_error(out, "new.xlsx", "the output is the input spreadsheet")
    assert sheet.read_bytes() == before


def test_predict_refuses_an_existing_output_unless_forced(
    run_dir: Path, sheet: Path, tmp_path: Path
) -> None:
    target = tmp_path / "pred.csv"
    target.write_text("mine\n")
    out = cli(tmp_path, "predict", str(run_dir), str(sheet), "-o", str(target))
    assert_one_error(out, "pred.csv: the output exists", "--force")
    assert target.read_text() == "mine\n"
    out = cli(tmp_path, "predict", str(run_dir), str(sheet), "-o", str(target), "--force")
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(pd.read_csv(target)) == 159
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_predict_refuses_an_output_that_is_no_csv_name(
    run_dir: Path, sheet: Path, tmp_path: Path
) -> None:
    """-o out.xlsx wrote CSV text under a name Excel then refused to open."""
    for name in ("out.xlsx", "out.XLS", "out"):
        out = cli(tmp_path, "predict", str(run_dir), str(sheet), "-o", str(tmp_path / name))
        assert_one_error(out, f"{name}: predict writes a CSV table", "name the output .csv")
        assert not (tmp_path / name).exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_predict_into_a_read_only_folder(run_dir: Path, sheet: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        out = cli(tmp_path, "predict", str(run_dir), str(sheet), "-o", str(folder / "p.csv"))
    finally:
        folder.chmod(0o755)
    assert_one_error(out, "p.csv:", "afile is a file, not a folder")  # said before predicting


def test_predict_into_a_folder_that_cannot_exist(
    run_dir: Path, sheet: Path, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("x")
    out = cli(tmp_path, "predict", str(run_dir), str(sheet), "-o", str(tmp_path / "afile/p.csv"))
    assert_one_error(out, "p.csv:", "afile is a file, not a folder")  # said before predicting


def test_predict_on_an_empty_sheet(run_dir: Path, tmp_path: Path) -> None:
    pd.DataFrame().to_excel(tmp_path / "blank.xlsx", index=False)
    out = cli(tmp_path, "predict", str(run_dir), str(tmp_path / "blank.xlsx"))
    assert_one_error(out, "blank.xlsx", "the sheet is empty")


def test_predict_checks_the_recorded_model_hash(run_dir: Path, sheet: Path, tmp_path: Path) -> None:
    from n2react.runstore import file_sha256

    recorded = (run_dir / "model.skops.sha256").read_text().strip()
    assert recorded == file_sha256(run_dir / "model.skops")  # written by the run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "model.skops.sha256").write_text("0" * 64 + "\n")
    out = cli(tmp_path, "predict", str(copy), str(sheet), "-o", str(tmp_path / "p.csv"))
    assert_one_error(out, "model.skops: sha256", "recorded by the run")
    assert not (tmp_path / "p.csv").exists()
    # --force only ever means "replace the output": it does not skip the check
    out = cli(tmp_path, "predict", str(copy), str(sheet), "-o", str(tmp_path / "p.csv"), "--force")
    assert_one_error(out, "model.skops: sha256")
    (copy / "model.skops.sha256").unlink()  # a missing hash is an error, not a pass
    out = cli(tmp_path, "predict", str(copy), str(sheet), "-o", str(tmp_path / "p.csv"))
    assert_one_error(out, "model.skops: no sha256 recorded")
    assert not (tmp_path / "p.csv").exists()
