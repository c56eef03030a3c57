"""The benchmark scripts as a user runs them: from any folder, `--help`, bad arguments and missing
data as one line, and `--write-readme` touching only the block it owns, whole."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

BENCHMARKS = sorted((ROOT / "benchmarks").glob("*.py"))


def bench(name: str, *args: str, cwd: Path, env: dict[str, str] | None = None):
    """``python benchmarks/<name> args`` run from ``cwd`` (not the checkout)."""
    full = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
    cmd = [sys.executable, str(ROOT / "benchmarks" / name), *args]
    return subprocess.run(cmd, cwd=cwd, env=full, capture_output=True, text=True, timeout=300)


def _module(name: str):  # noqa: ANN202 - the benchmark's module
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


@pytest.mark.parametrize("script", [p.name for p in BENCHMARKS])
def test_every_benchmark_answers_help(script: str, tmp_path: Path) -> None:
    out = bench(script, "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-1500:]
    assert out.stdout.startswith("usage:") and "Traceback" not in out.stderr
    description = out.stdout.split("\n\n")[1].strip()  # whole, not its docstring's first line
    assert description.endswith((".", "?")), description


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("family_variance.py", ["model=nosuchmodel"], "model=nosuchmodel: no such option (choose"),
        ("domain_lomo.py", ["data.nosuchkey=1"], "data.nosuchkey: no such key (data has:"),
        ("importance_stability.py", ["cv.outer_folds=[1"], "cannot parse override"),
    ],
)
def test_a_bad_override_is_one_line(script: str, args: list[str], expected: str, tmp_path) -> None:
    out = bench(script, *args, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-1500:]
    (line,) = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert line.startswith("n2react: error: ") and expected in line


@pytest.mark.parametrize(
    ("script", "args"),
    [("transfer.py", ["--configs", "baseline"]), ("uncertainty.py", ["--protocols", "none"])],
)
def test_a_missing_fev_file_is_one_line(script: str, args: list[str], tmp_path: Path) -> None:
    """The Fe-V file has no public copy: $N2_DATA_DIR must hold it, whatever the folder."""
    empty = tmp_path / "empty"
    empty.mkdir()
    out = bench(script, *args, cwd=tmp_path, env={"N2_DATA_DIR": str(empty)})
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-1500:]
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("n2react: error: heteronuclear-FeV-18-15features.xlsx not found")
    assert f"N2_DATA_DIR={empty}" in line


def test_a_missing_data_file_is_one_line(tmp_path: Path) -> None:
    """keras_speed.py finds its file as train does (not ../shared/... of the working folder)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"N2_DATA_DIR": str(empty), "N2_CACHE_DIR": str(empty)}
    out = bench("pairwise_scaling.py", cwd=tmp_path, env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-1500:]
    line = out.stderr.strip().splitlines()[-1]  # after pooch's "Downloading data from ..."
    assert line.startswith("n2react: error: data file homonuclear-159-24features.xlsx not found")
    out = bench("keras_speed.py", "--data", str(empty / "none.xlsx"), cwd=tmp_path)
    assert out.returncode == 2 and "none.xlsx: no such file" in out.stderr


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("explain_cost.py", ["--runs", "0"], "argument --runs: 0: at least 1"),
        ("importance_stability.py", ["--rows", "0"], "argument --rows: 0: at least 1"),
        ("importance_stability.py", ["--top", "-2"], "argument --top: -2: at least 0"),
        ("importance_stability.py", ["--run", ".", "model=svr"], "--run reads a finished run"),
        ("repeated_cv.py", ["--repeats", "0"], "argument --repeats: 0: at least 1"),
        ("pairwise_scaling.py", ["--epochs", "0"], "argument --epochs: 0: at least 1"),
        ("keras_speed.py", ["--folds", "1"], "argument --folds: 1: at least 2"),
        ("keras_speed.py", ["--units", "x"], "argument --units: 'x': expected a whole number"),
        ("keras_speed.py", ["--lr", "-1"], "argument --lr: -1: expected a number above 0"),
        ("keras_speed.py", ["--repeats", "0"], "argument --repeats: 0: at least 1"),
        ("domain_lomo.py", ["--tolerance", "nan"], "argument --tolerance: nan: expected a finite"),
        ("domain_lomo.py", ["--tolerance", "-1"], "argument --tolerance: -1: expected a finite"),
    ],
)
def test_a_count_below_its_least_is_refused_before_any_work(
    script: str, args: list[str], expected: str, tmp_path: Path
) -> None:
    """--runs 0 ended in statistics' "no median for empty data", --rows 0 in sklearn's "0
    sample(s)", --folds 1, --units 0, --lr -1, --repeats 0 and --epochs 0 in Keras' or sklearn's
    tracebacks (after the data was read), --top -2 listed nothing, --repeats 0 printed the
    table's header first; importance_stability's train overrides with --run were ignored;
    domain_lomo's --tolerance nan was refused naming domain.range_tolerance, not the option."""
    out = bench(script, *args, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-1500:]
    assert f"error: {expected}" in out.stderr.splitlines()[-1], out.stderr


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("paper_dnn_seeds.py", ["--seeds", ","], "argument --seeds: ',': expected a comma-separ"),
        ("paper_dnn_seeds.py", ["--seeds", "1,a"], "argument --seeds: 'a': expected a whole num"),
        ("calibration_reach.py", ["--protocols", ""], "argument --protocols: '': expected a comma"),
        ("transfer.py", ["--configs", ","], "argument --configs: ',': expected a comma-separated"),
        ("model_table.py", ["--only", "no such row"], "no row of the table is left by --only"),
        ("model_table.py", ["--only", ""], "argument --only: '': empty, it would match every"),
        ("model_table.py", ["--exclude", " "], "argument --exclude: ' ': empty, it would match"),
        ("uncertainty.py", ["--protocols", ""], "argument --protocols: '': expected a comma-sep"),
        ("uncertainty.py", ["--difficulties", ","], "argument --difficulties: ',': expected a"),
        ("calibration_choice.py", ["--reuse", "gone"], "--reuse gone: no such folder"),
        ("transfer.py", ["--reuse", "--out", "gone"], "--reuse: --out gone: no such folder (the"),
        ("transfer.py", ["--reuse"], "--reuse: no --out given (the --out of an earlier run"),
        ("calibration_reach.py", ["--protocols", "metal,foo"], "unknown protocol(s) foo; expec"),
        ("startup.py", ["--only", "help,nosuch"], "--only: unknown command(s) nosuch; expected"),
        ("startup.py", ["--only", ","], "argument --only: ',': expected a comma-separated list"),
    ],
)
def test_an_empty_selection_is_refused_before_any_work(
    script: str, args: list[str], expected: str, tmp_path: Path
) -> None:
    """--seeds , printed NaN figures with exit 0 (--seeds 1,a failed after the trees' fit);
    --protocols "" and --only matching no row ran nothing and exited 0; --reuse of a folder that
    is not there trained the six runs into it; model_table's --only "" (in every label) started
    the whole table, hours; uncertainty.py's --protocols "" trained with cv.groups empty;
    transfer.py's --reuse with an --out not there (or none) made it and trained every row;
    calibration_reach.py's --protocols foo printed 'foo: running' before its error line."""
    out = bench(script, *args, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-1500:]
    assert f"error: {expected}" in out.stderr.splitlines()[-1], out.stderr
    assert list(tmp_path.iterdir()) == []


