"""``resume=<run id or run dir>``: continue a KILLED or FAILED run where it stopped.

The run directory is the original one: finished outer folds are read back from ``folds/fold_NN``
(predictions, scores, model), the half-done fold's keras-tuner search resumes from
``search/outer_NN``, and the MLflow parent run is re-opened, so the final figures equal an
uninterrupted run's. The config must be the one the run was started with (``resume`` and
``progress`` aside), and the n2react version the one that started it (its run.json).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from n2react import __version__, runstore
from n2react.credentials import redact
from n2react.cv import FoldResult
from n2react.errors import ConfigError
from n2react.jobs import sweep_job
from n2react.results import fold_artifacts, log_fold_run, read_fold
from n2react.splitters import Split
from n2react.tracking import RunRecord, Tracker, flatten

log = logging.getLogger(__name__)

#: who ran a run (n2react.mlflow_tracking tags every run with them)
TAG_HOST, TAG_PID = "n2react.host", "n2react.pid"

CONFIG_FILE = runstore.CONFIG_FILE
#: the config Hydra saved in a sweep job's folder: what a job that never started is checked by
JOB_CONFIG = Path(".hydra") / "config.yaml"
#: config keys that may differ between a run and its resumption (they change no figure)
IGNORED_KEYS = ("resume", "progress")


@dataclass(frozen=True)
class Resumed:
    """The run to continue: its directory and its MLflow parent run (None: none was logged)."""

    run_dir: Path
    run_id: str | None
    #: a sweep job that failed before it started (the store did not answer): run from the start
    fresh: bool = False


def find_resumed(spec: str, tracker: Tracker) -> Resumed:
    """The run ``spec`` names (a run directory or an MLflow run id); refused unless it is KILLED
    or FAILED (a RUNNING run of a dead process on this host is marked KILLED first). The folder
    of a sweep job that stopped before it wrote its config (its store did not answer) is a run
    to start afresh there (``fresh``)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        run_dir = path.resolve()
        if not (run_dir / CONFIG_FILE).exists() and sweep_job(run_dir) is not None:
            return Resumed(run_dir, None, fresh=True)  # it wrote nothing, logged no run
        if not (run_dir / CONFIG_FILE).exists():
            raise ConfigError(f"resume={spec}: not a run directory (no {CONFIG_FILE} in it)")
        run = _run_of_dir(tracker, run_dir) if tracker.enabled else None
    else:
        if not tracker.enabled:
            raise ConfigError(
                f"resume={spec}: no such run directory (tracking is off, so it cannot be a run id)"
            )
        run = _get_run(tracker, spec)
        recorded = run.tags.get("run_dir")
        if not recorded or not (Path(recorded) / CONFIG_FILE).exists():
            raise ConfigError(
                f"resume={spec}: the run's directory ({recorded}) is gone; if it moved, give "
                "resume=<its new path>"
            )
        run_dir = Path(recorded)
    if run is None:
        if tracker.enabled:
            log.warning(
                "resume: no MLflow run in the store holds %s (none was logged, or it was "
                "deleted); a new parent run is started",
                run_dir,
            )
        elif _finished_here(run_dir):  # no store to ask: the folder's own files tell
            raise ConfigError(
                f"resume={spec}: the run in {run_dir} already finished; nothing to resume"
            )
        return Resumed(run_dir, None)
    _check_status(tracker, run, spec)
    return Resumed(run_dir, run.run_id)


