"""Export a fitted pipeline whose model is a Keras network as ONE Keras model.

The preprocessing in front of the network (imputer, scaler, selector) is affine on complete
rows, so it folds into a frozen ``Dense`` layer: raw descriptors in, lg(k1) out. That model is
what MLflow's Keras flavour stores. Rows with missing descriptors need the full scikit-learn
pipeline (logged beside it), which imputes them.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from n2react.capabilities import Accelerated, final_step

log = logging.getLogger(__name__)


def affine_map(pre: Pipeline, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """``(W, b)`` with ``pre.transform(x) == x @ W + b`` on complete rows, or None if not affine."""
    p = X.shape[1]
    zero = pd.DataFrame(np.zeros((1, p)), columns=X.columns)
    eye = pd.DataFrame(np.eye(p), columns=X.columns)
    b = np.asarray(pre.transform(zero), dtype=float)[0]
    W = np.asarray(pre.transform(eye), dtype=float) - b
    rows = X.dropna().head(64)
    want = np.asarray(pre.transform(rows), dtype=float)
    got = rows.to_numpy(dtype=float) @ W + b
    if not np.allclose(got, want, rtol=1e-6, atol=1e-6 * (1.0 + np.abs(want).max())):
        return None
    return W, b


def keras_model_of(pipeline: Pipeline, X: pd.DataFrame) -> Any | None:
    """A standalone Keras model equivalent to ``pipeline`` on complete rows, or None."""
    final = final_step(pipeline)
    if not isinstance(final, Accelerated):
        return None
    net = final.model_
    affine = affine_map(pipeline[:-1], X)
    if affine is None:
        log.warning("the preprocessing is not affine: no Keras-flavour model is exported")
        return None
    import keras

    W, b = affine
    inputs = keras.Input(shape=(X.shape[1],), name="descriptors")
    pre = keras.layers.Dense(W.shape[1], trainable=False, name="preprocess")
    h = pre(inputs)
    pre.set_weights([W.astype("float32"), b.astype("float32")])
    for layer in net.layers:
        h = layer(h)
    return keras.Model(inputs, h, name="n2react_mlp")
