"""Bad input, end to end: each case runs the real `python -m train` / `python -m predict` in a
subprocess and must end in exactly one `n2react: error:` line naming the file/row/key, a non-zero
exit, no traceback, and no MLflow run left in the store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import compose_data, data_dir

ROOT = Path(__file__).resolve().parents[1]
FILE24 = "homonuclear-159-24features.xlsx"
QUICK = ("model=ridge", "cv.outer_folds=3", "final_model=false", "progress=false")


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    data = os.environ.get("N2_DATA_DIR") or str(data_dir())
    return {**os.environ, "PYTHONPATH": path, "HYDRA_FULL_ERROR": "0", "N2_DATA_DIR": data}


def cli(tmp: Path, module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    extra = [f"hydra.run.dir={tmp / 'run'}"] if module == "train" else []
    cmd = [sys.executable, "-m", module, *extra, *args]
    return subprocess.run(cmd, cwd=tmp, env=_env(), capture_output=True, text=True, timeout=timeout)


def mlflow_runs(store: Path) -> list:
    """Every run of every experiment in the SQLite store (none when there is no store)."""
    if not store.exists():
        return []
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids) if ids else []


def assert_one_error(out: subprocess.CompletedProcess, *expected: str) -> str:
    assert out.returncode != 0, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("n2react: error:")]
    assert len(lines) == 1, out.stderr[-3000:]
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


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
    "header only": (header_only, ("empty.xlsx", "the sheet is empty")),
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


# --------------------------------------------------------------------------- config (lead)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(("seed=-1",), ("seed",), id="negative seed"),
        pytest.param(("search=grid", "search.max_trials=0"), ("max_trials",), id="0 trials"),
        # keras-tuner refused it only after the MLflow run had started (a FAILED run)
        pytest.param(
            ("search=random", "search.max_trials=2", "+search.oracle.factor=1"),
            ("search.oracle: cannot build it", "factor"),
            id="oracle typo",
        ),
        pytest.param(
            ("selector=kbest", "selector.step.k=100"), ("k", "100", "24"), id="k>features"
        ),
        # scikit-learn's trees take an integer above the descriptors as all of them: it ran
        # as max_features=1.0 without a word
        pytest.param(
            ("model=extra_trees", "model.estimator.max_features=100"),
            ("model.estimator.max_features=100", "24 descriptors reaching the model"),
            id="max_features>features",
        ),
        pytest.param(
            ("model=rfr", "selector=kbest", "model.estimator.max_features=9"),
            ("model.estimator.max_features=9", "8 descriptors reaching the model"),
            id="max_features>k",
        ),
        pytest.param(
            (
                "model=extra_trees",
                "search=random",
                "search.max_trials=1",
                "model.space.max_features.values=[0.5,30]",
            ),
            ("model.space.max_features.values holds 30", "24 descriptors"),
            id="space max_features>features",
        ),
        # the members of an ensemble and a pairwise base were not checked: they ran clipped
        pytest.param(
            ("model=ensemble", "+model.estimator.estimators.1.1.max_features=100"),
            ("model.estimator.estimators.1.1.max_features=100", "24 descriptors reaching"),
            id="ensemble member max_features>features",
        ),
        pytest.param(
            ("model=anchored_ensemble", "model.estimator.estimators.1.1.base.max_features=30"),
            ("model.estimator.estimators.1.1.base.max_features=30", "24 descriptors"),
            id="anchored pairwise base max_features>features",
        ),
        pytest.param(
            (
                "model=anchored_ensemble",
                "search=random",
                "search.max_trials=1",
                "+model.space.trees__max_features={type:choice,values:[0.5,30]}",
            ),
            ("model.space.trees__max_features.values holds 30", "24 descriptors"),
            id="space member max_features>features",
        ),
        pytest.param(
            ("model=rfr", "pairwise=on", "model.estimator.max_features=100"),
            ("model.estimator.max_features=100", "24 descriptors reaching the model"),
            id="pairwise max_features>features",
        ),
        pytest.param(
            ("model=ridge_trees", "model.estimator.max_features=100"),
            ("model.estimator.max_features=100", "24 descriptors reaching the model"),
            id="ridge_trees max_features>features",
        ),
        pytest.param(("tracking.experiment=''",), ("tracking.experiment",), id="no exp"),
        # a text or a fraction of folds once crashed in the splitter ("cannot build it:
        # full_key: cv.outer") or was cut to a whole number; a bad cv.seed was a traceback
        pytest.param(("cv.outer_folds=abc",), ("cv.outer_folds='abc'", "whole"), id="folds=abc"),
        pytest.param(("cv.outer_folds=2.5",), ("cv.outer_folds=2.5", "whole"), id="folds=2.5"),
        pytest.param(("cv.seed=abc",), ("cv.seed='abc'", "whole"), id="cv.seed=abc"),
        pytest.param(("cv.seed=-5",), ("cv.seed=-5", ">= 0"), id="cv.seed<0"),
        pytest.param(("cv.shuffle=maybe",), ("cv.shuffle='maybe'",), id="shuffle=maybe"),
        # leave one metal out is the same 6 folds every repeat: it ran them twice, counted as
        # independent in the means and intervals
        pytest.param(
            ("cv.groups=metal", "cv.repeats=2", "cv.outer_folds=10"),
            ("cv.repeats=2: 6 groups into cv.outer_folds=10 folds is leave one group out",),
            id="metal repeats",
        ),
        # a typo of false was read as true (an explained run, a refit); a text fraction crashed
        pytest.param(("explain=flase",), ("explain='flase'", "true or false"), id="explain typo"),
        pytest.param(("uncertainty.enabled=no_",), ("uncertainty.enabled",), id="enabled typo"),
        pytest.param(("tracking.enabled=flase",), ("tracking.enabled",), id="tracking typo"),
        pytest.param(("data.formula=flase",), ("data.formula='flase'",), id="formula typo"),
        pytest.param(
            ("pairwise=on", "cv.scheme=pair_split", "cv.pair_test_fraction=abc"),
            ("cv.pair_test_fraction='abc'",),
            id="fraction=abc",
        ),
        # 0.9999 ran on 3 training pairs (only fewer than 2, or no test pair, was refused)
        pytest.param(
            ("pairwise=on", "cv.scheme=pair_split", "cv.pair_test_fraction=0.9999"),
            ("cv.pair_test_fraction=0.9999", "from 0.05 to 0.5"),
            id="fraction=0.9999",
        ),
        pytest.param(
            ("pairwise=on", "cv.scheme=pair_split", "cv.pair_test_fraction=0.001"),
            ("cv.pair_test_fraction=0.001", "from 0.05 to 0.5"),
            id="fraction=0.001",
        ),
        # more pairs than there are ran as all of them; a negative seed ran as its absolute
        # value; a text seed was "a setting of the pipeline is not usable: invalid literal"
        pytest.param(
            ("pairwise=on", "final_model=true", "pairwise.wrapper.max_pairs=100000000"),
            ("pairwise.wrapper.max_pairs=100000000", "all 25,122 ordered pairs of the 159"),
            id="max_pairs>all pairs",
        ),
        # without a final model (QUICK) the largest fit is an outer training fold, 106 of the
        # 159 clusters in 3 folds: a cap between its 11,130 pairs and the 25,122 of all 159
        # capped nothing and was not refused
        pytest.param(
            ("pairwise=on", "pairwise.wrapper.max_pairs=20000"),
            ("pairwise.wrapper.max_pairs=20000", "all 11,130 ordered pairs of the 106"),
            id="max_pairs>fold pairs",
        ),
        pytest.param(
            ("pairwise=on", "cv.scheme=pair_split", "pairwise.wrapper.max_pairs=20098"),
            ("pairwise.wrapper.max_pairs=20098", "all 20,098 training pairs of the pair split"),
            id="max_pairs>pair split",
        ),
        pytest.param(
            ("pairwise=on", "pairwise.wrapper.random_state=-3"),
            ("pairwise.wrapper.random_state", "got -3"),
            id="pairwise seed<0",
        ),
        pytest.param(
            ("pairwise=on", "pairwise.wrapper.random_state=abc"),
            ("pairwise.wrapper.random_state", "got 'abc'"),
            id="pairwise seed=abc",
        ),
        # a pairwise wrapper around anchored_ensemble's pairwise member trained on pairs of
        # pairs (one outer fold in 4 minutes with 5 trees); a pair split without pairwise=on
        # was refused only once its MLflow run was open (a FAILED run left in the store)
        pytest.param(
            ("pairwise=on", "model=anchored_ensemble"),
            ("pairwise=on: model=anchored_ensemble already learns", "pairwise_trees"),
            id="pairwise anchored",
        ),
        pytest.param(
            ("cv.scheme=pair_split",),
            ("cv.scheme=pair_split: needs pairwise=on",),
            id="pair split unwrapped",
        ),
        # scikit-learn's own wording ("The 'alpha' parameter of Ridge must be ...") was
        # "a setting of the pipeline is not usable", the key unnamed; a pair split gave a traceback
        pytest.param(
            ("pairwise=on", "model.estimator.alpha=-1"),
            ("model.estimator.alpha: The 'alpha' parameter of Ridge",),
            id="pairwise base alpha<0",
        ),
        pytest.param(
            ("pairwise=on", "cv.scheme=pair_split", "model.estimator.alpha=-1"),
            ("model.estimator.alpha: The 'alpha' parameter of Ridge",),
            id="pair split base alpha<0",
        ),
        # a linear pairwise base spreads every cluster's references alike (its training
        # residuals): intervals of one width under the name of the model's own spread
        pytest.param(
            ("pairwise=on", "uncertainty.difficulty=spread"),
            ("uncertainty.difficulty=spread: the model's spread is the same for every cluster",),
            id="pairwise ridge spread",
        ),
        # the pair split fits no final model: a transfer file was silently never scored
        pytest.param(
            ("pairwise=on", "cv.scheme=pair_split", "final_model=true", f"eval.path={FILE24}"),
            ("eval.path: cv.scheme=pair_split scores pairs and fits no final model",),
            id="pair split eval.path",
        ),
        # k at least the clusters a difficulty is measured against: the same for every cluster
        pytest.param(("uncertainty.k=53",), ("uncertainty.k=53", "below 53"), id="k too big"),
        pytest.param(("uncertainty.k=true",), ("uncertainty.k=True",), id="k=true"),
        # a 100 % interval has no finite quantile (it divided by zero); 0 % none at all
        pytest.param(
            ("uncertainty.coverage=1",), ("uncertainty.coverage=1", "between 0 and 1"), id="cov=1"
        ),
        pytest.param(
            ("uncertainty.coverage=0",), ("uncertainty.coverage=0", "between 0 and 1"), id="cov=0"
        ),
        pytest.param(
            ("uncertainty.flag_quantile=0",), ("uncertainty.flag_quantile=0", "(0, 1]"), id="fq=0"
        ),
        pytest.param(
            ("uncertainty.flag_quantile=1.5",), ("uncertainty.flag_quantile=1.5",), id="fq=1.5"
        ),
        pytest.param(
            ("uncertainty.validation=honest",),
            ("uncertainty.validation='honest'", "nested or crossfit"),
            id="validation typo",
        ),
        # the authors' fold files' names are not formulas: the fold refusal, not a parse error
        pytest.param(
            ("data=authors_folds", "cv.groups=family"),
            ("cv.groups=family", "own fixed folds"),
            id="authors folds grouped",
        ),
    ],
)
def test_bad_config(args: tuple[str, ...], expected: tuple[str, ...], tmp_path: Path) -> None:
    out = cli(tmp_path, "train", *QUICK, *args)
    assert_one_error(out, *expected)
    assert mlflow_runs(tmp_path / "mlflow.db") == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("model=extra_tree",), ("model=extra_tree: no such option", "extra_trees, gbr")),
        (("cv=kfold5",), ("cv=kfold5: no such option (choose from default)",)),
        # a sweep's comma list: the bad value named, before any job starts
        (("-m", "model=ridge,extra_tree"), ("model=extra_tree: no such option",)),
        (("-m", "+sweep=grd"), ("+sweep=grd: no such option (choose from grid)",)),
        # a group of Hydra's own, whose options its plugins add
        (("-m", "hydra/launcher=joblb"), ("hydra/launcher=joblb: no such option", "joblib")),
        (("experiment=new_composition",), ("experiment=new_composition:", "new_compositions")),
    ],
    ids=["model", "cv", "sweep list", "+sweep", "launcher", "experiment"],
)
def test_a_misspelled_option_is_one_line(
    args: tuple[str, ...], expected: tuple[str, ...], tmp_path: Path
) -> None:
    """Hydra printed a dozen lines (the options, its search path, a HYDRA_FULL_ERROR hint) and
    exit status 1."""
    dirs = (f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'multi'}")
    cmd = [sys.executable, "-m", "train", *args, *QUICK, *dirs]  # -m before the overrides
    out = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    line = assert_one_error(out, *expected)
    assert out.stderr.strip() == line and out.returncode == 2
    assert not (tmp_path / "multi").exists() and not (tmp_path / "run").exists()
    assert mlflow_runs(tmp_path / "mlflow.db") == []


def test_the_console_script_checks_options_too(tmp_path: Path) -> None:
    """n2react-train pointed at the Hydra main, past the checks of ``python -m train``: a
    misspelled option printed Hydra's dozen lines there."""
    script = shutil.which("n2react-train")
    if script is None:
        pytest.skip("n2react-train is not installed (pip install -e .)")
    cmd = [script, "model=extra_tree", *QUICK, f"hydra.run.dir={tmp_path / 'run'}"]
    out = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    line = assert_one_error(out, "model=extra_tree: no such option")
    assert out.stderr.strip() == line and out.returncode == 2


