"""`n2react compare|predict|explain` as real processes: the paired comparison of two real runs
(same folds: compared; other folds: refused), and the one command line over the entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import tomllib
from mlflow.tracking import MlflowClient

from n2react.bootstrap import compare_oof
from n2react.compose import compose_config
from n2react.run import run

ROOT = Path(__file__).resolve().parents[1]
QUICK = {"progress": False, "explain": False}


def n2react(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The `n2react` console script (pyproject: n2react.cli:main), as a process."""
    cmd = [sys.executable, "-c", "import sys; from n2react.cli import main; sys.exit(main())"]
    # (the in-process runs of the fixture leave MLflow's URI in os.environ)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run(
        [*cmd, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """Real small runs in one MLflow store: ridge and extra trees on the same KFold folds
    (ridge with its final model), ridge left out by metal, and ridge and SVR on 3 folds."""
    tmp = tmp_path_factory.mktemp("compare")
    os.environ.setdefault("N2_DATA_DIR", str(ROOT.parent / "shared" / "data" / "cluster_n2"))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    specs = {
        "ridge": (["model=ridge", "cv.outer_folds=4"], True),
        "trees": (["model=extra_trees", "cv.outer_folds=4"], False),
        "metal": (["model=ridge", "cv.groups=metal"], False),
        "ridge3": (["model=ridge", "cv.outer_folds=3", "uncertainty.enabled=false"], False),
        "svr3": (["model=svr", "cv.outer_folds=3", "uncertainty.enabled=false"], False),
    }
    out: dict[str, Path | str] = {"tmp": tmp, "uri": uri}
    for name, (overrides, final) in specs.items():
        cfg = compose_config(overrides, {**QUICK, "final_model": final, "tracking.uri": uri})
        run(cfg, tmp / name)
        out[name] = tmp / name
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("n2react")
    for r in client.search_runs([exp.experiment_id]):
        if "mlflow.parentRunId" not in r.data.tags:
            out[f"id:{Path(r.data.tags['run_dir']).name}"] = r.info.run_id
    return out


def test_compare_two_runs_on_the_same_folds(runs) -> None:
    tmp = runs["tmp"]
    res = n2react("compare", str(runs["ridge"]), str(runs["trees"]), "--json", cwd=tmp)
    assert res.returncode == 0, res.stderr[-1500:]
    out = json.loads(res.stdout)
    rows = {m["metric"]: m for m in out["metrics"]}
    assert set(rows) == {
        "pooled_test_mae",
        "pooled_test_rmse",
        "pooled_test_r",
        "pooled_test_within",
    }
    ridge = json.loads((runs["ridge"] / "summary.json").read_text())
    trees = json.loads((runs["trees"] / "summary.json").read_text())
    mae = rows["pooled_test_mae"]
    assert mae["a"] == pytest.approx(ridge["pooled_test_mae"])
    assert mae["b"] == pytest.approx(trees["pooled_test_mae"])
    assert mae["diff"] == pytest.approx(mae["a"] - mae["b"])
    assert mae["low"] <= mae["diff"] <= mae["high"] and 0 <= mae["p_a_better"] <= 1
    assert mae["decided"] == (mae["low"] > 0 or mae["high"] < 0)
    assert "159 clusters" in out["resampled"]
    # by MLflow run id: the same figures, downloaded from the store, nothing left behind
    ids = (runs["id:ridge"], runs["id:trees"])
    before = set(tmp.iterdir())
    res = n2react("compare", *ids, "--json", "--tracking-uri", runs["uri"], cwd=tmp)
    assert res.returncode == 0, res.stderr[-1500:]
    again = {m["metric"]: m for m in json.loads(res.stdout)["metrics"]}
    assert again["pooled_test_mae"]["high"] == pytest.approx(mae["high"])
    assert set(tmp.iterdir()) == before
    assert "Downloading artifacts" not in res.stderr  # MLflow's bars between n2react's lines
    # the table a person reads
    res = n2react("compare", str(runs["ridge"]), str(runs["trees"]), cwd=tmp)
    assert res.returncode == 0 and "P(A better)" in res.stdout and "pooled_test_mae" in res.stdout


def test_three_folds_are_too_few_units_for_a_verdict(runs) -> None:
    # ridge against SVR on 3 outer folds: ridge was better in all three, so every resample of
    # the folds agreed, P = 1.00 and the verdict said "A better": a finding from 3 units. The
    # figures stay; the verdict says there are too few units. The pooled figures resample the
    # 159 clusters: their verdicts stay.
    tmp = runs["tmp"]
    metrics = ["mean_test_mae", "mean_test_rmse", "pooled_test_mae", "pooled_test_rmse"]
    args = ["compare", str(runs["ridge3"]), str(runs["svr3"])]
    args += [a for m in metrics for a in ("--metric", m)]
    res = n2react(*args, "--json", cwd=tmp)
    assert res.returncode == 0, res.stderr[-1500:]
    rows = {m["metric"]: m for m in json.loads(res.stdout)["metrics"]}
    for m in ("mean_test_mae", "mean_test_rmse"):
        row = rows[m]
        assert row["high"] < 0 and row["p_a_better"] == 1.0  # all 3 fold differences agree
        assert (row["units"], row["unit_kind"]) == (3, "folds")
        assert not row["decided"] and row["verdict"] == "too few units (3 folds) to tell"
    for m in ("pooled_test_mae", "pooled_test_rmse"):
        row = rows[m]
        assert (row["units"], row["unit_kind"]) == (159, "clusters")
        assert row["decided"] == (row["low"] > 0 or row["high"] < 0)
        want = ("A better" if row["p_a_better"] > 0.5 else "B better") if row["decided"] else None
        assert row["verdict"] == (want or "no clear difference")
    # the table a person reads: the verdict cell, and a line under it that the figures are no
    # finding
    res = n2react(*args, cwd=tmp)
    said = " ".join(res.stdout.split())
    assert res.returncode == 0 and said.count("too few units (3 folds) to tell") == 2, said
    assert "3 folds: too few units for a verdict" in said
    assert "their A - B, interval and P(A better) are no finding" in said
    # the 4-fold pair of the fixture: no verdict on the folds, one on the clusters
    res = n2react("compare", str(runs["ridge"]), str(runs["trees"]), "--json",
                  "--metric", "mean_test_r", "--metric", "pooled_test_r", cwd=tmp)  # fmt: skip
    mean, pooled = json.loads(res.stdout)["metrics"]
    assert mean["verdict"] == "too few units (4 folds) to tell" and pooled["units"] == 159
    assert "too few" not in pooled["verdict"]


def test_compare_refuses_runs_on_other_folds(runs) -> None:
    tmp = runs["tmp"]
    res = n2react("compare", str(runs["ridge"]), str(runs["metal"]), cwd=tmp)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == [
        "n2react: error: cannot compare the runs: their out-of-fold clusters or folds differ "
        "(only B's CV is grouped by cv.groups); a paired comparison needs the same folds"
    ]
    # python -m n2react.compare is the same command
    cmd = [sys.executable, "-m", "n2react.compare", str(runs["ridge"]), str(runs["metal"])]
    res = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "folds differ" in res.stderr


def test_compare_bad_input_is_one_line_and_creates_no_store(tmp_path: Path) -> None:
    res = n2react("compare", "0" * 32, "1" * 32, cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "n2react: error: no MLflow store at mlflow.db" in res.stderr
    assert "(the default store; name yours with --tracking-uri)" in res.stderr
    assert not (tmp_path / "mlflow.db").exists()
    # a store the user named: no advice to name one (it said "(set --tracking-uri)")
    res = n2react("compare", "0" * 32, "1" * 32, "--tracking-uri", "sqlite:///x.db", cwd=tmp_path)
    assert res.returncode == 2 and "no MLflow store at x.db" in res.stderr
    assert "--tracking-uri" not in res.stderr and not (tmp_path / "x.db").exists()
    # a metric it cannot compare on is refused before any run is read (it downloaded both runs'
    # tables, from a server say, first)
    res = n2react("compare", "0" * 32, "1" * 32, "--metric", "test_rmse", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.startswith(
        "n2react: error: cannot compare on 'test_rmse': use pooled_test_"
    ), res.stderr
    res = n2react("compare", str(tmp_path), str(tmp_path), cwd=tmp_path)
    assert res.returncode == 2 and "no oof_predictions.csv" in res.stderr
    # a run with itself: every difference 0 [0, 0] was printed as a comparison
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "oof_predictions.csv").write_text(
        "cluster,y_true,y_pred,fold\nA,1,1.5,1\nB,2,1.5,1\nC,3,2.5,2\nD,4,3.5,2\n"
    )
    res = n2react("compare", "run", str(tmp_path / "run"), cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == (
        f"n2react: error: run is compared with itself (both are the run in {tmp_path / 'run'}): "
        "name two runs"
    )


def test_a_negative_seed_or_a_huge_resample_count_is_refused_in_one_line(tmp_path: Path) -> None:
    """--seed -1 ended in numpy's ValueError traceback; --resamples 10000000 had no upper bound
    (the weights of 100 000 resamples of 159 clusters already take ~1 GB)."""
    for option, value, line in [
        ("--seed", "-1", "--seed -1: a seed is 0 or more"),
        ("--resamples", "10000000", "--resamples 10000000: from 100 to 100000"),
        ("--resamples", "5", "--resamples 5: from 100 to 100000"),
    ]:
        res = n2react("compare", "a", "b", option, value, cwd=tmp_path)
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert res.stderr.splitlines()[-1].endswith(f"error: {line}"), res.stderr


def test_a_damaged_out_of_fold_table_names_its_row(tmp_path: Path) -> None:
    """A text cell in y_pred ended in a ValueError traceback, a blank one printed nan for every
    figure with exit 0, and a table of headers only was 'folds differ (B 0 clusters)'."""
    good = "cluster,y_true,y_pred,fold\nA,1,1.5,1\nB,2,1.5,1\nC,3,2.5,2\nD,4,3.5,2\n"
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "oof_predictions.csv").write_text(good)
    for table, line in [
        (good.replace("C,3,2.5", "C,3,x"), "row 4 (cluster C): y_pred 'x' is not a number"),
        (good.replace("C,3,2.5", "C,3,"), "row 4 (cluster C): y_pred is blank"),
        (good.replace("B,2,", "B,inf,"), "row 3 (cluster B): y_true inf is not finite"),
        ("cluster,y_true,y_pred,fold\n", "has no rows (not a finished run?)"),
    ]:
        (tmp_path / "b").mkdir(exist_ok=True)
        (tmp_path / "b" / "oof_predictions.csv").write_text(table)
        res = n2react("compare", "a", "b", cwd=tmp_path)
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert res.stderr == f"n2react: error: b: oof_predictions.csv {line}\n", res.stderr


def test_compare_predict_and_explain_tell_which_run_to_give(runs) -> None:
    # a run directory against its own MLflow run id printed every difference as 0 [0, 0]; a
    # fold's run id said "no artifact oof_predictions.csv (not an n2react parent run?)" (predict:
    # "has no final model"); the 8 hex digits of the sweep table's run id column said "neither a
    # run directory nor an MLflow run id"
    tmp, uri, ridge = runs["tmp"], runs["uri"], runs["id:ridge"]
    res = n2react("compare", str(runs["ridge"]), ridge, "--tracking-uri", uri, cwd=tmp)
    assert res.returncode == 2 and res.stderr.strip() == (
        f"n2react: error: {runs['ridge']} is compared with itself (both are the run in "
        f"{Path(runs['ridge']).resolve()}): name two runs"
    ), res.stderr[-1500:]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("n2react").experiment_id
    child = client.search_runs([exp], f"tags.mlflow.parentRunId = '{ridge}'")[0]
    fold = child.data.tags["fold"]
    want = f"n2react: error: MLflow run {child.info.run_id} is the run of outer fold {fold}; "
    want += f"give its parent run {ridge}"
    sheet = Path(os.environ["N2_DATA_DIR"]) / "homonuclear-159-24features.xlsx"
    for args in (
        ["compare", child.info.run_id, runs["id:trees"]],
        ["predict", child.info.run_id, str(sheet), "-o", str(tmp / "child.csv")],
        ["explain", child.info.run_id],
    ):
        res = n2react(*args, "--tracking-uri", uri, cwd=tmp)
        assert res.returncode == 2 and res.stderr.strip() == want, (args, res.stderr[-1500:])
    assert not (tmp / "child.csv").exists()
    res = n2react("compare", ridge[:8], runs["id:trees"], "--tracking-uri", uri, cwd=tmp)
    assert res.returncode == 2 and "8 hex digits: an MLflow run id has 32" in res.stderr


def test_a_run_id_and_its_folder_rewritten_by_a_later_run_are_two_runs(tmp_path: Path) -> None:
    from n2react.compare import Loaded, _same_run

    oof = pd.DataFrame({"cluster": ["A", "B"], "y_true": [1.0, 2.0], "y_pred": [1.5, 2.5],
                        "fold": [1, 2]})  # fmt: skip
    later = oof.assign(y_pred=[1.2, 2.1])
    folder = tmp_path.resolve()
    assert _same_run(Loaded(oof, "dir", folder), Loaded(oof, "id", folder, "0" * 32))
    assert not _same_run(Loaded(later, "dir", folder), Loaded(oof, "id", folder, "0" * 32))
    assert not _same_run(Loaded(oof, "a", folder, "0" * 32), Loaded(oof, "b", folder, "1" * 32))


def test_a_server_that_does_not_answer_is_one_line_within_seconds(tmp_path: Path) -> None:
    """predict, explain and compare given a run id on a dead tracking server: one error line,
    not MLflow's minutes of retries."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    sheet = Path(os.environ["N2_DATA_DIR"]) / "heteronuclear-FeV-18-15features.xlsx"
    cmd = [sys.executable, "-c", "import sys; from n2react.cli import main; sys.exit(main())"]
    for args in (
        ["predict", "0" * 32, str(sheet), "-o", str(tmp_path / "p.csv")],
        ["explain", "0" * 32],
        ["compare", "0" * 32, "1" * 32],
    ):
        res = subprocess.run(
            [*cmd, *args, "--tracking-uri", dead],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-1500:]
        lines = [ln for ln in res.stderr.splitlines() if ln.startswith("n2react: error:")]
        assert len(lines) == 1 and "no tracking server answers at 127.0.0.1:" in lines[0]


def test_a_file_store_is_one_line(tmp_path: Path) -> None:
    """predict, explain and compare given a run id and an old mlruns/ folder as the store:
    MLflow 3's MlflowException ended them in a traceback."""
    sheet = Path(os.environ["N2_DATA_DIR"]) / "heteronuclear-FeV-18-15features.xlsx"
    cmd = [sys.executable, "-c", "import sys; from n2react.cli import main; sys.exit(main())"]
    for store, args in (
        (f"file://{tmp_path}/mlruns", ["predict", "0" * 32, str(sheet), "-o", "p.csv"]),
        ("mlruns", ["explain", "0" * 32]),
        ("./mlruns", ["compare", "0" * 32, "1" * 32]),
    ):
        res = subprocess.run(
            [*cmd, *args, "--tracking-uri", store],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-1500:]
        (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("n2react: error:")]
        assert f"{store} is a file store, which MLflow 3 no longer reads" in line
        assert "sqlite:///mlflow.db" in line
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "p.csv").exists()


def test_grouped_comparison_resamples_the_groups(runs) -> None:
    oof = pd.read_csv(runs["metal"] / "oof_predictions.csv")
    worse = oof.assign(y_pred=oof["y_pred"] + 0.3 * (oof["y_pred"] - oof["y_true"]))
    (mae,) = compare_oof(oof, worse, ["pooled_test_mae"])
    assert mae.high < 0 and mae.p_a_better == 1.0
    assert (mae.units, mae.unit_kind) == (6, "groups") and mae.decided  # six metals: enough


def test_one_command_line_runs_predict_explain_and_compare(runs, tmp_path: Path) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["n2react"] == "n2react.cli:main"
    res = n2react("--help", cwd=tmp_path)
    assert res.returncode == 0
    assert all(c in res.stdout for c in ("predict", "explain", "compare"))
    res = n2react("compare", "--help", cwd=tmp_path)
    assert res.returncode == 0 and "usage: n2react compare" in res.stdout
    sheet = Path(os.environ["N2_DATA_DIR"]) / "homonuclear-159-24features.xlsx"
    out = tmp_path / "pred.csv"
    res = n2react("predict", str(runs["ridge"]), str(sheet), "-o", str(out), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-1500:]
    table = pd.read_csv(out)
    assert len(table) == 159 and {"cluster", "y_pred"} <= set(table.columns)
    # the same model through python -m predict gives the same numbers
    again = tmp_path / "again.csv"
    cmd = [sys.executable, "-m", "predict", str(runs["ridge"]), str(sheet), "-o", str(again)]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-1500:]
    assert pd.read_csv(again)["y_pred"].equals(table["y_pred"])
    res = n2react(
        "explain", str(runs["ridge"]), "--rows", "20", "--out", str(tmp_path / "ex"), cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr[-1500:]
    listed = [Path(p) for p in res.stdout.split()]
    assert listed and all(p.exists() and p.parent == tmp_path / "ex" for p in listed)
    res = n2react("predict", str(tmp_path / "nope"), str(sheet), cwd=tmp_path)
    assert res.returncode != 0 and "n2react: error:" in res.stderr and "Traceback" not in res.stderr
    res = n2react("nosuchcommand", cwd=tmp_path)
    assert res.returncode == 2 and "invalid choice" in res.stderr


@pytest.mark.parametrize(
    ("module", "output"),
    [("n2react.compare", "--json"), ("n2react.compare", "table"), ("n2react.explain", "")],
)
def test_module_output_into_a_closed_pipe_ends_quietly(
    runs, module: str, output: str, tmp_path: Path, into_closed_pipe
) -> None:
    # `python -m n2react.compare a b --json | head` (and explain's list of files) ended in a
    # BrokenPipeError traceback: their __main__ was not wrapped as train/predict/n2react are.
    # compare's table (rich's console) ended with exit 1: rich answered the broken pipe itself
    args = [str(runs["ridge"]), str(runs["trees"])] + (["--json"] if output == "--json" else [])
    if module == "n2react.explain":
        args = [str(runs["ridge"]), "--rows", "20", "--out", str(tmp_path / "ex")]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = into_closed_pipe([sys.executable, "-m", module, *args], tmp_path, env, 300)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 141


def test_repeated_cv_is_captioned_as_the_verdict_counts_its_folds(tmp_path: Path, capsys) -> None:
    # two runs with cv.outer_folds=3 cv.repeats=2: the caption said "the 6 outer folds" (every
    # fold of every repeat) beside the verdict "too few units (3 folds) to tell" (one repeat's)
    import numpy as np

    from n2react.compare import compare_runs, main

    rng = np.random.default_rng(0)
    y, err = rng.normal(size=30), rng.normal(0.0, 0.5, size=30)
    folds = {repeat: rng.permutation(30) % 3 + 1 for repeat in (1, 2)}  # both runs on these
    for name, scale in (("a", 1.0), ("b", 0.5)):
        (tmp_path / name).mkdir()
        oof = pd.concat(
            pd.DataFrame({"cluster": [f"c{i}" for i in range(30)], "y_true": y,
                          "y_pred": y + scale * err, "fold": folds[repeat],
                          "repeat": repeat})
            for repeat in (1, 2)
        )  # fmt: skip
        oof.to_csv(tmp_path / name / "oof_predictions.csv", index=False)
    runs = [str(tmp_path / "a"), str(tmp_path / "b")]
    rows, _, _, what = compare_runs(*runs, "sqlite:///unused.db", ("mean_test_mae",))
    assert what.startswith("the 3 outer folds x 2 repeats (mean_*)"), what
    (row,) = rows
    assert (row.units, row.unit_kind, row.too_few) == (
        3,
        "folds",
        "too few units (3 folds) to tell",
    )
    assert main([*runs, "--metric", "mean_test_mae"]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "paired bootstrap over the 3 outer folds x 2 repeats (mean_*)" in said, said


def test_an_undefined_figure_is_null_in_json_and_gets_no_verdict(runs, tmp_path: Path) -> None:
    # a model predicting one value per fold (ridge, alpha=1e300) has no r: compare --json
    # printed "b": NaN, which is not JSON (jq and json.loads(parse_constant=...) refuse it)
    cfg = compose_config(
        ["model=ridge", "model.estimator.alpha=1e300", "cv.outer_folds=3", "tracking=none"],
        {**QUICK, "final_model": False, "uncertainty.enabled": False},
    )
    run(cfg, tmp_path / "constant")
    args = ["compare", str(runs["ridge3"]), str(tmp_path / "constant"), "--metric", "mean_test_r"]
    res = n2react(*args, "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-1500:]

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    (row,) = json.loads(res.stdout, parse_constant=refuse)["metrics"]
    assert row["a"] > 0 and row["b"] is None and row["p_a_better"] is None
    # its verdict was "too few units (3 folds) to tell" (6 folds or more: "no clear
    # difference"), though there was no difference to judge; the table printed nan, +nan,
    # [+nan, +nan] and nan
    assert row["verdict"] == "B: mean_test_r undefined" and row["decided"] is False
    res = n2react(*args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-1500:]
    (line,) = [ln for ln in res.stdout.splitlines() if "│ mean_test_r" in ln]
    cells = [c.strip() for c in line.split("│")[1:-1]]
    assert cells[2:] == ["-", "-", "-", "-", "B: mean_test_r undefined"], line
