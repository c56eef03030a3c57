"""A scikit-learn compatible Keras 3 MLP regressor with a fused multi-model training engine.

Keras ``model.fit`` on ~150 rows is dominated by per-epoch Python/callback overhead, not by the
arithmetic.  :class:`KerasMLPRegressor` therefore trains with its own engine: the K models of a
cross-validation round (``fit_predict_many`` / ``fit_many``; ``fit`` is the case K=1) are stacked
into batched weights of shape ``(K, in, out)``, their row sets are padded to a common length and
masked, and a whole chunk of epochs (Adam, early stopping with best-weight restore,
ReduceLROnPlateau, NaN termination, minibatch shuffling and dropout) runs inside one compiled
function (``tf.function`` on TensorFlow, ``jax.jit`` on JAX).  All model math is written with
``keras.ops``; only :func:`_backend_tools` knows about the backend.

Every model is independent: its initial weights, validation carve-out, shuffles and dropout masks
depend only on its own seed (derived from ``random_state`` and the model's index) and its own rows,
so training K models together gives the same result as training each one alone (up to float
round-off of the padded, batched matmuls).

After ``fit`` the trained network is exported as a plain ``keras.Sequential`` (``Dense`` and
``Dropout`` layers) in ``model_``; the target de-standardisation is folded into the last ``Dense``
layer's weights, so ``model_.predict(X)`` returns ``lg(k1)`` in original units and the model can be
saved as ``.keras`` without custom objects.

Differences from a plain ``model.fit`` loop worth knowing:

* the validation rows are a random subset (``validation_fraction``) of the rows given to ``fit``,
  not the last rows as with Keras' ``validation_split``;
* ``history_`` holds the data MSE in original target units (the L2 penalty is not included);
  ``min_delta`` is compared against these values;
* the L2 penalty (``l2 * sum(kernel**2)``) acts on the standardised-target loss when
  ``standardize_target`` is true.
"""

from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

logger = logging.getLogger(__name__)

__all__ = ["KerasMLPRegressor"]

# Adam constants (the Keras defaults).
_BETA_1 = 0.9
_BETA_2 = 0.999
_EPSILON = 1e-7
# Epochs per compiled call; the host checks between calls whether all models stopped.
_CHUNK_EPOCHS = 64
# Row counts are padded up to a multiple of this, so folds of 114/115 rows share one trace.
_ROW_BUCKET = 8
# tf.function(jit_compile=...) for the TensorFlow backend, overridable with the environment
# variable N2REACT_TF_JIT_COMPILE=1/0.  On a 2-core CPU XLA runs an epoch ~1.5x faster but compiles
# ~0.5 s longer per new architecture/shape, so plain graph mode wins unless a compiled
# architecture is reused many times (e.g. long searches varying only lr/l2/dropout/patience).
_TF_JIT_COMPILE = False
_INT32_MAX = 2**31 - 1
_COMPILED_CACHE_SIZE = 16
_compiled_cache: OrderedDict[tuple, Callable] = OrderedDict()


def _i32(v: int) -> int:
    """The int32 two's-complement value of the low 32 bits of ``v``."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= (1 << 31) else v


def _mix(ops: Any, x: Any) -> Any:
    """A 32-bit integer hash (lowbias32) on int32 tensors; shifts are made logical by masking."""
    x = ops.bitwise_xor(x, ops.bitwise_and(ops.right_shift(x, 16), 0xFFFF))
    x = ops.multiply(x, _i32(0x7FEB352D))
    x = ops.bitwise_xor(x, ops.bitwise_and(ops.right_shift(x, 15), 0x1FFFF))
    x = ops.multiply(x, _i32(0x846CA68B))
    return ops.bitwise_xor(x, ops.bitwise_and(ops.right_shift(x, 16), 0xFFFF))


def _tf_jit_compile() -> bool:
    flag = os.environ.get("N2REACT_TF_JIT_COMPILE", "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    return _TF_JIT_COMPILE


def _backend_tools() -> tuple[Callable[[Callable], Callable], Callable[[Callable], Callable]]:
    """Return ``(compile_fn, value_and_grad)`` for the active Keras backend.

    ``value_and_grad(f)`` maps ``f(params) -> (scalar, aux)`` to
    ``g(params) -> ((scalar, aux), grads)``.  This is the only backend-specific code.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def vag_jax(fn: Callable) -> Callable:
            return jax.value_and_grad(fn, has_aux=True)

        return jax.jit, vag_jax
    if backend == "tensorflow":
        import tensorflow as tf

        def vag_tf(fn: Callable) -> Callable:
            def wrapped(params: list) -> tuple:
                with tf.GradientTape() as tape:
                    tape.watch(params)
                    loss, aux = fn(params)
                return (loss, aux), tape.gradient(loss, params)

            return wrapped

        def compile_tf(fn: Callable) -> Callable:
            return tf.function(fn, jit_compile=_tf_jit_compile(), autograph=False)

        return compile_tf, vag_tf
    raise NotImplementedError(
        f"KerasMLPRegressor supports the 'tensorflow' and 'jax' Keras backends, not {backend!r}"
    )


