"""The ``data`` keys a chemist sets on the command line for a sheet of their own (``data.path``,
``data.feature_columns``, ``data.sentinels``, ``data.sheet``): each composed with Hydra as
typed there, a wrong one refused in one line naming the key, not a traceback nor a silent
misreading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from n2react.compose import compose_config
from n2react.data import load_dataset
from n2react.errors import DataError

FILE24 = "homonuclear-159-24features.xlsx"


def data(*overrides: str) -> dict[str, Any]:
    """The ``data`` node as ``python -m train <overrides>`` composes and resolves it."""
    cfg = compose_config(list(overrides))
    return dict(OmegaConf.to_container(cfg.data, resolve=True))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        # the target as a descriptor ran, and scored test r 1.000: lg(k1) learned from itself
        ("data.feature_columns=['lg(k1)','3_α']", ("'lg(k1)', the target column",)),
        ("data.feature_columns=[Clusters,'3_α']", ("'Clusters', the cluster name column",)),
        # a bare name was read letter by letter: "not found: 3, _, α"
        ("data.feature_columns='3_α'", ("data.feature_columns='3_α'", "a list of column names")),
        # a name twice ran with the column twice
        ("data.feature_columns=['3_α','3_α']", ("data.feature_columns: 3_α listed twice",)),
        ("data.feature_columns=[]", ("data.feature_columns=[]",)),
        ("data.formula=true data.formula_columns=0_n_metal", ("data.formula_columns='0_n_metal'",)),
        # a text: its letters were the sentinels, and -999 went in as a value
        ("data.sentinels=abc", ("data.sentinels='abc'", "list of numbers")),
        ("data.sentinels=[-999,none]", ("data.sentinels: 'none' is not a number",)),
        # true was read as sheet 1 (the second)
        ("data.sheet=true", ("data.sheet=True", "sheet name or its position")),
        ("data.target_column=0", ("'Clusters' is both the cluster name and the target",)),
    ],
)
def test_a_wrong_data_key_is_one_line_naming_it(override: str, expected: tuple[str, ...]) -> None:
    with pytest.raises(DataError) as err:
        load_dataset(data(*override.split()))
    for text in expected:
        assert text in str(err.value), str(err.value)


def test_one_sentinel_may_be_written_without_brackets() -> None:
    # data.sentinels=-999 was a traceback ('int' object is not iterable)
    ds = load_dataset(data("data.sentinels=-999"))
    assert ds.missing == [("Rh3\u00af", "3_EHOMO/NL")]


def test_a_path_that_reads_as_a_number_is_a_file_name(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # data.path=5 (Hydra reads it as an int) was a traceback in Path(); it is the folder "5"
    folder = tmp_path / "5"
    folder.mkdir()
    (folder / FILE24).write_bytes((shared_data / FILE24).read_bytes())
    monkeypatch.chdir(tmp_path)
    ds = load_dataset(data("data.path=5"))
    assert ds.n_rows == 159 and np.isfinite(ds.y).all()


def test_a_notes_sheet_first_names_the_sheet_read_and_the_others(
    tmp_path: Path, shared_data: Path
) -> None:
    # it said only "the sheet is empty", though the first log line named the sheet at INFO
    import pandas as pd

    table = pd.read_excel(shared_data / FILE24)
    path = tmp_path / "mine.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"note": ["DFT: B3LYP"]}).to_excel(writer, sheet_name="Notes", index=False)
        table.to_excel(writer, sheet_name="Data", index=False)
    with pytest.raises(DataError) as err:
        load_dataset(data(f"data.path={path}"))
    assert str(err.value).endswith(
        "(read sheet 'Notes'; the file also has 'Data'; choose one with data.sheet=NAME)"
    ), str(err.value)
    # it called the notes sheet "empty"; it says what predict says of it
    one = "mine.xlsx: the sheet has one column ('note'), not a cluster name and descriptors ("
    assert one in str(err.value), str(err.value)
    assert load_dataset(data(f"data.path={path}", "data.sheet=Data")).n_rows == 159


@pytest.mark.parametrize(
    ("frame", "said"),
    [
        # both were "the sheet is empty (need a name, a target and descriptor columns)"
        (
            {"Clusters": ["Rh3", "Co3", "Ni3"], "lg(k1)": [1.0, 2.0, 3.0]},
            "the sheet has 2 columns ('Clusters', 'lg(k1)'): "
            "need a name, a target and descriptor columns",
        ),
        ({"Clusters": [], "lg(k1)": [], "3_α": []}, "no cluster rows below the header row"),
    ],
)
def test_a_sheet_too_small_for_training_says_what_it_holds(
    tmp_path: Path, frame: dict[str, list[Any]], said: str
) -> None:
    import pandas as pd

    path = tmp_path / "small.xlsx"
    pd.DataFrame(frame).to_excel(path, index=False)
    with pytest.raises(DataError) as err:
        load_dataset(data(f"data.path={path}"))
    assert str(err.value) == f"{path}: {said}"


# --------------------------------------------------------------------------- finding the file

OFFLINE = "http://127.0.0.1:9/x.xlsx"  # refused at once: the fetch fails without a network


def test_n2_data_dir_that_is_no_folder_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the line said "N2_DATA_DIR=/nowhere", not that the folder does not exist
    from n2react.data.files import locate

    monkeypatch.setenv("N2_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"N2_DATA_DIR=\S+nowhere: no such folder\)"):
        locate("x.xlsx", url=OFFLINE)
    monkeypatch.setenv("N2_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"N2_DATA_DIR=\S+: no x.xlsx there\)"):
        locate("x.xlsx", url=OFFLINE)


def test_a_cached_copy_that_differs_from_the_pinned_hash_is_never_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # it was fetched again silently; offline the line said only "no network"
    from n2react.data.files import locate

    monkeypatch.delenv("N2_DATA_DIR")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "x.xlsx").write_bytes(b"an older copy")
    with pytest.raises(DataError, match="refused the connection; the cached copy differs from it"):
        locate("x.xlsx", url=OFFLINE, sha256="0" * 64)


def test_a_local_file_that_differs_from_the_pinned_hash_is_used_with_a_warning(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    # the README's promise for $N2_DATA_DIR: the user's own copy is used, and said to differ
    import logging

    from n2react.data.files import locate

    (tmp_path / FILE24).write_bytes((shared_data / "homonuclear-159-8features.xlsx").read_bytes())
    monkeypatch.setenv("N2_DATA_DIR", str(tmp_path))
    pinned = data()["sha256"]
    with caplog.at_level(logging.WARNING, logger="n2react.data.files"):
        assert locate(FILE24, sha256=pinned) == tmp_path / FILE24
    assert "differs from the published file (sha256 mismatch)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="n2react.data.files"):
        assert locate(FILE24, path=shared_data, sha256=pinned) == shared_data / FILE24
    assert caplog.text == ""


def test_a_data_path_folder_without_the_file_says_what_it_looked_for(tmp_path: Path) -> None:
    # it said "data.path: <folder>/homonuclear-159-24features.xlsx does not exist"
    with pytest.raises(DataError) as err:
        load_dataset(data(f"data.path={tmp_path}"))
    assert str(err.value).startswith(f"data.path: folder {tmp_path} holds no {FILE24}")
    assert f"data.path={tmp_path / 'your_file.xlsx'}" in str(err.value)


# --------------------------------------------------------------------------- a descriptor short

FILE15 = "homonuclear-159-15features.xlsx"


def _without_qmin(tmp_path: Path, shared_data: Path) -> Path:
    """The 15-descriptor sheet with its 1_Qmin column deleted, as a user's own file."""
    import pandas as pd

    path = tmp_path / "mine.xlsx"
    pd.read_excel(shared_data / FILE15).drop(columns=["1_Qmin"]).to_excel(path, index=False)
    return path


