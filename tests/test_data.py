"""The loader handles the real files' quirks and rejects bad input with one clear message."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import compose_data

from n2react.data import load_dataset
from n2react.data.files import locate
from n2react.data.tables import (
    forget_warnings,
    looks_like_target,
    normalize_name,
    table_to_dataset,
)
from n2react.errors import DataError

CONF = Path(__file__).resolve().parents[1] / "conf" / "data"


def data_cfg(name: str, **over: object):
    cfg = compose_data(name)
    for k, v in over.items():
        cfg[k] = v
    return cfg


def test_24_feature_file_sentinel_is_missing_and_named(caplog: pytest.LogCaptureFixture) -> None:
    forget_warnings()
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(data_cfg("homonuclear_24"))
    assert ds.X.shape == (159, 24) and ds.y.shape == (159,)
    assert ds.missing == [("Rh3\u00af", "3_EHOMO/NL")]
    row = int(np.flatnonzero(ds.clusters == "Rh3\u00af")[0])
    assert np.isnan(ds.X.loc[row, "3_EHOMO/NL"])
    assert (ds.X.fillna(0) != -999).all().all()
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1  # one summary line, not one per cell
    assert "1 missing cell (3_EHOMO/NL: Rh3\u00af row 157)" in warned[0].getMessage()


def test_anion_glyphs_are_unified_across_files() -> None:
    a = load_dataset(data_cfg("homonuclear_24"))
    b = load_dataset(data_cfg("homonuclear_8"))
    assert normalize_name("Mo2S1\u02c9") == normalize_name("Mo2S1\u00af")
    # five Fe-C names carry a stray digit in one file or the other (Fe3C41 vs Fe3C4, ...):
    # after loading, every name agrees
    assert list(a.clusters) == list(b.clusters)
    assert "Fe3C4\u00af" in a.clusters and "Fe4C3\u00af" in b.clusters
    np.testing.assert_allclose(a.y, b.y, atol=1e-7)


def test_authors_folds_partition_the_159_clusters() -> None:
    ds = load_dataset(data_cfg("authors_folds"))
    assert ds.n_rows == 159 and len(ds.folds) == 10
    tests = np.concatenate([te for _, te in ds.folds])
    assert sorted(tests) == list(range(159))
    for tr, te in ds.folds:
        assert not set(tr) & set(te)
        assert len(tr) + len(te) == 159
    assert "2_\u03c3ave" in ds.feature_names and "3_\u03c7ave" in ds.feature_names


def test_the_fold_files_are_read_in_one_log_line(
    tmp_path: Path, shared_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """data=authors_folds logged "reading sheet 'Train' (2 sheets: Train, Test)" and the same
    for Test, for each of the ten files: 20 lines before a run said anything else. The sheets
    are named by the config; one line says what was read. A user's workbook still names its
    sheet."""
    with caplog.at_level("INFO", logger="n2react.data"):
        load_dataset(data_cfg("authors_folds"))
        said = [r.getMessage() for r in caplog.records]
        assert not [m for m in said if "reading sheet" in m], said
        assert len([m for m in said if "from the 10 fold files" in m]) == 1
        caplog.clear()
        mine = tmp_path / "mine.xlsx"  # a user's workbook of two sheets (not the published one)
        with pd.ExcelWriter(mine) as xl:
            for sheet in ("Sheet1", "Sheet2"):
                table = pd.read_excel(shared_data / "homonuclear-159-24features.xlsx")
                table.to_excel(xl, sheet_name=sheet, index=False)
        load_dataset(data_cfg("homonuclear_24", path=str(mine)))  # two sheets, the first read
    assert any("reading sheet 'Sheet1' (2 sheets" in r.getMessage() for r in caplog.records)


def _write(tmp_path: Path, df: pd.DataFrame, name: str = "bad.xlsx") -> Path:
    p = tmp_path / name
    df.to_excel(p, index=False)
    return p


def _good() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(12, 3)), columns=["f1", "f2", "f3"])
    df.insert(0, "lg(k1)", rng.normal(-12, 1, 12))
    df.insert(0, "Clusters", [f"M{i}" for i in range(12)])
    return df


def test_missing_target_column_is_named(tmp_path: Path) -> None:
    p = _write(tmp_path, _good())
    cfg = data_cfg("homonuclear_24", path=str(p), target_column="lg(k2)")
    with pytest.raises(DataError, match=r"bad.xlsx: target column 'lg\(k2\)' not found"):
        load_dataset(cfg)


def test_non_numeric_cell_names_file_row_and_column(tmp_path: Path) -> None:
    df = _good().astype({"f2": object})
    df.loc[4, "f2"] = "n/a?"
    p = _write(tmp_path, df)
    with pytest.raises(
        DataError, match=r"bad.xlsx: non-numeric value 'n/a\?' in column 'f2', row 6"
    ):
        load_dataset(data_cfg("homonuclear_24", path=str(p)))


def test_rows_below_a_blank_row_keep_their_spreadsheet_numbers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    df = _good().astype({"f2": object})
    df.loc[4, "f1"] = np.nan
    df.loc[6, "f2"] = "n/a?"
    blank = pd.DataFrame([[None] * df.shape[1]], columns=df.columns)
    df = pd.concat([df.iloc[:2], blank, df.iloc[2:]], ignore_index=True)  # row 4 left blank
    p = _write(tmp_path, df)
    with pytest.raises(DataError, match=r"'n/a\?' in column 'f2', row 9 \(cluster M6\)"):
        load_dataset(data_cfg("homonuclear_24", path=str(p)))
    df.loc[7, "f2"] = 0.5
    p = tmp_path / "blank_line.csv"
    lines = df.to_csv(index=False).splitlines()
    p.write_text("\n".join(lines[:3] + [""] + lines[4:]) + "\n")  # a truly empty line
    forget_warnings()
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(data_cfg("homonuclear_24", path=str(p)))
    assert ds.n_rows == 12
    assert "(f1: M4 row 7)" in caplog.text


def test_empty_sheet(tmp_path: Path) -> None:
    p = _write(tmp_path, pd.DataFrame({"Clusters": [], "lg(k1)": [], "f": []}))
    with pytest.raises(DataError, match="no cluster rows below the header row"):
        load_dataset(data_cfg("homonuclear_24", path=str(p)))


def test_duplicate_cluster_names_give_both_rows(tmp_path: Path) -> None:
    df = _good()
    df.loc[7, "Clusters"] = "M2"
    p = _write(tmp_path, df)
    with pytest.raises(DataError, match="duplicate cluster name 'M2' in rows 4 and 9"):
        load_dataset(data_cfg("homonuclear_24", path=str(p)))


def test_missing_target_value(tmp_path: Path) -> None:
    df = _good()
    df.loc[3, "lg(k1)"] = np.nan
    p = _write(tmp_path, df)
    with pytest.raises(DataError, match=r"missing lg\(k1\) in row 5 \(cluster M3\)"):
        load_dataset(data_cfg("homonuclear_24", path=str(p)))


def test_not_a_spreadsheet(tmp_path: Path) -> None:
    p = tmp_path / "garbage.xlsx"
    p.write_bytes(b"this is not a zip file")
    with pytest.raises(DataError, match="garbage.xlsx: (cannot read|not a readable)"):
        load_dataset(data_cfg("homonuclear_24", path=str(p)))


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data.path: .*nowhere.xlsx does not exist"):
        load_dataset(data_cfg("homonuclear_24", path=str(tmp_path / "nowhere.xlsx")))


def test_not_found_offline_says_how_to_point_at_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("N2_DATA_DIR")
    with pytest.raises(DataError, match="data.path=/path/to/x.xlsx or N2_DATA_DIR="):
        locate("x.xlsx", url="http://127.0.0.1:9/x.xlsx", sha256="0" * 64)


def test_a_failed_fetch_is_one_short_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Fetching the data printed pooch's own "Downloading data from ..." line before the error,
    and a refused connection ended in requests' text cut mid-word ("...port=9): Fa"). Now a
    failure is the one error line with a short reason, and a fetch (from a real local HTTP
    server) is checked against the pinned sha256."""
    import hashlib
    import http.server
    import threading
    from functools import partial

    monkeypatch.delenv("N2_DATA_DIR")
    with pytest.raises(DataError, match=r"failed \(the server refused the connection\); point"):
        locate("x.xlsx", url="http://127.0.0.1:9/x.xlsx", sha256="0" * 64)
    served = tmp_path / "served"
    served.mkdir()
    body = b"the published file"
    (served / "x.xlsx").write_bytes(body)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/x.xlsx"
    try:
        with pytest.raises(
            DataError, match=r"\(the downloaded file differs from the pinned sha256"
        ):
            locate("x.xlsx", url=url, sha256="0" * 64)
        assert not (tmp_path / "cache" / "x.xlsx").exists()  # nothing half-trusted is kept
        got = locate("x.xlsx", url=url, sha256=hashlib.sha256(body).hexdigest())
    finally:
        server.shutdown()
        server.server_close()
    assert got.read_bytes() == body and got.parent == tmp_path / "cache"
    assert "Downloading" not in capfd.readouterr().err


