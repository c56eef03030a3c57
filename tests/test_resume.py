"""resume=<run id or run dir>: a killed run continues in its own MLflow parent run and directory,
finished folds are read back, and the figures equal an uninterrupted run's (which version
made a run, and resuming another version's: tests/test_resume_versions.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from resume_helpers import KILLABLE, QUICK, start_and_kill

from n2react.errors import ConfigError, N2ReactError
from n2react.run import run

ARGS = KILLABLE


def _cmd(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "train", *ARGS, f"hydra.run.dir={run_dir}", *extra]


def _train(cwd: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        _cmd(run_dir, *extra), cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def _start_and_kill(cwd: Path, run_dir: Path) -> None:
    """Start a real run and SIGKILL it once two outer folds are written."""
    start_and_kill(_cmd(run_dir), cwd, run_dir)


def _error_lines(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in out.stderr.splitlines() if ln.startswith("n2react: error:")]


@pytest.mark.slow
def test_a_killed_run_resumes_in_its_parent_run_with_uninterrupted_metrics(
    tmp_path: Path, n2react_runs
) -> None:
    killed = tmp_path / "killed"
    _start_and_kill(tmp_path, killed)
    assert not (killed / "summary.json").exists()  # it really stopped half-way
    assert not (killed / "folds" / "fold_04" / "fold.json").exists()
    parents, _ = n2react_runs(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "RUNNING"
    run_id = parents[0].info.run_id
    started_as = parents[0].info.run_name, parents[0].data.tags["overrides"]

    # another config is refused in one line, and nothing is logged
    out = _train(tmp_path, killed, f"resume={killed}", "search.max_trials=4")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    (line,) = _error_lines(out)
    assert "config differs" in line and "search.max_trials" in line, line

    # resumed by its MLflow run id: the same parent run, one child run per fold
    out = _train(tmp_path, tmp_path / "resumed", f"resume={run_id}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "outer folds [1, 2" in out.stdout + out.stderr  # read back, not recomputed
    parents, children = n2react_runs(tmp_path)
    assert [p.info.run_id for p in parents] == [run_id]
    assert parents[0].info.status == "FINISHED"
    assert sorted(int(c.data.tags["fold"]) for c in children) == [1, 2, 3, 4]
    assert all(c.info.status == "FINISHED" for c in children)
    # it keeps the name and overrides it was started with; the resumed folds carry them too
    assert (parents[0].info.run_name, parents[0].data.tags["overrides"]) == started_as
    assert {c.data.tags["overrides"] for c in children} == {started_as[1]}
    assert f"MLflow run '{started_as[0]}' resumed" in out.stdout + out.stderr
    assert not (tmp_path / "resumed" / "summary.json").exists()  # outputs went to the run's dir

    # an uninterrupted run (own store) gives exactly the same figures
    full = tmp_path / "full"
    out = _train(full, full / "run")
    assert out.returncode == 0, out.stderr[-2000:]
    resumed = json.loads((killed / "summary.json").read_text())
    assert resumed == json.loads((full / "run" / "summary.json").read_text())
    assert parents[0].data.metrics["mean_test_rmse"] == resumed["mean_test_rmse"]
    oof = [pd.read_csv(d / "oof_predictions.csv") for d in (killed, full / "run")]
    pd.testing.assert_frame_equal(*oof)

    # a finished run is not resumed again (by its directory this time)
    out = _train(tmp_path, killed, f"resume={killed}")
    assert out.returncode == 2
    (line,) = _error_lines(out)
    assert "already finished" in line and run_id in line
    assert len(n2react_runs(tmp_path)[0]) == 1


def test_folds_read_back_give_the_same_figures(
    make_cfg, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without MLflow: a run dir whose last fold is undone resumes to the same summary."""
    run_dir = tmp_path / "run"
    first = run(make_cfg(*QUICK, "tracking=none"), run_dir)
    (run_dir / "folds" / "fold_03" / "fold.json").unlink()  # as if killed inside fold 3
    (run_dir / "summary.json").unlink()
    with caplog.at_level("INFO", logger="n2react.run"):
        again = run(make_cfg(*QUICK, "tracking=none", f"resume={run_dir}"), tmp_path / "elsewhere")
    assert again == first
    # it said "(MLflow run none)", as if a run were named none
    assert f"resuming {run_dir} (no MLflow run)" in caplog.text
    assert json.loads((run_dir / "summary.json").read_text()) == first
    assert (run_dir / "folds" / "fold_03" / "fold.json").exists()


