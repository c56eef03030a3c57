"""MLflow details: credentials in a tracking URI, what a fold run of a grouped protocol held out,
the error line of a frozen server, a run deleted in the UI while it runs."""

from __future__ import annotations

import socket

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
