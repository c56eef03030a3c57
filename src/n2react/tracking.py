"""The tracking seam: what a run logs, behind one small interface.

:class:`Tracker` is everything the trainer, resume, predict and explain ask of a tracking store:
start/reopen/finish a parent run, one child run per outer fold, params, metrics (also per step),
tags, artifacts, the final model, and reading finished runs back.
:func:`n2react.trackers.open_tracker` picks the implementation from the ``tracking`` config:
:class:`NullTracker` (``tracking=none``) or the MLflow one (:mod:`n2react.mlflow_tracking`, the
only module of the trainer that imports MLflow).

Every name logged is part of the public contract (see README): parent metrics ``mean_test_r``
...; child runs tagged ``fold`` with ``test_r`` ...; artifacts ``oof_predictions.csv``,
``parity.png``, ``config_resolved.yaml`` and the final model; params: the keys a user compares
runs by (:func:`tracked_params`), flat.
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The store when the config names none (``tracking.uri``, ``--tracking-uri``): MLflow's own
#: environment variable, else a SQLite file in the working directory.
DEFAULT_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "n2react"
TAG_NOTE = "mlflow.note.content"  # the run's description in the MLflow UI
#: the n2react version that started the run (the parent run's tag; run.json in its folder)
TAG_VERSION = "n2react.version"
#: The final model file's sha256 (the parent run's tag): predict and explain check a download of
#: the model against it before loading it.
TAG_MODEL_SHA = "model_sha256"
#: Why the run's explain step failed (the parent run's tag): the run itself FINISHED, its
#: results stand; ``python -m n2react.explain RUN`` draws the figures again.
TAG_EXPLAIN_ERROR = "explain_error"
#: An MLflow run id (32 hex digits), as predict, explain and compare tell one from a path.
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
#: A logged data file's digest: this many hex digits of its sha256 (MLflow keeps 36 at most)
DIGEST_LEN = 16


def default_uri() -> str:
    """The tracking URI a command line uses when given none."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


@dataclass(frozen=True)
class Store:
    """Where runs go: resolved once from the ``tracking`` config by :func:`store_of`."""

    uri: str
    experiment: str = DEFAULT_EXPERIMENT
    run_name: str | None = None
    log_model: bool = True


def store_of(cfg: Mapping[str, Any]) -> Store | None:
    """The store of a ``tracking`` config, or None when tracking is off (``enabled: false`` or no
    ``uri``): the one place that rule is written."""
    if not bool(cfg.get("enabled", True)) or cfg.get("uri") is None:
        return None
    return Store(
        uri=str(cfg["uri"]),
        experiment=str(cfg.get("experiment", DEFAULT_EXPERIMENT)),
        run_name=str(cfg["run_name"]) if cfg.get("run_name") else None,
        log_model=bool(cfg.get("log_model", True)),
    )


@dataclass(frozen=True)
class RunRecord:
    """A run read back from the store (what resume, predict and explain need of it)."""

    run_id: str
    experiment_id: str
    status: str  # RUNNING, FINISHED, FAILED, KILLED
    deleted: bool
    start_time: int
    tags: Mapping[str, str] = field(default_factory=dict)
    name: str = ""

    @property
    def parent_id(self) -> str | None:
        return self.tags.get("mlflow.parentRunId")

    def fold_run_problem(self) -> str | None:
        """Why this run cannot stand for a training run (predict, explain, compare): it is one
        outer fold's child run, whose parent holds the model and the out-of-fold table."""
        if self.parent_id is None:
            return None
        fold = self.tags.get("fold")
        which = f"the run of outer fold {fold}" if fold else "a child run"
        return f"MLflow run {self.run_id} is {which}; give its parent run {self.parent_id}"


