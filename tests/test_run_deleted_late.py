"""A run's MLflow run deleted in the UI late, once its scores are written (during its final
model or explain): ``python -m train`` and a sweep's job, run as commands, each held by a
sitecustomize in the child python until the test has deleted its run. Split from
test_tracking_details.py (the tracker's own handling of a deleted run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from deleted_run_helpers import delete_when, paused_env, train_deleted_at


def _late_files(run_dir: Path) -> None:
    """What a run writes after its folds: scores, the final model, explain's figures."""
    for name in ("summary.json", "oof_predictions.csv", "model.skops", "final_params.json"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "explain").glob("*.png")), "no explain figure"


CLI = [sys.executable, "-m", "train", "cv.outer_folds=2", "explain=true", "final_model=true",
       "progress=false"]  # fmt: skip


@pytest.mark.slow
def test_a_run_deleted_during_its_final_model_or_explain_ends_in_one_line(tmp_path: Path) -> None:
    """python -m train, its MLflow run deleted once its scores are written (during the final
    model's refit or explain): "n2react: error: the MLflow store failed: The run ... must be
    in the 'active' state", and a resume hint "once that is fixed". Now the run writes all its
    files, then says the deletion in one line, exit status 2 as when it stops before a fold run;
    the store holds no other run."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    cli = [*CLI, "model=ridge"]
    run_id, uri, run_dir, err = train_deleted_at(cli, tmp_path, "summary.json")
    assert "MlflowException" not in err and "active' state" not in err, err[-2000:]
    errors = [ln for ln in err.splitlines() if ln.startswith("n2react: error:")]
    assert errors == [
        f"n2react: error: MLflow run {run_id} was deleted in the store while it ran: nothing more "
        "is logged; its 2 fold runs stay in the store, listed on their own (delete them in the "
        f"MLflow UI if unwanted); its files are complete in the run folder {run_dir}; "
        f"resume={run_dir} logs it again in a new MLflow run"
    ], err[-2000:]
    _late_files(run_dir)
    client = MlflowClient(uri)
    runs = client.search_runs(["0", "1"], run_view_type=ViewType.ALL)
    assert len(runs) == 3  # the parent and its 2 fold runs
    assert {r.info.run_id: r.info.lifecycle_stage for r in runs}[run_id] == "deleted"
    assert all(r.info.status == "FINISHED" for r in runs if r.info.run_id != run_id)


@pytest.mark.slow
def test_a_sweep_jobs_run_deleted_late_is_ranked_by_its_scores(tmp_path: Path) -> None:
    """A sweep (model=ridge,svr) whose first job's MLflow run is deleted during its final model
    or explain: that job writes its files and ends in one line, the next job runs, finishes and
    is ranked in its own (not nested) run, no traceback, nothing the store still shows is left
    RUNNING. The leaderboard listed the first job as "failed", unranked, though its scores stand
    in its folder; it ranks it by them now, its status and last line saying the deletion."""
    import pandas as pd
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    sweep = tmp_path / "sweep"
    cmd = [*CLI, "model=ridge,svr", f"tracking.uri={uri}", f"hydra.sweep.dir={sweep}", "-m"]
    log = tmp_path / "stderr.txt"  # a file, not a pipe: a full pipe would stall the sweep
    with log.open("w") as stderr:
        env = paused_env(sweep / "0_ridge" / "summary.json", tmp_path)
        job = subprocess.Popen(cmd, cwd=tmp_path, stderr=stderr, text=True, env=env)
        try:
            run_id = delete_when(tmp_path, uri, job, job_tag="0")
            job.wait(timeout=600)
        finally:
            job.kill()
    err = log.read_text()
    assert job.returncode == 1 and "Traceback" not in err, err[-2000:]  # its record is gone
    errors = [ln for ln in err.splitlines() if ln.startswith("n2react: error:")]
    assert len(errors) == 2 and "failed" not in errors[1], err[-2000:]
    assert errors[0].startswith(f"n2react: error: job 0 (ridge): MLflow run {run_id} was deleted")
    assert errors[1] == (
        "n2react: error: the MLflow run of job 0 was deleted while it ran; its scores are ranked "
        f"in {sweep / 'leaderboard.csv'} from its folder (resume={sweep / '0_ridge'} logs it "
        "again in a new MLflow run)"
    )
    _late_files(sweep / "0_ridge")
    assert not (sweep / "0_ridge" / "job_failed.json").exists()
    board = pd.read_csv(sweep / "leaderboard.csv").set_index("job")
    summary = json.loads((sweep / "0_ridge" / "summary.json").read_text())
    assert (
        board.loc[0, "status"] == "done (MLflow run deleted)" and board.loc[1, "status"] == "done"
    )
    assert board.loc[0, "mean_test_rmse"] == pytest.approx(summary["mean_test_rmse"])
    best = board["mean_test_rmse"].idxmin()
    assert sorted(board["rank"]) == [1, 2] and board.loc[best, "rank"] == 1
    assert board.loc[0, "error"] == "MLflow run deleted after its folds; scores from its folder"
    note = json.loads((sweep / "0_ridge" / "mlflow_run_deleted.json").read_text())["error"]
    assert f"MLflow run {run_id} was deleted" in note  # the whole line kept in the job's folder
    title = (sweep / "leaderboard.md").read_text().splitlines()[0]
    assert title.endswith("2 jobs ranked by mean_test_rmse (1 whose MLflow run was deleted)")
    runs = MlflowClient(uri).search_runs(["0", "1"], run_view_type=ViewType.ALL)
    assert len(runs) == 6  # two parents, two fold runs each
    alive = [r for r in runs if r.info.lifecycle_stage == "active"]
    assert len(alive) == 5 and all(r.info.status == "FINISHED" for r in alive)
    (svr,) = [r for r in alive if r.data.tags.get("job") == "1" and r.info.run_name == "svr"]
    assert "mlflow.parentRunId" not in svr.data.tags
    assert svr.data.tags["leaderboard_rank"] == f"{board.loc[1, 'rank']:02d}"


@pytest.mark.slow
def test_a_best_job_whose_run_was_deleted_late_then_resumed(tmp_path: Path) -> None:
    """The best job's MLflow run deleted after its folds: the leaderboard files went to that
    (missing) run, i.e. to none, and its error column held the whole 'RunDeleted: ...' line.
    Now they go to the best ranked job that has a run (the log says so) and the column holds a
    short note; resume=<its folder> drops mlflow_run_deleted.json and logs it in a new run."""
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from n2react.sweep_ranking import RUN_DELETED_FILE, RUN_DELETED_NOTE

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    sweep, job0 = tmp_path / "sweep", tmp_path / "sweep" / "0_ridge"
    common = ["-m", "train", "cv.outer_folds=2", "explain=false", "final_model=false",
              "progress=false", "model=ridge", f"tracking.uri={uri}"]  # fmt: skip
    cmd = [sys.executable, *common, "model.estimator.alpha=0.1,1e6", f"hydra.sweep.dir={sweep}"]
    log = tmp_path / "stderr.txt"  # a file, not a pipe: a full pipe would stall the sweep
    with log.open("w") as stderr:  # job 0 (alpha 0.1) is the best; alpha 1e6 predicts the mean
        env = paused_env(job0 / "summary.json", tmp_path)
        job = subprocess.Popen(  # the sweep's own lines go to stdout
            [*cmd, "-m"], cwd=tmp_path, stdout=stderr, stderr=stderr, text=True, env=env
        )
        try:
            deleted = delete_when(tmp_path, uri, job, job_tag="0")
            job.wait(timeout=300)
        finally:
            job.kill()
    err = log.read_text()
    assert job.returncode == 1 and "Traceback" not in err, err[-2000:]
    board = pd.read_csv(sweep / "leaderboard.csv").set_index("job")
    assert board.loc[0, "rank"] == 1 and board.loc[0, "status"] == "done (MLflow run deleted)"
    assert board.loc[0, "error"] == RUN_DELETED_NOTE  # the whole line is in its folder's note
    assert deleted in json.loads((job0 / RUN_DELETED_FILE).read_text())["error"]
    assert (
        "leaderboard: the best job's (0) MLflow run was deleted while it ran: the leaderboard "
        "files are attached to the run of job 1 (rank 2), the best ranked job that has one"
    ) in err, err[-2000:]
    client = MlflowClient(uri)

    def parents() -> dict[str, str]:
        exp = client.get_experiment_by_name("n2react").experiment_id
        runs = client.search_runs([exp])  # the active ones: the deleted run is left out
        tags = [(r.info.run_id, r.data.tags) for r in runs]
        return {t["job"]: i for i, t in tags if "job" in t and "mlflow.parentRunId" not in t}

    def attached(run_id: str) -> set[str]:
        return {a.path for a in client.list_artifacts(run_id)} & {"leaderboard.csv"}

    assert set(parents()) == {"1"} and attached(parents()["1"]) == {"leaderboard.csv"}

    alone = [*common, "model.estimator.alpha=0.1", f"resume={job0}"]
    out = subprocess.run([sys.executable, *alone], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert not (job0 / RUN_DELETED_FILE).exists()
    assert "none was logged, or it was deleted); a new parent run is started" in out.stderr
    board = pd.read_csv(sweep / "leaderboard.csv").set_index("job")
    assert list(board["status"]) == ["done", "done"] and board.loc[0, "rank"] == 1
    assert board["error"].isna().all()
    runs = parents()
    assert set(runs) == {"0", "1"} and runs["0"] != deleted  # a new run, ranked and holding them
    run = client.get_run(runs["0"])
    assert run.info.status == "FINISHED" and run.data.tags["leaderboard_rank"] == "01"
    assert attached(runs["0"]) == {"leaderboard.csv"}
