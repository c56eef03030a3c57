"""MLflow layout: parent run, one child per outer fold, artifacts, statuses; SQLite and a server
(a store that cannot be used, or fails mid-run: tests/test_tracking_store_errors.py)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from n2react.data import load_dataset
from n2react.errors import ConfigError
from n2react.jobs import JobInfo, only_swept, run_name, sweep_axes
from n2react.mlflow_tracking import TAG_HOST, TAG_PID, prepare_experiment, terminate_stale_runs
from n2react.run import run

FOLD_METRICS = {"test_r", "test_rmse", "test_mae", "test_r2", "train_r", "train_rmse"}
PARENT_METRICS = {"mean_test_r", "mean_test_rmse", "mean_test_mae", "mean_test_r2"}


def check_store(uri: str, cfg, n2react_runs) -> None:
    client = MlflowClient(uri)
    parents, children = n2react_runs(uri)
    n_folds = int(cfg.cv.outer_folds)
    assert len(parents) == 1 and len(children) == n_folds
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert PARENT_METRICS | {"std_test_r", "mean_train_r"} <= set(parent.data.metrics)
    assert parent.data.params["model.name"] == "ridge"
    assert parent.data.params["cv.outer_folds"] == str(n_folds)
    # params: the keys runs are compared by, not the config's plumbing (that is an artifact)
    plumbing = ("search.distributed.", "cv.inner.", "cv.outer.", "tracking.", "hydra.")
    assert not [k for k in parent.data.params if k.startswith(plumbing) or "_target_" in k]
    assert {"scaler.name", "search.name", "seed", "data.name", "model.estimator.alpha"} <= set(
        parent.data.params
    )
    assert len(parent.data.params) <= 30
    assert parent.data.params["uncertainty.difficulty"] == "knn_residual"
    # a one-line description of the run in the UI
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("ridge (alpha=") and f"{n_folds} outer folds" in note
    assert "\n" not in note
    assert sorted(int(c.data.tags["fold"]) for c in children) == list(range(1, n_folds + 1))
    for c in children:
        assert c.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert FOLD_METRICS <= set(c.data.metrics)
        assert "best.model__alpha" in c.data.params and "selected_features" in c.data.params
        assert c.info.status == "FINISHED"
        assert "trials.csv" in {a.path for a in client.list_artifacts(c.info.run_id)}
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"oof_predictions.csv", "parity.png", "config_resolved.yaml"} <= names
    oof_path = client.download_artifacts(parent.info.run_id, "oof_predictions.csv")
    import pandas as pd

    oof = pd.read_csv(oof_path)
    assert list(oof.columns) == ["cluster", "y_true", "y_pred", "fold"] and len(oof) == 159
    # the final model comes back through MLflow with its signature and predicts like the original
    model_uri = parent.data.tags["model_uri"]
    mlflow.set_tracking_uri(uri)
    loaded = mlflow.pyfunc.load_model(model_uri)
    assert loaded.metadata.signature is not None
    ds = load_dataset(cfg.data)
    pred = loaded.predict(ds.X.head(10))
    assert np.all(np.isfinite(pred)) and len(pred) == 10


def test_sqlite_store_holds_parent_children_and_artifacts(
    make_cfg, tmp_path: Path, n2react_runs
) -> None:
    cfg = make_cfg("model=ridge", "search=grid", "cv.outer_folds=4", "explain=false")
    metrics = run(cfg, tmp_path / "run")
    check_store(cfg.tracking.uri, cfg, n2react_runs)
    assert metrics["mean_test_r"] > 0.3


def test_a_repeated_runs_note_counts_folds_as_its_param_does(
    make_cfg, tmp_path: Path, n2react_runs
) -> None:
    # cv.outer_folds=3 cv.repeats=2: the param said 3 (folds per repeat) while the run's note
    # said "6 outer folds"
    cfg = make_cfg(
        "model=ridge", "data=homonuclear_15", "cv.outer_folds=3", "cv.repeats=2",
        "final_model=false", "explain=false", "uncertainty.enabled=false",
    )  # fmt: skip
    run(cfg, tmp_path / "run")
    (parent,), children = n2react_runs(cfg.tracking.uri)
    assert len(children) == 6
    assert parent.data.params["cv.outer_folds"] == "3" and parent.data.params["cv.repeats"] == "2"
    note = parent.data.tags["mlflow.note.content"]
    assert "; KFold (known families), 3 outer folds x 2 repeats; homonuclear_15" in note, note


@pytest.mark.slow
def test_tracking_server_holds_the_same_layout(
    make_cfg, tmp_path: Path, mlflow_server, n2react_runs, caplog, capfd
) -> None:
    cfg = make_cfg("model=ridge", "search=grid", "cv.outer_folds=4", tracking_uri=mlflow_server)
    job = JobInfo("ridge alpha=1", sweep="multirun/x", job=3)
    caplog.set_level(logging.INFO, logger="n2react")
    run(cfg, tmp_path / "run", job=job)
    # one link for the job, to its run page in the training-runs view; none of MLflow's own
    # "View run fold-NN" lines, and no download of the model just logged
    printed = capfd.readouterr()
    assert "View run" not in printed.out + printed.err
    assert "Downloading artifacts" not in printed.out + printed.err
    links = [r.getMessage() for r in caplog.records if r.getMessage().startswith("MLflow run")]
    assert len(links) == 1 and f"{mlflow_server}/#/experiments/" in links[0], links
    assert links[0].endswith("?workflowType=machine_learning")
    # everything is read back over HTTP: the parent, its fold runs, an artifact, the model
    check_store(mlflow_server, cfg, n2react_runs)
    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("n2react")
    # a fresh experiment on the server proxies its artifacts into --artifacts-destination
    assert exp.artifact_location.startswith("mlflow-artifacts:")
    assert list((tmp_path / "server-artifacts").rglob("oof_predictions.csv"))
    parent = n2react_runs(mlflow_server)[0][0]
    assert parent.info.run_name == "ridge alpha=1"
    assert parent.data.tags["sweep"] == "multirun/x" and parent.data.tags["job"] == "3"
    assert not (tmp_path / "mlartifacts").exists()  # nothing written to a local path
    # an experiment whose artifacts live on a local path: a warning when met through the server
    client.create_experiment("local", artifact_location=(tmp_path / "elsewhere").as_uri())
    caplog.clear()
    prepare_experiment(mlflow_server, "local")
    assert any("a local path" in r.getMessage() for r in caplog.records)


def test_failed_run_ends_failed_and_keeps_what_was_logged(make_cfg, tmp_path: Path) -> None:
    # a precomputed kernel is a valid SVR setting (the config checks pass it), but the rows are
    # not a kernel matrix: SVR rejects them in the first trial
    cfg = make_cfg(
        "model=svr", "search=grid", "+model.space.kernel={type: choice, values: [precomputed]}"
    )
    with pytest.raises(ConfigError):
        run(cfg, tmp_path / "run")
    client = MlflowClient(cfg.tracking.uri)
    exp = client.get_experiment_by_name("n2react")
    runs = client.search_runs([exp.experiment_id])
    assert runs and all(r.info.status == "FAILED" for r in runs)
    assert "error" in runs[0].data.tags
    names = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert "config_resolved.yaml" in names


def test_a_run_deleted_while_it_ran_is_not_said_to_be_unanswered(tmp_path: Path, caplog) -> None:
    """Deleted in the UI mid-run, the run failed and n2react said 'the store did not answer; the
    next job ... marks it KILLED': the store had answered (the run is deleted), and no job can
    mark a deleted run. The warning now gives the store's answer."""
    from n2react.mlflow_tracking import MlflowTracker
    from n2react.tracking import Store

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    tracker = MlflowTracker(Store(uri))
    tracker.start({"seed": 1}, {})
    run_id = tracker.run_id
    MlflowClient(uri).delete_run(run_id)
    caplog.set_level(logging.WARNING, logger="n2react")
    tracker.finish("FAILED", "boom")
    assert mlflow.active_run() is None
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"MLflow run {run_id} could not be marked FAILED: "), warning
    assert "deleted" in warning and "did not answer" not in warning, warning


