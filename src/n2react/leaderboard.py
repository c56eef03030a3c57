"""The sweep's leaderboard: when a Hydra multirun ends, rank its jobs by ``optimized_metric``.

Registered as a Hydra callback (conf/config.yaml, ``hydra.callbacks.leaderboard``). It reads each
job's directory under the sweep directory (``.hydra/`` for the job number and overrides,
``summary.json`` for the metrics and their bootstrap intervals, ``oof_predictions.csv`` for the
paired comparison with the best job), prints a table, writes ``leaderboard.csv``,
``leaderboard.md`` and the report ``sweep_report.html`` (+ ``sweep_report.png``) into the sweep
directory and, when the jobs logged to MLflow, gives each job's run the metric and tag
``leaderboard_rank`` (1 = best; the tag zero-padded, ``01``, so it sorts as text too) and attaches
the leaderboard and the report to the best run.

A job that fails does not stop the sweep: the callback notes its error in its directory
(``job_failed.json``), the other jobs run, the leaderboard lists it as failed (last), and the
multirun exits with status 1 after writing it. A job whose ``summary.json`` cannot be read
(cut off, edited) is listed after the ranked jobs, its status :data:`UNREADABLE`, its error and a
warning naming the file: the others are still ranked. A job whose MLflow run was deleted while
it ran, after its folds (its files all written: :class:`~n2react.errors.RunDeleted`), is noted apart
(``mlflow_run_deleted.json``) and ranked by its scores, its status saying the deletion; the
multirun exits with status 1 too, as that job's own command would have (its MLflow record is
gone). The files are rewritten after every job, so an interrupted sweep still leaves the
leaderboard of the jobs that finished (a sweep stopped in a job rewrites them then, listing the
planned jobs that never ran: :mod:`n2react.sweep_plan`), and a job finished later by ``resume=``
brings them up to date (:func:`refresh_after_resume`).

The jobs are read, ranked and written by :mod:`n2react.sweep_ranking`, the MLflow runs tagged by
:mod:`n2react.leaderboard_mlflow` (split from here: their names are re-exported here, where
callers import them).
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from n2react.board import KEY_METRICS, RUN_DELETED, SCORED
from n2react.board import higher_is_better as higher_is_better  # callers import it here
from n2react.credentials import redact
from n2react.errors import N2ReactError, RunDeleted
from n2react.leaderboard_mlflow import TAG_RANK as TAG_RANK  # callers import these here
from n2react.leaderboard_mlflow import _mlflow_runs, _publish
from n2react.runstore import SUMMARY_FILE, write_json
from n2react.store_uri import sqlite_file, unreadable
from n2react.sweep_plan import swept_ranking_problem
from n2react.sweep_ranking import EXPLAIN_FAILED_FILE as EXPLAIN_FAILED_FILE  # callers import these
from n2react.sweep_ranking import FAILED_FILE as FAILED_FILE
from n2react.sweep_ranking import FILES as FILES
from n2react.sweep_ranking import NOT_RUN as NOT_RUN
from n2react.sweep_ranking import RUN_DELETED_FILE as RUN_DELETED_FILE
from n2react.sweep_ranking import UNREADABLE as UNREADABLE
from n2react.sweep_ranking import SweepAxes as SweepAxes
from n2react.sweep_ranking import _title as _title
from n2react.sweep_ranking import build_board as build_board
from n2react.sweep_ranking import collect_jobs as collect_jobs
from n2react.sweep_ranking import paired_with_best as paired_with_best
from n2react.sweep_ranking import rank_jobs as rank_jobs
from n2react.sweep_ranking import rank_tag as rank_tag
from n2react.sweep_ranking import to_markdown as to_markdown
from n2react.sweep_ranking import write_board as write_board
from n2react.tracking import store_of

if TYPE_CHECKING:
    from n2react.sweep_report import Settings

log = logging.getLogger(__name__)


def _sweep_axes(config: DictConfig) -> SweepAxes:
    params = OmegaConf.select(config, "hydra.sweeper.params")
    command_line = [str(o) for o in OmegaConf.select(config, "hydra.overrides.task") or []]
    return (OmegaConf.to_container(params) if params else None), command_line


class Leaderboard(Callback):
    """Hydra callback: rank the jobs of a finished multirun (see the module docstring)."""

    #: the sweep this process launches (its folder, its tracking settings), from its start:
    #: what ``python -m train`` brings up to date when the launcher's own wait is interrupted
    #: (``hydra/launcher=parallel``: the jobs run in other processes)
    started: ClassVar[tuple[Path, dict[str, Any] | None] | None] = None

    def __init__(self, metrics: list[str] | None = None) -> None:
        self.metrics = list(metrics or KEY_METRICS)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Refuse a sweep it cannot rank (one over ``optimized_metric``), before any job and
        before Hydra's sweeper writes the sweep's ``multirun.yaml``; note the sweep's folder and
        tracking settings (:attr:`started`). (A sweep into an earlier sweep's folder is refused
        before Hydra starts, with or without this callback: ``python -m train``.)"""
        from n2react.launchers import exit_with
        from n2react.override_errors import sweep_starting

        if problem := swept_ranking_problem(config):
            exit_with(problem)
        sweep_starting(Path(str(config.hydra.sweep.dir)))  # what a refused sweep may remove
        node = config.get("tracking")
        tracking = None if node is None else OmegaConf.to_container(node, resolve=True)
        # (the folder's ${now:} and ${n2react_uid:} are cached: the launcher's own)
        Leaderboard.started = (Path(str(config.hydra.sweep.dir)), tracking)  # type: ignore[assignment]

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """In a multirun: a failed job is noted in its directory and handed back to the sweeper
        as a finished job without a score (NaN), so the other jobs and the leaderboard still
        run (one whose MLflow run was deleted after its folds is noted apart: its scores are
        ranked); then the leaderboard files are brought up to date."""
        if OmegaConf.select(config, "hydra.mode") != RunMode.MULTIRUN:
            return
        job_dir = Path(str(OmegaConf.select(config, "hydra.runtime.output_dir")))
        if job_return.status == JobStatus.FAILED:
            exc = job_return._return_value
            error = redact(f"{type(exc).__name__}: {exc}".splitlines()[0])[:500]
            if not isinstance(exc, N2ReactError):  # ours printed its one line already
                sys.stderr.write(f"n2react: error: job {job_dir.name} failed: {error}\n")
            complete = isinstance(exc, RunDeleted) and exc.files_complete
            note = (
                RUN_DELETED_FILE if complete and (job_dir / SUMMARY_FILE).is_file() else FAILED_FILE
            )
            write_json(job_dir / note, {"error": error})
            job_return.status = JobStatus.COMPLETED
            job_return.return_value = math.nan  # (a deleted run's score is read from its folder)
        try:
            sweep_dir = Path(str(config.hydra.sweep.dir))
            metric = str(config.get("optimized_metric", "mean_test_rmse"))
            board = build_board(sweep_dir, metric, self.metrics, _sweep_axes(config))
            write_board(board, sweep_dir, _title(sweep_dir, board, metric), metric)
        except Exception as exc:  # the job's own result matters more than the interim files
            log.debug("leaderboard: not updated after job %s (%s)", job_dir.name, exc)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from n2react.sweep_report import protocols
        from n2react.terminal import leaderboard_table, show

        sweep_dir = Path(str(config.hydra.sweep.dir))
        node = config.get("tracking")
        tracking = None if node is None else OmegaConf.to_container(node, resolve=True)
        done = self.publish(config, sweep_dir, tracking, str(config.hydra.sweep.dir))
        if done is None:
            return
        board, files, title, settings = done
        metric = str(config.get("optimized_metric", "mean_test_rmse"))
        show(leaderboard_table(board, [metric, *self.metrics], title), width=150)
        noted = board[(board["status"] == "done") & (board["error"].fillna("") != "")]
        for _, row in noted.iterrows():  # its explain failed
            log.warning("job %s: %s (ranked: its scores stand; draw the figures with: python -m "
                        "n2react.explain %s)", row["job"], row["error"], row["dir"])  # fmt: skip
        log.info("leaderboard written to %s", files[0])
        kinds = protocols(settings, board.loc[board["status"].isin(SCORED), "dir"].astype(str))
        if len(kinds) > 1:  # e.g. experiment=paper_pairwise: a pair split beside nested CV
            log.warning(
                "the jobs ran under %d protocols (%s): their %s measure different things, so "
                "their ranks compare the protocols as much as the configs; compare jobs of one "
                "protocol (vs_best pairs only the jobs on the best's folds)",
                len(kinds),
                "; ".join(kinds),
                metric,
            )
        failed = board[board["status"] == "failed"]
        deleted = board[board["status"] == RUN_DELETED]
        if len(deleted):  # ranked by their scores: said, and the sweep not called a success
            one = len(deleted) == 1
            jobs = ("job " if one else "jobs ") + ", ".join(map(str, deleted["job"]))
            folder = f"resume={deleted.iloc[0]['dir']}" if one else "resume=<its folder>"
            sys.stderr.write(
                f"n2react: error: the MLflow run of {jobs} was deleted while "
                f"{'it' if one else 'they'} ran; {'its' if one else 'their'} scores are ranked "
                f"in {files[0]} from {'its' if one else 'their'} folder{'' if one else 's'} "
                f"({folder} logs {'it' if one else 'each'} again in a new MLflow run)\n"
            )
        if len(failed):
            jobs = ("job " if len(failed) == 1 else "jobs ") + ", ".join(map(str, failed["job"]))
            if len(failed) == len(board) == 1:
                what = f"the sweep's one job failed ({jobs}); its error is in {files[0]}"
            elif len(failed) == len(board):
                what = f"all {len(board)} jobs failed ({jobs}); their errors are in {files[0]}"
            else:
                what = (
                    f"{len(failed)} of {len(board)} jobs failed ({jobs}); "
                    f"the others are ranked in {files[0]}"
                )
            sys.stderr.write(f"n2react: error: {what}\n")
        if len(failed) or len(deleted):
            sys.exit(1)

    def publish(
        self,
        config: DictConfig,
        sweep_dir: Path,
        tracking: Mapping[str, Any] | None,
        sweep: str | None,
    ) -> tuple[pd.DataFrame, list[Path], str, Settings] | None:
        """Rank the jobs under ``sweep_dir``, write the leaderboard files and the report, and
        tag the jobs' MLflow runs (found by their ``sweep`` tag, or with ``sweep=None`` by
        their run folders); None when the folder holds no job. Returned with the board, its
        files and title: the jobs' data and protocols (each job's config read once)."""
        from n2react.sweep_report import job_settings, write_report

        metric = str(config.get("optimized_metric", "mean_test_rmse"))
        board = build_board(sweep_dir, metric, self.metrics, _sweep_axes(config))
        if board.empty:
            log.warning("leaderboard: no job directories under %s", sweep_dir)
            return None
        for _, row in board[board["status"] == UNREADABLE].iterrows():  # listed, not ranked
            log.warning("leaderboard: job %s is not ranked: %s", row["job"], row["error"])
        store = None if tracking is None else store_of(tracking)
        run_ids: dict[int, str] = {}
        if store is not None and (why := unreadable(store.uri)) is None:
            try:
                run_ids = _mlflow_runs(store, sweep, sweep_dir)
            except Exception as exc:  # the leaderboard files matter more than the tags
                log.warning("leaderboard: cannot read the MLflow runs (%s)", exc)
        elif store is not None and sqlite_file(store.uri) is None:  # not minutes of retries
            log.warning("leaderboard: the MLflow runs are not ranked (%s)", why)
        # (no SQLite file: no job reached the store, and reading it would create an empty one)
        board["run_id"] = [run_ids.get(int(j), "") for j in board["job"]]
        title = _title(sweep_dir, board, metric)
        files = write_board(board, sweep_dir, title, metric)
        settings = job_settings(board, sweep_dir)
        try:
            files += write_report(board, metric, sweep_dir, title, settings)
        except Exception as exc:  # a plotting problem must not cost the leaderboard
            log.warning("leaderboard: no sweep report (%s)", exc)
        if store is not None and run_ids:
            try:
                _publish(store, board, files)
            except Exception as exc:
                log.warning("leaderboard: cannot tag the MLflow runs (%s)", exc)
        return board, files, title, settings


