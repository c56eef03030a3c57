"""Keras learning curves: per-epoch train/validation loss of the final and the outer-fold models,
as a table and as MLflow step metrics (so the MLflow UI draws them)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: MLflow accepts at most this many metrics per log_batch call.
_BATCH = 1000


def history_of(model: Any) -> dict[str, list[float]] | None:
    """The per-epoch ``history_`` of a fitted pipeline's network (through a pairwise wrapper),
    with ``best_epoch`` (one value: the 1-based epoch whose weights were restored) when the
    network records it; None when the model has no history."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    for est in (final, getattr(final, "base_", None)):
        hist = getattr(est, "history_", None)
        if isinstance(hist, Mapping) and len(hist.get("loss", [])):
            out = {k: [float(v) for v in vals] for k, vals in hist.items()}
            best = getattr(est, "best_epoch_", None)
            if isinstance(best, int | np.integer) and best > 0:
                out["best_epoch"] = [float(best)]
            return out
    return None


def histories(final: Any | None, folds: Mapping[int, Any]) -> dict[str | int, dict]:
    """``{"final": history, 1: history, ...}`` for every model that has one."""
    out: dict[str | int, dict] = {}
    if final is not None and (h := history_of(final)) is not None:
        out["final"] = h
    for k, m in folds.items():
        if (h := history_of(m)) is not None:
            out[k] = h
    return out


def curves_table(hists: Mapping[str | int, Mapping[str, Sequence[float]]]) -> pd.DataFrame:
    """One row per model and epoch: model (``final`` / ``fold_NN``), epoch (1-based), loss,
    val_loss (NaN when the model had no validation rows), restored (the epoch whose weights the
    model kept, when its history says)."""
    frames = []
    for key, h in hists.items():
        loss = np.asarray(h.get("loss", []), dtype=float)
        val = np.asarray(h.get("val_loss", []), dtype=float)
        val = val if len(val) == len(loss) else np.full(len(loss), np.nan)
        frames.append(
            pd.DataFrame(
                {
                    "model": _model_name(key),
                    "epoch": np.arange(1, len(loss) + 1),
                    "loss": loss,
                    "val_loss": val,
                    "restored": np.arange(1, len(loss) + 1) == int(h.get("best_epoch", [0])[0]),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["model", "epoch", "loss", "val_loss", "restored"])
    return pd.concat(frames, ignore_index=True)


def _model_name(key: str | int) -> str:
    return "final" if key == "final" else f"fold_{int(key):02d}"


def _child_runs(client: Any, run_id: str) -> dict[int, str]:
    """Fold number -> child run id of a parent run."""
    run = client.get_run(run_id)
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
    )
    out = {}
    for c in children:
        fold = c.data.tags.get("fold")
        if fold is not None and str(fold).isdigit():
            out[int(fold)] = c.info.run_id
    return out


def log_learning_curves(
    tracker_or_client: Any,
    run_id: str | None,
    hists: Mapping[str | int, Mapping[str, Sequence[float]]],
) -> int:
    """Log ``loss``/``val_loss`` per epoch as MLflow step metrics (step = epoch, 1-based).

    ``hists["final"]`` goes to the parent run ``run_id``; ``hists[k]`` to the child run tagged
    ``fold=k``. ``tracker_or_client``: an ``n2react.tracking.Tracker`` (its URI, and its
    ``run_id`` when ``run_id`` is None; a disabled tracker logs nothing) or an ``MlflowClient``.
    Returns how many values were logged. Non-finite values (a diverged epoch) are skipped.
    """
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = tracker_or_client
    if not isinstance(client, MlflowClient):
        if not getattr(client, "enabled", False):
            return 0
        run_id = run_id or client.run_id
        client = MlflowClient(client.uri)
    if run_id is None:
        raise ValueError("log_learning_curves: no run id")
    children = _child_runs(client, run_id) if any(k != "final" for k in hists) else {}
    now = int(time.time() * 1000)
    n = 0
    for key, h in hists.items():
        target = run_id if key == "final" else children.get(int(key))
        if target is None:
            continue
        metrics = [
            Metric(name, float(v), now, step)
            for name in ("loss", "val_loss")
            for step, v in enumerate(h.get(name, []), start=1)
            if np.isfinite(v)
        ]
        for s in range(0, len(metrics), _BATCH):
            client.log_batch(target, metrics=metrics[s : s + _BATCH])
        n += len(metrics)
    return n
