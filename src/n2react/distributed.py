"""Distributed search: one chief serves keras-tuner's oracle over gRPC, workers run its trials.

This module holds the settings and the chief's side; :mod:`n2react.distributed_job` the job of a
chief or worker process and the worker's side of the protocol.

``search.distributed.role=chief`` runs the job as usual; each inner search (one per outer fold,
then the final one) is opened on the chief's gRPC server in turn, and the chief runs trials too.
``role=worker`` (same config otherwise) walks the same searches in the same order, asks the chief
for trials, scores them by inner CV and reports back; it logs nothing to MLflow.

A worker that goes silent for ``trial_timeout_s`` (killed, hung, lost) has its trial ended as
INVALID, so keras-tuner retries it (``retries`` times) on whoever asks next, the chief included;
the chief never waits on a dead worker, and a worker never waits longer than that on a dead chief.
Requests carry the search's number, name and a fingerprint of its rows and inner folds, so a
worker with other data or another config is refused instead of mixing scores.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np

from n2react import tuner_internals as kti
from n2react.errors import ConfigError
from n2react.splitters import Split

log = logging.getLogger(__name__)

ROLES = ("chief", "worker")
CHIEF_ID = "chief"


@dataclass(frozen=True)
class Distributed:
    """The ``search.distributed`` node: who this process is and how to reach the chief."""

    role: str
    ip: str = "127.0.0.1"
    port: int = 8000
    workers: int = 0  # the chief's first search waits (up to wait_s) for this many workers
    trial_timeout_s: float = 600.0
    retries: int = 1
    wait_s: float = 60.0
    worker_id: str | None = None

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> Distributed | None:
        if not node or node.get("role") in (None, "none", "off"):
            return None
        role = str(node["role"])
        if role not in ROLES:
            raise ConfigError(f"search.distributed.role={role!r}: expected chief, worker or null")
        try:
            d = cls(
                role=role,
                ip=str(node.get("ip", "127.0.0.1")),
                port=int(node.get("port", 8000)),
                workers=int(node.get("workers") or 0),
                trial_timeout_s=float(node.get("trial_timeout_s", 600)),
                retries=int(node.get("retries", 1)),
                wait_s=float(node.get("wait_s", 60)),
                worker_id=str(node["worker_id"]) if node.get("worker_id") else None,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"search.distributed: {exc}") from None
        if not 0 < d.port < 65536:
            raise ConfigError(f"search.distributed.port={d.port}: expected 1..65535")
        if d.trial_timeout_s <= 0 or d.retries < 0 or d.workers < 0 or d.wait_s < 0:
            raise ConfigError(
                "search.distributed: trial_timeout_s must be > 0; retries, workers, wait_s >= 0"
            )
        return d

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def heartbeat_s(self) -> float:
        return max(0.2, min(5.0, self.trial_timeout_s / 4))


def fingerprint(X: Any, y: np.ndarray, splits: Sequence[Split], groups: Any = None) -> str:
    """A short hash of a search's rows, targets, inner folds and groups (chief and workers
    must agree on it)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(np.asarray(X, dtype=float)).tobytes())
    h.update(np.ascontiguousarray(np.asarray(y, dtype=float)).tobytes())
    for s in splits:
        h.update(np.asarray(s.train, dtype=np.int64).tobytes() + b"|")
        h.update(np.asarray(s.test, dtype=np.int64).tobytes() + b"/")
    if groups is not None:
        h.update("\x1f".join(map(str, groups)).encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- chief


@dataclass
class _Search:
    index: int
    name: str
    data: str
    oracle: Any
    is_open: bool = True


class ChiefServer:
    """The chief's gRPC server: routes each worker request to the search it names."""

    def __init__(self, settings: Distributed) -> None:
        import grpc

        self.settings = settings
        self.current: _Search | None = None
        self.started = 0  # searches opened so far
        self.last_seen: dict[str, float] = {}
        self.joined: set[str] = set()
        self._lock = threading.Lock()
        servicer = _servicer_class()(self)
        # gRPC sets SO_REUSEPORT by default: a second chief on the same port would bind too and
        # share the workers' connections with the first
        self.server = grpc.server(_thread_pool(), options=[("grpc.so_reuseport", 0)])
        kti.service_grpc().add_OracleServicer_to_server(servicer, self.server)
        try:
            bound = self.server.add_insecure_port(settings.address)
        except RuntimeError:
            bound = 0
        if not bound:
            raise ConfigError(
                f"search.distributed: the chief cannot listen on {settings.address} "
                "(port in use or address not local?)"
            )
        self.server.start()
        log.info("distributed search: chief listening on %s", settings.address)

    def stop(self) -> None:
        self.server.stop(grace=1.0)

    def route(self, meta: Mapping[str, str]) -> tuple[str, _Search | None]:
        """'past', 'future' or 'current' (with the search) for a request's metadata."""
        tuner = meta.get("n2-tuner", "?")
        with self._lock:
            self.last_seen[tuner] = time.monotonic()
            self.joined.add(tuner)
            cur = self.current
            index = int(meta.get("n2-search", "-1"))
            if cur is None or index > cur.index:
                return ("future", None) if index >= self.started else ("past", None)
            if index < cur.index or not cur.is_open:
                return "past", None
        if meta.get("n2-project") != cur.name or meta.get("n2-data") != cur.data:
            raise ConfigError(
                f"worker {tuner}: search {index} is {meta.get('n2-project')} "
                f"(data {meta.get('n2-data')}) on the worker but {cur.name} (data {cur.data}) "
                "on the chief: start workers with the chief's config"
            )
        return "current", cur

    def open(self, name: str, data: str, oracle: Any) -> _Search:
        with self._lock:
            self.current = _Search(self.started, name, data, oracle)
            self.started += 1
            return self.current

    def close(self, search: _Search) -> None:
        with self._lock:
            search.is_open = False

    def reap(self, search: _Search) -> list[str]:
        """End the trials of workers silent for trial_timeout_s as INVALID (keras-tuner retries
        them); return the lost workers' ids."""
        invalid = kti.trial_status().INVALID
        limit = self.settings.trial_timeout_s
        now = time.monotonic()

        @kti.synchronized
        def _reap(oracle: Any) -> list[str]:
            lost = []
            for tuner, trial in list(oracle.ongoing_trials.items()):
                if tuner == CHIEF_ID or now - self.last_seen.get(tuner, now) <= limit:
                    continue
                trial.status = invalid
                trial.message = f"worker {tuner} silent for over {limit:g} s"
                oracle.end_trial(trial)
                oracle.tuner_ids.discard(tuner)
                lost.append(tuner)
                log.warning(
                    "%s: worker %s silent for over %g s; trial %s handed back (%s)",
                    search.name,
                    tuner,
                    limit,
                    trial.trial_id,
                    trial.status,
                )
            return lost

        return _reap(search.oracle)


def _thread_pool() -> Any:
    from concurrent import futures

    return futures.ThreadPoolExecutor(max_workers=8)


def _servicer_class() -> type:
    import grpc

    service = kti.service()

    class Servicer(kti.service_grpc().OracleServicer):
        def __init__(self, chief: ChiefServer) -> None:
            self.chief = chief

        def _route(self, context: Any) -> tuple[str, _Search | None, str]:
            meta = {k: str(v) for k, v in context.invocation_metadata()}
            try:
                where, search = self.chief.route(meta)
            except ConfigError as exc:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            return where, search, meta.get("n2-tuner", "?")

        def _owns(self, search: _Search, tuner: str, trial_id: str) -> bool:
            trial = search.oracle.ongoing_trials.get(tuner)
            return trial is not None and trial.trial_id == trial_id

        def GetSpace(self, request: Any, context: Any) -> Any:
            where, search, _ = self._route(context)
            if search is None:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"search not open ({where})")
            hps = search.oracle.get_space()
            return service.GetSpaceResponse(hyperparameters=hps.to_proto())

        def UpdateSpace(self, request: Any, context: Any) -> Any:
            return service.UpdateSpaceResponse()  # the space is the chief's

        def CreateTrial(self, request: Any, context: Any) -> Any:
            where, search, tuner = self._route(context)
            if search is None:
                status = "IDLE" if where == "future" else "STOPPED"
                trial = kti.empty_trial("", status)
            else:
                trial = search.oracle.create_trial(tuner)
            return service.CreateTrialResponse(trial=trial.to_proto())

        def UpdateTrial(self, request: Any, context: Any) -> Any:
            _, search, tuner = self._route(context)
            if search is not None and self._owns(search, tuner, request.trial_id):
                trial = search.oracle.update_trial(
                    request.trial_id, dict(request.metrics), step=request.step
                )
            else:
                trial = kti.empty_trial(request.trial_id, "STOPPED")
            return service.UpdateTrialResponse(trial=trial.to_proto())

        def EndTrial(self, request: Any, context: Any) -> Any:
            _, search, tuner = self._route(context)
            trial = kti.trial_from_proto(request.trial)
            if search is not None and self._owns(search, tuner, trial.trial_id):
                search.oracle.end_trial(trial)
            else:
                log.info("ignored a late report of trial %s from %s", trial.trial_id, tuner)
            return service.EndTrialResponse()

        def GetTrial(self, request: Any, context: Any) -> Any:  # also the workers' heartbeat
            _, search, _ = self._route(context)
            if search is not None and request.trial_id in search.oracle.trials:
                trial = search.oracle.get_trial(request.trial_id)
            else:
                trial = kti.empty_trial(request.trial_id, "STOPPED")
            return service.GetTrialResponse(trial=trial.to_proto())

        def GetBestTrials(self, request: Any, context: Any) -> Any:
            _, search, _ = self._route(context)
            trials = [] if search is None else search.oracle.get_best_trials(request.num_trials)
            return service.GetBestTrialsResponse(trials=[t.to_proto() for t in trials])

    return Servicer