def short_id_note(ref: str) -> str:
    """A note for a reference shaped like the start of a run id (the sweep's table shows 8 hex
    digits): where the whole id is. Empty for anything else."""
    if not re.fullmatch(r"[0-9a-f]{6,31}", ref):
        return ""
    return (
        f"; {len(ref)} hex digits: an MLflow run id has 32 (the sweep's leaderboard.csv and the "
        "MLflow UI show it whole)"
    )


class Tracker(ABC):
    """A run being logged, and read access to the store's runs. Nothing is logged before
    :meth:`start` (or :meth:`reopen`) opened the parent run."""

    store: Store | None = None
    run_id: str | None = None
    experiment_id: str | None = None

    @property
    def enabled(self) -> bool:
        return self.store is not None

    @property
    def active(self) -> bool:
        """A parent run of ours is open (only then is anything logged)."""
        return self.enabled and self.run_id is not None

    # -- the run being logged --
    @abstractmethod
    def start(self, params: Mapping[str, Any], tags: Mapping[str, str], note: str = "") -> None:
        """Open the parent run with its params, tags and one-line description."""

    @abstractmethod
    def reopen(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Continue the parent run ``run_id`` (``resume=``): RUNNING again, its params kept."""

    @abstractmethod
    def log_fold(
        self,
        fold: int,
        metrics: Mapping[str, float],
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        artifacts: Sequence[Path],
    ) -> None:
        """One finished child run of the parent for outer fold ``fold``."""

    @abstractmethod
    def log_metrics(self, metrics: Mapping[str, float]) -> None: ...

    @abstractmethod
    def log_curves(self, curves: Mapping[str | int, Mapping[str, Sequence[float]]]) -> int:
        """Per-epoch values as step metrics: ``curves["final"]`` on the parent, ``curves[k]`` on
        fold ``k``'s child run; returns how many values were logged."""

    @abstractmethod
    def set_tags(self, tags: Mapping[str, str]) -> None: ...

    @abstractmethod
    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...

    @abstractmethod
    def log_dataset(self, name: str, source: str, context: str, table: Any = None) -> None:
        """Record a data file the run read (the UI's Datasets column): its ``name``, its path
        ``source``, what it served (``context``: training, evaluation, calibration) and, for a
        file, the first :data:`DIGEST_LEN` hex digits of its sha256 as the digest; ``table`` (a
        DataFrame of what was read) adds its columns and row count."""

    @abstractmethod
    def log_model(self, model: Any, X_example: Any, keras_net: Any = None) -> str | None:
        """Log the fitted pipeline (and its Keras network, if any); the model URI, or None."""

    @abstractmethod
    def finish(self, status: str = "FINISHED", error: str | None = None) -> None:
        """End the parent run (and any fold run left open) with ``status``, tagged with the
        ``error`` that stopped it. Ending a run that did not finish raises nothing (the error
        that stopped it is the one to report). A finished run whose parent run was deleted in
        the store while it ran (nothing was logged since, its folder holds all its files) ends
        with :class:`~n2react.errors.RunDeleted`."""

    # -- runs in the store --
    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None:
        """The run ``run_id``, or None when the store has no such run."""

    @abstractmethod
    def find_runs(self, tags: Mapping[str, str]) -> list[RunRecord]:
        """The experiment's runs carrying all of ``tags`` (deleted ones left out)."""

    @abstractmethod
    def delete_run(self, run_id: str) -> None: ...

    @abstractmethod
    def terminate_stale_runs(self) -> int:
        """Mark KILLED the RUNNING runs of dead processes on this host; how many."""

    @abstractmethod
    def list_artifacts(self, run_id: str, path: str | None = None) -> list[str]: ...

    @abstractmethod
    def download(self, run_id: str, path: str, dest: Path) -> Path:
        """The run's artifact ``path`` (file or folder) copied under ``dest``."""


class NullTracker(Tracker):
    """``tracking=none``: logs nothing, holds no runs."""

    def start(self, params: Mapping[str, Any], tags: Mapping[str, str], note: str = "") -> None:
        return None

    def reopen(self, run_id: str, tags: Mapping[str, str]) -> None:
        return None

    def log_fold(
        self,
        fold: int,
        metrics: Mapping[str, float],
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        artifacts: Sequence[Path],
    ) -> None:
        return None

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        return None

    def log_curves(self, curves: Mapping[str | int, Mapping[str, Sequence[float]]]) -> int:
        return 0

    def set_tags(self, tags: Mapping[str, str]) -> None:
        return None

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        return None

    def log_dataset(self, name: str, source: str, context: str, table: Any = None) -> None:
        return None

    def log_model(self, model: Any, X_example: Any, keras_net: Any = None) -> str | None:
        return None

    def finish(self, status: str = "FINISHED", error: str | None = None) -> None:
        return None

    def get_run(self, run_id: str) -> RunRecord | None:
        return None

    def find_runs(self, tags: Mapping[str, str]) -> list[RunRecord]:
        return []

    def delete_run(self, run_id: str) -> None:
        return None

    def terminate_stale_runs(self) -> int:
        return 0

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        return []

    def download(self, run_id: str, path: str, dest: Path) -> Path:
        raise FileNotFoundError(f"tracking is off: no artifact {path} of run {run_id}")


#: MLflow 3.17's UI picks its view from ?workflowType= (else the browser's last choice, GenAI by
#: default): with machine_learning it opens on the training runs, not the GenAI overview.
UI_QUERY = "?workflowType=machine_learning"
#: where `mlflow ui` serves a local store by default
LOCAL_UI = "http://127.0.0.1:5000"


def experiment_url(uri: str, experiment_id: str, run_id: str | None = None) -> str | None:
    """The UI page of the experiment (or of one run) on a tracking server; None for a local store
    (no UI serves it until ``mlflow ui`` is started)."""
    if not uri.startswith(("http://", "https://")):
        return None
    page = f"{uri.rstrip('/')}/#/experiments/{experiment_id}"
    return page + (f"/runs/{run_id}" if run_id else "") + UI_QUERY


def model_requirements(with_keras: bool) -> list[str]:
    """Pinned requirements of a logged model (instead of MLflow's slow import-tracing guess)."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["scikit-learn", "numpy", "pandas", "scipy", "skops"]
    if with_keras:
        names += ["keras", "tensorflow"]
    out = []
    for name in names:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return out


# -- what a parent run logs as params --

#: What MLflow accepts in a parameter name.
_PARAM_NAME = re.compile(r"^[/\w.\- :]*$")
MAX_PARAM_LEN = 6000


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay values.

    A mapping whose keys are data rather than names (e.g. ``data.rename_columns`` with keys like
    ``Expt. lg(k1)``) is kept whole, as JSON, under its own key.
    """
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            if all(_PARAM_NAME.match(f"{key}.{c}") for c in v):
                out.update(flatten(v, key + "."))
            else:
                out[key] = json.dumps(v, ensure_ascii=False, default=str)
        else:
            out[key] = v
    return out


def _estimator_params(node: Any, prefix: str) -> dict[str, Any]:
    """Hyperparameters of an estimator node: nested estimators (lists of ``[name, {...}]``, an
    RFE's ``estimator``) flattened under the keys an override would use."""
    out: dict[str, Any] = {}
    if isinstance(node, Mapping):
        for k, v in node.items():
            if k == "_target_" and prefix.count(".") <= 2:  # model.estimator.: model.name says it
                continue
            out.update(_estimator_params(v, f"{prefix}{k}."))
    elif isinstance(node, list) and any(isinstance(v, Mapping | list) for v in node):
        for i, v in enumerate(node):
            out.update(_estimator_params(v, f"{prefix}{i}."))
    else:
        out[prefix.rstrip(".")] = node
    return out


#: Top-level keys compared as they are (when set).
_PLAIN_KEYS = (
    "model.name",
    "scaler.name",
    "selector.name",
    "features.name",
    "pairwise.name",
    "search.name",
    "search.max_trials",
    "search.objective",
    "cv.scheme",
    "cv.outer_folds",
    "cv.inner_folds",
    "cv.repeats",
    "cv.groups",
    "cv.seed",
    "data.name",
    "data.path",
    "data.formula",
    "eval.path",
    "imputer.strategy",
    "seed",
    "optimized_metric",
)


#: The prediction intervals' settings (interval_coverage, interval_width, domain_* follow them).
_UNCERTAINTY_KEYS = tuple(
    f"uncertainty.{k}"
    for k in (
        "difficulty", "k", "coverage", "flag_quantile", "expected_error", "calibration_path",
        "validation",
    )
)  # fmt: skip

_PLUMBING = ("random_state", "n_jobs", "verbose")


def tracked_params(config: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """The parent run's params: the keys a user compares runs by, flat (model and its
    hyperparameters, scaler, selector and theirs, search, cv protocol, data, the intervals'
    settings, seed), plus
    ``extra`` (``data.n_rows`` ...). The whole config is the artifact ``config_resolved.yaml``."""
    flat = flatten(config)
    out = {k: flat[k] for k in _PLAIN_KEYS if flat.get(k) is not None}
    if flat.get("uncertainty.enabled") is False:
        out["uncertainty.enabled"] = False
    elif flat.get("uncertainty.enabled"):
        out.update({k: flat[k] for k in _UNCERTAINTY_KEYS if flat.get(k) is not None})
    if flat.get("cv.scheme") == "pair_split":
        out["cv.pair_test_fraction"] = flat.get("cv.pair_test_fraction")
    model = config.get("model") or {}
    out.update(_estimator_params(model.get("estimator") or {}, "model.estimator."))
    for group in ("selector", "features", "pairwise"):
        step = (config.get(group) or {}).get("step" if group != "pairwise" else "wrapper")
        if isinstance(step, Mapping):
            key = "wrapper" if group == "pairwise" else "step"
            params = _estimator_params(step, f"{group}.{key}.")
            out.update({k: v for k, v in params.items() if not k.endswith("_target_")})
    out.update(extra)
    # random_state follows seed; n_jobs changes no figure
    return {k: v for k, v in out.items() if k.rsplit(".", 1)[-1] not in _PLUMBING}


_DEFAULT_CHOICES = {"features": ("raw",), "pairwise": ("off",)}


def run_note(params: Mapping[str, Any], protocol: str, folds: str = "") -> str:
    """The run's one-line description (``mlflow.note.content``), e.g. ``svr (C=10, gamma=0.1,
    epsilon=0.1), scaler robust, selector kbest, search grid; KFold (known families), 10 outer
    folds; homonuclear_24, 159 clusters x 24 descriptors; seed 42``; ``folds``: the outer
    folds in words, per repeat as the ``cv.outer_folds`` param counts them (``3 outer folds x
    2 repeats``: :func:`n2react.splitters.fold_count_text`)."""
    hyper = [
        f"{k.rsplit('.', 1)[-1]}={v}"
        for k, v in params.items()
        if k.startswith("model.estimator.") and k.count(".") == 2 and v is not None
    ]
    model = str(params.get("model.name", "?"))
    parts = [model + (f" ({', '.join(hyper[:4])})" if hyper else "")]
    for group in ("scaler", "selector", "search", "features", "pairwise"):
        value = params.get(f"{group}.name")
        if value is not None and value not in _DEFAULT_CHOICES.get(group, ()):
            parts.append(f"{group} {value}")
    folds = f", {folds}" if folds else ""
    data = str(params.get("data.name", "?"))
    if params.get("data.n_rows") is not None:
        data += f", {params['data.n_rows']} clusters x {params.get('data.n_features')} descriptors"
    return f"{', '.join(parts)}; {protocol}{folds}; {data}; seed {params.get('seed', '?')}"
