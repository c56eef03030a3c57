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
multirun exits with status 1 after writing it. The files are rewritten after every job, so an
interrupted sweep still leaves the leaderboard of the jobs that finished (a sweep stopped in a
job rewrites them then, listing the planned jobs that never ran: :mod:`n2react.sweep_plan`), and a
job finished
later by ``resume=`` brings them up to date (:func:`refresh_after_resume`).
"""

from __future__ import annotations

import json
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

from n2react.board import KEY_METRICS, VS_BEST, VS_BEST_UNITS, higher_is_better, vs_best_note
from n2react.bootstrap import compare_oof
from n2react.credentials import redact
from n2react.errors import N2ReactError
from n2react.jobs import only_swept, run_name, sweep_axes
from n2react.runstore import OOF_FILE, SUMMARY_FILE, write_json, write_text
from n2react.store_uri import sqlite_file, unreadable
from n2react.sweep_plan import planned_jobs, swept_ranking_problem
from n2react.tracking import Store, store_of

if TYPE_CHECKING:
    from n2react.sweep_report import Settings

log = logging.getLogger(__name__)

TAG_RANK = "leaderboard_rank"
FAILED_FILE = "job_failed.json"
#: a run whose explain failed (its scores stand): the error, noted in its leaderboard row
EXPLAIN_FAILED_FILE = "explain_failed.json"
#: the status of a job the sweep planned but never started (stopped before it): no scores
NOT_RUN = "not run"
FILES = ("leaderboard.csv", "leaderboard.md")
#: A sweep's ``hydra.sweeper.params`` and its command-line overrides (each job adds its model's
#: ``sweep:`` axes between them: :func:`n2react.jobs.sweep_axes`).
SweepAxes = tuple[dict[str, Any] | None, list[str]]


def _failure(job_dir: Path, name: str = FAILED_FILE) -> str:
    f = job_dir / name
    if not f.is_file():
        return ""
    try:
        return str(json.loads(f.read_text()).get("error", "failed"))
    except ValueError:
        return "failed"


def collect_jobs(sweep_dir: Path, axes: SweepAxes | None = None) -> pd.DataFrame:
    """One row per job directory of the sweep: job, run name, overrides, dir, status, error and
    the summary metrics (with their intervals).

    ``axes``: the sweep's params and command line; the name then shows only the swept keys,
    like the job's MLflow run name. ``status``: done, failed (its ``error``) or unfinished
    (running or killed).
    """
    rows = []
    for hydra_yaml in sorted(sweep_dir.glob("*/.hydra/hydra.yaml")):
        job_dir = hydra_yaml.parent.parent
        job_num = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.job.num")
        overrides_file = job_dir / ".hydra" / "overrides.yaml"
        loaded = OmegaConf.load(overrides_file) if overrides_file.exists() else []
        overrides = [str(o) for o in loaded]
        config_file = job_dir / ".hydra" / "config.yaml"
        job_cfg = OmegaConf.load(config_file) if config_file.exists() else OmegaConf.create()
        model = OmegaConf.select(job_cfg, "model.name")
        shown = overrides
        if axes is not None:
            model_axes = OmegaConf.select(job_cfg, "model.sweep")
            model_axes = OmegaConf.to_container(model_axes) if model_axes else None
            shown = only_swept(overrides, sweep_axes(axes[0], model_axes, axes[1]))
        summary_file = job_dir / SUMMARY_FILE
        metrics = json.loads(summary_file.read_text()) if summary_file.exists() else {}
        metrics = {k: math.nan if v is None else v for k, v in metrics.items()}  # null: NaN
        error = _failure(job_dir)
        status = "failed" if error else "done" if metrics else "unfinished"
        if status == "done" and (why := _failure(job_dir, EXPLAIN_FAILED_FILE)):
            error = f"explain failed: {why}"  # done and ranked: its scores stand
        rows.append(
            {
                "job": int(job_num) if job_num is not None else -1,
                "name": run_name(str(model or "?"), shown),
                "overrides": redact(" ".join(overrides)),
                "status": status,
                "error": error,
                "dir": str(job_dir),
                **(metrics if status == "done" else {}),
            }
        )
    started = {r["job"] for r in rows}
    for num, overrides in planned_jobs(sweep_dir).items():
        if num in started:
            continue
        model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), "?")
        shown = (
            overrides
            if axes is None
            else only_swept(overrides, sweep_axes(*axes[:1], None, axes[1]))
        )
        status = NOT_RUN
        rows.append({"job": num, "name": run_name(model, shown), "status": status,
                     "overrides": redact(" ".join(overrides)), "error": "", "dir": ""})  # fmt: skip
    return pd.DataFrame(rows)


def rank_jobs(jobs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Best first by ``metric`` (failed jobs last), with a 1-based ``rank`` column."""
    if jobs.empty:
        return jobs.assign(rank=[])
    if metric not in jobs:
        jobs = jobs.assign(**{metric: math.nan})
    ranked = jobs.sort_values(
        [metric, "job"], ascending=[not higher_is_better(metric), True], na_position="last"
    ).reset_index(drop=True)
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    return ranked


