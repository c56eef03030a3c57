"""A sweep stopped or refused part-way: the jobs it never ran are listed as not run, an
interrupted or refused job says how to run it alone, and resume= of a job brings the sweep's
leaderboard up to date."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from leaderboard_helpers import _train
from mlflow.tracking import MlflowClient


@pytest.mark.slow
def test_a_sweep_job_finished_by_resume_updates_the_sweeps_leaderboard(tmp_path: Path) -> None:
    # resume= of a killed sweep job finished its run, but its sweep's leaderboard still listed
    # it as unfinished (or failed) and its MLflow run had no rank
    sweep = tmp_path / "multi"
    common = ["model=ridge", "cv.outer_folds=3", "final_model=false", "explain=false"]
    out = _train(tmp_path, *common, "progress=false", "seed=1,2", f"hydra.sweep.dir={sweep}", "-m")
    assert out.returncode == 0, out.stderr[-2000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = {int(r.data.tags["job"]): r for r in client.search_runs(["1"]) if "job" in r.data.tags}
    # job 1 as a killed job leaves it: no summary, its last fold undone, its run KILLED, no rank
    job = sweep / "1_ridge"
    (job / "summary.json").unlink()
    (job / "folds" / "fold_03" / "fold.json").unlink()
    (job / "job_failed.json").write_text('{"error": "the tracking server stopped answering"}\n')
    client.set_terminated(runs[1].info.run_id, "KILLED")
    for r in runs.values():
        client.delete_tag(r.info.run_id, "leaderboard_rank")
    (sweep / "leaderboard.csv").unlink()

    out = _train(tmp_path, *common, "seed=2", f"resume={job}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "the sweep's leaderboard is brought up to date" in out.stderr
    board = pd.read_csv(sweep / "leaderboard.csv")
    assert list(board["status"]) == ["done", "done"] and sorted(board["rank"]) == [1, 2]
    assert not (job / "job_failed.json").exists()
    after = {r.info.run_id: r for r in client.search_runs(["1"])}
    assert after[runs[1].info.run_id].info.status == "FINISHED"
    ranks = {after[r.info.run_id].data.tags.get("leaderboard_rank") for r in runs.values()}
    assert ranks == {"01", "02"}


@pytest.mark.slow
def test_an_interrupted_sweep_job_says_how_to_resume_it_alone(tmp_path: Path) -> None:
    # the line said "run the same command plus resume=<job dir>": the sweep's command (-m takes
    # no override after it, and with one put before it every job got the resume=, the others
    # refused) in a new sweep folder whose leaderboard called the resumed job unfinished
    import shlex
    import signal
    import time

    sweep = tmp_path / "multi"
    cmd = [sys.executable, "-m", "train", "model=gbr,ridge", "cv.outer_folds=5", "tracking=none",
           "final_model=false", "explain=false", "progress=false", f"hydra.sweep.dir={sweep}",
           "-m"]  # fmt: skip
    job = subprocess.Popen(cmd, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (sweep / "0_gbr" / "folds" / "fold_01" / "fold.json").exists():
            assert job.poll() is None and time.monotonic() < deadline, "no fold 1 to keep"
            time.sleep(0.05)
        job.send_signal(signal.SIGTERM)
        _, err = job.communicate(timeout=120)
    finally:
        job.kill()
    assert job.returncode == 130 and "Traceback" not in err, err[-2000:]
    (line,) = [ln for ln in err.splitlines() if ln.startswith("n2react: interrupted")]
    assert "run the same command" not in line, line
    alone = shlex.split(line.split("run this job alone: ", 1)[1])
    assert alone[:3] == ["python", "-m", "train"] and "-m" not in alone[3:], line
    assert "model=gbr" in alone and f"resume={sweep / '0_gbr'}" in alone, line
    out = _train(tmp_path, *alone[3:])  # the command as the line gives it
    assert out.returncode == 0, out.stderr[-2000:]
    board = pd.read_csv(sweep / "leaderboard.csv")
    # job 1 (ridge) never ran: listed as such, by its overrides, without a score
    assert list(board["status"]) == ["done", "not run"] and list(board["job"]) == [0, 1]
    assert board["overrides"].iloc[1].startswith("model=ridge") and pd.isna(board.iloc[1, 3])


def test_jobs_a_stopped_sweep_never_started_are_listed_as_not_run(tmp_path: Path) -> None:
    # a sweep stopped in job 0 ranked only the jobs with a folder: "1 job ranked", nothing said
    # that job 1 was planned and never ran
    from omegaconf import OmegaConf

    from n2react.leaderboard import _title, build_board
    from n2react.sweep_plan import planned_jobs

    task = ["model=ridge,extra_trees", "cv.outer_folds=3", "tracking=none"]
    OmegaConf.save(
        {"hydra": {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper."
                               "BasicSweeper", "params": None}, "overrides": {"task": task}}},
        tmp_path / "multirun.yaml",
    )  # fmt: skip
    assert planned_jobs(tmp_path) == {
        0: ["model=ridge", "cv.outer_folds=3", "tracking=none"],
        1: ["model=extra_trees", "cv.outer_folds=3", "tracking=none"],
    }
    job0 = tmp_path / "0_ridge" / ".hydra"
    job0.mkdir(parents=True)
    OmegaConf.save({"hydra": {"job": {"num": 0}}}, job0 / "hydra.yaml")
    OmegaConf.save(["model=ridge", "cv.outer_folds=3", "tracking=none"], job0 / "overrides.yaml")
    board = build_board(tmp_path, "mean_test_rmse", [], (None, task))
    assert list(board["status"]) == ["unfinished", "not run"]
    row = board.iloc[1]
    assert row["job"] == 1 and row["name"] == "extra_trees" and pd.isna(row["mean_test_rmse"])
    assert row["overrides"] == "model=extra_trees cv.outer_folds=3 tracking=none"
    assert _title(tmp_path, board, "m").endswith("(1 unfinished, 1 not run)")


@pytest.mark.slow
def test_a_sweep_stopped_by_ctrl_c_lists_the_jobs_it_never_ran(tmp_path: Path) -> None:
    # SIGINT in job 0 of two: no leaderboard at all, and nothing said job 1 never ran
    import signal

    sweep = tmp_path / "multi"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cmd = [sys.executable, "-m", "train", "model=extra_trees,ridge", "cv.outer_folds=3",
           "explain=false", "tracking=none", f"hydra.sweep.dir={sweep}", "-m"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, text=True, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)  # fmt: skip
    lines = []
    for line in proc.stderr:  # the data loaded: job 0 is training
        lines.append(line)
        if "clusters x" in line or "missing cell" in line:
            proc.send_signal(signal.SIGINT)
            break
    lines += proc.stderr.readlines()
    assert proc.wait(timeout=300) == 130, "".join(lines)[-2000:]
    assert any(ln.startswith("n2react: the sweep stopped before job 1 ran;") for ln in lines), lines
    board = pd.read_csv(sweep / "leaderboard.csv")
    assert list(board["status"]) == ["unfinished", "not run"]
    assert board["overrides"].iloc[1].startswith("model=ridge cv.outer_folds=3")
    assert "(1 unfinished, 1 not run)" in (sweep / "leaderboard.md").read_text().splitlines()[0]


@pytest.mark.slow
def test_a_sweep_job_its_store_refused_runs_again_alone_in_its_folder(tmp_path: Path) -> None:
    # a job refused because the tracking server did not answer ended with its one line and no
    # way back: resume= of its folder was "not a run directory", and a rerun by hand with
    # hydra.run.dir=<its folder> got no sweep/job tags and left the sweep's leaderboard saying
    # failed
    import shlex
    import socket

    with socket.socket() as s:  # a port nothing listens on: the server is down
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    sweep = tmp_path / "multi"
    common = ["model=ridge", "cv.outer_folds=3", "final_model=false", "explain=false",
              "progress=false"]  # fmt: skip
    out = _train(tmp_path, *common, "seed=1,2", f"tracking.uri={dead}", f"hydra.sweep.dir={sweep}",
                 "-m")  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    (line,) = [ln for ln in out.stderr.splitlines() if ln.startswith("n2react: error: job 1 ")]
    assert "no tracking server answers" in line and "once it answers, run this job alone" in line
    alone = shlex.split(line.split("run this job alone: ", 1)[1])
    job = sweep / "1_ridge"
    assert alone[:3] == ["python", "-m", "train"] and "-m" not in alone[3:], line
    assert "seed=2" in alone and alone[-1] == f"resume={job}", line

    out = _train(tmp_path, *alone[3:])  # the server still down: refused again, nothing lost
    assert out.returncode == 2 and "no tracking server answers" in out.stderr, out.stderr[-2000:]
    assert (job / "job_failed.json").is_file() and not (job / "config_resolved.yaml").exists()
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"  # the store answers (here: another one)
    alive = [f"tracking.uri={store}" if a.startswith("tracking.uri=") else a for a in alone[3:]]
    out = _train(tmp_path, *[a if a != "seed=2" else "seed=3" for a in alive])
    assert out.returncode == 2 and "resume: the config differs from" in out.stderr  # not job 1
    out = _train(tmp_path, *alive)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not (job / "job_failed.json").exists() and (job / "summary.json").is_file()
    board = pd.read_csv(sweep / "leaderboard.csv")
    assert list(board["job"]) == [1, 0] and list(board["status"]) == ["done", "failed"]
    (run,) = [r for r in MlflowClient(store).search_runs(["1"])
              if "mlflow.parentRunId" not in r.data.tags]  # fmt: skip
    tags = run.data.tags
    assert (tags["sweep"], tags["job"], tags["mlflow.runName"]) == (str(sweep), "1", "ridge seed=2")
    assert tags["leaderboard_rank"] == "01" and board["run_id"].iloc[0] == run.info.run_id
