"""What a model can do, declared by the class (an ABC), never probed with ``hasattr``.

The fold loop (:mod:`n2react.cv`), the search and the run task ask these questions of the final
step of a pipeline:

* :class:`FitsMany`: trains the models of several folds together in one call (the fused Keras
  engine; the pairwise wrapper passes it on to its base);
* :class:`GroupAware`: ``fit(X, y, groups=...)`` keeps whole groups together when it carves rows
  out of its training set (early-stopping rows, held-out reference clusters), so that with
  grouped cross-validation no group sits on both sides of any split below the outer one;
* :class:`SpreadPredictor`: ``predict(X, return_std=True)`` returns a spread beside the mean;
* :class:`MemberEnsemble`: a fitted ensemble whose ``estimators_`` each predict the target from
  the same inputs (scikit-learn's random forest and extra trees, registered as virtual
  subclasses by :func:`is_member_ensemble`): the spread of their predictions is the model's own;
* :class:`EpochTrained`: trained in epochs with early stopping; ``epochs_param`` names the
  budget Hyperband sets, ``history_`` the fitted model's losses per epoch;
* :class:`Accelerated`: computes on the deep-learning backend, so device placement matters;
* :class:`Wrapper`: a meta-estimator whose ``wrapped_param`` names the inner model (its
  capabilities count for the wrapper's accelerator and epoch questions);
* :class:`ChecksParams`: ``check_params()`` refuses a bad parameter without fitting (a search's
  space ends are checked so before training; scikit-learn's own estimators have their
  parameter constraints for that);
* :class:`SameInputMembers`: an ensemble of ``(name, model)`` pairs in ``estimators``, each
  fitted on the ensemble's own inputs (scikit-learn's voting regressor, registered by
  :func:`sub_models`), so that a check of a model's inputs reaches its members;
* :class:`SelectionFrequency`: a selector step (not a model) whose fitted
  ``selection_frequency_`` says how often it kept each descriptor reaching it (the run's
  selection-frequency table and figure).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np


class FitsMany(ABC):
    """Fits one model per (X, y) of several folds in a single call."""

    @abstractmethod
    def fit_many(
        self,
        X_trains: Sequence[Any],
        y_trains: Sequence[Any],
        *,
        model_indices: Sequence[int] | None = None,
        groups: Sequence[Any] | None = None,
    ) -> list[Any]:
        """One fitted clone per training set; ``groups[k]`` are fold k's row groups."""

    @abstractmethod
    def fit_predict_many(
        self,
        X_trains: Sequence[Any],
        y_trains: Sequence[Any],
        X_tests: Sequence[Any],
        *,
        model_indices: Sequence[int] | None = None,
        groups: Sequence[Any] | None = None,
    ) -> list[np.ndarray]:
        """Fit as :meth:`fit_many` and predict ``X_tests[k]`` with model k."""


class GroupAware(ABC):
    """``fit(X, y, groups=None)``: carve-outs of the training rows keep groups whole."""

    @abstractmethod
    def fit(self, X: Any, y: Any, groups: Any = None) -> Any:
        """Fit on (X, y); ``groups`` (one label per row) or None."""


class SpreadPredictor(ABC):
    """``predict(X, return_std=True)`` returns ``(mean, spread)``."""

    @abstractmethod
    def predict(self, X: Any, return_std: bool = False) -> Any:
        """Predictions, and with ``return_std`` their spread."""


class MemberEnsemble(ABC):  # noqa: B024 (a marker: the contract is ``estimators_``)
    """Fitted ``estimators_`` that each predict the target from the inputs the ensemble gets."""


def is_member_ensemble(est: Any) -> bool:
    """Whether ``est`` is a :class:`MemberEnsemble` (scikit-learn's forests are registered here,
    on first use, so that importing this module does not import ``sklearn.ensemble``)."""
    if not _SKLEARN_REGISTERED:
        from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

        for cls in (ExtraTreesRegressor, RandomForestRegressor):
            MemberEnsemble.register(cls)
        _SKLEARN_REGISTERED.append(True)
    return isinstance(est, MemberEnsemble)


_SKLEARN_REGISTERED: list[bool] = []


def gives_spread(est: Any) -> bool:
    """Whether the model ``est`` (a final step) can give the spread of its own predictions."""
    return isinstance(est, SpreadPredictor) or is_member_ensemble(est)


def member_spread(est: Any, Xt: Any) -> np.ndarray:
    """Standard deviation over the members of a fitted :class:`MemberEnsemble` of their
    predictions of ``Xt`` (the ensemble's own inputs, after any preprocessing)."""
    Xt = np.asarray(Xt, dtype=np.float32)
    return np.std([m.predict(Xt) for m in est.estimators_], axis=0)


