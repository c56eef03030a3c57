"""The scikit-learn facade of the Keras MLP: parameters, validation, fitted attributes, predict.

Training goes through :func:`.driver.train` (all models of a call in one fused run); prediction is
a float64 numpy forward pass of the exported weights.  See the package docstring for the design.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted, validate_data

from ...capabilities import Accelerated, ChecksParams, EpochTrained, FitsMany, GroupAware
from .driver import FitResult, model_seeds, n_val, train

__all__ = ["KerasMLPRegressor"]


class KerasMLPRegressor(
    RegressorMixin, BaseEstimator, FitsMany, GroupAware, EpochTrained, Accelerated, ChecksParams
):
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
        ReduceLROnPlateau: after this many (>= 1) epochs without improvement multiply the learning
        rate by ``reduce_lr_factor`` (not below ``min_lr``); ``None`` disables it (0 is refused:
        it would cut the rate after every epoch without improvement, as 1 does).
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
        Epoch (1-based) whose weights were restored: the one with the lowest validation loss
        (improving by more than ``min_delta``).  The start weights are never a candidate; 0 only
        when no epoch had a finite validation loss (a model diverged at once keeps them).
    target_var_ : float
        Variance of the targets given to ``fit``: the MSE of predicting their mean, the yardstick
        of a model whose training did not converge (its best ``val_loss`` far above it).
    n_epochs_ : int
        Epochs run.
    validation_indices_ : ndarray
        Row indices (into the X given to ``fit``) held out for early stopping (whole groups when
        ``fit`` got ``groups``).
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

    def check_params(self) -> None:
        for name in _WHOLE_NUMBERS:  # units=64.5 was cut to 64 without a word
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, Integral)):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
        if not isinstance(self.standardize_target, bool | np.bool_):
            raise ValueError(
                f"standardize_target must be true or false, got {self.standardize_target!r}"
            )
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
        if float(self.l2) < 0:  # a negative penalty rewards large weights
            raise ValueError(f"l2 must be >= 0, got {self.l2}")
        # 0 is not "off": it cut the rate after every epoch without improvement, as 1 does
        if self.reduce_lr_patience is not None and int(self.reduce_lr_patience) < 1:
            raise ValueError(
                f"reduce_lr_patience must be null (off) or >= 1, got {self.reduce_lr_patience}"
            )
        if not 0.0 < float(self.reduce_lr_factor) < 1.0:
            raise ValueError(f"reduce_lr_factor must be in (0, 1), got {self.reduce_lr_factor}")
        if float(self.min_lr) < 0 or float(self.min_delta) < 0:
            raise ValueError(
                f"min_lr and min_delta must be >= 0, got {self.min_lr}, {self.min_delta}"
            )
        if not isinstance(self.activation, str) or not _known_activation(self.activation):
            raise ValueError(f"activation must be a Keras activation name, got {self.activation!r}")

    def _validate_fit_data(self, est: KerasMLPRegressor, X: Any, y: Any) -> tuple:
        est.check_params()  # a bad parameter named before the data is (validation_fraction=1)
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
        return n_val(self.validation_fraction, n)

    def _train(
        self,
        Xs: list[np.ndarray],
        ys: list[np.ndarray],
        indices: Sequence[int],
        masks: Sequence[Any] | None = None,
        groups: Sequence[Any] | None = None,
    ) -> FitResult:
        """Train models ``indices`` (their seeds) on ``Xs``/``ys`` in one fused run."""
        self.check_params()
        return train(self, Xs, ys, model_seeds(self.random_state, indices), masks, groups)

    def _build_model(self, weights: list[np.ndarray]) -> Any:
        from n2react.backend import keras_module

        keras = keras_module()  # a model file read where its backend is missing: one line

        model = keras.Sequential(name="n2react_mlp")
        model.add(keras.Input(shape=(weights[0].shape[0],), dtype="float32"))
        for j, units in enumerate(self._hidden_units()):
            model.add(keras.layers.Dense(units, activation=self.activation, name=f"dense_{j}"))
            if float(self.dropout) > 0:
                model.add(keras.layers.Dropout(float(self.dropout), name=f"dropout_{j}"))
        model.add(keras.layers.Dense(1, name="output"))
        model.set_weights(weights)
        return model

    def _set_fitted(self, res: FitResult, k: int) -> None:
        self.model_ = self._build_model(res.exported_weights(k))
        self.history_ = {"loss": res.loss[k], "val_loss": res.val_loss[k]}
        self.best_epoch_ = int(res.best_epoch[k])
        self.target_var_ = float(res.y_var[k])
        self.n_epochs_ = int(res.n_epochs[k])
        self.diverged_ = bool(res.diverged[k])
        self.validation_indices_ = res.val_indices[k]

    # ------------------------------------------------------------------ public API
    def fit(
        self, X: Any, y: Any, validation_mask: Any = None, groups: Any = None
    ) -> KerasMLPRegressor:
        """Train one model on (X, y) (model index 0 of the fused engine).

        ``validation_mask`` (boolean, one per row) names the early-stopping rows instead of a
        random ``validation_fraction`` of them (pairwise learning holds out whole clusters).
        Without a mask, ``groups`` (one label per row) makes them whole groups, drawn at random
        until at least ``validation_fraction`` of the rows are held out, at least one group
        always left for training (a single group: random rows, with a warning).
        """
        X, y = self._validate_fit_data(self, X, y)
        res = self._train([X], [y], [0], [validation_mask], [groups])
        self._set_fitted(res, 0)
        return self

    def fit_many(
        self,
        X_trains: Sequence[Any],
        y_trains: Sequence[Any],
        *,
        model_indices: Sequence[int] | None = None,
        validation_masks: Sequence[Any] | None = None,
        groups: Sequence[Any] | None = None,
    ) -> list[KerasMLPRegressor]:
        """Train one fitted clone per ``(X_trains[k], y_trains[k])``, all in one fused run.

        ``model_indices`` (default ``0..K-1``) selects each model's seed; model ``k`` alone is
        reproduced by ``fit_many([X_k], [y_k], model_indices=[k])``. ``validation_masks[k]``
        names model k's early-stopping rows, else ``groups[k]`` (one label per row of
        ``X_trains[k]``, or None) keeps them whole groups (see ``fit``).
        """
        ests, Xs, ys = self._prepare_many(X_trains, y_trains)
        res = self._train(Xs, ys, self._indices(model_indices, len(Xs)), validation_masks, groups)
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
        validation_masks: Sequence[Any] | None = None,
        groups: Sequence[Any] | None = None,
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
        res = self._train(Xs, ys, self._indices(model_indices, len(Xs)), validation_masks, groups)
        preds = []
        for k, (est, Xt) in enumerate(zip(ests, X_tests, strict=True)):
            Xt = validate_data(est, Xt, dtype=(np.float64, np.float32), reset=False)
            preds.append(self._forward(res.exported_weights(k), np.asarray(Xt, np.float32)))
        if not return_info:
            return preds
        return preds, [res.info(k) for k in range(len(preds))]

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
        """The parameters and fitted attributes, the network as its weight arrays only (no
        Keras config: a model file names no code, and the network is rebuilt from the
        estimator's own parameters)."""
        state = dict(super().__getstate__())  # object.__getstate__ may return __dict__ itself
        model = state.pop("model_", None)
        if model is not None:
            state["_model_weights"] = [np.asarray(w) for w in model.get_weights()]
        return state

    def __setstate__(self, state: dict) -> None:
        weights = state.pop("_model_weights", None)
        payload = state.pop("_model_payload", None)  # older files: config + weights
        if weights is None and payload is not None:
            weights = payload["weights"]
        super().__setstate__(state)
        if weights is not None:
            if not isinstance(self.activation, str):
                raise ValueError("KerasMLPRegressor: activation must be a Keras activation name")
            self.model_ = self._build_model([np.asarray(w) for w in weights])


_WHOLE_NUMBERS = (
    "n_layers", "units", "units_decrement", "max_epochs", "patience", "batch_size",
    "reduce_lr_patience",
)  # fmt: skip


def _known_activation(name: str) -> bool:
    """Whether Keras knows the activation ``name`` (the common ones without importing Keras)."""
    if name in _NUMPY_ACTIVATIONS:
        return True
    from n2react.backend import keras_module

    try:
        keras_module().activations.get(name)
    except ValueError:
        return False
    return True


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
