"""The compiled training program of the Keras MLP: K stacked models, a chunk of epochs per call.

:func:`build_chunk_fn` returns ``run(state, data, hyper) -> (state, tr_buf, ev_buf)``, which runs
up to ``spec.chunk`` epochs of every model (Adam, early stopping with best-weight restore, the
learning-rate schedule of :mod:`.lr_schedule`, NaN termination, minibatch shuffling, dropout)
inside one ``ops.while_loop``.  All randomness inside comes from a 32-bit integer hash of each
model's seed, so a model's trajectory depends only on its own seed and rows.
:func:`get_compiled` compiles it once per (backend, jit flag, :class:`Spec`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import lr_schedule
from .keras_backend import backend_name, backend_tools, tf_jit_compile

# Adam constants (the Keras defaults).
_BETA_1 = 0.9
_BETA_2 = 0.999
_EPSILON = 1e-7
INT32_MAX = 2**31 - 1
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


@dataclass(frozen=True)
class Spec:
    """Static (trace-time) configuration of the compiled training chunk."""

    sizes: tuple[int, ...]  # (n_features, h1, ..., hL, 1)
    activation: str
    use_dropout: bool
    use_l2: bool
    batch_size: int | None  # None = full batch
    chunk: int
    fused_eval: bool  # full batch without dropout: one forward gives train and val loss


def build_chunk_fn(spec: Spec) -> Callable:
    """Build (uncompiled) ``run(state, data, hyper) -> (state, tr_buf, ev_buf)``."""
    import keras
    from keras import ops

    _, value_and_grad = backend_tools()
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
        """One epoch of (mini)batch updates when the train loss needs its own forward pass
        (minibatches or dropout); returns (state, mean train loss)."""
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
            keys = ops.where(m_tr > 0, ops.bitwise_and(keys, INT32_MAX - 1), INT32_MAX)
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

        # Early stopping / learning-rate schedule / NaN bookkeeping of epoch i (after i updates).
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
            **lr_schedule.update(ops, st, hyper, improved, not_improved),
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


def get_compiled(spec: Spec) -> Callable:
    """The compiled chunk function of ``spec`` (an LRU cache of the last few)."""
    key = (backend_name(), tf_jit_compile(), spec)
    fn = _compiled_cache.get(key)
    if fn is None:
        compile_fn, _ = backend_tools()
        fn = compile_fn(build_chunk_fn(spec))
        _compiled_cache[key] = fn
        while len(_compiled_cache) > _COMPILED_CACHE_SIZE:
            _compiled_cache.popitem(last=False)
    else:
        _compiled_cache.move_to_end(key)
    return fn
