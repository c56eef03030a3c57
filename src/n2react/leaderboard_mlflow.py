"""The sweep's ranks in MLflow: each job's parent run found (by its ``sweep`` tag, or by its run
folder), tagged and scored ``leaderboard_rank``, and the leaderboard files attached to the best
run (the best ranked job that still has one, when the best's was deleted: a sweep has no MLflow
run of its own). Split from :mod:`n2react.leaderboard`, which re-exports these names.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from n2react.board import RUN_DELETED, SCORED
from n2react.sweep_ranking import rank_tag
from n2react.tracking import Store

log = logging.getLogger("n2react.leaderboard")  # its lines are the leaderboard's

TAG_RANK = "leaderboard_rank"


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
    if (holder := files_run(board)) is not None:
        for f in files:
            client.log_artifact(str(holder["run_id"]), str(f))


def files_run(board: pd.DataFrame) -> pd.Series | None:
    """The board's row whose MLflow run holds the leaderboard files: the best job's, or, when the
    best has none (its run deleted while it ran, its scores ranked from its folder), the best
    ranked job that still has one, which the log says; None (said too) when no ranked job has
    one. A sweep has no MLflow run of its own to hold them."""
    ranked = board[board["status"].isin(SCORED)]
    if ranked.empty or ranked.iloc[0]["run_id"]:
        return None if ranked.empty else ranked.iloc[0]
    best = ranked.iloc[0]
    why = "was deleted while it ran" if best["status"] == RUN_DELETED else "is not in the store"
    holders = ranked[ranked["run_id"] != ""]
    if holders.empty:
        log.info(
            "leaderboard: the best job's (%s) MLflow run %s and no other ranked job has one: the "
            "leaderboard files are attached to no MLflow run",
            best["job"],
            why,
        )
        return None
    holder = holders.iloc[0]
    log.info(
        "leaderboard: the best job's (%s) MLflow run %s: the leaderboard files are attached to "
        "the run of job %s (rank %d), the best ranked job that has one",
        best["job"],
        why,
        holder["job"],
        int(holder["rank"]),
    )
    return holder