def test_transfer_table_prints_an_undefined_figure_as_a_dash() -> None:
    # an undefined figure (the r of constant predictions) printed "n/a"; defined ones unchanged
    transfer = _module("transfer")
    nan = float("nan")
    assert transfer._ci((nan, nan, nan)) == "-"
    assert transfer._ci((0.4567, nan, nan)) == "0.46"
    assert transfer._ci((0.4567, 0.1234, 0.789)) == "0.46 [0.12, 0.79]"
    assert transfer._ci((1.5, 1.0, 2.0), ".0f") == "2 [1, 2]"


def test_transfer_reuse_reruns_a_row_whose_wall_time_is_damaged(tmp_path: Path) -> None:
    """--reuse read wall.json with json.loads: a row cut short before it (or a damaged file)
    ended the benchmark in a traceback; wall.json was written in place, not atomically."""
    transfer = _module("transfer")
    (tmp_path / "transfer").mkdir()
    assert transfer.recorded_wall(tmp_path) is None  # no outputs: run it
    (tmp_path / "transfer" / "transfer_predictions.csv").write_text("cluster\n")
    assert transfer.recorded_wall(tmp_path) is None  # no wall.json: cut short, run it again
    (tmp_path / "wall.json").write_text('{"wall_s": 1')
    assert transfer.recorded_wall(tmp_path) is None
    (tmp_path / "wall.json").write_text('{"wall_s": 12.5}')
    assert transfer.recorded_wall(tmp_path) == 12.5