def test_data_dir_env_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _write(tmp_path, _good(), "mine.xlsx")
    monkeypatch.setenv("N2_DATA_DIR", str(tmp_path))
    assert locate("mine.xlsx") == p


def test_blank_feature_cells_become_missing() -> None:
    df = _good()
    df.loc[2, "f1"] = np.nan
    ds = table_to_dataset(df, name="t", source="t.xlsx")
    assert ds.missing == [("M2", "f1")] and np.isnan(ds.X.loc[2, "f1"])


def test_data_warnings_are_given_once_per_process(caplog: pytest.LogCaptureFixture) -> None:
    forget_warnings()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):  # a sweep loads the file once per job
            load_dataset(data_cfg("homonuclear_24"))
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


@pytest.mark.parametrize(
    ("header", "is_target"),
    [
        ("lg(k1)", True),
        ("Expt. lg(k1)", True),
        ("LGK1", True),
        ("log k1", True),
        ("log10(k1)", True),
        ("lg(k2)", False),
        ("lg(k10)", False),
        ("3_VDE/VIE", False),
        ("blog k1x", False),
    ],
)
def test_target_header_look_alikes(header: str, is_target: bool) -> None:
    assert looks_like_target(header) is is_target


def test_target_is_found_by_name_not_position(tmp_path: Path) -> None:
    df = _good()[["Clusters", "f1", "f2", "lg(k1)", "f3"]].rename(columns={"lg(k1)": "Expt. lgk1"})
    ds = load_dataset(data_cfg("homonuclear_24", path=str(_write(tmp_path, df))))
    assert ds.target_name == "Expt. lgk1" and ds.feature_names == ["f1", "f2", "f3"]
    df = df.rename(columns={"Expt. lgk1": "rate"})
    with pytest.raises(DataError, match=r"no column looks like lg\(k1\).*data.target_column="):
        load_dataset(data_cfg("homonuclear_24", path=str(_write(tmp_path, df))))


