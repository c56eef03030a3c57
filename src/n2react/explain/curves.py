"""Keras learning curves: per-epoch train/validation loss of the final and the outer-fold models,
as a table and as MLflow step metrics (so the MLflow UI draws them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from n2react.capabilities import EpochTrained, final_step, fitted_inner


def history_of(model: Any) -> dict[str, list[float]] | None:
    """The per-epoch ``history_`` of a fitted pipeline's network (through a pairwise wrapper),
    with ``best_epoch`` (one value: the 1-based epoch whose weights were restored) when the
    network records it; None when the model has no history."""
    net = fitted_inner(final_step(model))
    if not isinstance(net, EpochTrained):
        return None
    hist = net.history_
    if not isinstance(hist, Mapping) or not len(hist.get("loss", [])):
        return None
    out = {k: [float(v) for v in vals] for k, vals in hist.items()}
    best = net.best_epoch_
    if isinstance(best, int | np.integer) and best > 0:
        out["best_epoch"] = [float(best)]
    return out


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


def loss_curves(
    hists: Mapping[str | int, Mapping[str, Sequence[float]]],
) -> dict[str | int, dict[str, list[float]]]:
    """``loss``/``val_loss`` of each history (what is logged as step metrics)."""
    return {
        key: {name: [float(v) for v in h[name]] for name in ("loss", "val_loss") if name in h}
        for key, h in hists.items()
    }


def log_learning_curves(
    tracking_uri: str,
    run_id: str,
    hists: Mapping[str | int, Mapping[str, Sequence[float]]],
) -> int:
    """Log ``loss``/``val_loss`` per epoch as MLflow step metrics (step = epoch, 1-based) of a
    finished run: ``hists["final"]`` on the parent run ``run_id``, ``hists[k]`` on its child run
    tagged ``fold=k`` (a training run logs them itself through its tracker). Returns how many
    values were logged; non-finite values (a diverged epoch) are skipped."""
    from n2react.mlflow_runs import RunReader

    return RunReader(tracking_uri).log_curves(run_id, loss_curves(hists))