def test_family_variance_prints_no_nan(tmp_path: Path) -> None:
    """A family of one cluster has no sd: its row printed NaN."""
    out = bench("family_variance.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-1500:]
    assert "NaN" not in out.stdout and "family means explain R²" in out.stdout
    assert any(line.split()[-1] == "-" for line in out.stdout.splitlines() if line.strip())


def test_repeated_cv_writes_only_the_table_the_readme_describes(tmp_path: Path) -> None:
    out = bench("repeated_cv.py", "--repeats", "2", "--write-readme", cwd=tmp_path)
    assert out.returncode == 2 and "cv.repeats=5" in out.stderr.splitlines()[-1]


def test_transfer_write_readme_keeps_the_rows_not_rerun(tmp_path: Path) -> None:
    transfer = _module("transfer")
    readme = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text()
    readme.write_text(text)
    new = "| extra trees (baseline) | `python -m train x` | new figures |"
    transfer.write_readme({"baseline": new}, readme)
    after = readme.read_text()
    old_block = text.split(transfer.BEGIN)[1].split(transfer.END)[0].strip().splitlines()
    new_block = after.split(transfer.BEGIN)[1].split(transfer.END)[0].strip().splitlines()
    # the baseline's line replaced, every other row kept in place, nothing outside the block
    assert new_block[2] == new and new_block[3:] == old_block[3:] and len(old_block) > 5
    assert after.split(transfer.BEGIN)[0] == text.split(transfer.BEGIN)[0]
    assert after.split(transfer.END)[1] == text.split(transfer.END)[1]
    # a table of the other grouped CV keeps none of the family-grouped rows
    transfer.write_readme({"baseline": new}, readme, groups="metal")
    block = readme.read_text().split(transfer.BEGIN)[1].split(transfer.END)[0].strip()
    assert block.splitlines()[2:] == [new] and "leave-one-metal-out CV MAE" in block


def test_uncertainty_titles_its_table_with_the_model_run(tmp_path: Path) -> None:
    """The title said 'extra trees' and '90 %' whatever model and coverage were run; the
    default command's title is unchanged, byte for byte. An undefined figure prints '-'."""
    from n2react.compose import compose_config

    title = _module("uncertainty").title
    fev = "/data/heteronuclear-FeV-18-15features.xlsx"
    default = compose_config(["data=homonuclear_15", "model=extra_trees", "cv.groups=none"])
    assert title(default, 159, 0.9, fev) == (
        "90 % intervals, extra trees on the 159 clusters; "
        "eval = heteronuclear-FeV-18-15features.xlsx"
    )
    pairwise = compose_config(["data=homonuclear_15", "model=extra_trees", "pairwise=on"])
    assert title(pairwise, 159, 0.9, fev).startswith("90 % intervals, extra trees (pairwise) on")
    args = ["--protocols", "none", "--difficulties", "none", "model=ridge", "cv.outer_folds=3"]
    out = bench("uncertainty.py", *args, "uncertainty.coverage=0.8", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-1500:]
    assert out.stdout.splitlines()[0] == (
        "80 % intervals, ridge on the 159 clusters; eval = heteronuclear-FeV-18-15features.xlsx"
    )
    # difficulty=none: one expected error for all, so rho is undefined, and nothing flagged has
    # no MAE; both print '-' (the number columns printed NaN, the flag/in pairs nan/0.88)
    header, row = out.stdout.splitlines()[1:3]
    rho = row[: header.index(" rho ") + len(" rho")].split()[-1]  # the columns align right
    assert rho == "-" and "nan" not in out.stdout.lower(), out.stdout
    assert " -/" in row, out.stdout


def test_startup_times_the_commands_it_is_given(tmp_path: Path) -> None:
    """benchmarks/startup.py --json: the median wall and CPU time of each command chosen with
    --only, and the heavy modules --help imports (none)."""
    import json

    out = bench("startup.py", "--repeats", "1", "--only", "help,option", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-1500:]
    figures = json.loads(out.stdout)
    assert list(figures["commands"]) == ["help", "option"]
    option = figures["commands"]["option"]
    assert option["command"] == "python -m train model=nosuch" and option["exit"] == 2
    assert len(option["wall_s"]) == 1 and 0 < option["median_cpu_s"] <= 60
    assert figures["help_imports"]["heavy"] == [] and figures["help_imports"]["modules"] > 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_keras_speed_prints_its_table_without_framework_chatter(tmp_path: Path) -> None:
    """A tiny keras_speed.py run on the CPU: its table and ratio, and on stderr none of
    TensorFlow's oneDNN/CUDA start-up lines, absl's preamble or Keras' tf.function retracing
    warnings (they came before and inside the table: 8 lines of 240 characters)."""
    tiny = ("--folds", "2", "--epochs", "3", "--patience", "2", "--layers", "1", "--units", "4")
    out = bench("keras_speed.py", *tiny, "--no-warmup", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-1500:]
    assert "ms/model-epoch" in out.stdout and "\nratio: " in out.stdout, out.stdout
    for chatter in ("oneDNN", "cuda", "absl", "retracing", "WARNING"):
        assert chatter not in out.stderr + out.stdout, out.stderr[-1500:]


@pytest.mark.parametrize("script", [p.name for p in BENCHMARKS])
def test_every_benchmark_option_says_what_it_does(script: str, tmp_path: Path) -> None:
    """Each option in --help has a description (keras_speed.py listed --folds, --patience,
    --layers, --units, --lr, --seed and --skip-seed-style bare; four others one option each)."""
    out = bench(script, "--help", cwd=tmp_path)
    lines = out.stdout.split("options:", 1)[1].splitlines()[1:]
    for i, line in enumerate(lines):
        if not line.startswith("  -"):
            continue
        described = "  " in line.strip()  # argparse puts the help after two spaces or more
        follows = i + 1 < len(lines) and lines[i + 1].startswith(" " * 8)
        assert described or follows, f"{script}: {line.strip()} has no help"
