"""What a failing explanation leaves: the train task's run and the ``--out`` folders of
``python -m n2react.explain``."""

from __future__ import annotations

import json
import logging

import pytest

from n2react.errors import N2ReactError
from n2react.explain import explain_run
from n2react.run import run
from n2react.tracking import TAG_EXPLAIN_ERROR


def test_an_explain_that_fails_leaves_the_run_finished_with_its_results(
    make_cfg, n2react_runs, tmp_path, caplog
):
    """explain=true failing after the folds, scores and final model were saved and logged (here:
    a file already named explain/ in the run folder) marked the whole MLflow run FAILED and
    ended the command with an error. The run stands now: FINISHED, its metrics returned, and
    the failure is one warning line and an explain_error tag."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "explain").write_text("not a folder\n")
    cfg = make_cfg("model=ridge", "cv.outer_folds=3", "uncertainty.enabled=false")
    with caplog.at_level(logging.WARNING, logger="n2react.run"):
        summary = run(cfg, run_dir)
    assert summary["mean_test_r"] > 0.5
    assert (run_dir / "model.skops").is_file() and (run_dir / "summary.json").is_file()
    parents, children = n2react_runs(tmp_path)
    (parent,) = parents
    assert parent.info.status == "FINISHED" and len(children) == 3
    assert "error" not in parent.data.tags and "mean_test_r" in parent.data.metrics
    why = parent.data.tags[TAG_EXPLAIN_ERROR]
    assert f"{run_dir / 'explain'}: cannot create the folder" in why
    (line,) = [
        r.getMessage()
        for r in caplog.records
        if r.name == "n2react.run" and r.levelno == logging.WARNING
    ]
    assert line.startswith(f"explain failed: {why}; the run's results stand")
    assert f"python -m n2react.explain {run_dir}" in line


def test_a_refused_explain_removes_every_folder_it_made_and_no_other(make_cfg, tmp_path):
    """--out a/b/c (none of them there) refused after the folders were made (here: --groups
    naming no column) removed c and left a/b behind. Every folder it made goes now; the one
    that was there before stays."""
    cfg = make_cfg("model=ridge", "cv.outer_folds=3", "tracking=none", "explain=false",
                   "final_model=false", "uncertainty.enabled=false")  # fmt: skip
    run(cfg, tmp_path / "run")
    (tmp_path / "mine").mkdir()
    for out in (tmp_path / "mine" / "a" / "b" / "c", tmp_path / "run" / "explain"):
        with pytest.raises(N2ReactError, match="column:nope"):
            explain_run(tmp_path / "run", out_dir=out, groups="column:nope")
    assert {p.name for p in tmp_path.iterdir()} == {"mine", "run"}
    assert list((tmp_path / "mine").iterdir()) == []
    assert not (tmp_path / "run" / "explain").exists()  # the run's own default folder, made
    (tmp_path / "mine" / "a").mkdir()  # an --out whose parent is there: only the rest goes
    with pytest.raises(N2ReactError):
        explain_run(tmp_path / "run", out_dir=tmp_path / "mine" / "a" / "b", groups="column:nope")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["a"]
    assert list((tmp_path / "mine" / "a").iterdir()) == []


def test_an_explain_that_succeeds_into_the_run_clears_its_failure_note(make_cfg, tmp_path):
    """explain_failed.json (what a sweep's leaderboard shows) stayed after a later
    ``python -m n2react.explain RUN`` drew every figure into the run's own explain/; only a
    train run or resume= cleared it. Explained into the run's folder, it goes; explained into
    another --out, the run's own figures are still missing and it stays."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "explain").write_text("not a folder\n")  # training's explain fails
    cfg = make_cfg("model=ridge", "cv.outer_folds=3", "tracking=none", "final_model=false",
                   "uncertainty.enabled=false")  # fmt: skip
    run(cfg, run_dir)
    note = run_dir / "explain_failed.json"
    assert note.is_file()
    (run_dir / "explain").unlink()
    assert explain_run(run_dir, out_dir=tmp_path / "elsewhere")
    assert note.is_file()
    assert explain_run(run_dir)
    assert not note.exists() and (run_dir / "explain" / "parity_by_group.png").is_file()


def test_an_explain_that_succeeds_later_removes_the_runs_explain_error_tag(
    make_cfg, n2react_runs, tmp_path
):
    """The MLflow tag explain_error stayed on the run after a later ``python -m n2react.explain``
    drew every figure (of the run id, or into the run folder's own explain/), so the run still
    looked failed. It goes now, through the client with the run's id: no other run is started."""
    from mlflow.tracking import MlflowClient

    run_dir, uri = tmp_path / "run", f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir.mkdir()
    (run_dir / "explain").write_text("not a folder\n")  # training's explain fails
    cfg = make_cfg("model=ridge", "cv.outer_folds=3", "final_model=false",
                   "uncertainty.enabled=false")  # fmt: skip
    run(cfg, run_dir)
    (parent,) = n2react_runs(tmp_path)[0]
    run_id, client = parent.info.run_id, MlflowClient(uri)
    note = json.loads((run_dir / "explain_failed.json").read_text())
    assert note["mlflow_run_id"] == run_id and note["tracking_uri"] == uri
    (run_dir / "explain").unlink()
    assert explain_run(run_id, tracking_uri=uri, out_dir=tmp_path / "by_id")  # the run id
    assert TAG_EXPLAIN_ERROR not in client.get_run(run_id).data.tags
    client.set_tag(run_id, TAG_EXPLAIN_ERROR, "an earlier failure")
    assert explain_run(run_dir, out_dir=tmp_path / "elsewhere")  # not the run's own figures
    assert TAG_EXPLAIN_ERROR in client.get_run(run_id).data.tags
    assert explain_run(run_dir)  # the run folder's own explain/: its note, then its tag
    assert not (run_dir / "explain_failed.json").exists()
    assert TAG_EXPLAIN_ERROR not in client.get_run(run_id).data.tags
    assert explain_run(run_id, tracking_uri=uri, out_dir=tmp_path / "again")  # no tag: nothing
    parents, children = n2react_runs(tmp_path)
    assert [p.info.run_id for p in parents] == [run_id] and len(children) == 3
    assert client.get_run(run_id).info.status == "FINISHED"


def test_a_resume_whose_explain_succeeds_removes_the_runs_explain_error_tag(
    make_cfg, n2react_runs, tmp_path
):
    """resume= of a run whose explain had failed (the run killed after it, e.g. at its end)
    drew the figures and removed explain_failed.json, but the MLflow run it reopened kept its
    explain_error tag and still looked failed. The resume clears it as ``python -m
    n2react.explain`` does (n2react.explain.clear_explain_failure), in the same run."""
    from mlflow.tracking import MlflowClient

    run_dir, uri = tmp_path / "run", f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir.mkdir()
    (run_dir / "explain").write_text("not a folder\n")  # training's explain fails
    quick = ("model=ridge", "cv.outer_folds=3", "final_model=false", "uncertainty.enabled=false")
    run(make_cfg(*quick), run_dir)
    (parent,) = n2react_runs(tmp_path)[0]
    run_id, client = parent.info.run_id, MlflowClient(uri)
    assert TAG_EXPLAIN_ERROR in parent.data.tags
    client.set_terminated(run_id, "KILLED")  # as if killed once its explain had failed
    (run_dir / "explain").unlink()
    run(make_cfg(*quick, f"resume={run_dir}"), tmp_path / "unused")
    assert not (run_dir / "explain_failed.json").exists()
    assert (run_dir / "explain" / "parity_by_group.png").is_file()
    (again,) = n2react_runs(tmp_path)[0]
    assert again.info.run_id == run_id and again.info.status == "FINISHED"  # reopened, ended
    assert TAG_EXPLAIN_ERROR not in again.data.tags