def test_a_users_file_names_the_run_not_the_option_it_came_through(
    tmp_path: Path, shared_data: Path
) -> None:
    # data.path=my_clusters.xlsx was titled and tagged 'homonuclear_24' (the option's name)
    import shutil

    from n2react.data import data_name

    own = shutil.copy(shared_data / "homonuclear-159-24features.xlsx", tmp_path / "mine.xlsx")
    assert load_dataset(data_cfg("homonuclear_24", path=str(own))).name == "mine"
    # the option's own file, given by path or found in a folder, keeps the option's name
    same = shutil.copy(own, tmp_path / "homonuclear-159-24features.xlsx")
    assert data_name(data_cfg("homonuclear_24", path=str(same))) == "homonuclear_24"
    assert data_name(data_cfg("homonuclear_24", path=str(tmp_path))) == "homonuclear_24"
    assert data_name(data_cfg("homonuclear_15")) == "homonuclear_15"


def test_each_data_kind_is_declared_once() -> None:
    # data.kind was compared by name in four places (loading, the run's name, the cv.groups
    # check, a sweep chart's title); each kind is declared once in n2react.data.SOURCES
    from n2react.data import SOURCES, data_name, has_fixed_folds

    for path in sorted(CONF.glob("*.yaml")):
        cfg = data_cfg(path.stem)
        assert str(cfg["kind"]) in SOURCES, path.name
        assert has_fixed_folds(cfg) == (path.stem == "authors_folds"), path.name
    # data.path does not rename a run on the fold files; an unknown kind is refused by name
    assert data_name(data_cfg("authors_folds", path="/elsewhere/mine.xlsx")) == "authors_folds"
    assert not has_fixed_folds(data_cfg("homonuclear_24", kind="sheet"))
    with pytest.raises(
        DataError, match=r"^data.kind: unknown kind 'sheet' \(expected table or folds\)$"
    ):
        load_dataset(data_cfg("homonuclear_24", kind="sheet"))
