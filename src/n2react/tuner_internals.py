"""Every keras-tuner internal n2react relies on, in one place (supported: keras-tuner 1.4.x).

keras-tuner has no public API for serving an oracle to workers over gRPC, for running one trial
outside ``search()``, for a retry queue that is still pending, or for Hyperband's trial count.
Those live here and nowhere else; :func:`check` names the first one a keras-tuner upgrade moved
(``tests/test_tuner_internals.py`` runs it, and a distributed search runs it before starting).
The range in ``SUPPORTED`` is the one ``pyproject.toml`` pins.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from n2react.backend import import_quietly
from n2react.errors import ConfigError

SUPPORTED = ">=1.4.7,<1.5"


def keras_tuner() -> ModuleType:
    return import_quietly("keras_tuner")


def service() -> ModuleType:
    """The gRPC messages of keras-tuner's oracle service (``CreateTrialRequest`` ...)."""
    return import_quietly("keras_tuner.src.protos").get_service()


def service_grpc() -> ModuleType:
    """The gRPC servicer base class, its registration and the client stub."""
    return import_quietly("keras_tuner.src.protos").get_service_grpc()


def trial_status() -> Any:
    return keras_tuner().engine.trial.TrialStatus


def trial_from_proto(proto: Any) -> Any:
    return keras_tuner().engine.trial.Trial.from_proto(proto)


def empty_trial(trial_id: str, status: str) -> Any:
    """A trial with no hyperparameters: how the chief tells a worker "nothing for you"."""
    kt = keras_tuner()
    return kt.engine.trial.Trial(kt.HyperParameters(), trial_id=trial_id, status=status)


def synchronized(func: Any) -> Any:
    """keras-tuner's oracle lock around ``func(oracle, ...)``."""
    return keras_tuner().synchronized(func)


def fatal_error() -> type[Exception]:
    return keras_tuner().errors.FatalError


def run_trial(tuner: Any, trial: Any, X: Any, y: Any) -> None:
    """Run one trial the oracle handed out and report its result (what ``search()`` does per
    trial, with keras-tuner's failure accounting)."""
    tuner._try_run_and_update_trial(trial, X, y)


def retries_pending(oracle: Any) -> bool:
    """Whether failed or lost trials are queued to run again."""
    return bool(oracle._retry_queue)


def hyperband_trials(oracle: Any) -> int:
    """Trials of one full Hyperband run: every round of every bracket (keras-tuner's own
    bracket arithmetic; it has no public total)."""
    return sum(
        oracle._get_size(b, r)
        for b in range(oracle._get_num_brackets())
        for r in range(oracle._get_num_rounds(b))
    )


def hyperband_first_round(oracle: Any) -> tuple[int, int]:
    """(trials, epochs each) of the round a Hyperband run starts with: the first round of its
    largest bracket, whose trials all run before any is promoted to more epochs."""
    bracket = oracle._get_num_brackets() - 1
    return int(oracle._get_size(bracket, 0)), int(oracle._get_epochs(bracket, 0))


def check() -> None:
    """Raise a ConfigError naming the first internal this keras-tuner lacks."""
    kt = keras_tuner()
    version = getattr(kt, "__version__", "?")

    def missing(what: str) -> ConfigError:
        return ConfigError(
            f"keras-tuner {version} has no {what}, which n2react relies on "
            f"(supported: keras-tuner{SUPPORTED}); install a supported version"
        )

    try:
        import_quietly("keras_tuner.src.protos")
    except ImportError:
        raise missing("keras_tuner.src.protos") from None
    grpc_names = ("OracleServicer", "add_OracleServicer_to_server", "OracleStub")
    messages = (
        "GetSpaceResponse UpdateSpaceResponse CreateTrialRequest CreateTrialResponse "
        "UpdateTrialRequest UpdateTrialResponse EndTrialRequest EndTrialResponse GetTrialRequest "
        "GetTrialResponse GetBestTrialsRequest GetBestTrialsResponse"
    ).split()
    for module, names in ((service_grpc(), grpc_names), (service(), messages)):
        for name in names:
            if not hasattr(module, name):
                raise missing(f"keras_tuner.src.protos {module.__name__}.{name}")
    for name in ("synchronized", "HyperParameters", "Objective", "errors", "engine"):
        if not hasattr(kt, name):
            raise missing(f"keras_tuner.{name}")
    if not hasattr(kt.errors, "FatalError"):
        raise missing("keras_tuner.errors.FatalError")
    for name in ("Trial", "TrialStatus"):
        if not hasattr(kt.engine.trial, name):
            raise missing(f"keras_tuner.engine.trial.{name}")
    for name in ("to_proto", "from_proto"):
        if not hasattr(kt.engine.trial.Trial, name):
            raise missing(f"Trial.{name}")
    if not hasattr(kt.engine.base_tuner.BaseTuner, "_try_run_and_update_trial"):
        raise missing("BaseTuner._try_run_and_update_trial")
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("score", "min"), max_trials=1)
    for name in ("_retry_queue", "ongoing_trials", "end_order", "tuner_ids", "trials"):
        if not hasattr(oracle, name):
            raise missing(f"Oracle.{name}")
    for name in ("max_retries_per_trial",):
        if not hasattr(oracle, name):
            raise missing(f"Oracle.{name}")
    hyperband = kt.oracles.HyperbandOracle(objective=kt.Objective("score", "min"), max_epochs=9)
    for name in (
        "_get_size", "_get_epochs", "_get_num_brackets", "_get_num_rounds", "hyperband_iterations"
    ):  # fmt: skip
        if not hasattr(hyperband, name):
            raise missing(f"HyperbandOracle.{name}")
