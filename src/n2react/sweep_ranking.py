"""The sweep's jobs ranked: each job folder's status and scores read (``summary.json``,
``job_failed.json``, ``mlflow_run_deleted.json``; the planned jobs that never ran from
:mod:`n2react.sweep_plan`), ranked by ``optimized_metric``, each finished job paired with the
best on the same clusters or folds (``oof_predictions.csv``), and the board written as
``leaderboard.csv`` and ``leaderboard.md``.

Split from :mod:`n2react.leaderboard` (the Hydra callback that calls this after every job and at
the sweep's end), which re-exports these names.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from n2react.board import (
    RUN_DELETED,
    SCORED,
    VS_BEST,
    VS_BEST_UNITS,
    higher_is_better,
    vs_best_note,
)
from n2react.bootstrap import compare_oof
from n2react.credentials import redact
from n2react.errors import N2ReactError, first_line
from n2react.jobs import only_swept, run_name, sweep_axes
from n2react.runstore import OOF_FILE, SUMMARY_FILE, write_text
from n2react.sweep_plan import planned_jobs

log = logging.getLogger("n2react.leaderboard")  # its lines keep the name they were logged by

FAILED_FILE = "job_failed.json"
#: a run whose explain failed (its scores stand): the error, noted in its leaderboard row
EXPLAIN_FAILED_FILE = "explain_failed.json"
#: a job that finished, its files all written, but whose MLflow run was deleted while it ran
#: (:class:`n2react.errors.RunDeleted`): the error; ranked by its scores, status RUN_DELETED
RUN_DELETED_FILE = "mlflow_run_deleted.json"
#: such a job's leaderboard note (its run's id and the whole message are in its RUN_DELETED_FILE)
RUN_DELETED_NOTE = "MLflow run deleted after its folds; scores from its folder"
#: the status of a job the sweep planned but never started (stopped before it): no scores
NOT_RUN = "not run"
#: the status of a job whose ``summary.json`` cannot be read (cut off, edited): not ranked, its
#: row after the scored jobs, ``error`` naming the file
UNREADABLE = "summary unreadable"
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


def _summary(file: Path) -> dict[str, Any]:
    """A job's ``summary.json``; one line naming it when it cannot be read (cut off, edited)."""
    try:
        summary = json.loads(file.read_text())
        if not isinstance(summary, dict):
            raise ValueError("not a mapping of scores")
        for key, value in summary.items():  # one edited by hand: a word where a score was
            if isinstance(value, bool) or not isinstance(value, int | float | None):
                raise ValueError(f"{key}: {value!r} is not a score")
    except (OSError, ValueError) as exc:
        raise N2ReactError(f"{file}: cannot be read ({first_line(exc)})") from exc
    return summary


def collect_jobs(sweep_dir: Path, axes: SweepAxes | None = None) -> pd.DataFrame:
    """One row per job directory of the sweep: job, run name, overrides, dir, status, error and
    the summary metrics (with their intervals).

    ``axes``: the sweep's params and command line; the name then shows only the swept keys,
    like the job's MLflow run name. ``status``: done, :data:`RUN_DELETED` (done, its scores
    ranked; :data:`RUN_DELETED_NOTE` in ``error``), failed (its ``error``), :data:`UNREADABLE`
    (its ``summary.json`` cut off or edited: ``error`` names it) or unfinished (running or
    killed)."""
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
        try:
            metrics = _summary(summary_file) if summary_file.exists() else {}
            unread = ""
        except N2ReactError as exc:  # one damaged job must not cost the others their ranks
            metrics, unread = {}, str(exc)
        metrics = {k: math.nan if v is None else v for k, v in metrics.items()}  # null: NaN
        error = _failure(job_dir)  # (a failed job's own error says more than its summary)
        status = (
            "failed" if error else UNREADABLE if unread else "done" if metrics else "unfinished"
        )
        error = error or unread
        if status == "done" and (why := _failure(job_dir, EXPLAIN_FAILED_FILE)):
            error = f"explain failed: {why}"  # done and ranked: its scores stand
        if status == "done" and (job_dir / RUN_DELETED_FILE).is_file():
            status = RUN_DELETED  # its files complete: ranked, the deletion said (its file
            error = "; ".join(e for e in (RUN_DELETED_NOTE, error) if e)  # has the message)
        rows.append(
            {
                "job": int(job_num) if job_num is not None else -1,
                "name": run_name(str(model or "?"), shown),
                "overrides": redact(" ".join(overrides)),
                "status": status,
                "error": error,
                "dir": str(job_dir),
                **(metrics if status in SCORED else {}),
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
    if board.empty or board.iloc[0]["status"] not in SCORED:
        return board
    best = _oof(board.iloc[0]["dir"])
    if best is None:
        return board
    for i, row in board.iterrows():
        job = _oof(row["dir"]) if row["status"] in SCORED else None
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


def _title(sweep_dir: Path, board: pd.DataFrame, metric: str) -> str:
    counts = board["status"].value_counts() if len(board) else pd.Series(dtype=int)
    notes = [
        f"{counts[s]} {s}"
        for s in ("failed", UNREADABLE, "unfinished", NOT_RUN)
        if counts.get(s, 0)
    ]
    if n := counts.get(RUN_DELETED, 0):  # ranked: not "done (...)" inside the title's brackets
        notes.insert(0, f"{n} whose MLflow run{' was' if n == 1 else 's were'} deleted")
    extra = f" ({', '.join(notes)})" if notes else ""
    jobs = "1 job" if len(board) == 1 else f"{len(board)} jobs"
    return f"Sweep {sweep_dir}: {jobs} ranked by {metric}{extra}"