def refresh_after_resume(run_dir: Path, tracking: Mapping[str, Any]) -> None:
    """A sweep job finished by ``resume=`` (a single run, outside its multirun): the sweep's
    leaderboard files, report and ``leaderboard_rank`` tags are brought up to date, as if it had
    finished in the sweep, and an earlier failure noted in its folder is dropped. A run that is
    no sweep job (no ``multirun.yaml`` beside its folder) changes nothing."""
    sweep_dir = run_dir.parent
    saved = sweep_dir / "multirun.yaml"
    if not saved.is_file() or not (run_dir / ".hydra" / "hydra.yaml").is_file():
        return
    for note in (FAILED_FILE, RUN_DELETED_FILE):  # it has finished now, in an MLflow run
        (run_dir / note).unlink(missing_ok=True)
    refresh_sweep(sweep_dir, tracking)


def refresh_sweep(sweep_dir: Path, tracking: Mapping[str, Any] | None) -> pd.DataFrame | None:
    """The leaderboard files, report and ``leaderboard_rank`` tags of the sweep in
    ``sweep_dir`` (its ``multirun.yaml``) brought up to date from its job folders: after a job
    finished alone, or when the sweep stops part-way (its jobs that never ran listed as such);
    returns the board (None when it could not be written)."""
    saved = sweep_dir / "multirun.yaml"
    try:
        config = OmegaConf.load(saved)
        metrics = OmegaConf.select(config, "hydra.callbacks.leaderboard.metrics")
        leaderboard = Leaderboard(list(metrics) if metrics else None)
        done = leaderboard.publish(config, sweep_dir, tracking, None)
    except Exception as exc:  # the finished run matters more than the sweep's files
        log.warning("leaderboard of %s: not brought up to date (%s)", sweep_dir, exc)
        return None
    if done is None:
        return None
    log.info("the sweep's leaderboard is brought up to date: %s", done[1][0])
    return done[0]