def test_runs_of_dead_processes_are_marked_killed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    exp_id = prepare_experiment(uri, "n2react")
    client = MlflowClient(uri)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = client.create_run(exp_id, tags={TAG_HOST: socket.gethostname(), TAG_PID: str(dead.pid)})
    alive = client.create_run(
        exp_id, tags={TAG_HOST: socket.gethostname(), TAG_PID: str(os.getpid())}
    )
    assert terminate_stale_runs(uri, exp_id) == 1
    assert client.get_run(stale.info.run_id).info.status == "KILLED"
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"


def test_run_names_say_what_differs() -> None:
    assert run_name("rfr") == "rfr"
    overrides = [
        "model=svr", "scaler=robust", "selector=kbest", "model.estimator.C=10.0",
        "tracking.uri=sqlite:///x.db", "progress=false", "final_model=false", "+sweep=grid",
        "model.space.C=null", "hydra.sweep.dir=/tmp/m",
    ]  # fmt: skip
    # values first, then the group choices by name; short enough for the MLflow runs table
    assert run_name("svr", overrides) == "svr C=10 robust kbest"
    named = run_name("svr", ["selector=none", "data.path=/a/b/new.xlsx"])
    assert named == "svr path=new"
    # eval.path named the run 'path=hete…' as if the training data were the scored file
    assert run_name("svr", ["eval.path=/d/FeV.xlsx"]) == "svr eval=FeV"
    assert run_name("svr", ["uncertainty.enabled=false"]) == "svr uncertainty=false"
    assert len(run_name("svr", [f"x{i}.y=1" for i in range(100)])) <= 30
    # explain=false (figures only) named 'rfr outer_folds=5 explain=fal…', hiding what differs
    assert run_name("rfr", ["cv.outer_folds=5", "explain=false"]) == "rfr outer_folds=5"
    # the full override list stays with the job (tag overrides)
    job = JobInfo.from_overrides("svr", overrides, job=3, shown=overrides[1:4])
    assert job.name == "svr C=10 robust kbest"
    assert job.tags()["overrides"] == " ".join(overrides) and job.tags()["job"] == "3"


