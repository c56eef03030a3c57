"""The learning-rate schedule of the fused engine: ReduceLROnPlateau.

This file is the one place a schedule lives.  The compiled epoch body (:mod:`.program`) calls
:func:`update` once per epoch after the early-stopping bookkeeping; the host driver
(:mod:`.driver`) calls :func:`hyper` and :func:`init_state` to feed it.  A schedule is:

* :func:`hyper`: its hyperparameters, read from the estimator, as numpy scalars (traced inputs,
  so changing them never recompiles);
* :func:`init_state`: the per-model ``(K,)`` state arrays it carries, ``"lr"`` included;
* :func:`update`: the new ``"lr"`` and state entries, from whether each model's monitored loss
  improved this epoch (all ``keras.ops``, per model).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_INT32_MAX = 2**31 - 1


def hyper(est: Any) -> dict[str, Any]:
    """``reduce_lr_patience`` (None: never), ``reduce_lr_factor`` and ``min_lr`` of ``est``."""
    rlp = est.reduce_lr_patience
    return {
        "min_lr": np.float32(est.min_lr),
        "rlr_factor": np.float32(est.reduce_lr_factor),
        "rlr_patience": np.int32(_INT32_MAX if rlp is None else int(rlp)),
    }


def init_state(k: int, learning_rate: float) -> dict[str, np.ndarray]:
    """The starting learning rate and plateau counter of ``k`` models."""
    return {
        "lr": np.full((k,), learning_rate, np.float32),
        "lr_wait": np.zeros((k,), np.int32),
    }


def update(ops: Any, st: dict, hyper: dict, improved: Any, not_improved: Any) -> dict[str, Any]:
    """ReduceLROnPlateau: after ``rlr_patience`` epochs without improvement multiply the learning
    rate by ``rlr_factor`` (not below ``min_lr``) and restart the count."""
    lr_wait = ops.where(improved, 0, ops.where(not_improved, st["lr_wait"] + 1, st["lr_wait"]))
    reduce = ops.logical_and(not_improved, lr_wait >= hyper["rlr_patience"])
    lr = ops.where(reduce, ops.maximum(st["lr"] * hyper["rlr_factor"], hyper["min_lr"]), st["lr"])
    return {"lr": lr, "lr_wait": ops.where(reduce, 0, lr_wait)}
