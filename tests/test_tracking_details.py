"""MLflow details: credentials in a tracking URI, what a fold run of a grouped protocol held out,
the error line of a frozen server, a run deleted in the UI while it runs (before a fold run,
after the folds, as it ends; the commands whose run is deleted late: test_run_deleted_late.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from n2react.errors import first_line, shorten, storage_problem

FROZEN = (
    "API request to http://127.0.0.1:5000/api/2.0/mlflow/runs/log-batch failed with exception "
    "HTTPConnectionPool(host='127.0.0.1', port=5000): Max retries exceeded with url: "
    '/api/2.0/mlflow/runs/log-batch (Caused by ReadTimeoutError("HTTPConnectionPool(host='
    "'127.0.0.1', port=5000): Read timed out. (read timeout=60)\"))"
)


def test_a_long_error_line_is_cut_at_a_word_and_says_so() -> None:
    """A frozen server's error line ended mid-word: '... Read timed out. (read tim'."""
    line = first_line(RuntimeError(FROZEN), 250)
    assert len(line) <= 250 and line.endswith(" ...")
    assert FROZEN.startswith(line[: -len(" ...")]), line
    assert FROZEN[len(line) - len(" ...")] == " "  # the next character: a word ends there
    assert shorten("short", 10) == "short"


def test_a_frozen_server_is_said_to_have_stopped_answering(monkeypatch) -> None:
    """A server that accepts connections but never answers: the line says so, not a cut-off
    quote of MLflow's message (which also held the URI's password)."""
    from mlflow.tracking import MlflowClient

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    try:
        with pytest.raises(Exception) as caught:
            MlflowClient(f"http://alice:secret@127.0.0.1:{port}").get_run("0" * 32)
    finally:
        listener.close()
    message = storage_problem(caught.value)
    assert message == "the MLflow tracking server stopped answering (read timed out)", message


def test_a_grouped_fold_run_says_which_groups_it_held_out(
    make_cfg, tmp_path: Path, n2react_runs
) -> None:
    """A fold run of cv.groups=metal did not say which metals it held out (only
    oof_predictions.csv did): it has the tag held_out and a description saying so."""
    import pandas as pd

    from n2react.run import run

    cfg = make_cfg(
        "model=ridge", "cv.groups=metal", "cv.outer_folds=3", "final_model=false",
        "explain=false", "uncertainty.enabled=false",
    )  # fmt: skip
    run(cfg, tmp_path / "run")
    _, children = n2react_runs(cfg.tracking.uri)
    oof = pd.read_csv(tmp_path / "run" / "oof_predictions.csv")
    assert len(children) == 3
    for child in children:
        fold = int(child.data.tags["fold"])
        held = sorted(set(oof.loc[oof["fold"] == fold, "group"].astype(str)))
        assert child.data.tags["held_out"] == ", ".join(held)
        note = child.data.tags["mlflow.note.content"]
        assert f"held out metal {', '.join(held)}" in note, note


def test_a_long_held_out_list_is_cut_at_a_name() -> None:
    import numpy as np

    from n2react.results import HELD_OUT_LEN, held_out_tags
    from n2react.splitters import Split

    names = tuple(f"family_{i:03d}" for i in range(60))
    split = Split(2, 1, np.arange(5), np.arange(5, 65), held_out=names, grouped_by="family")
    tags = held_out_tags(split)
    assert len(tags["held_out"]) <= HELD_OUT_LEN
    assert tags["held_out"].startswith("family_000, family_001,")
    assert tags["held_out"].endswith(", ... (60 in all)"), tags["held_out"]
    assert "family_059" in tags["mlflow.note.content"]  # the description names them all
    assert held_out_tags(Split(1, 1, np.arange(3), np.arange(3, 5))) == {}


def test_a_run_deleted_while_it_runs_stops_before_its_next_fold_run(tmp_path: Path, caplog) -> None:
    """Deleted in the UI while it ran, the run went on opening fold runs under the deleted parent
    until logging to the parent failed; it now stops before the next fold run, in one line."""
    import logging

    import mlflow
    from mlflow.tracking import MlflowClient

    from n2react.errors import RunDeleted
    from n2react.mlflow_tracking import MlflowTracker
    from n2react.tracking import Store

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    tracker = MlflowTracker(Store(uri))
    tracker.start({"seed": 1}, {"run_dir": str(tmp_path / "run")})
    run_id = tracker.run_id
    tracker.log_fold(1, {"test_r": 0.5}, {}, {}, [])
    client = MlflowClient(uri)
    client.delete_run(run_id)
    with pytest.raises(RunDeleted) as caught:
        tracker.log_fold(2, {"test_r": 0.5}, {}, {}, [])
    message = str(caught.value)
    assert message.startswith(f"MLflow run {run_id} was deleted in the store while it ran")
    assert f"resume={tmp_path / 'run'}" in message and "\n" not in message
    children = client.search_runs(
        [tracker.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'"
    )
    assert [r.data.tags["fold"] for r in children] == ["1"]  # no fold run after the deletion
    caplog.set_level(logging.WARNING, logger="n2react")
    tracker.finish("FAILED", message)
    assert mlflow.active_run() is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # the error says it


def _all_runs(uri: str) -> list:
    """Every run of the store, deleted ones included."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    return client.search_runs(ids, run_view_type=ViewType.ALL)


def test_a_run_deleted_after_its_folds_writes_its_files_and_ends_in_one_line(
    tmp_path: Path, caplog
) -> None:
    """Deleted in the UI after the last fold check (during the final model's refit, the interval
    validation, explain), the run's next metric, tag or model raised MLflow's "must be in the
    'active' state" (a traceback in the run's late steps, or the store called failed), and
    ending it FINISHED raised it too. Now those calls log nothing and raise nothing, the run
    goes on writing its folder, and it ends in one RunDeleted line; no run is started."""
    import logging

    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LinearRegression

    from n2react.errors import RunDeleted
    from n2react.mlflow_tracking import MlflowTracker
    from n2react.tracking import Store

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    run_dir = tmp_path / "run"
    tracker = MlflowTracker(Store(uri))
    tracker.start({"seed": 1}, {"run_dir": str(run_dir)})
    run_id = tracker.run_id
    for fold in (1, 2):
        tracker.log_fold(fold, {"test_r": 0.5}, {}, {}, [])
    MlflowClient(uri).delete_run(run_id)
    caplog.set_level(logging.WARNING, logger="n2react")
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 0.0, 1.0]})
    note = tmp_path / "summary.json"
    note.write_text("{}")
    tracker.log_metrics({"mean_test_r": 0.5})  # the scores, the model, explain's files
    tracker.set_tags({"explain_error": "x"})
    tracker.log_artifact(note)
    assert tracker.log_curves({"final": {"loss": [1.0, 0.5]}}) == 0
    assert tracker.log_model(LinearRegression().fit(X, [0.0, 1.0, 2.0]), X) is None
    assert not tracker.active
    with pytest.raises(RunDeleted) as caught:
        tracker.finish("FINISHED")
    message = str(caught.value)
    assert message == (
        f"MLflow run {run_id} was deleted in the store while it ran: nothing more is logged; "
        "its 2 fold runs stay in the store, listed on their own (delete them in the MLflow UI if "
        f"unwanted); its files are complete in the run folder {run_dir}; resume={run_dir} logs "
        "it again in a new MLflow run"
    )
    assert mlflow.active_run() is None  # a sweep's next job does not nest under it
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # the error says it
    runs = _all_runs(uri)
    assert len(runs) == 3  # the parent and its two fold runs: no run was started
    (parent,) = [r for r in runs if r.info.run_id == run_id]
    assert parent.info.lifecycle_stage == "deleted"
    assert "mean_test_r" not in parent.data.metrics and "explain_error" not in parent.data.tags
    assert all(r.info.status == "FINISHED" for r in runs if r is not parent)


def test_a_run_deleted_just_before_it_ends_says_so_in_one_line(tmp_path: Path, caplog) -> None:
    """Deleted after its last logging call, the run's end (mlflow.end_run FINISHED) raised
    MLflow's "must be in the 'active' state"; it ends in the RunDeleted line now. A run deleted
    and then failed for another reason says the deletion in one warning beside its error."""
    import logging

    import mlflow
    from mlflow.tracking import MlflowClient

    from n2react.errors import RunDeleted
    from n2react.mlflow_tracking import MlflowTracker
    from n2react.tracking import Store

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    tracker = MlflowTracker(Store(uri))
    tracker.start({"seed": 1}, {})
    run_id = tracker.run_id
    MlflowClient(uri).delete_run(run_id)
    with pytest.raises(
        RunDeleted, match=f"^MLflow run {run_id} was deleted in the store"
    ) as caught:
        tracker.finish("FINISHED")
    assert "fold run" not in str(caught.value)  # it opened none: no "0 fold runs stay" said
    assert mlflow.active_run() is None
    other = MlflowTracker(Store(uri))
    other.start({"seed": 2}, {})
    MlflowClient(uri).delete_run(other.run_id)
    other.log_metrics({"mean_test_r": 0.5})  # refused: the run was deleted
    caplog.set_level(logging.WARNING, logger="n2react")
    other.finish("FAILED", "ValueError: boom")
    assert mlflow.active_run() is None
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "was deleted in the store while it ran: nothing more was logged" in warning
    # noticed by a refused call before its folds: the next fold run is not opened
    early = MlflowTracker(Store(uri))
    early.start({"seed": 3}, {"run_dir": str(tmp_path / "early")})
    MlflowClient(uri).delete_run(early.run_id)
    early.set_tags({"x": "1"})
    with pytest.raises(RunDeleted, match="keeps its finished outer folds"):
        early.log_fold(1, {"test_r": 0.5}, {}, {}, [])
    early.finish("FAILED", "RunDeleted: ...")
    assert mlflow.active_run() is None
    assert len(_all_runs(uri)) == 3


def test_a_password_in_a_uri_is_hidden_in_what_n2react_says() -> None:
    from n2react.credentials import redact
    from n2react.errors import StoreUnavailable
    from n2react.store_uri import check_uri

    assert (
        redact("tracking.uri=http://alice:secret@h:5000/x")
        == "tracking.uri=http://alice:***@h:5000/x"
    )
    assert redact("postgresql://mlflow:pw@db/mlflow") == "postgresql://mlflow:***@db/mlflow"
    assert redact("http://h:5000 and sqlite:///a.db") == "http://h:5000 and sqlite:///a.db"
    with pytest.raises(StoreUnavailable) as caught:  # nothing listens on port 1
        check_uri("http://alice:secret@127.0.0.1:1", "n2react")
    assert "alice:***@127.0.0.1:1" in str(caught.value) and "secret" not in str(caught.value)


@pytest.mark.slow
def test_a_password_in_the_tracking_uri_is_stored_and_printed_as_stars(tmp_path: Path) -> None:
    """tracking.uri=http://alice:secret@host stored the password in the overrides tag and
    config_resolved.yaml and printed it in the run's link (terminal and train.log): all read
    alice:***@ now. Hydra's own .hydra/ files keep what the command line said."""
    import yaml
    from conftest import start_mlflow_server
    from mlflow.tracking import MlflowClient

    from n2react.resume import check_same_config

    server, url = start_mlflow_server(tmp_path)
    secret_url = url.replace("http://", "http://alice:secret@")
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "train", "progress=false", f"hydra.run.dir={run_dir}",
        f"tracking.uri={secret_url}", "model=ridge", "cv.outer_folds=2", "explain=false",
        "final_model=false", "uncertainty.enabled=false",
    ]  # fmt: skip
    try:
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-1500:]
        client = MlflowClient(url)
        exp = client.get_experiment_by_name("n2react")
        runs = client.search_runs([exp.experiment_id])
    finally:
        os.killpg(server.pid, 9)
        server.wait()
    printed = done.stdout + done.stderr
    assert "secret" not in printed and "alice:***@" in printed  # the run's link
    assert "alice:***@" in (run_dir / "train.log").read_text()
    for f in run_dir.rglob("*"):
        if f.is_file() and ".hydra" not in f.parts and f.suffix in (".yaml", ".json", ".log"):
            assert "secret" not in f.read_text(errors="replace"), f
    assert "secret" in (run_dir / ".hydra" / "overrides.yaml").read_text()  # Hydra's own
    assert len(runs) == 3
    for r in runs:
        assert "secret" not in repr(r.data.tags) + repr(r.data.params), r.info.run_name
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert (
        f"tracking.uri={url.replace('http://', 'http://alice:***@')}"
        in parent.data.tags["overrides"]
    )
    # resuming with the same URI is the same config (the file holds it with ***)
    config = yaml.safe_load((run_dir / "config_resolved.yaml").read_text())
    assert config["tracking"]["uri"] == url.replace("http://", "http://alice:***@")
    config["tracking"]["uri"] = secret_url
    check_same_config(run_dir, config)
