"""The one line compare, explain and predict give of what is not a finished run, for the cases
the process tests (test_unfinished_runs.py) do not reach: a run folder without its
``.hydra/overrides.yaml``, an MLflow run stopped by Ctrl-C (KILLED), an overrides tag cut at its
length, a run id missing from a store named by MLFLOW_TRACKING_URI. Real folders and a real
sqlite store, no process started."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from n2react.jobs import MAX_OVERRIDES_TAG, JobInfo, tagged_overrides
from n2react.mlflow_runs import RunReader
from n2react.runstore import FOLD_FILE, FOLDS_DIR
from n2react.tracking import DEFAULT_URI
from n2react.unfinished import folder_problem, status_problem, store_problem


def _stopped_run(folder: Path, folds: int) -> Path:
    """A run folder as a run killed after ``folds`` outer folds leaves it (no summary, no
    out-of-fold table)."""
    for i in range(1, folds + 1):
        fold = folder / FOLDS_DIR / f"fold_{i:02d}"
        fold.mkdir(parents=True)
        (fold / FOLD_FILE).write_text("{}")
    return folder


def test_a_stopped_run_without_its_overrides_file_is_not_told_a_bare_resume(
    tmp_path: Path,
) -> None:
    # hydra.output_subdir=null writes no .hydra/: 'python -m train resume=<dir>' alone is
    # refused ('the config differs'), so the line must not offer it as the way to continue;
    # the folds done are those with their fold.json
    run = _stopped_run(tmp_path / "run", 2)
    (run / FOLDS_DIR / "fold_03").mkdir()  # killed inside fold 3: its fold.json not written
    line = folder_problem(run, "explain it")
    assert line == (
        f"{run}: its run has not finished (2 outer fold(s) done so far: still running, or "
        f"stopped part-way); explain it once it has finished (python -m train <its overrides> "
        f"resume={run} continues a stopped run)"
    )
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text("- model=svr\n- ++resume=old\n- seed=3\n")
    line = folder_problem(run, "explain it")
    assert line is not None and f"(python -m train model=svr seed=3 resume={run} " in line


def test_a_killed_mlflow_run_is_said_to_be_stopped_part_way(tmp_path: Path) -> None:
    # Ctrl-C ends a run KILLED, and so does a dead process's RUNNING run once marked
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run("0", tags={"overrides": "model=svr seed=3"})
    client.set_terminated(run.info.run_id, status="KILLED")
    record = RunReader(uri).run(run.info.run_id)
    assert status_problem(record, "explain it") == (
        f"MLflow run {run.info.run_id} is KILLED (stopped part-way): it has no "
        "oof_predictions.csv before its outer folds are done; explain it once it has finished "
        f"(python -m train model=svr seed=3 resume={run.info.run_id} continues a KILLED or "
        "FAILED run)"
    )


def test_an_overrides_tag_cut_at_its_length_gives_no_command() -> None:
    # the tag keeps MAX_OVERRIDES_TAG characters: the last override is cut, so the command
    # built from it would continue the run with another config
    overrides = [f"model.estimator.alpha_{i}=1.0" for i in range(400)]
    tags = JobInfo.from_overrides("ridge", overrides).tags()
    assert len(tags["overrides"]) == MAX_OVERRIDES_TAG
    assert tagged_overrides(tags) is None
    whole = JobInfo.from_overrides("ridge", overrides[:10]).tags()
    assert tagged_overrides(whole) == overrides[:10]


def test_a_missing_run_in_the_store_mlflow_tracking_uri_names_is_not_the_default_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MlflowException) as caught:
        MlflowClient(DEFAULT_URI).get_run("0" * 32)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert store_problem(caught.value, DEFAULT_URI) == (
        f"no such run in {DEFAULT_URI} (the default store; name yours with --tracking-uri)"
    )
    # the user named this store: it is theirs, not the default one left by want of any
    monkeypatch.setenv("MLFLOW_TRACKING_URI", DEFAULT_URI)
    assert store_problem(caught.value, DEFAULT_URI) == f"no such run in {DEFAULT_URI}"
