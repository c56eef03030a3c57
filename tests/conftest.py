"""Shared fixtures: the real data folder, and configs composed with Hydra's compose API."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, open_dict

from n2react.compose import compose_config

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    env = os.environ.get("N2_DATA_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "data" / "cluster_n2"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the tests marked ``slow`` first (each file's own order kept otherwise).

    With ``--dist worksteal`` every worker starts on its share of the queue and an idle worker
    takes the tail of a busy one's; long tests at the head and short ones at the tail leave no
    worker finishing a long end-to-end case alone at the end of the run.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = data_dir()
    if not (d / "homonuclear-159-24features.xlsx").exists():
        pytest.fail(f"the shared data set is missing: set N2_DATA_DIR (looked in {d})")
    return d


@pytest.fixture(autouse=True)
def _data_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point every test at the shared data and a private download cache (never the network)."""
    monkeypatch.setenv("N2_DATA_DIR", str(data_dir()))
    monkeypatch.setenv("N2_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose the project config with overrides; MLflow goes to a SQLite file in tmp_path."""

    def _make(*overrides: str, tracking_uri: str | None = None) -> DictConfig:
        cfg = compose_config(overrides)
        with open_dict(cfg):
            if tracking_uri is not None or cfg.tracking.uri == "sqlite:///mlflow.db":
                cfg.tracking.uri = tracking_uri or f"sqlite:///{tmp_path / 'mlflow.db'}"
            cfg.progress = False
        return cfg

    return _make


RunLists = tuple[list, list]


def _n2react_runs(uri: str | Path, filter_string: str = "") -> RunLists:
    """(parent runs, fold child runs) of experiment n2react in the store at ``uri`` (a URI or a
    folder holding mlflow.db)."""
    from mlflow.tracking import MlflowClient

    if isinstance(uri, Path):
        uri = f"sqlite:///{uri / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("n2react")
    runs = client.search_runs([exp.experiment_id], filter_string=filter_string)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


@pytest.fixture(scope="session")
def n2react_runs() -> Callable[..., RunLists]:
    """``n2react_runs(uri_or_folder, filter_string="")`` -> (parent runs, fold child runs)."""
    return _n2react_runs


def compose_data(name: str) -> dict[str, Any]:
    """The composed ``data`` node of option ``name`` (with its shared base), resolved into the
    plain dict the train task hands to load_dataset (``Plan.data``)."""
    from omegaconf import OmegaConf

    cfg = compose_config([f"data={name}"])
    return dict(OmegaConf.to_container(cfg.data, resolve=True))  # type: ignore[arg-type]


def _into_closed_pipe(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> Any:
    """Run ``argv`` with stdout a real pipe whose reader is gone before it starts (``| head``
    having exited); returns the finished process, its stderr as text."""
    import subprocess

    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            argv, cwd=cwd, env=env, stdout=write, stderr=subprocess.PIPE, text=True,
            timeout=timeout,
        )  # fmt: skip
    finally:
        os.close(write)


@pytest.fixture
def into_closed_pipe() -> Callable[..., Any]:
    """:func:`_into_closed_pipe`: a command whose stdout's reader has gone."""
    return _into_closed_pipe


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(folder: Path, port: int | None = None) -> tuple[Any, str]:
    """A real ``mlflow server`` on ``port`` (default: a free 127.0.0.1 port) with its SQLite
    store and proxied artifacts in ``folder``, once it answers: (its process, its URL)."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = port or _free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination", str(folder / "server-artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # os.killpg(proc.pid, ...) stops it with its workers
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # a busy machine (parallel test workers) is slow
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("mlflow server did not start within 180 s")
            time.sleep(0.5)


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real ``mlflow server`` on a free 127.0.0.1 port (SQLite store and proxied artifacts in
    ``tmp_path``), stopped after the test; yields its URL."""
    proc, url = start_mlflow_server(tmp_path)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
