"""A scikit-learn compatible Keras 3 MLP regressor with a fused multi-model training engine.

Keras ``model.fit`` on ~150 rows is dominated by per-epoch Python/callback overhead, not by the
arithmetic.  :class:`KerasMLPRegressor` therefore trains with its own engine: the K models of a
cross-validation round (``fit_predict_many`` / ``fit_many``; ``fit`` is the case K=1) are stacked
into batched weights of shape ``(K, in, out)``, their row sets are padded to a common length and
masked, and a whole chunk of epochs (Adam, early stopping with best-weight restore,
ReduceLROnPlateau, NaN termination, minibatch shuffling and dropout) runs inside one compiled
function (``tf.function`` on TensorFlow, ``jax.jit`` on JAX).  All model math is written with
``keras.ops``; only :mod:`.keras_backend` knows about the backend.

Every model is independent: its initial weights, validation carve-out, shuffles and dropout masks
depend only on its own seed (derived from ``random_state`` and the model's index) and its own rows,
so training K models together gives the same result as training each one alone (up to float
round-off of the padded, batched matmuls).

After ``fit`` the trained network is exported as a plain ``keras.Sequential`` (``Dense`` and
``Dropout`` layers) in ``model_``; the target de-standardisation is folded into the last ``Dense``
layer's weights, so ``model_.predict(X)`` returns ``lg(k1)`` in original units and the model can be
saved as ``.keras`` without custom objects.

Differences from a plain ``model.fit`` loop worth knowing:

* the validation rows are a random subset (``validation_fraction``) of the rows given to ``fit``
  (whole groups when ``fit`` gets ``groups``), not the last rows as with Keras'
  ``validation_split``;
* ``history_`` (``{"loss": [...], "val_loss": [...]}``, one entry per epoch; the learning
  curves; ``fit_predict_many(..., return_info=True)`` returns them per model, and a pairwise
  wrapper's ``history_`` is its base's) holds the data MSE in original target units (the L2
  penalty is not included);
  ``min_delta`` is compared against these values;
* the L2 penalty (``l2 * sum(kernel**2)``) acts on the standardised-target loss when
  ``standardize_target`` is true.

The package is one concept in four layers, one file each:

* :mod:`.keras_backend`: the backend adapter (compile function, ``value_and_grad``, TF jit flag);
* :mod:`.program`: the compiled training program (hash-based randomness, Adam, the epoch body,
  the compiled-function cache); :mod:`.lr_schedule` is its learning-rate schedule;
* :mod:`.driver`: the host side (carve-out, padding, the chunk loop, :class:`~.driver.FitResult`);
* :mod:`.estimator`: the scikit-learn facade :class:`KerasMLPRegressor`.
"""

from __future__ import annotations

from .estimator import KerasMLPRegressor

# Pickles (and MLflow sklearn models) name the class by this public path, not by the file that
# defines it, so they load whichever way the package is laid out inside.
KerasMLPRegressor.__module__ = __name__

__all__ = ["KerasMLPRegressor"]