def rank_tag(rank: int, n_jobs: int) -> str:
    """The rank as a zero-padded tag (``01`` .. ``12``), so a text sort is a numeric one."""
    return str(rank).zfill(max(2, len(str(n_jobs))))


def _oof(job_dir: str) -> pd.DataFrame | None:
    f = Path(job_dir) / OOF_FILE
    return pd.read_csv(f) if f.is_file() else None


def paired_with_best(board: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The :data:`VS_BEST` columns: each finished job against the best (rank 1) on ``metric``,
    the same clusters (or groups) or folds drawn for both, and :data:`VS_BEST_UNITS` (how many:
    below :data:`n2react.bootstrap.MIN_UNITS_FOR_VERDICT` the figures are no finding). Empty
    where the metric has no paired form (``std_*``, train or transfer figures) or the job's folds
    differ from the best's."""
    board = board.assign(**{c: math.nan for c in (*VS_BEST, VS_BEST_UNITS)})
    if board.empty or board.iloc[0]["status"] != "done":
        return board
    best = _oof(board.iloc[0]["dir"])
    if best is None:
        return board
    for i, row in board.iterrows():
        job = _oof(row["dir"]) if row["status"] == "done" else None
        if job is None:
            continue
        try:
            (p,) = compare_oof(job, best, [metric])
        except N2ReactError as exc:  # another protocol, or a metric without a paired form
            log.debug("leaderboard: job %s not paired with the best (%s)", row["job"], exc)
            continue
        board.loc[i, list(VS_BEST)] = [p.diff, p.low, p.high, 1.0 - p.p_a_better]
        board.loc[i, VS_BEST_UNITS] = p.units
    board.loc[0, "p_best_better"] = math.nan  # the best against itself: no share to report
    board[VS_BEST_UNITS] = board[VS_BEST_UNITS].astype("Int64")  # 3, not 3.0, in the files
    return board


def to_markdown(board: pd.DataFrame, columns: list[str]) -> str:
    def cell(v: Any) -> str:
        if v is pd.NA:  # an empty vs_best_units
            return ""
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4f}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for _, r in board.iterrows()]
    return "\n".join(lines) + "\n"


def build_board(sweep_dir: Path, metric: str, metrics: list[str], axes: SweepAxes) -> pd.DataFrame:
    """The ranked jobs with the columns of the leaderboard files, in order."""
    board = paired_with_best(rank_jobs(collect_jobs(sweep_dir, axes), metric), metric)
    shown = list(dict.fromkeys([metric, *metrics]))
    columns = ["rank", "job", "name"]
    for m in shown:
        columns += [m, f"{m}_ci_low", f"{m}_ci_high"]
        if m == metric:
            columns += [*VS_BEST, VS_BEST_UNITS]
    columns += ["status", "error", "run_id", "overrides", "dir"]
    if "run_id" not in board:
        board = board.assign(run_id="")
    return board.reindex(columns=columns)