def test_a_sheet_lacking_a_listed_descriptor_names_it_and_the_close_headers(
    tmp_path: Path, shared_data: Path
) -> None:
    # it named the column only; a renamed or retyped header is found among the close ones
    path = _without_qmin(tmp_path, shared_data)
    listed = "data.feature_columns=['1_Qmin','2_Q','3_EA']"
    with pytest.raises(DataError) as err:
        load_dataset(data("data=homonuclear_15", f"data.path={path}", listed))
    assert str(err.value) == (
        f"{path}: descriptor column(s) not found: 1_Qmin "
        "(close headers in the sheet: 1_\u0394Qmin, 1_\u0394Qmax)"
    )


def test_the_descriptors_used_are_named_when_the_data_config_lists_none(
    tmp_path: Path, shared_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a sheet lacking one of data=homonuclear_15's descriptors ran on 14 without a word
    import logging

    from n2react.plan import build_plan
    from n2react.run_setup import log_dataset

    path = _without_qmin(tmp_path, shared_data)
    plan = build_plan(compose_config(["data=homonuclear_15", f"data.path={path}", "tracking=none"]))
    with caplog.at_level(logging.INFO, logger="n2react.run"):
        log_dataset(plan, load_dataset(plan.data))
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("descriptors"))
    assert line.endswith(
        ": 3_VDE/VIE, 1_\u0394Qmax, 1_\u0394Qmin, 2_Q, 2_\u03c3ave, "
        "2_nsave, 2_\u0394nsave, 2_ndave, 3_\u0394EHOMO, 3_\u0394EHOMO/NL, 3_EA, "
        "3_IE, 3_\u03c7ave, 3_IEave"
    ), line
    caplog.clear()
    listed = "data.feature_columns=['2_Q','3_EA']"  # listed: checked, not announced again
    plan = build_plan(compose_config(["data=homonuclear_15", listed, "tracking=none"]))
    with caplog.at_level(logging.INFO, logger="n2react.run"):
        log_dataset(plan, load_dataset(plan.data))
    assert [r.getMessage() for r in caplog.records if "descriptors (" in r.getMessage()] == []


