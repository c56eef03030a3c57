"""Why what was given to compare, explain or predict (and the benchmarks that read a run) is not
a finished run of ``python -m train``, in one line: a run folder whose run has not finished, a
sweep's folder, an MLflow run whose status is not FINISHED, a run id not in the store.

Every command that reads a finished run asks here, so each case reads alike wherever it is met;
``verb`` is what the command does with the run ("compare", "explain", "predict with").
"""

from __future__ import annotations

import os
from pathlib import Path

from n2react.errors import first_line
from n2react.runstore import FOLD_FILE, FOLDS_DIR, OOF_FILE, SUMMARY_FILE

#: what an MLflow status other than FINISHED means for a run that lacks what a command reads
STATES = {
    "RUNNING": "still running, or its process died without a word",
    "KILLED": "stopped part-way",
    "FAILED": "ended by an error",
    "SCHEDULED": "not started",
}


def folder_problem(p: Path, verb: str, jobs: int = 1) -> str | None:
    """Why the folder ``p`` holds no finished run: a sweep's folder (its job folders hold the
    runs; ``jobs``: how many of them the command takes), or a run not finished yet. None when
    ``p`` has its out-of-fold table, or is neither."""
    from n2react.sweep_plan import MULTIRUN_FILE

    p = Path(p)
    if (p / OOF_FILE).is_file():
        return None
    if (p / MULTIRUN_FILE).is_file():
        found = sorted(d for d in p.iterdir() if (d / OOF_FILE).is_file())
        named = " ".join(str(d) for d in found[:jobs]) if len(found) >= jobs else ""
        how_many = {1: "one", 2: "two"}.get(jobs, str(jobs))
        return (
            f"{p} is a sweep's folder ({len(found)} finished job folder(s) in it): name "
            f"{how_many} of its job folders" + (f", e.g. {named}" if named else "") + "; its "
            "leaderboard.csv compares every job with the best one"
        )
    if (p / FOLDS_DIR).is_dir() and not (p / SUMMARY_FILE).exists():
        done = len(list((p / FOLDS_DIR).glob(f"fold_*/{FOLD_FILE}")))
        return (
            f"{p}: its run has not finished ({done} outer fold(s) done so far: still running, or "
            f"stopped part-way); {verb} it once it has finished (python -m train "
            f"resume={p} continues a stopped run)"
        )
    return None


#: what a parent run lacks until its outer folds are done
NO_TABLE = f"{OOF_FILE} before its outer folds are done"


def status_problem(run_id: str, status: str, verb: str, lacks: str = NO_TABLE) -> str | None:
    """Why the MLflow run ``run_id`` lacks ``lacks`` (what the command reads of it): its status
    is not FINISHED. None for a finished run (whatever it lacks is said by the command)."""
    if status == "FINISHED":
        return None
    state = STATES.get(status, status)
    return (
        f"MLflow run {run_id} is {status} ({state}): it has no {lacks}; {verb} it once it has "
        f"finished (python -m train resume={run_id} continues a KILLED or FAILED run)"
    )


def store_problem(exc: Exception, uri: str) -> str:
    """MLflow's error reading a run, in words: a run id not in the store names the store (MLflow
    said 'Run with id=<the id> not found', which store it had searched left unsaid)."""
    from mlflow.exceptions import MlflowException

    from n2react.credentials import redact
    from n2react.tracking import DEFAULT_URI

    if isinstance(exc, MlflowException) and exc.error_code == "RESOURCE_DOES_NOT_EXIST":
        why = f"no such run in {redact(uri)}"
        if uri == DEFAULT_URI and not os.environ.get("MLFLOW_TRACKING_URI"):  # for want of any
            why += " (the default store; name yours with --tracking-uri)"
        return why
    return first_line(exc)