def test_a_run_folder_used_again_resumes_its_latest_run(
    make_cfg, tmp_path: Path, n2react_runs
) -> None:
    """A folder trained into twice holds the second run's files: when that one stopped
    part-way, resume=<folder> continues it, whatever became of the first run there."""
    from mlflow.tracking import MlflowClient

    run_dir = tmp_path / "run"
    run(make_cfg(*QUICK), run_dir)  # FINISHED
    first = run(make_cfg(*QUICK), run_dir)  # the same folder again, then as if killed in fold 3
    (parent, earlier), _ = n2react_runs(tmp_path)  # newest first
    MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").set_terminated(parent.info.run_id, "KILLED")
    (run_dir / "folds" / "fold_03" / "fold.json").unlink()
    (run_dir / "summary.json").unlink()
    again = run(make_cfg(*QUICK, f"resume={run_dir}"), tmp_path / "elsewhere")
    assert again == first
    parents, _ = n2react_runs(tmp_path)
    status = {p.info.run_id: p.info.status for p in parents}
    assert status == {parent.info.run_id: "FINISHED", earlier.info.run_id: "FINISHED"}


def test_a_fresh_run_in_a_used_folder_resumes_nothing_of_the_earlier_run(
    make_cfg, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same hydra.run.dir again, with other folds: the earlier run's searches are not
    resumed (their trials were scored on other folds) and its fourth fold is not left as a
    fold model of this run; the figures equal those of a fresh folder."""
    search = ("model=svr", "search=random", "search.max_trials=2", "cv.inner_folds=2")
    over = (*search, "explain=false", "tracking=none")
    run(make_cfg(*over, "cv.outer_folds=4", "seed=1"), tmp_path / "used")
    with caplog.at_level("INFO", logger="n2react"):
        again = run(make_cfg(*over, "cv.outer_folds=3", "seed=2"), tmp_path / "used")
    assert "resuming the search" not in caplog.text
    assert "held an earlier run" in caplog.text
    assert not (tmp_path / "used" / "folds" / "fold_04").exists()
    assert again == run(make_cfg(*over, "cv.outer_folds=3", "seed=2"), tmp_path / "fresh")


def test_a_fresh_run_under_way_in_a_used_folder_shows_none_of_the_earlier_runs_results(
    make_cfg, tmp_path: Path
) -> None:
    """Started again in the same folder (another model), the run kept the earlier run's
    summary.json, oof_predictions.csv and model.skops until it finished: `n2react compare`
    compared the earlier run's figures as this run's (0 [0, 0] against its twin), predict
    loaded the earlier model under this run's config, and a stop part-way was not refused as
    unfinished. They are removed when the fresh run starts, as its folds/ and search/ are."""
    from n2react.compare import load_oof
    from n2react.plan import build_plan
    from n2react.run_setup import prepare_folder

    used = tmp_path / "used"
    run(make_cfg("model=ridge", "cv.outer_folds=3", "explain=false", "tracking=none"), used)
    assert (used / "model.skops").is_file() and (used / "oof_predictions.csv").is_file()
    cfg = make_cfg("model=extra_trees", "cv.outer_folds=3", "explain=false", "tracking=none")
    prepare_folder(build_plan(cfg), used, [], None)  # the fresh run's start, before its folds
    left = {p.name for p in used.iterdir()}
    assert not left & {"summary.json", "oof_predictions.csv", "model.skops", "domain.skops",
                       "model.skops.sha256", "uncertainty.json"}  # fmt: skip
    with pytest.raises(N2ReactError, match="no oof_predictions.csv"):
        load_oof(str(used), "sqlite:///unused.db")


def test_a_fresh_run_over_a_run_that_stopped_part_way_is_refused(make_cfg, tmp_path: Path) -> None:
    """Started again in the folder of a run that stopped before its outer folds were done (no
    resume=), the run is refused and that run's finished folds are kept for resume=."""
    run_dir = tmp_path / "run"
    run(make_cfg(*QUICK, "tracking=none"), run_dir)
    (run_dir / "summary.json").unlink()  # as if killed in the last outer fold
    kept = sorted(p.name for p in (run_dir / "folds").iterdir())
    with pytest.raises(ConfigError, match=f"resume={run_dir} continues it"):
        run(make_cfg(*QUICK, "tracking=none", "seed=3"), run_dir)
    assert sorted(p.name for p in (run_dir / "folds").iterdir()) == kept == [
        "fold_01", "fold_02", "fold_03"
    ]  # fmt: skip
    assert run(make_cfg(*QUICK, "tracking=none", f"resume={run_dir}"), tmp_path / "else")


def test_a_resume_into_a_new_parent_run_logs_the_folds_read_back(
    make_cfg, tmp_path: Path, n2react_runs
) -> None:
    """A run whose MLflow run is gone (deleted in the UI while it ran) resumes into a new parent
    run; the folds read back from its folder got no fold run and no fold_models/ there, so the
    new run showed the scores of folds that MLflow did not hold."""
    from mlflow.tracking import MlflowClient

    run_dir = tmp_path / "run"
    cfg = make_cfg(*QUICK)
    run(cfg, run_dir)
    (run_dir / "summary.json").unlink()  # as if killed in the last outer fold
    client = MlflowClient(cfg.tracking.uri)
    (first,), old_children = n2react_runs(cfg.tracking.uri)
    for r in (first, *old_children):
        client.delete_run(r.info.run_id)
    run(make_cfg(*QUICK, f"resume={run_dir}"), tmp_path / "else")
    (parent,), children = n2react_runs(cfg.tracking.uri)
    assert parent.info.run_id != first.info.run_id
    assert parent.info.status == "FINISHED"
    assert sorted(c.data.tags["fold"] for c in children) == ["1", "2", "3"]
    assert all(c.info.status == "FINISHED" and "test_rmse" in c.data.metrics for c in children)
    models = [a.path for a in client.list_artifacts(parent.info.run_id, "fold_models")]
    assert models == [f"fold_models/fold_0{k}" for k in (1, 2, 3)]


def test_resume_refuses_another_config_and_a_finished_run(make_cfg, tmp_path: Path) -> None:
    off = tmp_path / "off"
    run(make_cfg(*QUICK, "tracking=none"), off)
    with pytest.raises(ConfigError, match=f"the run in {off} already finished"):  # no store
        run(make_cfg(*QUICK, "tracking=none", f"resume={off}"), tmp_path / "v")
    (off / "summary.json").unlink()  # as if it had stopped in its last outer fold
    with pytest.raises(ConfigError, match=r"config differs .* cv\.outer_folds \(3 there, 4 here\)"):
        run(make_cfg(*QUICK, "tracking=none", "cv.outer_folds=4", f"resume={off}"), tmp_path / "x")

    tracked = tmp_path / "tracked"
    run(make_cfg(*QUICK), tracked)
    with pytest.raises(ConfigError, match="already finished"):
        run(make_cfg(*QUICK, f"resume={tracked}"), tmp_path / "y")
    with pytest.raises(ConfigError, match="neither a run directory nor an MLflow run"):
        run(make_cfg(*QUICK, "resume=0123456789abcdef"), tmp_path / "z")
    with pytest.raises(ConfigError, match="not a run directory"):
        run(make_cfg(*QUICK, f"resume={tmp_path}"), tmp_path / "w")


def test_a_refused_resume_leaves_no_hydra_folder(make_cfg, tmp_path: Path) -> None:
    """A refused resume= left the new Hydra folder (.hydra/ and a log of one error line) behind
    in outputs/; like any run refused before its first output, it now leaves none, and the run
    it named keeps every file."""
    done = tmp_path / "done"
    run(make_cfg(*QUICK, "tracking=none"), done)
    files = sorted(p.relative_to(done) for p in done.rglob("*"))
    work = tmp_path / "work"
    work.mkdir()
    for target in (done, tmp_path / "nothing_here"):
        out = subprocess.run(
            [sys.executable, "-m", "train", *QUICK, "tracking=none", f"resume={target}"],
            cwd=work, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert len(_error_lines(out)) == 1
        assert not (work / "outputs").exists(), sorted(work.rglob("*"))
    # every file kept; the refused attempt went to the run's own log (made by run() here: none)
    after = {p.relative_to(done) for p in done.rglob("*")}
    assert after - set(files) == {Path("train.log")} and set(files) <= after
    assert "resumed by: python -m train" in (done / "train.log").read_text()


def test_a_search_state_cut_short_restarts_that_search(
    make_cfg, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """keras-tuner writes its search state in place: a run killed (or out of disk) while it
    wrote oracle.json left it cut short, and resume= then failed with a JSONDecodeError
    traceback. That search now starts afresh with a warning, and the figures are the same."""
    over = ("model=svr", "search=random", "search.max_trials=2", "cv.inner_folds=2", *QUICK)
    run_dir = tmp_path / "run"
    first = run(make_cfg(*over, "tracking=none"), run_dir)
    (run_dir / "folds" / "fold_03" / "fold.json").unlink()  # as if killed in fold 3's search
    (run_dir / "summary.json").unlink()
    oracle = run_dir / "search" / "outer_03" / "oracle.json"
    oracle.write_bytes(oracle.read_bytes()[:50])
    kept = (run_dir / "search" / "outer_02" / "oracle.json").read_bytes()
    with caplog.at_level("WARNING", logger="n2react.resume"):
        again = run(make_cfg(*over, "tracking=none", f"resume={run_dir}"), tmp_path / "else")
    assert again == first
    (line,) = [r.getMessage() for r in caplog.records if r.name == "n2react.resume"]
    assert f"{oracle} is unreadable" in line and "starts afresh" in line
    assert (run_dir / "search" / "outer_02" / "oracle.json").read_bytes() == kept


def test_an_interrupt_in_the_first_search_says_resume_keeps_its_trials(tmp_path: Path) -> None:
    """Ctrl-C in the first outer fold's search (no fold finished): the line said only
    "n2react: interrupted (SIGINT)", though resume= reloads the trials it finished."""
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "train", "model=ridge", "search=random", "search.max_trials=5000",
        "tracking=none", "explain=false", "progress=false", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while len(list((run_dir / "search" / "outer_01").glob("trial_*/trial.json"))) < 2:
            assert proc.poll() is None, "the run ended before it could be interrupted"
            assert time.time() < deadline, "the search never finished a trial"
            time.sleep(0.05)
        assert not (run_dir / "folds").exists()
    finally:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-1500:]
    assert err.strip().splitlines()[-1] == (
        "n2react: interrupted (SIGINT); the search trials it finished are kept: to continue, "
        f"run the same command plus resume={run_dir}"
    ), err[-1500:]


def test_a_resume_writes_only_into_the_resumed_folder_and_its_log_keeps_every_attempt(
    tmp_path: Path,
) -> None:
    """python -m train ... resume=<run dir> left a new Hydra folder (outputs/<date>/<time>/ with
    .hydra/ and train.log) in the working directory, and the run's own train.log kept only its
    first attempt. Now Hydra's folder is the resumed one: nothing new in the working directory,
    the run's .hydra/ as its start wrote it, and its train.log goes on after the earlier lines."""
    run_dir, work = tmp_path / "run", tmp_path / "work"
    work.mkdir()
    base = [sys.executable, "-m", "train", *QUICK, "tracking=none", "progress=false"]
    first = subprocess.run(
        [*base, f"hydra.run.dir={run_dir}"], cwd=tmp_path, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "folds" / "fold_03" / "fold.json").unlink()  # as if killed inside fold 3
    (run_dir / "summary.json").unlink()
    hydra_files = {p.name: p.read_bytes() for p in (run_dir / ".hydra").iterdir()}
    log_before = (run_dir / "train.log").read_text()
    again = subprocess.run(
        [*base, f"resume={run_dir}"], cwd=work, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert list(work.iterdir()) == []  # no outputs/<date>/<time>/
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert {p.name: p.read_bytes() for p in (run_dir / ".hydra").iterdir()} == hydra_files
    log = (run_dir / "train.log").read_text()
    assert log.startswith(log_before)  # nothing logged before is lost
    later = log[len(log_before) :].splitlines()
    assert "resumed by: python -m train" in later[0] and f"resume={run_dir}" in later[0]
    assert "resumed by" not in again.stderr  # the separator is the log file's alone
    assert any("fold 3: test r" in ln for ln in later)
    assert log.count("fold 3: test r") == 2  # both attempts' fold 3


def test_a_storage_failure_in_a_resumed_run_claims_kept_folds_only_when_there_are_some(
    make_cfg, tmp_path: Path
) -> None:
    """A disk failure during a run started with resume= said "its finished outer folds are kept"
    whether or not any were: it now says so only when the run's folder holds some, and gives the
    resume command either way."""
    import shutil

    run_dir = tmp_path / "run"
    run(make_cfg(*QUICK, "tracking=none"), run_dir)
    (run_dir / "summary.json").unlink()
    work = tmp_path / "work"
    work.mkdir()
    shutil.rmtree(run_dir / "folds")  # as if killed before its first fold finished
    (run_dir / "folds").mkdir()
    # fold 1's folder in the way: no fold finished; then fold 2's: fold 1 finishes first
    for finished, name in ((False, "fold_01"), (True, "fold_02")):
        blocked = run_dir / "folds" / name
        blocked.write_text("in the way\n")  # the fold's folder cannot be made: a disk failure
        out = subprocess.run(
            [sys.executable, "-m", "train", *QUICK, "tracking=none", f"resume={run_dir}"],
            cwd=work, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
        (line,) = _error_lines(out)
        assert f"{blocked}: File exists while writing the run's outputs" in line
        assert ("its finished outer folds are kept" in line) is finished, line
        assert line.endswith(f"once that is fixed, run the same command plus resume={run_dir}")
        blocked.unlink()


def test_a_resume_into_another_hydra_run_dir_is_refused(make_cfg, tmp_path: Path) -> None:
    """resume=<run dir> hydra.run.dir=<other>: the run went on in its own folder while this
    attempt's log went to the other one (its own train.log lacking it). Now one line, exit 2,
    nothing written; hydra.run.dir naming the run's own folder is not refused for it."""
    run_dir, other = tmp_path / "run", tmp_path / "other"
    run(make_cfg(*QUICK, "tracking=none"), run_dir)
    (run_dir / "summary.json").unlink()  # as if killed in the last outer fold
    files = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    base = [sys.executable, "-m", "train", *QUICK, "tracking=none", f"resume={run_dir}"]
    out = subprocess.run(
        [*base, f"hydra.run.dir={other}"], cwd=tmp_path, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 2 and out.stderr.strip() == (
        f"n2react: error: hydra.run.dir={other}: resume={run_dir} continues the run in "
        f"{run_dir}, where its log and outputs go; drop hydra.run.dir"
    ), out.stderr[-2000:]
    assert not other.exists() and not (tmp_path / "outputs").exists()
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == files

    from n2react.output_dirs import output_dir_problem

    assert output_dir_problem([*base[3:], f"hydra.run.dir={run_dir}/"], tmp_path) is None
    assert output_dir_problem(["-m", *base[3:], f"hydra.run.dir={other}"], tmp_path) is None