@pytest.mark.parametrize(
    "argv",
    [
        "model=extra_trees pairwise=on cv.groups=metal",
        "-m +sweep=grid hydra/launcher=joblib",
        "-m model=ridge,svr hydra/launcher=parallel",
        "-m model=glob(*)",
        "-m model=choice(ridge,svr)",
        "experiment=new_compositions",
        "~experiment",
        "--cfg job model=svr",
        "--help",
        "--config-dir /nowhere model=extra_tree",  # another search path: Hydra tells
    ],
)
def test_valid_options_pass_the_option_check(argv: str) -> None:
    from n2react.compose import config_dir
    from n2react.group_options import option_problem

    assert option_problem(argv.split(), str(config_dir())) is None


def test_five_rows_three_folds(tmp_path: Path, shared_data: Path) -> None:
    path = five_rows(tmp_path, shared_data)
    out = cli(tmp_path, "train", f"data.path={path}", *QUICK)
    assert_one_error(out, "five.xlsx")
    assert mlflow_runs(tmp_path / "mlflow.db") == []


@pytest.mark.slow
def test_unreachable_tracking_server_fails_fast(tmp_path: Path) -> None:
    start = time.monotonic()
    try:
        out = cli(tmp_path, "train", *QUICK, "tracking.uri=http://127.0.0.1:9/", timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("still running after 60 s")
    assert time.monotonic() - start < 60
    assert_one_error(out, "127.0.0.1:9")


def test_file_tracking_uri_runs_or_says_why(tmp_path: Path) -> None:
    out = cli(tmp_path, "train", *QUICK, f"tracking.uri=file://{tmp_path / 'store'}")
    if out.returncode != 0:
        assert_one_error(out, "tracking.uri")
    assert "Traceback" not in out.stderr


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
    assert_one_error(out, "p.csv: cannot write")


def test_predict_into_a_folder_that_cannot_exist(
    run_dir: Path, sheet: Path, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("x")
    out = cli(tmp_path, "predict", str(run_dir), str(sheet), "-o", str(tmp_path / "afile/p.csv"))
    assert_one_error(out, "p.csv: cannot write")


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
