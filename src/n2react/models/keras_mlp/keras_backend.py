"""The backend adapter: the only code of the Keras MLP that knows TensorFlow from JAX.

:func:`backend_tools` returns the compile function (``tf.function`` / ``jax.jit``) and a
``value_and_grad`` transform; everything else is written with ``keras.ops``.  Nothing here imports
Keras or a backend at module import time.
"""

from __future__ import annotations

import os
from collections.abc import Callable

# tf.function(jit_compile=...) for the TensorFlow backend, overridable with the environment
# variable N2REACT_TF_JIT_COMPILE=1/0.  On a 2-core CPU XLA runs an epoch ~1.5x faster but compiles
# ~0.5 s longer per new architecture/shape, so plain graph mode wins unless a compiled
# architecture is reused many times (e.g. long searches varying only lr/l2/dropout/patience).
TF_JIT_COMPILE = False


def tf_jit_compile() -> bool:
    """Whether ``tf.function`` compiles with XLA (``N2REACT_TF_JIT_COMPILE``, else the default)."""
    flag = os.environ.get("N2REACT_TF_JIT_COMPILE", "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    return TF_JIT_COMPILE


def backend_name() -> str:
    """The active Keras backend (imports Keras)."""
    import keras

    return keras.backend.backend()


def backend_tools() -> tuple[Callable[[Callable], Callable], Callable[[Callable], Callable]]:
    """Return ``(compile_fn, value_and_grad)`` for the active Keras backend.

    ``value_and_grad(f)`` maps ``f(params) -> (scalar, aux)`` to
    ``g(params) -> ((scalar, aux), grads)``.
    """
    backend = backend_name()
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
            return tf.function(fn, jit_compile=tf_jit_compile(), autograph=False)

        return compile_tf, vag_tf
    raise NotImplementedError(
        f"KerasMLPRegressor supports the 'tensorflow' and 'jax' Keras backends, not {backend!r}"
    )
