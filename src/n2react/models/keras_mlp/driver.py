"""The host-side driver of the Keras MLP: rows in, trained stacked weights out.

:func:`train` prepares K models' data (validation carve-out: random rows, whole groups or an
explicit mask; target standardisation; Glorot initial weights; padding to a common row count),
runs the compiled program of :mod:`.program` chunk by chunk until every model stopped, and returns
a :class:`FitResult` of numpy arrays.  Every per-model choice draws from the model's own seed, so
model k trained alone equals model k trained beside others.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

from .._groups import group_codes, group_target, hold_out_groups
from . import lr_schedule
from .program import INT32_MAX, Spec, get_compiled

logger = logging.getLogger("n2react.models.keras_mlp")

# Epochs per compiled call; the host checks between calls whether all models stopped.
_CHUNK_EPOCHS = 64
# Row counts are padded up to a multiple of this, so folds of 114/115 rows share one trace.
_ROW_BUCKET = 8


@dataclass
class FitResult:
    """Numpy results of the fused engine for K models (weights in standardised target units)."""

    weights: list[np.ndarray]  # [W1 (K,d,h1), b1 (K,h1), ..., WL (K,h,1), bL (K,1)]
    y_mean: np.ndarray  # (K,) the training target's mean (0 without standardisation)
    y_scale: np.ndarray  # (K,) the training target's standard deviation (1 without)
    y_var: np.ndarray  # (K,) the variance of the targets given to fit (the MSE of their mean)
    loss: list[list[float]]
    val_loss: list[list[float]]
    best_epoch: np.ndarray
    n_epochs: np.ndarray
    diverged: np.ndarray
    val_indices: list[np.ndarray]

    def exported_weights(self, k: int) -> list[np.ndarray]:
        """Model k's weights with the target de-standardisation folded into the last layer."""
        ws = [w[k].copy() for w in self.weights]
        ws[-2] = ws[-2] * self.y_scale[k]
        ws[-1] = ws[-1] * self.y_scale[k] + self.y_mean[k]
        return [w.astype(np.float32) for w in ws]

    def info(self, k: int) -> dict[str, Any]:
        """Model k's training record (the fitted attributes of ``fit``, as a dict)."""
        return {
            "history": {"loss": self.loss[k], "val_loss": self.val_loss[k]},
            "best_epoch": int(self.best_epoch[k]),
            "n_epochs": int(self.n_epochs[k]),
            "diverged": bool(self.diverged[k]),
            "validation_indices": self.val_indices[k],
        }


def n_val(validation_fraction: float, n: int) -> int:
    """Validation rows carved out of ``n``: at least ``validation_fraction`` and at least one."""
    frac = float(validation_fraction)
    if frac <= 0:
        return 0
    return max(1, n - int(math.ceil(n * (1.0 - frac))))


def model_seeds(random_state: Any, indices: Sequence[int]) -> list[int]:
    """One seed per model index, derived from ``(random_state, index)``."""
    rs = random_state
    if rs is None or isinstance(rs, np.random.RandomState):
        base = int(check_random_state(rs).randint(0, INT32_MAX))
    else:
        base = int(rs)
    return [int(np.random.SeedSequence([abs(base), int(i)]).generate_state(1)[0]) for i in indices]


def per_model(values: Sequence[Any] | None, k: int, name: str) -> list[Any]:
    """``values`` as a list of one entry per model (``None`` entries when not given)."""
    if values is None:
        return [None] * k
    values = list(values)
    if len(values) != k:
        raise ValueError(f"{name} must have one entry per training set")
    return values