class EpochTrained(ABC):  # noqa: B024 (a marker with class attributes)
    """Trained in epochs, stopping early on validation rows: ``epochs_param`` is the parameter
    Hyperband's budget sets; ``validation_fraction`` the share of the training rows held out for
    early stopping (``fit(..., validation_mask=...)`` names them instead). Fitted, ``history_``
    holds the per-epoch ``{"loss": [...], "val_loss": [...]}`` (MSE of its targets), ``best_epoch_``
    the 1-based epoch whose weights were kept (0: none, the start weights) and ``target_var_`` the
    variance of the targets it was fitted on (the MSE of predicting their mean)."""

    epochs_param: ClassVar[str] = "max_epochs"
    #: the parameter setting its step size (a run whose network did not converge names it)
    rate_param: ClassVar[str] = "learning_rate"
    validation_fraction: float = 0.0


class Accelerated(ABC):  # noqa: B024 (a marker: the contract is an attribute)
    """Computes on the deep-learning backend (GPU placement and backend start-up matter);
    fitted, ``model_`` is its Keras network (exported as MLflow's Keras flavour)."""


class Wrapper(ABC):  # noqa: B024 (a marker with a class attribute)
    """A meta-estimator around one inner model, named by ``wrapped_param``; fitted, its fitted
    clone of that model is ``<wrapped_param>_`` (``base_``)."""

    wrapped_param: ClassVar[str] = "base"


class ChecksParams(ABC):
    """Checks its own parameters without fitting (``fit`` calls it first)."""

    @abstractmethod
    def check_params(self) -> None:
        """Raise ValueError naming the first parameter the estimator refuses."""


class SelectionFrequency(ABC):  # noqa: B024 (a marker: the contract is an attribute)
    """A selector whose fitted ``selection_frequency_`` (one value in [0, 1] per input
    descriptor) is how often it kept that descriptor over its resamples."""


class SameInputMembers(ABC):  # noqa: B024 (a marker: the contract is ``estimators``)
    """``estimators`` holds ``(name, model)`` pairs, each fitted on the inputs the ensemble gets
    (a member set to ``"drop"`` is none)."""


_VOTING_REGISTERED: list[bool] = []


def sub_models(est: Any) -> list[tuple[str, str, Any]]:
    """The models inside ``est`` that are fitted on the inputs ``est`` gets (as many columns), as
    ``(parameter name, config path, model)`` below ``est``'s own: a :class:`Wrapper`'s wrapped
    model (``base``, ``base``; a pairwise base sees differences of the inputs), a
    :class:`SameInputMembers` ensemble's members (``trees``, ``estimators.0.1``). scikit-learn's
    ``VotingRegressor`` is registered here on first use."""
    if not _VOTING_REGISTERED:
        from sklearn.ensemble import VotingRegressor

        SameInputMembers.register(VotingRegressor)
        _VOTING_REGISTERED.append(True)
    if isinstance(est, Wrapper):
        return [(est.wrapped_param, est.wrapped_param, getattr(est, est.wrapped_param))]
    if isinstance(est, SameInputMembers):
        return [
            (name, f"estimators.{i}.1", member)
            for i, (name, member) in enumerate(est.estimators)
            if not isinstance(member, str)  # "drop"
        ]
    return []


def final_step(model: Any) -> Any:
    """The model a pipeline ends in (``model`` itself when it is no pipeline): the one these
    questions are asked of."""
    from sklearn.pipeline import Pipeline

    return model.steps[-1][1] if isinstance(model, Pipeline) else model


def inner_model(est: Any) -> Any:
    """The innermost model of ``est`` (through wrappers)."""
    while isinstance(est, Wrapper):
        est = getattr(est, est.wrapped_param)
    return est


def fitted_inner(est: Any) -> Any:
    """The fitted innermost model of a fitted ``est`` (through wrappers' fitted clones)."""
    while isinstance(est, Wrapper):
        est = getattr(est, f"{est.wrapped_param}_")
    return est


def uses_accelerator(est: Any) -> bool:
    """Whether ``est`` or the model it wraps computes on the deep-learning backend."""
    return isinstance(inner_model(est), Accelerated)


def epochs_param(est: Any, prefix: str = "") -> str | None:
    """The parameter name (``model__base__max_epochs`` ...) of the epoch budget, or None."""
    while isinstance(est, Wrapper):
        prefix += f"{est.wrapped_param}__"
        est = getattr(est, est.wrapped_param)
    return f"{prefix}{est.epochs_param}" if isinstance(est, EpochTrained) else None