@dataclass(frozen=True)
class _Spec:
    """Static (trace-time) configuration of the compiled training chunk."""

    sizes: tuple[int, ...]  # (n_features, h1, ..., hL, 1)
    activation: str
    use_dropout: bool
    use_l2: bool
    batch_size: int | None  # None = full batch
    chunk: int
    fused_eval: bool  # full batch without dropout: one forward gives train and val loss


def _build_chunk_fn(spec: _Spec) -> Callable:
    """Build (uncompiled) ``run(state, data, hyper) -> (state, tr_buf, ev_buf)``."""
    import keras
    from keras import ops

    _, value_and_grad = _backend_tools()
    act = keras.activations.get(spec.activation)
    n_layers = len(spec.sizes) - 1
    chunk = spec.chunk

    def bcast(mask: Any, x: Any) -> Any:
        return ops.reshape(mask, (-1,) + (1,) * (len(x.shape) - 1))

    def select(mask: Any, new: list, old: list) -> list:
        return [ops.where(bcast(mask, o), n, o) for n, o in zip(new, old, strict=True)]

    def code(*parts: Any) -> Any:
        h = ops.convert_to_tensor(0x1234567, dtype="int32")
        for p in parts:
            h = _mix(ops, ops.add(h, ops.cast(p, "int32")))
        return h

    def forward(params: list, x: Any, rate: Any = None, seeds: Any = None, key: Any = None) -> Any:
        """Batched MLP: x (K, n, d) -> (K, n).  Dropout when ``rate`` is given."""
        h = x
        for layer in range(n_layers):
            w, b = params[2 * layer], params[2 * layer + 1]
            h = ops.matmul(h, w) + ops.expand_dims(b, 1)
            if layer < n_layers - 1:
                h = act(h)
                if rate is not None:
                    n_rows, units = h.shape[1], h.shape[2]
                    elem = ops.reshape(ops.arange(n_rows * units, dtype="int32"), (n_rows, units))
                    base = _mix(ops, ops.bitwise_xor(seeds, code(key, layer)))
                    bits = _mix(ops, ops.expand_dims(ops.expand_dims(base, 1), 2) + elem)
                    u = ops.cast(ops.bitwise_and(ops.right_shift(bits, 8), 0xFFFFFF), "float32")
                    keep = u * (1.0 / 16777216.0) >= rate
                    h = ops.where(keep, h / (1.0 - rate), ops.zeros_like(h))
        return h[..., 0]

    def masked_mse(pred: Any, y: Any, mask: Any) -> Any:
        err = ops.square(pred - y) * mask
        return ops.sum(err, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)

    def penalty(params: list, l2: Any) -> Any:
        if not spec.use_l2:
            return 0.0
        tot = 0.0
        for layer in range(n_layers):
            tot = tot + ops.sum(ops.square(params[2 * layer]), axis=(1, 2))
        return l2 * tot

    def adam(params: list, grads: list, m: list, v: list, t: Any, lr: Any, active: Any) -> tuple:
        """Keras' Adam on stacked weights; models with ``active`` False are left unchanged.

        The per-model mask is folded into the (K,) coefficients instead of selecting with
        ``where`` afterwards: ``x + 0 * finite == x`` exactly, and it saves passes over the
        weights (graph-mode TF is memory-bound here).  Inactive models only ever see finite
        gradients (padded minibatch steps) or are stopped for good (diverged).
        """
        a = ops.cast(active, "float32")
        t_new = t + a
        t_safe = ops.maximum(t_new, 1.0)
        alpha = lr * ops.sqrt(1.0 - ops.power(_BETA_2, t_safe)) / (1.0 - ops.power(_BETA_1, t_safe))
        alpha = alpha * a
        c1 = a * (1.0 - _BETA_1)
        c2 = a * (1.0 - _BETA_2)
        new_p, new_m, new_v = [], [], []
        for p, g, mi, vi in zip(params, grads, m, v, strict=True):
            mi2 = mi + (g - mi) * bcast(c1, mi)
            vi2 = vi + (ops.square(g) - vi) * bcast(c2, vi)
            new_p.append(p - bcast(alpha, p) * mi2 / (ops.sqrt(vi2) + _EPSILON))
            new_m.append(mi2)
            new_v.append(vi2)
        return new_p, new_m, new_v, t_new

    def train_epoch(st: dict, data: dict, hyper: dict, active: Any) -> tuple[dict, Any]:
        """One epoch of (mini)batch updates for path B; returns (state, mean train loss)."""
        seeds, i = data["seeds"], st["i"]
        rate = hyper["dropout"] if spec.use_dropout else None
        x_tr, y_tr, m_tr = data["x_tr"], data["y_tr"], data["m_tr"]
        k, n_pad, d = x_tr.shape
        if spec.batch_size is None:
            steps, bsz = 1, n_pad
        else:
            bsz = spec.batch_size
            steps = -(-n_pad // bsz)
            rows = ops.arange(n_pad, dtype="int32")
            keys = _mix(
                ops, ops.expand_dims(_mix(ops, ops.bitwise_xor(seeds, code(i, -7))), 1) + rows
            )
            keys = ops.where(m_tr > 0, ops.bitwise_and(keys, _INT32_MAX - 1), _INT32_MAX)
            perm = ops.cast(ops.argsort(keys, axis=1), "int32")
            if steps * bsz > n_pad:
                perm = ops.concatenate(
                    [perm, ops.zeros((k, steps * bsz - n_pad), dtype="int32")], axis=1
                )
            perm = perm + ops.expand_dims(ops.arange(k, dtype="int32") * n_pad, 1)
            x_flat = ops.reshape(x_tr, (k * n_pad, d))
            y_flat = ops.reshape(y_tr, (k * n_pad,))
        n_tr = data["n_tr"]

        def step(s: Any, carry: tuple) -> tuple:
            params, m, v, t, tr_sum, tr_cnt = carry
            if spec.batch_size is None:
                xb, yb, mb = x_tr, y_tr, m_tr
            else:
                idx = ops.slice(perm, (0, s * bsz), (k, bsz))
                xb = ops.reshape(ops.take(x_flat, ops.reshape(idx, (-1,)), axis=0), (k, bsz, d))
                yb = ops.reshape(ops.take(y_flat, ops.reshape(idx, (-1,)), axis=0), (k, bsz))
                pos = s * bsz + ops.arange(bsz, dtype="int32")
                mb = ops.cast(ops.expand_dims(pos, 0) < ops.expand_dims(n_tr, 1), "float32")

            def loss_fn(p: list) -> tuple:
                pred = forward(p, xb, rate, seeds, code(i, s, 11))
                per_model = masked_mse(pred, yb, mb)
                return ops.sum(per_model + penalty(p, hyper["l2"])), per_model

            (_, per_model), grads = value_and_grad(loss_fn)(params)
            cnt = ops.sum(mb, axis=1)
            step_active = ops.logical_and(active, cnt > 0)
            params, m, v, t = adam(params, grads, m, v, t, st["lr"], step_active)
            tr_sum = tr_sum + ops.where(step_active, per_model * cnt, 0.0)
            tr_cnt = tr_cnt + ops.where(step_active, cnt, 0.0)
            return params, m, v, t, tr_sum, tr_cnt

        zeros = ops.zeros((k,), dtype="float32")
        carry = (st["params"], st["m"], st["v"], st["t"], zeros, zeros)
        if steps == 1:
            carry = step(0, carry)
        else:
            carry = ops.fori_loop(0, steps, step, carry)
        params, m, v, t, tr_sum, tr_cnt = carry
        st = dict(st, params=params, m=m, v=v, t=t)
        return st, tr_sum / ops.maximum(tr_cnt, 1.0)

    def body(st: dict, tr_buf: Any, ev_buf: Any, start: Any, data: dict, hyper: dict) -> tuple:
        i = st["i"]
        params = st["params"]
        var = data["var"]  # per-model target variance: standardised MSE -> original units
        if spec.fused_eval:

            def loss_fn(p: list) -> tuple:
                pred = forward(p, data["x_a"])
                tr = masked_mse(pred, data["y_a"], data["m_a_tr"])
                ev = masked_mse(pred, data["y_a"], data["m_a_ev"])
                return ops.sum(tr + penalty(p, hyper["l2"])), (tr, ev)

            (_, (tr_now, ev)), grads = value_and_grad(loss_fn)(params)
            finite = ops.logical_and(ops.isfinite(ev), ops.isfinite(tr_now))
        else:
            ev = ops.stop_gradient(
                masked_mse(forward(params, data["x_ev"]), data["y_ev"], data["m_ev"])
            )
            finite = ops.isfinite(ev)
        ev = ev * var

        # Early stopping / ReduceLROnPlateau / NaN bookkeeping of epoch i (after i updates).
        alive = ops.logical_not(st["stopped"])
        counted = ops.logical_and(alive, i >= 1)
        improved = ops.logical_and(
            ops.logical_and(counted, finite), ev < st["best"] - hyper["min_delta"]
        )
        not_improved = ops.logical_and(counted, ops.logical_not(improved))
        best = ops.where(improved, ev, st["best"])
        best_epoch = ops.where(improved, i, st["best_epoch"])
        best_params = select(improved, params, st["best_params"])
        wait = ops.where(improved, 0, ops.where(not_improved, st["wait"] + 1, st["wait"]))
        lr_wait = ops.where(improved, 0, ops.where(not_improved, st["lr_wait"] + 1, st["lr_wait"]))
        reduce = ops.logical_and(not_improved, lr_wait >= hyper["rlr_patience"])
        lr = ops.where(
            reduce, ops.maximum(st["lr"] * hyper["rlr_factor"], hyper["min_lr"]), st["lr"]
        )
        lr_wait = ops.where(reduce, 0, lr_wait)
        bad = ops.logical_and(alive, ops.logical_not(finite))
        stop_now = ops.logical_or(bad, wait >= hyper["patience"])
        stop_now = ops.logical_and(alive, ops.logical_or(stop_now, i >= hyper["max_epochs"]))
        stopped = ops.logical_or(st["stopped"], stop_now)
        active = ops.logical_not(stopped)
        st = dict(
            st,
            best=best,
            best_epoch=best_epoch,
            best_params=best_params,
            wait=wait,
            lr_wait=lr_wait,
            lr=lr,
            stopped=stopped,
            diverged=ops.logical_or(st["diverged"], bad),
        )

        # Epoch i + 1: the update.
        if spec.fused_eval:
            p, m, v, t = adam(params, grads, st["m"], st["v"], st["t"], st["lr"], active)
            st = dict(st, params=p, m=m, v=v, t=t)
            tr = tr_now
        else:
            st, tr = train_epoch(st, data, hyper, active)
            bad2 = ops.logical_and(active, ops.logical_not(ops.isfinite(tr)))
            st = dict(
                st,
                stopped=ops.logical_or(st["stopped"], bad2),
                diverged=ops.logical_or(st["diverged"], bad2),
            )
        st["n_epochs"] = st["n_epochs"] + ops.cast(active, "int32")
        st["i"] = i + 1
        hit = ops.expand_dims(ops.arange(chunk, dtype="int32") == (i - start), 0)
        tr_buf = ops.where(hit, ops.expand_dims(tr * var, 1), tr_buf)
        ev_buf = ops.where(hit, ops.expand_dims(ev, 1), ev_buf)
        return st, tr_buf, ev_buf

    def run(state: dict, data: dict, hyper: dict) -> tuple:
        k = state["t"].shape[0]
        start = state["i"]
        tr_buf = ops.full((k, chunk), float("nan"), dtype="float32")
        ev_buf = ops.full((k, chunk), float("nan"), dtype="float32")

        def cond(st: dict, tr_b: Any, ev_b: Any) -> Any:
            return ops.logical_and(st["i"] < start + chunk, ops.logical_not(ops.all(st["stopped"])))

        def loop_body(st: dict, tr_b: Any, ev_b: Any) -> tuple:
            return body(st, tr_b, ev_b, start, data, hyper)

        return ops.while_loop(cond, loop_body, (state, tr_buf, ev_buf))

    return run


def _get_compiled(spec: _Spec) -> Callable:
    import keras

    key = (keras.backend.backend(), _tf_jit_compile(), spec)
    fn = _compiled_cache.get(key)
    if fn is None:
        compile_fn, _ = _backend_tools()
        fn = compile_fn(_build_chunk_fn(spec))
        _compiled_cache[key] = fn
        while len(_compiled_cache) > _COMPILED_CACHE_SIZE:
            _compiled_cache.popitem(last=False)
    else:
        _compiled_cache.move_to_end(key)
    return fn


@dataclass
class _FitResult:
    """Numpy results of the fused engine for K models (weights in standardised target units)."""

    weights: list[np.ndarray]  # [W1 (K,d,h1), b1 (K,h1), ..., WL (K,h,1), bL (K,1)]
    y_mean: np.ndarray
    y_std: np.ndarray
    loss: list[list[float]]
    val_loss: list[list[float]]
    best_epoch: np.ndarray
    n_epochs: np.ndarray
    diverged: np.ndarray
    val_indices: list[np.ndarray]

    def exported_weights(self, k: int) -> list[np.ndarray]:
        """Model k's weights with the target de-standardisation folded into the last layer."""
        ws = [w[k].copy() for w in self.weights]
        ws[-2] = ws[-2] * self.y_std[k]
        ws[-1] = ws[-1] * self.y_std[k] + self.y_mean[k]
        return [w.astype(np.float32) for w in ws]


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


class KerasMLPRegressor(RegressorMixin, BaseEstimator):
    """Multi-layer perceptron regressor (Keras 3) with fused multi-model training.

    Parameters
    ----------
    n_layers : int
        Number of hidden layers.
    units : int
        Units of the first hidden layer; layer ``i`` has ``max(units - i * units_decrement, 1)``.
    units_decrement : int
        Per-layer decrease of the hidden width.
    activation : str
        Keras activation name of the hidden layers.
    dropout : float
        Dropout rate after each hidden layer (training only).
    l2 : float
        L2 penalty ``l2 * sum(kernel**2)`` on every kernel.
    learning_rate : float
        Adam learning rate.
    batch_size : int or None
        Minibatch size; ``None`` (or a size >= the training rows) trains full batch.
    max_epochs : int
        Maximum number of epochs.
    patience : int
        Early stopping: epochs without validation-loss improvement (> ``min_delta``) before
        stopping.  The weights of the best epoch are restored.
    min_delta : float
        Minimum decrease of the validation MSE (original units) that counts as an improvement.
    validation_fraction : float
        Fraction of the rows given to ``fit`` held out (randomly, at least one row) for early
        stopping; ``0`` monitors the training loss instead.
    reduce_lr_patience : int or None
        ReduceLROnPlateau: after this many epochs without improvement multiply the learning rate
        by ``reduce_lr_factor`` (not below ``min_lr``); ``None`` disables it.
    reduce_lr_factor : float
        See ``reduce_lr_patience``.
    min_lr : float
        See ``reduce_lr_patience``.
    standardize_target : bool
        Train on ``(y - mean) / std``; predictions are returned in original units.
    random_state : int, RandomState instance or None
        Seeds weights, validation split, shuffling and dropout.  Model ``k`` of
        ``fit_many``/``fit_predict_many`` uses a seed derived from ``(random_state, k)``;
        ``fit`` is model 0.
    verbose : int
        ``> 0`` logs progress (``logging``) after every chunk of epochs.

    Attributes
    ----------
    model_ : keras.Sequential
        The trained network, raw X (float32) -> prediction in original y units.
    n_features_in_, feature_names_in_ : sklearn input metadata.
    history_ : dict
        ``{"loss": [...], "val_loss": [...]}`` per epoch (data MSE, original y units).
    best_epoch_ : int
        Epoch (1-based) whose weights were restored; 0 if no epoch improved on the start.
    n_epochs_ : int
        Epochs run.
    validation_indices_ : ndarray
        Row indices (into the X given to ``fit``) held out for early stopping.
    diverged_ : bool
        True when a non-finite loss stopped training.  The best finite-validation-loss weights
        (or the initial weights) are kept, so the model still predicts.
    """

    def __init__(
        self,
        n_layers: int = 2,
        units: int = 64,
        units_decrement: int = 0,
        activation: str = "relu",
        dropout: float = 0.0,
        l2: float = 0.0,
        learning_rate: float = 1e-3,
        batch_size: int | None = None,
        max_epochs: int = 1000,
        patience: int = 50,
        min_delta: float = 0.0,
        validation_fraction: float = 0.1,
        reduce_lr_patience: int | None = None,
        reduce_lr_factor: float = 0.5,
        min_lr: float = 1e-6,
        standardize_target: bool = True,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
    ) -> None:
        self.n_layers = n_layers
        self.units = units
        self.units_decrement = units_decrement
        self.activation = activation
        self.dropout = dropout
        self.l2 = l2
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.min_delta = min_delta
        self.validation_fraction = validation_fraction
        self.reduce_lr_patience = reduce_lr_patience
        self.reduce_lr_factor = reduce_lr_factor
        self.min_lr = min_lr
        self.standardize_target = standardize_target
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ helpers
    def _hidden_units(self) -> list[int]:
        return [
            max(int(self.units) - i * int(self.units_decrement), 1) for i in range(self.n_layers)
        ]

    def _check_params(self) -> None:
        if int(self.n_layers) < 0:
            raise ValueError(f"n_layers must be >= 0, got {self.n_layers}")
        if int(self.units) < 1:
            raise ValueError(f"units must be >= 1, got {self.units}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= float(self.validation_fraction) < 1.0:
            raise ValueError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction}"
            )
        if int(self.max_epochs) < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if int(self.patience) < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be None or >= 1, got {self.batch_size}")
        if float(self.learning_rate) <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")

    def _validate_fit_data(self, est: KerasMLPRegressor, X: Any, y: Any) -> tuple:
        X, y = validate_data(
            est, X, y, dtype=(np.float64, np.float32), y_numeric=True, multi_output=False
        )
        n = X.shape[0]
        n_val = self._n_val(n)
        if n - n_val < 1:
            raise ValueError(
                f"KerasMLPRegressor needs at least 2 samples to carve out a validation set, "
                f"got n_samples={n}"
            )
        return np.asarray(X, dtype=np.float32), np.asarray(y, dtype=np.float64)

    def _n_val(self, n: int) -> int:
        frac = float(self.validation_fraction)
        if frac <= 0:
            return 0
        return max(1, n - int(math.ceil(n * (1.0 - frac))))

    def _model_seeds(self, indices: Sequence[int]) -> list[int]:
        rs = self.random_state
        if rs is None or isinstance(rs, np.random.RandomState):
            base = int(check_random_state(rs).randint(0, _INT32_MAX))
        else:
            base = int(rs)
        return [
            int(np.random.SeedSequence([abs(base), int(i)]).generate_state(1)[0]) for i in indices
        ]

    # ------------------------------------------------------------------ engine
    def _train(
        self,
        Xs: list[np.ndarray],
        ys: list[np.ndarray],
        seeds: list[int],
        masks: Sequence[np.ndarray | None] | None = None,
    ) -> _FitResult:
        """Train len(Xs) independent models together; Xs are float32 (n_k, d), ys (n_k,).

        ``masks[k]`` (boolean, one per row) marks model k's validation rows explicitly instead
        of a random ``validation_fraction`` of them; ``None`` keeps the random carve-out.  A
        model without validation rows is evaluated on its training rows.
        """
        from keras import ops

        self._check_params()
        k = len(Xs)
        d = Xs[0].shape[1]
        sizes = (d, *self._hidden_units(), 1)
        masks = [None] * k if masks is None else list(masks)
        if len(masks) != k:
            raise ValueError("validation_masks must have one entry per training set")
        masks = [_check_mask(m, len(X)) for m, X in zip(masks, Xs, strict=True)]

        x_tr, y_tr, x_ev, y_ev, inits, hash_seeds, means, stds = [], [], [], [], [], [], [], []
        val_indices = []
        for X, y, seed, mask in zip(Xs, ys, seeds, masks, strict=True):
            if X.shape[1] != d:
                raise ValueError("all training sets must have the same number of columns")
            rng = np.random.default_rng(seed)
            n = X.shape[0]
            n_val = self._n_val(n)
            perm = rng.permutation(n)
            val_idx, tr_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
            if mask is not None:
                val_idx, tr_idx = np.flatnonzero(mask), np.flatnonzero(~mask)
            val_indices.append(val_idx)
            if self.standardize_target:
                mean, std = float(np.mean(y)), float(np.std(y))
                if not np.isfinite(std) or std < 1e-12:
                    std = 1.0
            else:
                mean, std = 0.0, 1.0
            ys_ = ((y - mean) / std).astype(np.float32)
            x_tr.append(X[tr_idx])
            y_tr.append(ys_[tr_idx])
            ev_idx = val_idx if len(val_idx) else tr_idx
            x_ev.append(X[ev_idx])
            y_ev.append(ys_[ev_idx])
            means.append(mean)
            stds.append(std)
            ws = []
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
                lim = math.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform, as Keras' Dense
                ws.append(rng.uniform(-lim, lim, size=(fan_in, fan_out)).astype(np.float32))
                ws.append(np.zeros((fan_out,), dtype=np.float32))
            inits.append(ws)
            hash_seeds.append(int(rng.integers(0, _INT32_MAX)))

        n_tr = np.array([len(a) for a in x_tr], dtype=np.int32)
        n_tr_pad = _bucket(int(n_tr.max()))
        batch = None if self.batch_size is None else int(self.batch_size)
        if batch is not None and batch >= int(n_tr.max()):
            batch = None
        use_dropout = float(self.dropout) > 0
        fused_eval = batch is None and not use_dropout
        chunk = min(_CHUNK_EPOCHS, int(self.max_epochs) + 1)
        spec = _Spec(
            sizes, str(self.activation), use_dropout, float(self.l2) > 0, batch, chunk, fused_eval
        )

        X_tr, m_tr = _pad_rows(x_tr, n_tr_pad)
        Y_tr, _ = _pad_rows(y_tr, n_tr_pad)
        data: dict[str, Any] = {
            "seeds": np.array(hash_seeds, dtype=np.int32),
            "var": np.square(np.array(stds)).astype(np.float32),
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

        rlp = self.reduce_lr_patience
        hyper_np = {
            "l2": np.float32(self.l2),
            "dropout": np.float32(self.dropout),
            "min_delta": np.float32(self.min_delta),
            "min_lr": np.float32(self.min_lr),
            "rlr_factor": np.float32(self.reduce_lr_factor),
            "patience": np.int32(self.patience),
            "rlr_patience": np.int32(_INT32_MAX if rlp is None else int(rlp)),
            "max_epochs": np.int32(self.max_epochs),
        }
        hyper = {key: ops.convert_to_tensor(val) for key, val in hyper_np.items()}

        params = [np.stack([w[j] for w in inits]) for j in range(len(inits[0]))]
        state = {
            "i": np.int32(0),
            "params": params,
            "m": [np.zeros_like(p) for p in params],
            "v": [np.zeros_like(p) for p in params],
            "t": np.zeros((k,), np.float32),
            "lr": np.full((k,), self.learning_rate, np.float32),
            "best": np.full((k,), np.inf, np.float32),
            "best_epoch": np.zeros((k,), np.int32),
            "best_params": [p.copy() for p in params],
            "wait": np.zeros((k,), np.int32),
            "lr_wait": np.zeros((k,), np.int32),
            "stopped": np.zeros((k,), bool),
            "diverged": np.zeros((k,), bool),
            "n_epochs": np.zeros((k,), np.int32),
        }
        state = _tree_map(ops.convert_to_tensor, state)

        fn = _get_compiled(spec)
        tr_hist, ev_hist = [], []
        while True:
            state, tr_buf, ev_buf = fn(state, data, hyper)
            tr_hist.append(ops.convert_to_numpy(tr_buf))
            ev_hist.append(ops.convert_to_numpy(ev_buf))
            stopped = ops.convert_to_numpy(state["stopped"])
            if self.verbose:
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
        return _FitResult(
            weights=[ops.convert_to_numpy(w) for w in state["best_params"]],
            y_mean=np.array(means),
            y_std=np.array(stds),
            loss=[tr_all[j, : n_epochs[j]].tolist() for j in range(k)],
            val_loss=[ev_all[j, 1 : n_epochs[j] + 1].tolist() for j in range(k)],
            best_epoch=best_epoch,
            n_epochs=n_epochs,
            diverged=diverged,
            val_indices=val_indices,
        )

    def _build_model(self, weights: list[np.ndarray]) -> Any:
        import keras

        model = keras.Sequential(name="n2react_mlp")
        model.add(keras.Input(shape=(weights[0].shape[0],), dtype="float32"))
        for j, units in enumerate(self._hidden_units()):
            model.add(keras.layers.Dense(units, activation=self.activation, name=f"dense_{j}"))
            if float(self.dropout) > 0:
                model.add(keras.layers.Dropout(float(self.dropout), name=f"dropout_{j}"))
        model.add(keras.layers.Dense(1, name="output"))
        model.set_weights(weights)
        return model

    def _set_fitted(self, res: _FitResult, k: int) -> None:
        self.model_ = self._build_model(res.exported_weights(k))
        self.history_ = {"loss": res.loss[k], "val_loss": res.val_loss[k]}
        self.best_epoch_ = int(res.best_epoch[k])
        self.n_epochs_ = int(res.n_epochs[k])
        self.diverged_ = bool(res.diverged[k])
        self.validation_indices_ = res.val_indices[k]

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any, validation_mask: Any = None) -> KerasMLPRegressor:
        """Train one model on (X, y) (model index 0 of the fused engine).

        ``validation_mask`` (boolean, one per row) names the early-stopping rows instead of a
        random ``validation_fraction`` of them (pairwise learning holds out whole clusters).
        """
        X, y = self._validate_fit_data(self, X, y)
        res = self._train([X], [y], self._model_seeds([0]), [validation_mask])
        self._set_fitted(res, 0)
        return self

    def fit_many(
        self,
        X_trains: Sequence[Any],
        y_trains: Sequence[Any],
        *,
        model_indices: Sequence[int] | None = None,
        validation_masks: Sequence[Any] | None = None,
    ) -> list[KerasMLPRegressor]:
        """Train one fitted clone per ``(X_trains[k], y_trains[k])``, all in one fused run.

        ``model_indices`` (default ``0..K-1``) selects each model's seed; model ``k`` alone is
        reproduced by ``fit_many([X_k], [y_k], model_indices=[k])``. ``validation_masks[k]``
        names model k's early-stopping rows (see ``fit``).
        """
        ests, Xs, ys = self._prepare_many(X_trains, y_trains)
        seeds = self._model_seeds(self._indices(model_indices, len(Xs)))
        res = self._train(Xs, ys, seeds, validation_masks)
        for k, est in enumerate(ests):
            est._set_fitted(res, k)
        return ests

    def fit_predict_many(
        self,
        X_trains: Sequence[Any],
        y_trains: Sequence[Any],
        X_tests: Sequence[Any],
        *,
        model_indices: Sequence[int] | None = None,
        return_info: bool = False,
    ) -> list[np.ndarray] | tuple[list[np.ndarray], list[dict[str, Any]]]:
        """Train K models together (see ``fit_many``) and predict ``X_tests[k]`` with model k.

        Returns a list of 1-d float64 arrays in original target units.  No Keras model objects
        are built, which keeps this the fastest path for cross-validation.  With
        ``return_info=True`` returns ``(predictions, infos)`` where ``infos[k]`` is a dict with
        model k's ``history``, ``best_epoch``, ``n_epochs``, ``diverged`` and
        ``validation_indices`` (as the fitted attributes of ``fit``).
        """
        if len(X_tests) != len(X_trains):
            raise ValueError("X_trains and X_tests must have the same length")
        ests, Xs, ys = self._prepare_many(X_trains, y_trains)
        res = self._train(Xs, ys, self._model_seeds(self._indices(model_indices, len(Xs))))
        preds = []
        for k, (est, Xt) in enumerate(zip(ests, X_tests, strict=True)):
            Xt = validate_data(est, Xt, dtype=(np.float64, np.float32), reset=False)
            preds.append(self._forward(res.exported_weights(k), np.asarray(Xt, np.float32)))
        if not return_info:
            return preds
        infos = [
            {
                "history": {"loss": res.loss[k], "val_loss": res.val_loss[k]},
                "best_epoch": int(res.best_epoch[k]),
                "n_epochs": int(res.n_epochs[k]),
                "diverged": bool(res.diverged[k]),
                "validation_indices": res.val_indices[k],
            }
            for k in range(len(preds))
        ]
        return preds, infos

    def predict(self, X: Any) -> np.ndarray:
        """Predict in original target units (1-d float64).

        Computed in float64 numpy from ``model_``'s weights (X rounded to float32 first, as
        ``model_`` sees it); equal to ``model_.predict(X)`` up to float32 round-off.
        """
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        return self._forward(self.model_.get_weights(), np.asarray(X, np.float32))

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _indices(model_indices: Sequence[int] | None, k: int) -> list[int]:
        if model_indices is None:
            return list(range(k))
        if len(model_indices) != k:
            raise ValueError("model_indices must have one entry per training set")
        return [int(i) for i in model_indices]

    def _prepare_many(self, X_trains: Sequence[Any], y_trains: Sequence[Any]) -> tuple:
        if len(X_trains) != len(y_trains) or len(X_trains) == 0:
            raise ValueError("X_trains and y_trains must be non-empty and of the same length")
        ests, Xs, ys = [], [], []
        for X, y in zip(X_trains, y_trains, strict=True):
            est = clone(self)
            X, y = self._validate_fit_data(est, X, y)
            ests.append(est)
            Xs.append(X)
            ys.append(y)
        return ests, Xs, ys

    def _forward(self, weights: list[np.ndarray], X: np.ndarray) -> np.ndarray:
        """Eval-mode forward of one exported model, in float64 (row results do not depend on
        the batch they come in); activations without a numpy version go through keras.ops."""
        act = _NUMPY_ACTIVATIONS.get(str(self.activation))
        if act is None:
            import keras
            from keras import ops

            k_act = keras.activations.get(self.activation)

            def act(z: np.ndarray) -> np.ndarray:
                return np.asarray(ops.convert_to_numpy(k_act(z.astype(np.float32))), np.float64)

        h = np.asarray(X, dtype=np.float64)
        n_layers = len(weights) // 2
        for layer in range(n_layers):
            h = h @ weights[2 * layer].astype(np.float64) + weights[2 * layer + 1]
            if layer < n_layers - 1:
                h = act(h)
        return h.reshape(-1)

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # object.__getstate__ may return __dict__ itself
        model = state.pop("model_", None)
        if model is not None:
            state["_model_payload"] = {"config": model.get_config(), "weights": model.get_weights()}
        return state

    def __setstate__(self, state: dict) -> None:
        payload = state.pop("_model_payload", None)
        super().__setstate__(state)
        if payload is not None:
            import keras

            model = keras.Sequential.from_config(payload["config"])
            model.set_weights(payload["weights"])
            self.model_ = model


def _gelu(z: np.ndarray) -> np.ndarray:  # keras' default gelu (approximate=False)
    from scipy.special import erf

    return 0.5 * z * (1.0 + erf(z / np.sqrt(2.0)))


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805
_NUMPY_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda z: np.maximum(z, 0.0),
    "linear": lambda z: z,
    "tanh": np.tanh,
    "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0.0))),
    "selu": lambda z: _SELU_SCALE * np.where(z > 0, z, _SELU_ALPHA * np.expm1(np.minimum(z, 0.0))),
    "softplus": lambda z: np.logaddexp(0.0, z),
    "swish": lambda z: z * 0.5 * (1.0 + np.tanh(0.5 * z)),
    "silu": lambda z: z * 0.5 * (1.0 + np.tanh(0.5 * z)),
    "gelu": _gelu,
}


def _tree_map(fn: Callable, tree: Any) -> Any:
    if isinstance(tree, dict):
        return {key: _tree_map(fn, val) for key, val in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_tree_map(fn, val) for val in tree)
    return fn(tree)