def test_params_hold_the_interval_settings_the_interval_metrics_follow() -> None:
    """interval_coverage, interval_width and domain_* are logged, but no param said how the
    intervals were made: two runs differing only in uncertainty.* (experiment=new_compositions'
    calibration file, difficulty none) showed different figures on MLflow's Compare page with
    no param differing."""
    from omegaconf import OmegaConf

    from n2react.compose import compose_config
    from n2react.tracking import tracked_params

    def params(*overrides: str) -> dict:
        cfg = compose_config(list(overrides), {})
        return tracked_params(OmegaConf.to_container(cfg, resolve=True))

    plain = params("model=ridge")
    assert plain["uncertainty.difficulty"] == "knn_residual" and plain["uncertainty.k"] == 3
    assert plain["uncertainty.validation"] == "nested" and plain["uncertainty.coverage"] == 0.9
    assert "uncertainty.calibration_path" not in plain  # null: out-of-fold
    new = params("experiment=new_compositions")
    assert new["uncertainty.difficulty"] == "none"
    assert new["uncertainty.calibration_path"] == "heteronuclear-FeV-18-15features.xlsx"
    off = params("model=ridge", "uncertainty.enabled=false")
    assert [k for k in off if k.startswith("uncertainty.")] == ["uncertainty.enabled"]
    assert len(params("model=ridge", "search=grid")) <= 30


def test_an_axis_fixed_on_the_command_line_is_not_swept() -> None:
    """``+sweep=grid`` sweeps the model's ``sweep:`` axes and the scalers, but a value given on
    the command line wins (as in the sweeper): that key does not vary, so the name leaves it out
    (``keras_mlp n_layers=1 dropout=…`` named every job alike)."""
    command_line = ["model=keras_mlp", "+sweep=grid", "model.estimator.n_layers=1", "seed=3"]
    model_axes = {"model.estimator.n_layers": "1,2,3", "model.estimator.dropout": "0.0,0.2"}
    axes = sweep_axes({"scaler": "standard,robust"}, model_axes, command_line)
    job = ["scaler=robust", "model.estimator.n_layers=1", "model.estimator.dropout=0.2", "seed=3"]
    shown = only_swept(job, axes)
    assert shown == ["scaler=robust", "model.estimator.dropout=0.2"]
    assert run_name("keras_mlp", shown) == "keras_mlp dropout=0.2 robust"
    # the model's own entry wins over hydra.sweeper.params (keras_mlp fixes the scaler)
    assert (
        only_swept(["scaler=standard"], sweep_axes({"scaler": "a,b"}, {"scaler": "standard"}, []))
        == []
    )


def test_new_experiment_opens_on_training_runs_and_has_a_description(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    exp = MlflowClient(uri).get_experiment(prepare_experiment(uri, "n2react"))
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "nested cross-validation" in exp.tags["mlflow.note.content"]
    # an experiment created elsewhere without the kind gets it when n2react first uses it
    client = MlflowClient(uri)
    other = client.create_experiment("other")
    prepare_experiment(uri, "other")
    assert client.get_experiment(other).tags["mlflow.experimentKind"] == "custom_model_development"
