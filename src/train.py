"""`python -m train [overrides]`: nested-CV training, configured by Hydra (see conf/)."""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from n2react.quiet import expand_verbose_flag, quiet_frameworks

quiet_frameworks()  # before TensorFlow/absl can be imported by anything below
sys.argv[1:] = expand_verbose_flag(sys.argv[1:])  # -v: n2react's debug lines

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from n2react.output_dirs import resumed_run_dir  # noqa: E402

log = logging.getLogger("n2react")


def _config_path() -> str:
    """conf/ of the checkout this file runs from, else the copy installed as package n2react_conf
    (a wheel or `pip install .`)."""
    checkout = Path(__file__).resolve().parent.parent / "conf"
    if (checkout / "config.yaml").is_file():
        return str(checkout)
    return "pkg://n2react_conf"


# A short random tag per process for the run directory (conf/config.yaml, hydra.run.dir).
OmegaConf.register_new_resolver("n2react_uid", lambda: secrets.token_hex(3), use_cache=True)


# resume=<run dir>: Hydra's folder is the resumed one (its log goes on there, no new folder in
# outputs/), and its .hydra/ is left as the run's start wrote it (conf/config.yaml, hydra.run)
OmegaConf.register_new_resolver(
    "n2react_run_dir", lambda resume, default: resumed_run_dir(resume) or default
)
# A sweep's job keeps its .hydra/ even with resume=: the CLI refuses a sweep with resume=
# (sweep_checks.composed_sweep_problem) but not where it cannot compose the command as Hydra does (a
# caller's Hydra)
OmegaConf.register_new_resolver(
    "n2react_output_subdir",
    lambda resume, mode: None if "MULTI" not in str(mode) and resumed_run_dir(resume) else ".hydra",
)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _sweep_axes(cfg: DictConfig, hc: DictConfig) -> list[str]:
    """Overrides that may vary in this multirun, in the order the sweeper reads them:
    ``hydra.sweeper.params``, the model's ``sweep:`` axes and the command line (kept in the
    sweep's multirun.yaml)."""
    from n2react.jobs import sweep_axes

    saved = Path(str(hc.sweep.dir)) / "multirun.yaml"
    command_line = []
    if saved.is_file():
        command_line = list(OmegaConf.select(OmegaConf.load(saved), "hydra.overrides.task") or [])
    params, model_axes = (
        OmegaConf.to_container(axes) if axes else None
        for axes in (OmegaConf.select(hc, "sweeper.params"), OmegaConf.select(cfg, "model.sweep"))
    )
    return sweep_axes(params, model_axes, command_line)  # type: ignore[arg-type]


def job_info(cfg: DictConfig) -> Any:
    """The MLflow identity of this job: a run name from its overrides (in a multirun only the swept
    ones, e.g. ``svr C=10 robust kbest``), the sweep and the job number."""
    from n2react.jobs import JobInfo, only_swept, sweep_job, without_resume

    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    if hc.mode != RunMode.MULTIRUN:
        resumed = Path(str(cfg.get("resume") or "")).expanduser()
        again = sweep_job(resumed) if cfg.get("resume") and resumed.is_dir() else None
        if again is None:
            return JobInfo.from_overrides(str(cfg.model.name), overrides)
        # a sweep job run again alone (resume=<its folder>): named and tagged as in its sweep,
        # with the overrides it ran with now
        return replace(again, overrides=tuple(without_resume(overrides)))
    try:
        shown = only_swept(overrides, _sweep_axes(cfg, hc))
    except Exception:  # an unusual sweeper: name the job by all its overrides
        log.debug("cannot tell the swept keys apart", exc_info=True)
        shown = overrides
    return JobInfo.from_overrides(
        str(cfg.model.name),
        overrides,
        sweep=str(hc.sweep.dir),
        job=OmegaConf.select(hc, "job.num"),
        shown=shown,
    )


def _resume_hint(cfg: DictConfig, when: str = "once that is fixed", alone: bool = False) -> str:
    """How to continue a run that stopped part-way, when it finished outer folds (or search
    trials) to keep; with ``alone``, a sweep job's way to run again by itself in its folder even
    without any (its store did not answer: ``resume=`` of its folder starts it afresh there)."""
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    resume = cfg.get("resume")  # a run directory or MLflow run id: the same one continues it
    where = resume or hc.runtime.output_dir
    # the folds are looked for where they are written (an MLflow run id's folder is not known
    # here: none are claimed)
    folder = resumed_run_dir(resume) if resume else str(where)
    folds = Path(folder) / "folds" if folder else None
    if folds is not None and folds.is_dir() and any(folds.glob("fold_*/fold.json")):
        kept = f"; its finished outer folds are kept: {when}"
    elif folder and any((Path(folder) / "search").glob("*/trial_*/trial.json")):
        # stopped in the first outer fold's search: resume= goes on from its last trial
        kept = f"; the search trials it finished are kept: {when}"
    elif resume or (alone and multirun):  # a resumed run goes on in its own MLflow run
        kept = f"; {when}"
    else:
        return ""
    if multirun:  # the sweep's command would run every job again (and -m takes no override
        # after it): this job alone, by its own overrides
        from n2react.jobs import resume_command

        return f"{kept}, run this job alone: {resume_command(list(hc.overrides.task), str(where))}"
    return f"{kept}, run the same command plus resume={where}"


