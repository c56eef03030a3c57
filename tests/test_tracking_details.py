"""MLflow details: credentials in a tracking URI, what a fold run of a grouped protocol held out,
the error line of a frozen server, a run deleted in the UI while it runs."""

from __future__ import annotations

import socket
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
