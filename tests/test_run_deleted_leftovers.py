"""What is left of a run's MLflow run deleted while ``python -m train`` ran (its status, its fold
runs, explain's figures), staged with a real sqlite store and a real process held at a marker
file until the test has deleted the run (:mod:`deleted_run_helpers`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from deleted_run_helpers import train_deleted_at

CLI = [sys.executable, "-m", "train", "model=ridge", "data=homonuclear_15", "cv.outer_folds=3",
       "progress=false"]  # fmt: skip


@pytest.mark.slow
def test_explain_figures_are_not_logged_to_a_run_deleted_during_explain(tmp_path: Path) -> None:
    """The run deleted once explain has drawn its figures (the last one written), before they are
    logged: all ten went to the deleted run's artifacts (the artifact store does not ask the
    run's state) and the run ended with the deletion's line. Now none is logged; they stand in
    the run folder; the line is the same; the fold runs and what was logged before stay."""
    from mlflow.tracking import MlflowClient

    marker = "explain/residuals_by_family.png"
    run_id, uri, run_dir, err = train_deleted_at(CLI, tmp_path, marker, "explain=true")
    errors = [ln for ln in err.splitlines() if ln.startswith("n2react: error:")]
    assert len(errors) == 1, err[-2000:]
    assert errors[0].startswith(f"n2react: error: MLflow run {run_id} was deleted"), errors
    assert "its files are complete in the run folder" in errors[0]
    assert len(list((run_dir / "explain").glob("*.png"))) == 5  # drawn, kept in the folder
    client = MlflowClient(uri)
    logged = {a.path for a in client.list_artifacts(run_id)}
    assert "explain" not in logged, logged
    assert {"summary.json", "oof_predictions.csv", "model"} <= logged  # logged before: kept
    kids = client.search_runs(
        [client.get_run(run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
    )
    assert sorted(k.info.run_name for k in kids) == ["fold-01", "fold-02", "fold-03"]
    assert all(k.info.status == "FINISHED" for k in kids)


@pytest.mark.slow
def test_a_run_deleted_between_its_folds_names_the_fold_runs_it_leaves(tmp_path: Path) -> None:
    """The parent run deleted (alone, as the UI's "Delete selected" and the API do) after its
    first fold run: the run stopped before the next fold in one line, but said nothing of the
    fold run left in the store, listed on its own in the UI. The line now counts it; it is kept
    (the user deleted the parent only), FINISHED; no fold run is opened after the deletion. The
    parent stays RUNNING: MLflow refuses any change to a deleted run, its status included."""
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    run_id, uri, run_dir, err = train_deleted_at(CLI, tmp_path, "folds/fold_02/fold.json")
    errors = [ln for ln in err.splitlines() if ln.startswith("n2react: error:")]
    assert errors == [
        f"n2react: error: MLflow run {run_id} was deleted in the store while it ran: nothing more "
        "is logged; its 1 fold run stays in the store, listed on its own (delete it in the MLflow "
        f"UI if unwanted); the run folder {run_dir} keeps its finished outer folds; "
        f"resume={run_dir} continues it in a new MLflow run"
    ], err[-2000:]
    client = MlflowClient(uri)
    exp = client.get_run(run_id).info.experiment_id
    kids = client.search_runs(
        [exp], f"tags.mlflow.parentRunId = '{run_id}'", run_view_type=ViewType.ALL
    )
    assert [(k.info.run_name, k.info.status, k.info.lifecycle_stage) for k in kids] == [
        ("fold-01", "FINISHED", "active")
    ]
    assert client.get_run(run_id).info.status == "RUNNING"
    with pytest.raises(MlflowException, match="must be in the 'active' state"):
        client.set_terminated(run_id, "FAILED")