def _is_resumed_folder(where: Path, resume: object) -> bool:
    """Whether the Hydra folder is the one ``resume=`` names (the run's own, never removed)."""
    return bool(resume) and Path(str(resume)).expanduser().resolve() == where.resolve()


def _mark_attempt(cfg: DictConfig) -> None:
    """resume= of a run folder: its train.log takes this attempt's lines after the earlier ones;
    one line there (not on the terminal) says where they begin, and by which command."""
    hc = HydraConfig.get()
    where = Path(str(hc.runtime.output_dir))
    if hc.mode == RunMode.MULTIRUN or not _is_resumed_folder(where, cfg.get("resume")):
        return
    command = " ".join(shlex.quote(o) for o in hc.overrides.task)
    line = f"{'-' * 16} resumed by: python -m train {command} {'-' * 16}"
    record = logging.makeLogRecord(
        {"name": "n2react", "levelno": logging.INFO, "levelname": "INFO", "msg": line}
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


@hydra.main(version_base="1.3", config_path=_config_path(), config_name="config")
def main(cfg: DictConfig) -> float:
    """Compose the config, run the task, return the optimised metric (for sweepers)."""
    from n2react.credentials import redact
    from n2react.errors import Interrupted, N2ReactError, StoreUnavailable, storage_problem
    from n2react.run import run

    signal.signal(signal.SIGTERM, _terminate)
    # again in the job's own process: a launcher's worker (joblib, submitit) gets this function
    # pickled, without the module-level call above
    quiet_frameworks(["hydra.verbose=true"] if HydraConfig.get().verbose else [])
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    job = None

    def error(message: str) -> None:
        # in a sweep the line says whose it is (parallel jobs' lines interleave)
        which = f"job {job.job} ({job.name}): " if multirun and job is not None else ""
        sys.stderr.write(f"n2react: error: {which}{redact(message)}\n")

    _mark_attempt(cfg)
    try:
        job = job_info(cfg)
        # the store is checked and prepared once the data and settings have passed their checks
        metrics = run(cfg, HydraConfig.get().runtime.output_dir, job_num=job.job, job=job)
    except N2ReactError as exc:
        log.debug("error", exc_info=True)
        # a sweep job refused by its store ran nothing: it can run again alone
        again = multirun and isinstance(exc, StoreUnavailable)
        error(f"{exc}{_resume_hint(cfg, 'once it answers', alone=True) if again else ''}")
        if multirun:
            raise  # the job fails, the sweep goes on; the leaderboard marks it (exit 1 at the end)
        where = Path(HydraConfig.get().runtime.output_dir)
        if not _is_resumed_folder(where, cfg.get("resume")):  # a refused resume= leaves none
            from n2react.preflight import remove_if_unused

            remove_if_unused(where)
        sys.exit(2)
    except Exception as exc:
        message = storage_problem(exc)
        if message is None:
            raise
        log.debug("error", exc_info=True)
        error(f"{message}{_resume_hint(cfg, alone=True)}")
        if multirun:
            raise N2ReactError(message) from None
        sys.exit(2)
    except KeyboardInterrupt as exc:
        name = str(exc) or "SIGINT"  # Ctrl-C raises it without a message
        # the MLflow run, if one was started (not before the data passed, nor with tracking=none)
        ended = isinstance(exc, Interrupted) and exc.killed_run
        killed = "; the MLflow run is KILLED" if ended else ""
        where = Path(HydraConfig.get().runtime.output_dir)
        if not cfg.get("resume") and not multirun:
            from n2react.preflight import remove_if_unused

            remove_if_unused(where)  # stopped before its first output: no empty folder
        hint = _resume_hint(cfg, when="to continue")
        sys.stderr.write(f"n2react: interrupted ({name}){killed}{hint}\n")
        if multirun:
            node = cfg.get("tracking")
            tracking = None if node is None else OmegaConf.to_container(node, resolve=True)
            sys.stderr.write(_not_run(Path(str(HydraConfig.get().sweep.dir)), tracking))
        sys.exit(130)
    return float(metrics[cfg.optimized_metric])


def _not_run(sweep_dir: Path, tracking: Any) -> str:
    """A sweep stopped part-way (in one of its jobs, or in its launcher's wait): its
    leaderboard files brought up to date (the jobs that never ran listed by their overrides),
    and a line naming those jobs. ``tracking``: the sweep's settings (None: none)."""
    from n2react.leaderboard import NOT_RUN, refresh_sweep

    board = refresh_sweep(sweep_dir, tracking)
    if board is None:
        return ""
    left = board[board["status"] == NOT_RUN]
    if left.empty:
        return ""
    jobs = ("job " if len(left) == 1 else "jobs ") + ", ".join(map(str, sorted(left["job"])))
    return (
        f"n2react: the sweep stopped before {jobs} ran; {sweep_dir / 'leaderboard.md'} lists "
        f"{'it' if len(left) == 1 else 'them'} with {'its' if len(left) == 1 else 'their'} "
        "overrides\n"
    )


def cli() -> None:
    """``python -m train`` and ``n2react-train``: the command-line checks Hydra cannot make in one
    line (a flag between overrides, launcher plugins, the output folder, a sweep into an earlier
    sweep's or a run's folder, a sweep with resume=, misspelled group options),
    then the Hydra main, its unparsable overrides and unknown keys said in one line too;
    stdout closed early (``--help | head``) ends it quietly."""
    from n2react.quiet import closed_stdout_ends_quietly

    closed_stdout_ends_quietly(_cli)


def _cli() -> None:
    from n2react.launchers import exit_with, plugin_problem
    from n2react.override_errors import (
        callback_problem,
        config_callback_problem,
        flag_problem,
        hydra_problem,
        report_in_one_line,
        version_asked,
    )

    if version_asked(sys.argv[1:]):  # the project's version and Hydra's, once
        import hydra

        from n2react import __version__

        sys.stdout.write(f"n2react {__version__} (Hydra {hydra.__version__})\n")
        return
    if problem := flag_problem(sys.argv[1:]) or callback_problem(sys.argv[1:]):
        exit_with(problem)
    if problem := plugin_problem(sys.argv[1:]):
        exit_with(problem)
    from n2react.output_dirs import output_dir_problem
    from n2react.sweep_checks import (
        checked_where_hydra_composes,
        sweep_dir_problem,
        sweeper_params_problem,
    )

    if problem := output_dir_problem(sys.argv[1:]):
        exit_with(problem)
    # hydra.sweeper.params.<key>=v where no config sets the sweeper's params: Hydra's traceback
    if problem := sweeper_params_problem(sys.argv[1:], _config_path(), main):
        exit_with(problem)
    from n2react.group_options import option_problem

    if problem := option_problem(sys.argv[1:], _config_path()):
        exit_with(problem)
    # an unparsable override, an unknown key, +model=ridge: one line
    report_in_one_line(exit_with, sys.argv[1:], _config_path())
    # an earlier sweep's or run's folder, or resume= (the sweeper's params' too), and a callback
    # a config sets to null: refused on the config Hydra composes to tell the mode, before it
    # runs or launches anything, whatever the config's callbacks
    from n2react.config_location import info_held

    try:
        also = [config_callback_problem]
        with (
            checked_where_hydra_composes(sys.argv[1:], exit_with, also) as checked,
            info_held(sys.argv[1:]),
        ):
            # another Hydra: composed here first (a relative --config-path read against main's
            # file as Hydra reads it)
            if not checked and (
                problem := sweep_dir_problem(sys.argv[1:], _config_path(), main, also)
            ):
                exit_with(problem)
            main()
    except Exception as exc:  # Hydra's check of --config-path, and --help, --hydra-help, --info
        # composing outside Hydra's reporter (report_in_one_line): a traceback otherwise
        full = os.environ.get("HYDRA_FULL_ERROR") == "1"
        line = None if full else hydra_problem(exc, sys.argv[1:], _config_path())
        if line is None:
            raise
        exit_with(line)
    except KeyboardInterrupt as exc:  # the launcher's own wait (hydra/launcher=parallel): a job
        # run in this process says its own line in main() and exits 130 there
        from n2react.leaderboard import Leaderboard

        sweep = any(a in ("-m", "--multirun") for a in sys.argv[1:])
        note = _stopped_sweep() if sweep else ""  # (a run before its task started: nothing)
        sys.stderr.write(f"n2react: interrupted ({str(exc) or 'SIGINT'}){note}\n")
        if sweep and Leaderboard.started is not None:  # the jobs it never ran, as one job's
            sys.stderr.write(_not_run(*Leaderboard.started))  # line names them (basic launcher)
        sys.exit(130)


def _stopped_sweep() -> str:
    """What a sweep interrupted in its launcher leaves, and how to go on from it."""
    from n2react.jobs import UNKNOWN_OVERRIDES

    return (
        "; the sweep stopped: its finished jobs are ranked in its leaderboard.csv, a job's MLflow "
        "run left RUNNING is marked KILLED by the next job on this host, and a job with finished "
        f"outer folds continues alone: python -m train {UNKNOWN_OVERRIDES} resume=<its job folder>"
    )


if __name__ == "__main__":
    cli()
