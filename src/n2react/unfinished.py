"""Why what was given to compare, explain or predict (and the benchmarks that read a run) is not
a finished run of ``python -m train``, in one line: a run folder whose run has not finished, a
sweep's folder, an MLflow run whose status is not FINISHED, a run id not in the store.

Every command that reads a finished run asks here, so each case reads alike wherever it is met;
``verb`` is what the command does with the run ("compare it", "explain it", "predict"). Predict
also asks why a run folder has no final model (:func:`model_problem`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from n2react.errors import N2ReactError, first_line
from n2react.runstore import (
    CONFIG_FILE,
    FOLD_FILE,
    FOLDS_DIR,
    MODEL_FILE,
    OOF_FILE,
    SUMMARY_FILE,
    read_config,
)

if TYPE_CHECKING:
    from n2react.tracking import RunRecord

#: what an MLflow status other than FINISHED means for a run that lacks what a command reads
STATES = {
    "RUNNING": "still running, or its process died without a word",
    "KILLED": "stopped part-way",
    "FAILED": "ended by an error",
    "SCHEDULED": "not started",
}


def folder_problem(p: Path, verb: str, jobs: int = 1) -> str | None:
    """Why the folder ``p`` holds no finished run: a sweep's folder or a folder of run folders
    (``jobs``: how many of them the command takes), or a run not finished yet. None when ``p``
    has its out-of-fold table, or is none of these."""
    from n2react.sweep_plan import MULTIRUN_FILE

    p = Path(p)
    if (p / OOF_FILE).is_file():
        return None
    if (p / MULTIRUN_FILE).is_file():
        return _runs_line(p, "a sweep's folder", "job folder", jobs) + (
            "; its leaderboard.csv compares every job with the best one"
        )
    if (p / FOLDS_DIR).is_dir() and not (p / SUMMARY_FILE).exists():
        return _not_finished(p, f"{_folds_done(p)} outer fold(s) done so far", verb)
    if not (p / CONFIG_FILE).exists() and any(p.glob(f"*/{CONFIG_FILE}")):
        return _runs_line(p, "a folder of runs", "run folder", jobs)  # a sweep's, its yaml gone
    return None


def model_problem(p: Path) -> str | None:
    """Why the run folder ``p`` holds no final model (``model.skops``) to predict with: its
    ``config_resolved.yaml`` says final_model=false, or its run stopped (or is still running)
    before its final fit, or before its outer folds were done; or ``p`` is a sweep's folder; or
    its ``config_resolved.yaml``, which would tell, is missing or unreadable. None when ``p`` is
    none of these."""
    p = Path(p)
    refits = _refits(p)
    if refits is False:
        return no_final_model(str(p), MODEL_FILE)
    if refits and (p / OOF_FILE).is_file():  # its outer folds scored, its final fit not done
        done = f"{_folds_done(p)} outer fold(s) done, its final model not fitted yet"
        return _not_finished(p, done, "predict")
    if why := folder_problem(p, "predict"):
        return why
    return _config_problem(p) if refits is None else None


def _config_problem(p: Path) -> str | None:
    """The run folder ``p`` (without a final model) has no ``config_resolved.yaml``, or one that
    cannot be read: what the run was made with, and so why it has no final model, is unknown.
    None when it reads as a mapping of settings."""
    file = p / CONFIG_FILE
    if not file.is_file():
        return (
            f"{p}: no {MODEL_FILE} nor {CONFIG_FILE}: not a run folder of python -m train (or "
            "its run stopped before it wrote its config): nothing to predict with"
        )
    try:
        read_config(file)
    except N2ReactError as exc:
        why = str(exc)
    else:
        return None
    return (
        f"{why}, so whether its run was made with final_model=false or "
        f"stopped before its final fit is unknown; {p} has no {MODEL_FILE} to predict with"
    )


def no_final_model(who: str, model: str, config_dir: Path | None = None) -> str | None:
    """``who`` (a run folder, an MLflow run) has no final model (``model``: its file, its tag)
    because its run was made with final_model=false. With ``config_dir``, only when the
    ``config_resolved.yaml`` there (an MLflow run's artifact) says so (else None)."""
    if config_dir is not None and _refits(Path(config_dir)) is not False:
        return None
    return (
        f"{who}: a run made with final_model=false: it has no final model ({model}) to "
        "predict with; train it again with final_model=true"
    )


def _not_finished(p: Path, done: str, verb: str) -> str:
    """The run in ``p`` is not finished: its own overrides (``.hydra/overrides.yaml``) plus
    ``resume=`` continue it, as its own last line says (a bare ``resume=`` is refused: the
    config differs), from the folder it was started in where they hold relative paths
    (:func:`n2react.jobs.continue_command`)."""
    from n2react.jobs import continue_command

    return (
        f"{p}: its run has not finished ({done}: still running, or stopped part-way); {verb} "
        f"once it has finished ({continue_command(p)} continues a stopped run)"
    )


def _folds_done(p: Path) -> int:
    return len(list((p / FOLDS_DIR).glob(f"fold_*/{FOLD_FILE}")))


def _runs_line(p: Path, what: str, item: str, jobs: int) -> str:
    """``p`` is ``what`` (a sweep's folder, a folder of runs): name ``jobs`` of its ``item``s,
    e.g. the first finished ones."""
    found = sorted(d for d in p.iterdir() if (d / OOF_FILE).is_file())
    named = " ".join(str(d) for d in found[:jobs]) if len(found) >= jobs else ""
    how_many = {1: "one", 2: "two"}.get(jobs, str(jobs))
    return (
        f"{p} is {what} ({len(found)} finished {item}(s) in it): name {how_many} of its "
        f"{item}s" + (f", e.g. {named}" if named else "")
    )


def _refits(p: Path) -> bool | None:
    """The final_model setting the run in ``p`` was made with (its config_resolved.yaml); None
    when it has none, or it cannot be read (the command's own line then says what is wrong)."""
    try:
        cfg = read_config(p / CONFIG_FILE)
    except N2ReactError:  # none, or unreadable: not this module's to say
        return None
    value = cfg.get("final_model", True)
    return value if isinstance(value, bool) else None


#: what a parent run lacks until its outer folds are done
NO_TABLE = f"{OOF_FILE} before its outer folds are done"


def status_problem(run: RunRecord, verb: str, lacks: str = NO_TABLE) -> str | None:
    """Why the MLflow run ``run`` lacks ``lacks`` (what the command reads of it): its status is
    not FINISHED; the command that continues it has the overrides it was tagged with. None for
    a finished run (whatever it lacks is said by the command)."""
    from n2react.jobs import resume_command, tagged_overrides

    status = run.status
    if status == "FINISHED":
        return None
    state = STATES.get(status, status)
    again = resume_command(tagged_overrides(run.tags), run.run_id)
    return (
        f"MLflow run {run.run_id} is {status} ({state}): it has no {lacks}; {verb} once it has "
        f"finished ({again} continues a KILLED or FAILED run)"
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