@pytest.mark.parametrize("name", ["homonuclear_15", "homonuclear_24"])
def test_the_published_sheets_descriptors_are_not_listed_again(
    name: str, shared_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # every run on the default data printed "descriptors (every column of the sheet ...): " and
    # all 15 (24) names: the published file's own, known descriptors, which the line announced
    # as if they were news; it is printed for a sheet that is not that file (above) only
    import logging

    from n2react.plan import build_plan
    from n2react.run_setup import log_dataset

    plan = build_plan(compose_config([f"data={name}", "tracking=none"]))
    with caplog.at_level(logging.INFO, logger="n2react.run"):
        log_dataset(plan, load_dataset(plan.data))
    lines = [r.getMessage() for r in caplog.records]
    assert any(f"{name}: 159 clusters x " in m for m in lines), lines
    assert [m for m in lines if m.startswith("descriptors (")] == []


@pytest.mark.parametrize("name", ["homonuclear_15", "homonuclear_24"])
def test_the_published_sheet_and_target_are_not_announced(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    # every run on the default data began with "<file>: reading sheet 'Sheet1' (2 sheets:
    # Sheet1, Sheet2)" and "target: lg(k1) (column 2 of <file>)": the published file's own
    # sheet and column, read as always; the lines are kept for a sheet of the user's (below)
    import logging

    with caplog.at_level(logging.INFO, logger="n2react.data"):
        ds = load_dataset(data(f"data={name}"))
    said = [r.getMessage() for r in caplog.records]
    assert ds.n_rows == 159 and ds.target_name == "lg(k1)"
    assert [m for m in said if "reading sheet" in m or m.startswith("target: ")] == [], said


@pytest.mark.parametrize("how", ["renamed target", "second sheet chosen"])
def test_a_users_sheet_still_names_its_sheet_and_target(
    how: str, tmp_path: Path, shared_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a user's copy (its target renamed, or its sheet chosen by name): which sheet and which
    # column were taken is news there
    import logging

    import pandas as pd

    df = pd.read_excel(shared_data / FILE24)
    path, sheet = tmp_path / "mine.xlsx", "runs"
    target = "Expt. lg(k1)" if how == "renamed target" else "lg(k1)"
    with pd.ExcelWriter(path) as xl:
        pd.DataFrame({"note": ["my clusters"]}).to_excel(xl, sheet_name="notes", index=False)
        df.rename(columns={"lg(k1)": target}).to_excel(xl, sheet_name=sheet, index=False)
    chosen = [f"data.sheet={sheet}"] if how == "second sheet chosen" else ["data.sheet=1"]
    with caplog.at_level(logging.INFO, logger="n2react.data"):
        ds = load_dataset(data("data=homonuclear_24", f"data.path={path}", *chosen))
    said = [r.getMessage() for r in caplog.records]
    assert ds.n_rows == 159 and ds.target_name == target
    assert f"{path}: reading sheet '{sheet}' (2 sheets: notes, {sheet})" in said, said
    assert f"target: {target} (column 2 of {path})" in said, said
