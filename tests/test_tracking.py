"""MLflow layout: parent run, one child per outer fold, artifacts, statuses; SQLite and a server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from n2react.data import load_dataset
from n2react.errors import ConfigError
from n2react.run import run
from n2react.tracking import TAG_HOST, TAG_PID, prepare_experiment, terminate_stale_runs

FOLD_METRICS = {"test_r", "test_rmse", "test_mae", "test_r2", "train_r", "train_rmse"}
PARENT_METRICS = {"mean_test_r", "mean_test_rmse", "mean_test_mae", "mean_test_r2"}


def check_store(uri: str, cfg, n2react_runs) -> None:
    client = MlflowClient(uri)
    parents, children = n2react_runs(uri)
    assert len(parents) == 1 and len(children) == 10
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert PARENT_METRICS | {"std_test_r", "mean_train_r"} <= set(parent.data.metrics)
    assert parent.data.params["model.name"] == "ridge"
    assert parent.data.params["cv.outer_folds"] == "10"
    assert sorted(int(c.data.tags["fold"]) for c in children) == list(range(1, 11))
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
    cfg = make_cfg("model=ridge", "search=grid")
    metrics = run(cfg, tmp_path / "run")
    check_store(cfg.tracking.uri, cfg, n2react_runs)
    assert metrics["mean_test_r"] > 0.3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path: Path):
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination", str(tmp_path / "server-artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not start within 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_tracking_server_holds_the_same_layout(
    make_cfg, tmp_path: Path, mlflow_server, n2react_runs
) -> None:
    cfg = make_cfg("model=ridge", "search=grid", tracking_uri=mlflow_server)
    run(cfg, tmp_path / "run")
    check_store(mlflow_server, cfg, n2react_runs)


def test_failed_run_ends_failed_and_keeps_what_was_logged(make_cfg, tmp_path: Path) -> None:
    # a negative epsilon passes the config checks but SVR rejects it in the first trial
    cfg = make_cfg("model=svr", "search=grid", "model.space.epsilon.values=[-1.0]")
    with pytest.raises(ConfigError):
        run(cfg, tmp_path / "run")
    client = MlflowClient(cfg.tracking.uri)
    exp = client.get_experiment_by_name("n2react")
    runs = client.search_runs([exp.experiment_id])
    assert runs and all(r.info.status == "FAILED" for r in runs)
    assert "error" in runs[0].data.tags
    names = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert "config_resolved.yaml" in names


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