def _finished_here(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` (without MLflow) got to its end: its outer folds scored
    (``summary.json``) and, when it refits one, its final model saved."""
    cfg = runstore.read_config(run_dir / CONFIG_FILE)
    refits = bool(OmegaConf.select(cfg, "final_model", default=True))
    summary = (run_dir / runstore.SUMMARY_FILE).exists()
    return summary and (not refits or runstore.model_path(run_dir) is not None)


def _get_run(tracker: Tracker, run_id: str) -> RunRecord:
    run = tracker.get_run(run_id)
    if run is None:
        where = tracker.store.uri if tracker.store else "the store"
        raise ConfigError(f"resume={run_id}: neither a run directory nor an MLflow run in {where}")
    if run.deleted:
        raise ConfigError(f"resume={run_id}: the MLflow run was deleted")
    if run.parent_id is not None:
        raise ConfigError(f"resume={run_id}: a fold's run; give its parent run (or run directory)")
    return run


def _run_of_dir(tracker: Tracker, run_dir: Path) -> RunRecord | None:
    """The latest parent run tagged with ``run_dir`` (the one whose files the folder holds: an
    earlier run there was overwritten by it), else None."""
    runs = [r for r in tracker.find_runs({"run_dir": str(run_dir)}) if r.parent_id is None]
    return max(runs, key=lambda r: r.start_time) if runs else None


def _check_status(tracker: Tracker, run: RunRecord, spec: str) -> None:
    run_id, status = run.run_id, run.status
    if status == "RUNNING":  # killed without a word (SIGKILL, power loss)?
        tracker.terminate_stale_runs()
        again = tracker.get_run(run_id)
        status = again.status if again is not None else status
    if status == "FINISHED":
        raise ConfigError(f"resume={spec}: run {run_id} already finished; nothing to resume")
    if status not in ("KILLED", "FAILED"):
        tags = run.tags
        raise ConfigError(
            f"resume={spec}: run {run_id} is {status} (host {tags.get(TAG_HOST)}, pid "
            f"{tags.get(TAG_PID)}); only a KILLED or FAILED run can be resumed"
        )


def _normalised(config: Mapping[str, Any], ignored: tuple[str, ...]) -> dict[str, Any]:
    """The config as config_resolved.yaml holds it (YAML round trip), flattened to keys, less
    the ``ignored`` ones (and those under an ignored ``prefix.``)."""
    node = OmegaConf.create(OmegaConf.to_yaml(OmegaConf.create(dict(config))))
    flat = flatten(OmegaConf.to_container(node, resolve=True))  # type: ignore[arg-type]
    kept = {k: v for k, v in flat.items() if k not in ignored and k.split(".")[0] not in ignored}
    return {k: redact(v) if isinstance(v, str) else v for k, v in kept.items()}  # as it was saved


def check_same_config(run_dir: Path, config: Mapping[str, Any]) -> None:
    """Refuse to resume ``run_dir`` with a config other than the one it was started with, or
    with another n2react than the one that started it (:func:`check_same_version`). When the
    differences are only keys its file lacks, the version that started it (run.json) tells
    why: this one set them all, so they were added on the resuming command line; another (or
    one from before versions were recorded) did not know them, and this code cannot continue
    what that code began. A sweep job that never started is checked against the config Hydra
    saved for it, where it logs aside (it reached no store: ``tracking`` may name another), and
    by no version (it fitted nothing, and wrote no run.json)."""
    file, ignored = run_dir / CONFIG_FILE, IGNORED_KEYS
    fresh = not file.exists()
    if fresh:
        file, ignored = run_dir / JOB_CONFIG, (*IGNORED_KEYS, "tracking")
    loaded = OmegaConf.to_container(runstore.read_config(file), resolve=True)
    before = _normalised(loaded, ignored)  # type: ignore[arg-type]
    now = _normalised(config, ignored)
    missing = "(not set)"
    keys = sorted(set(before) | set(now))
    diff = [k for k in keys if before.get(k, missing) != now.get(k, missing)]
    if diff and all(k not in before for k in diff):  # keys the run's config lacks
        _refuse_added_keys(run_dir, diff)
    if diff:
        shown = ", ".join(
            f"{k} ({before.get(k, missing)!r} there, {now.get(k, missing)!r} here)"
            for k in diff[:3]
        )
        more = f" and {len(diff) - 3} more key(s)" if len(diff) > 3 else ""
        raise ConfigError(
            f"resume: the config differs from {file} at {shown}{more}; resume with the run's "
            "own overrides"
        )
    if not fresh:
        check_same_version(run_dir)


def check_same_version(run_dir: Path) -> None:
    """Refuse to resume a run another n2react started (its run.json), whose finished folds that
    version fitted: the run would mix folds of two versions. A run without run.json was started
    before versions were recorded, by an earlier n2react than this one, which writes it: refused
    alike (its version cannot be named)."""
    made = runstore.made_by(run_dir)
    if made == __version__:
        return
    if made is None:
        raise ConfigError(
            f"resume: the run in {run_dir} was started by an earlier version of n2react (no "
            f"{runstore.RUN_FILE}: from before versions were recorded), which fitted its finished "
            f"folds; n2react {__version__} would fit the rest: start the run again"
        )
    raise ConfigError(
        f"resume: the run in {run_dir} was started by n2react {made}, which fitted its finished "
        f"folds; this is n2react {__version__}, which would fit the rest: start the run again, "
        f"or resume it with n2react {made}"
    )


def _refuse_added_keys(run_dir: Path, keys: Sequence[str]) -> None:
    names = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
    made = runstore.made_by(run_dir)
    one = len(keys) == 1
    if made == __version__:
        raise ConfigError(
            f"resume: {names} {'is' if one else 'are'} set here but not in the config of the run "
            f"in {run_dir} ({CONFIG_FILE}), which this n2react ({__version__}) started, so "
            f"{'it was' if one else 'they were'} added on the resuming command line: drop "
            f"{'it' if one else 'them'}"
        )
    who = f"n2react {made}" if made else "an earlier version of n2react"
    raise ConfigError(
        f"resume: the run in {run_dir} was started by {who}, whose config ({CONFIG_FILE}) lacks "
        f"{names}; n2react {__version__} cannot resume it: start the run again"
    )


def done_folds(run_dir: Path, splits: Sequence[Split]) -> dict[int, FoldResult]:
    """The outer folds ``run_dir`` finished, read back from ``folds/fold_NN``."""
    done = {}
    for s in splits:
        fold = read_fold(run_dir, s)
        if fold is not None:
            done[s.fold] = fold
    if done:
        log.info("resume: outer folds %s read back from %s", sorted(done), run_dir / "folds")
    _drop_unreadable_searches(run_dir, {f"outer_{k:02d}" for k in done})
    return done


def _drop_unreadable_searches(run_dir: Path, finished: set[str]) -> None:
    """A search whose saved keras-tuner state is cut short (the run was killed, or the disk
    filled, while a JSON file of it was written) cannot be reloaded: it starts afresh, with a
    warning, rather than failing the resumed run (``finished``: searches not resumed)."""
    root = run_dir / "search"
    for state in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        for f in sorted(state.rglob("*.json")) if state.name not in finished else []:
            try:
                json.loads(f.read_bytes())
            except ValueError as exc:  # cut short, or not UTF-8 text
                log.warning("resume: %s is unreadable (%s); its search starts afresh", f, exc)
                shutil.rmtree(state)
                break


def sync_fold_runs(tracker: Tracker, run_dir: Path, done: Mapping[int, FoldResult]) -> None:
    """One FINISHED child run per finished fold under the re-opened parent: the fold runs of
    unfinished folds (and duplicates) are deleted, a finished fold without one is logged."""
    if not tracker.enabled or tracker.run_id is None:
        return
    parent = tracker.run_id
    children = tracker.find_runs({"mlflow.parentRunId": parent})
    kept: set[int] = set()
    dropped = 0
    for child in sorted(children, key=lambda r: r.start_time):
        fold = child.tags.get("fold", "")
        number = int(fold) if fold.isdigit() else -1
        if number in done and number not in kept and child.status == "FINISHED":
            kept.add(number)
        else:
            tracker.delete_run(child.run_id)
            dropped += 1
    if dropped:
        log.info("resume: deleted %d fold run(s) of unfinished folds", dropped)
    logged = set(tracker.list_artifacts(parent, "fold_models"))
    for number, fold in sorted(done.items()):
        artifacts, model_file = fold_artifacts(fold, run_dir)
        if number not in kept:
            log_fold_run(tracker, fold, artifacts, model_file)
        elif f"fold_models/fold_{number:02d}" not in logged:
            tracker.log_artifact(model_file, f"fold_models/fold_{number:02d}")