def _pad_rows(arrays: list[np.ndarray], n_pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack row sets (n_k, ...) into (K, n_pad, ...) with zeros, plus a float mask (K, n_pad)."""
    k = len(arrays)
    out = np.zeros((k, n_pad) + arrays[0].shape[1:], dtype=np.float32)
    mask = np.zeros((k, n_pad), dtype=np.float32)
    for j, a in enumerate(arrays):
        out[j, : len(a)] = a
        mask[j, : len(a)] = 1.0
    return out, mask


def _bucket(n: int) -> int:
    return max(_ROW_BUCKET, -(-n // _ROW_BUCKET) * _ROW_BUCKET)


def _check_mask(mask: Any, n: int) -> np.ndarray | None:
    """A validation mask as a boolean array of length n with rows on both sides, or None."""
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != (n,) or m.dtype != bool:
        raise ValueError(f"a validation mask must be a boolean array of length {n}")
    if m.all() or not m.any():
        raise ValueError("a validation mask must leave rows for both training and validation")
    return m


def _carve_out(
    n: int, frac: float, rng: np.random.Generator, seed: int, mask: Any, groups: Any
) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(val_idx, tr_idx, fell_back)`` of one model.

    An explicit mask wins; else with groups whole groups are held out until at least ``frac`` of
    the rows are (drawn from a generator of their own, so the weights draw the same numbers with
    or without groups); else random rows.
    ``fell_back`` is True when groups were given but there is only one.
    """
    codes = None if groups is None else group_codes(groups, n)
    n_held = n_val(frac, n)
    perm = rng.permutation(n)  # always drawn: the later draws do not depend on the carve-out
    val_idx, tr_idx = np.sort(perm[:n_held]), np.sort(perm[n_held:])
    if mask is not None:
        return np.flatnonzero(mask), np.flatnonzero(~mask), False
    if codes is None or n_held == 0:
        return val_idx, tr_idx, False
    target = max(n_held, group_target(frac, n))
    held = hold_out_groups(codes, target, np.random.default_rng([seed, 1]))
    if held is None:
        return val_idx, tr_idx, True
    return held, np.setdiff1d(np.arange(n), held), False


def train(
    est: Any,
    Xs: list[np.ndarray],
    ys: list[np.ndarray],
    seeds: list[int],
    masks: Sequence[Any] | None = None,
    groups: Sequence[Any] | None = None,
) -> FitResult:
    """Train len(Xs) independent models of ``est``'s parameters together.

    ``Xs[k]`` is float32 (n_k, d), ``ys[k]`` (n_k,).  ``masks[k]`` (boolean, one per row) marks
    model k's validation rows; else ``groups[k]`` (one label per row) makes them whole groups;
    else they are a random ``validation_fraction`` of the rows.  A model without validation rows
    is evaluated on its training rows.
    """
    from keras import ops

    k = len(Xs)
    d = Xs[0].shape[1]
    sizes = (d, *est._hidden_units(), 1)
    masks = [_check_mask(m, len(X)) for m, X in zip(per_model(masks, k, "validation_masks"), Xs)]
    groups = per_model(groups, k, "groups")

    x_tr, y_tr, x_ev, y_ev, inits, hash_seeds, means, scales = [], [], [], [], [], [], [], []
    val_indices, fell_back = [], 0
    for X, y, seed, mask, g in zip(Xs, ys, seeds, masks, groups, strict=True):
        if X.shape[1] != d:
            raise ValueError("all training sets must have the same number of columns")
        rng = np.random.default_rng(seed)
        n = X.shape[0]
        val_idx, tr_idx, fb = _carve_out(n, est.validation_fraction, rng, seed, mask, g)
        fell_back += fb
        val_indices.append(val_idx)
        if est.standardize_target:
            mean, scale = float(np.mean(y)), float(np.std(y))
            if not np.isfinite(scale) or scale < 1e-12:
                scale = 1.0
        else:
            mean, scale = 0.0, 1.0
        ys_ = ((y - mean) / scale).astype(np.float32)
        x_tr.append(X[tr_idx])
        y_tr.append(ys_[tr_idx])
        ev_idx = val_idx if len(val_idx) else tr_idx
        x_ev.append(X[ev_idx])
        y_ev.append(ys_[ev_idx])
        means.append(mean)
        scales.append(scale)
        ws = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            lim = math.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform, as Keras' Dense
            ws.append(rng.uniform(-lim, lim, size=(fan_in, fan_out)).astype(np.float32))
            ws.append(np.zeros((fan_out,), dtype=np.float32))
        inits.append(ws)
        hash_seeds.append(int(rng.integers(0, INT32_MAX)))
    if fell_back:
        logger.warning(
            "%d of %d models got a single group: their early-stopping rows are random rows",
            fell_back,
            k,
        )

    n_tr = np.array([len(a) for a in x_tr], dtype=np.int32)
    n_tr_pad = _bucket(int(n_tr.max()))
    batch = None if est.batch_size is None else int(est.batch_size)
    if batch is not None and batch >= int(n_tr.max()):
        batch = None
    use_dropout = float(est.dropout) > 0
    fused_eval = batch is None and not use_dropout
    chunk = min(_CHUNK_EPOCHS, int(est.max_epochs) + 1)
    spec = Spec(
        sizes, str(est.activation), use_dropout, float(est.l2) > 0, batch, chunk, fused_eval
    )

    X_tr, m_tr = _pad_rows(x_tr, n_tr_pad)
    Y_tr, _ = _pad_rows(y_tr, n_tr_pad)
    data: dict[str, Any] = {
        "seeds": np.array(hash_seeds, dtype=np.int32),
        "var": np.square(np.array(scales)).astype(np.float32),
    }
    if fused_eval:
        if any(len(v) for v in val_indices):
            n_ev_pad = _bucket(max(len(a) for a in x_ev))
            X_ev, m_ev = _pad_rows(x_ev, n_ev_pad)
            Y_ev, _ = _pad_rows(y_ev, n_ev_pad)
            data["x_a"] = np.concatenate([X_tr, X_ev], axis=1)
            data["y_a"] = np.concatenate([Y_tr, Y_ev], axis=1)
            data["m_a_tr"] = np.concatenate([m_tr, np.zeros_like(m_ev)], axis=1)
            data["m_a_ev"] = np.concatenate([np.zeros_like(m_tr), m_ev], axis=1)
        else:
            data.update(x_a=X_tr, y_a=Y_tr, m_a_tr=m_tr, m_a_ev=m_tr)
    else:
        n_ev_pad = _bucket(max(len(a) for a in x_ev))
        X_ev, m_ev = _pad_rows(x_ev, n_ev_pad)
        Y_ev, _ = _pad_rows(y_ev, n_ev_pad)
        data.update(x_tr=X_tr, y_tr=Y_tr, m_tr=m_tr, n_tr=n_tr, x_ev=X_ev, y_ev=Y_ev, m_ev=m_ev)
    data = {key: ops.convert_to_tensor(val) for key, val in data.items()}

    hyper_np = {
        "l2": np.float32(est.l2),
        "dropout": np.float32(est.dropout),
        "min_delta": np.float32(est.min_delta),
        "patience": np.int32(est.patience),
        "max_epochs": np.int32(est.max_epochs),
        **lr_schedule.hyper(est),
    }
    hyper = {key: ops.convert_to_tensor(val) for key, val in hyper_np.items()}

    params = [np.stack([w[j] for w in inits]) for j in range(len(inits[0]))]
    state = {
        "i": np.int32(0),
        "params": params,
        "m": [np.zeros_like(p) for p in params],
        "v": [np.zeros_like(p) for p in params],
        "t": np.zeros((k,), np.float32),
        "best": np.full((k,), np.inf, np.float32),
        "best_epoch": np.zeros((k,), np.int32),
        "best_params": [p.copy() for p in params],
        "wait": np.zeros((k,), np.int32),
        "stopped": np.zeros((k,), bool),
        "diverged": np.zeros((k,), bool),
        "n_epochs": np.zeros((k,), np.int32),
        **lr_schedule.init_state(k, est.learning_rate),
    }
    state = _tree_map(ops.convert_to_tensor, state)

    fn = get_compiled(spec)
    tr_hist, ev_hist = [], []
    while True:
        state, tr_buf, ev_buf = fn(state, data, hyper)
        tr_hist.append(ops.convert_to_numpy(tr_buf))
        ev_hist.append(ops.convert_to_numpy(ev_buf))
        stopped = ops.convert_to_numpy(state["stopped"])
        if est.verbose:
            logger.info(
                "epoch %d: %d/%d models stopped, best val loss %s",
                int(ops.convert_to_numpy(state["i"])) - 1,
                int(stopped.sum()),
                k,
                np.array2string(ops.convert_to_numpy(state["best"]), precision=4),
            )
        if stopped.all():
            break

    tr_all = np.concatenate(tr_hist, axis=1).astype(float)
    ev_all = np.concatenate(ev_hist, axis=1).astype(float)
    n_epochs = ops.convert_to_numpy(state["n_epochs"]).astype(int)
    diverged = ops.convert_to_numpy(state["diverged"]).astype(bool)
    best_epoch = ops.convert_to_numpy(state["best_epoch"]).astype(int)
    if diverged.any():
        logger.warning(
            "%d of %d models hit a non-finite loss; their best weights are kept",
            int(diverged.sum()),
            k,
        )
    return FitResult(
        weights=[ops.convert_to_numpy(w) for w in state["best_params"]],
        y_mean=np.array(means),
        y_scale=np.array(scales),
        y_var=np.array([float(np.var(y)) for y in ys]),
        loss=[tr_all[j, : n_epochs[j]].tolist() for j in range(k)],
        val_loss=[ev_all[j, 1 : n_epochs[j] + 1].tolist() for j in range(k)],
        best_epoch=best_epoch,
        n_epochs=n_epochs,
        diverged=diverged,
        val_indices=val_indices,
    )


def _tree_map(fn: Callable, tree: Any) -> Any:
    if isinstance(tree, dict):
        return {key: _tree_map(fn, val) for key, val in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_tree_map(fn, val) for val in tree)
    return fn(tree)