def write_board(board: pd.DataFrame, sweep_dir: Path, title: str, metric: str) -> list[Path]:
    """leaderboard.csv and leaderboard.md (with a note when vs best rests on too few units),
    each written whole."""
    csv, md = (sweep_dir / f for f in FILES)
    write_text(csv, board.to_csv(index=False))
    note = vs_best_note(board, metric)
    head = f"# {title}\n\n" + (f"> {note}\n\n" if note else "")
    write_text(md, head + to_markdown(board, list(board.columns)))
    return [csv, md]


def _mlflow_runs(store: Store, sweep: str | None, sweep_dir: Path) -> dict[int, str]:
    """job number -> parent run id, for the runs tagged with this sweep (``sweep=None``: the
    runs whose ``run_dir`` tag lies in ``sweep_dir``, for a sweep whose saved folder name is
    unresolved, ``multirun/${now:...}``)."""
    from mlflow.tracking import MlflowClient

    from n2react.mlflow_tracking import filter_literal

    client = MlflowClient(store.uri)
    exp = client.get_experiment_by_name(store.experiment)
    if exp is None:
        return {}
    mine = str(sweep_dir.resolve())
    if sweep is None:  # LIKE's _ matches any character: the parent folder is compared below
        where = f"tags.run_dir LIKE {filter_literal(mine + '/%')}"
    else:
        where = f"tags.sweep = {filter_literal(sweep)}"
    return {
        int(r.data.tags["job"]): r.info.run_id
        for r in client.search_runs([exp.experiment_id], filter_string=where)
        if "mlflow.parentRunId" not in r.data.tags
        and r.data.tags.get("job", "").isdigit()
        and (sweep is not None or str(Path(r.data.tags["run_dir"]).parent) == mine)
    }


def _publish(store: Store, board: pd.DataFrame, files: list[Path]) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store.uri)
    for _, row in board.iterrows():
        if row["run_id"]:
            rank = int(row["rank"])
            client.set_tag(row["run_id"], TAG_RANK, rank_tag(rank, len(board)))
            client.log_metric(row["run_id"], TAG_RANK, rank)
    best = board.iloc[0]["run_id"]
    if best:
        for f in files:
            client.log_artifact(best, str(f))


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
        """Refuse a sweep into an earlier sweep's folder and one it cannot rank (one over
        ``optimized_metric``), before any job and before Hydra's sweeper writes the sweep's
        ``multirun.yaml``; note the sweep's folder and tracking settings (:attr:`started`)."""
        from n2react.launchers import exit_with
        from n2react.override_errors import reused_sweep_problem, sweep_starting

        if problem := reused_sweep_problem(Path(str(config.hydra.sweep.dir))):
            exit_with(problem)
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
        run; then the leaderboard files are brought up to date."""
        if OmegaConf.select(config, "hydra.mode") != RunMode.MULTIRUN:
            return
        job_dir = Path(str(OmegaConf.select(config, "hydra.runtime.output_dir")))
        if job_return.status == JobStatus.FAILED:
            exc = job_return._return_value
            error = redact(f"{type(exc).__name__}: {exc}".splitlines()[0])[:500]
            if not isinstance(exc, N2ReactError):  # ours printed its one line already
                sys.stderr.write(f"n2react: error: job {job_dir.name} failed: {error}\n")
            write_json(job_dir / FAILED_FILE, {"error": error})
            job_return.status = JobStatus.COMPLETED
            job_return.return_value = math.nan
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
        kinds = protocols(settings, board.loc[board["status"] == "done", "dir"].astype(str))
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
    (run_dir / FAILED_FILE).unlink(missing_ok=True)  # it has finished now
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


def _title(sweep_dir: Path, board: pd.DataFrame, metric: str) -> str:
    counts = board["status"].value_counts() if len(board) else pd.Series(dtype=int)
    notes = [f"{counts[s]} {s}" for s in ("failed", "unfinished", NOT_RUN) if counts.get(s, 0)]
    extra = f" ({', '.join(notes)})" if notes else ""
    jobs = "1 job" if len(board) == 1 else f"{len(board)} jobs"
    return f"Sweep {sweep_dir}: {jobs} ranked by {metric}{extra}"