#: the server of the job running in this context (set by :func:`chief`)
_serving: ContextVar[ChiefServer | None] = ContextVar("n2react_chief", default=None)


@contextmanager
def chief(settings: Distributed) -> Iterator[ChiefServer]:
    """The chief's server for the duration of a job (every search of the job uses it)."""
    server = ChiefServer(settings)
    token = _serving.set(server)
    try:
        yield server
    finally:
        _serving.reset(token)
        server.stop()


def chief_search(
    settings: Distributed, tuner: Any, X: Any, y: np.ndarray, data: str, project: str
) -> None:
    """Run one search as the chief: serve it to the workers and run trials here too, until
    every trial has ended (workers silent for trial_timeout_s are given up on)."""
    server = _serving.get()
    if server is None:
        with chief(settings):
            return chief_search(settings, tuner, X, y, data, project)
    status = kti.trial_status()
    oracle = tuner.oracle
    oracle.max_retries_per_trial = max(int(oracle.max_retries_per_trial), settings.retries)
    search = server.open(project, data, oracle)
    try:
        if search.index == 0 and settings.workers:
            _wait_for_workers(server, settings)
        reported = set(oracle.end_order)
        while True:
            server.reap(search)
            trial = oracle.create_trial(CHIEF_ID)
            if trial.status == status.RUNNING:
                tuner.on_trial_begin(trial)
                kti.run_trial(tuner, trial, X, y)
                tuner.on_trial_end(trial)
                reported.add(trial.trial_id)
            else:
                if trial.status == status.STOPPED and not (
                    oracle.ongoing_trials or kti.retries_pending(oracle)
                ):
                    break
                time.sleep(0.1)
            for trial_id in [t for t in oracle.end_order if t not in reported]:
                reported.add(trial_id)  # a worker's trial: count it in the progress bar
                tuner.count_trial()
    finally:
        server.close(search)


def _wait_for_workers(server: ChiefServer, settings: Distributed) -> None:
    deadline = time.monotonic() + settings.wait_s
    while len(server.joined) < settings.workers and time.monotonic() < deadline:
        time.sleep(0.1)
    if len(server.joined) < settings.workers:
        log.warning(
            "distributed search: %d of %d workers joined within %g s; going on",
            len(server.joined),
            settings.workers,
            settings.wait_s,
        )
