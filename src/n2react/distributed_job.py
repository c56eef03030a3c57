"""The job of a distributed-search process, and the worker's side of the protocol.

``role=chief`` runs the usual job with the chief's server up (:mod:`n2react.distributed`);
``role=worker`` walks the chief's searches in its order, runs the trials the chief hands out and
reports back, with a heartbeat so that the chief knows it is alive.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from n2react import tuner_internals as kti
from n2react.data import load_dataset
from n2react.distributed import Distributed, chief, fingerprint
from n2react.errors import ConfigError
from n2react.nested_residuals import nested_searches
from n2react.plan import Plan
from n2react.search import make_tuner

log = logging.getLogger(__name__)


class RemoteOracle:
    """What a worker's tuner sees of the chief's oracle for one search (gRPC, with deadlines)."""

    def __init__(
        self, stub: Any, settings: Distributed, tuner_id: str, index: int, name: str, data: str
    ) -> None:
        self.stub, self.settings, self.tuner_id = stub, settings, tuner_id
        self.objective: Any = None
        self.connected = False
        self._meta = (
            ("n2-tuner", tuner_id),
            ("n2-search", str(index)),
            ("n2-project", name),
            ("n2-data", data),
        )

    def _call(self, method: str, request: Any) -> Any:
        import grpc

        limit = self.settings.trial_timeout_s
        if not self.connected:  # the chief may still be starting
            limit += self.settings.wait_s
        try:
            answer = getattr(self.stub, method)(
                request, metadata=self._meta, timeout=limit, wait_for_ready=True
            )
            self.connected = True
            return answer
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise ConfigError(f"search.distributed: {exc.details()}") from None
            raise ConfigError(
                f"search.distributed: the chief at {self.settings.address} did not answer "
                f"within {limit:g} s ({exc.code().name})"
            ) from None

    def create_trial(self, tuner_id: str) -> Any:
        req = kti.service().CreateTrialRequest(tuner_id=tuner_id)
        return kti.trial_from_proto(self._call("CreateTrial", req).trial)

    def update_trial(self, trial_id: str, metrics: Mapping[str, float], step: int = 0) -> Any:
        req = kti.service().UpdateTrialRequest(trial_id=trial_id, metrics=metrics, step=step)
        return kti.trial_from_proto(self._call("UpdateTrial", req).trial)

    def end_trial(self, trial: Any) -> None:
        self._call("EndTrial", kti.service().EndTrialRequest(trial=trial.to_proto()))

    def get_trial(self, trial_id: str) -> Any:
        req = kti.service().GetTrialRequest(trial_id=trial_id)
        return kti.trial_from_proto(self._call("GetTrial", req).trial)

    def get_best_trials(self, num_trials: int = 1) -> list[Any]:
        req = kti.service().GetBestTrialsRequest(num_trials=num_trials)
        return [kti.trial_from_proto(t) for t in self._call("GetBestTrials", req).trials]


@contextmanager
def _heartbeat(remote: RemoteOracle, trial_id: str) -> Iterator[None]:
    """Tell the chief every heartbeat_s that this worker still runs ``trial_id``."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(remote.settings.heartbeat_s):
            try:
                remote.get_trial(trial_id)
            except ConfigError:
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def worker_search(
    settings: Distributed,
    tuner: Any,
    X: Any,
    y: np.ndarray,
    *,
    index: int,
    project: str,
    data: str,
    stub: Any,
) -> int:
    """Run the chief's trials of search ``index`` with ``tuner`` (an inner-CV tuner of the same
    rows) until the chief stops it; return how many ran here."""
    status = kti.trial_status()
    tuner_id = settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"
    remote = RemoteOracle(stub, settings, tuner_id, index, project, data)
    remote.objective = tuner.oracle.objective
    tuner.oracle = remote
    fatal = kti.fatal_error()
    ran = 0
    while True:
        trial = remote.create_trial(tuner_id)
        if trial.status == status.STOPPED:
            return ran
        if trial.status != status.RUNNING:
            time.sleep(0.2)
            continue
        try:
            with _heartbeat(remote, trial.trial_id):
                kti.run_trial(tuner, trial, X, y)
        except fatal as exc:
            trial.status, trial.message = status.FAILED, str(exc)
            remote.end_trial(trial)
            raise ConfigError(f"search: a trial failed: {exc}") from exc
        remote.end_trial(trial)
        ran += 1
        tuner.count_trial()


def run_distributed(
    plan: Plan, run_dir: Path, train: Callable[[], dict[str, float]]
) -> dict[str, float]:
    """The job of a chief (``train`` with the server up) or of a worker (:func:`run_worker`)."""
    settings = plan.search.distributed
    assert settings is not None
    kti.check()  # a keras-tuner without the internals the protocol needs: say which, stop
    if settings.role == "worker":
        return run_worker(plan, run_dir)
    if not plan.search.active:
        log.warning("search.distributed.role=chief: there is no search to distribute")
        return train()
    with chief(settings):
        return train()


def run_worker(plan: Plan, run_dir: Path) -> dict[str, float]:
    """``role=worker``: the chief's searches, in its order (the outer folds, the nested
    validation's, then the final one), from the same plan and data; nothing is logged to
    MLflow."""
    import grpc

    settings = plan.search.distributed
    if plan.scheme != "nested" or not plan.search.active:
        raise ConfigError("search.distributed.role=worker: needs a search and cv.scheme=nested")
    dataset = plan.attach_groups(load_dataset(plan.data, plan.group_column))
    splits = plan.validate(dataset)
    rows = [(f"outer_{s.fold:02d}", s.train) for s in splits]
    if plan.uncertainty is not None and plan.uncertainty.validation == "nested":
        # the chief searches again without each pair of folds (none where one group is left)
        rows += nested_searches(splits, dataset.groups)
    if plan.final_model:
        rows.append(("final", np.arange(dataset.n_rows)))
    channel = grpc.insecure_channel(settings.address)
    stub = kti.service_grpc().OracleStub(channel)
    log.info("distributed search: worker of %s, %d searches", settings.address, len(rows))
    try:
        for index, (name, train) in enumerate(rows):
            X = dataset.X.iloc[train]
            y = np.asarray(dataset.y[train], dtype=float)
            groups = None if dataset.groups is None else dataset.groups[train]
            inner = plan.inner.split(len(y), groups)
            tuner = make_tuner(
                plan.make_pipeline(), plan.search, inner, groups, run_dir / "search", name
            )
            ran = worker_search(
                settings,
                tuner,
                X,
                y,
                index=index,
                project=name,
                data=fingerprint(X, y, inner, groups),
                stub=stub,
            )
            log.info("%s: %d trial(s) run here", name, ran)
    finally:
        channel.close()
    return {plan.optimized_metric: float("nan")}  # a worker scores nothing itself
