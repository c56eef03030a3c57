"""The sweep's leaderboard: when a Hydra multirun ends, rank its jobs by ``optimized_metric``.

Registered as a Hydra callback (conf/config.yaml, ``hydra.callbacks.leaderboard``). It reads each
job's directory under the sweep directory (``.hydra/`` for the job number and overrides,
``summary.json`` for the metrics), prints a table, writes ``leaderboard.csv`` and
``leaderboard.md`` into the sweep directory and, when the jobs logged to MLflow, tags each job's
run ``leaderboard_rank`` (1 = best) and attaches the leaderboard to the best run.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from n2react.jobs import only_swept, run_name
from n2react.tracking import store_of

log = logging.getLogger(__name__)

KEY_METRICS = ("mean_test_r", "mean_test_rmse", "mean_test_mae")
TAG_RANK = "leaderboard_rank"


def higher_is_better(metric: str) -> bool:
    """r and R² of a mean are maximised; errors and spreads (std_*) are minimised."""
    return metric.startswith("mean_") and metric.endswith(("_r", "_r2"))


def collect_jobs(sweep_dir: Path, axes: list[str] | None = None) -> pd.DataFrame:
    """One row per job directory of the sweep: job, run name, overrides, dir, summary metrics.

    ``axes``: the sweep's override strings; the name then shows only the swept keys, like the
    job's MLflow run name.
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
        job_axes = list(axes or [])
        model_axes = OmegaConf.select(job_cfg, "model.sweep")
        if model_axes:
            job_axes += [f"{k}={v}" for k, v in OmegaConf.to_container(model_axes).items()]
        shown = only_swept(overrides, job_axes) if axes is not None else overrides
        summary_file = job_dir / "summary.json"
        metrics = json.loads(summary_file.read_text()) if summary_file.exists() else {}
        rows.append(
            {
                "job": int(job_num) if job_num is not None else -1,
                "name": run_name(str(model or "?"), shown),
                "overrides": " ".join(overrides),
                "status": "done" if metrics else "failed",
                "dir": str(job_dir),
                **metrics,
            }
        )
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


def to_markdown(board: pd.DataFrame, columns: list[str]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4f}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for _, r in board.iterrows()]
    return "\n".join(lines) + "\n"


def _mlflow_runs(tracking: DictConfig, sweep: str) -> dict[int, str]:
    """job number -> parent run id, for the runs tagged with this sweep."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(str(tracking.uri))
    exp = client.get_experiment_by_name(str(tracking.experiment))
    if exp is None:
        return {}
    quoted = sweep.replace("'", "\\'")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.sweep = '{quoted}'")
    return {
        int(r.data.tags["job"]): r.info.run_id
        for r in runs
        if "mlflow.parentRunId" not in r.data.tags and r.data.tags.get("job", "").isdigit()
    }


def _publish(tracking: DictConfig, board: pd.DataFrame, files: list[Path]) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(str(tracking.uri))
    for _, row in board.iterrows():
        if row["run_id"]:
            client.set_tag(row["run_id"], TAG_RANK, str(row["rank"]))
    best = board.iloc[0]["run_id"]
    if best:
        for f in files:
            client.log_artifact(best, str(f))


class Leaderboard(Callback):
    """Hydra callback: rank the jobs of a finished multirun (see the module docstring)."""

    def __init__(self, metrics: list[str] | None = None) -> None:
        self.metrics = list(metrics or KEY_METRICS)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from n2react.report import console, leaderboard_table

        sweep_dir = Path(str(config.hydra.sweep.dir))
        metric = str(config.get("optimized_metric", "mean_test_rmse"))
        axes = [str(o) for o in OmegaConf.select(config, "hydra.overrides.task") or []]
        params = OmegaConf.select(config, "hydra.sweeper.params")
        if params:
            axes += [f"{k}={v}" for k, v in OmegaConf.to_container(params).items()]
        board = rank_jobs(collect_jobs(sweep_dir, axes), metric)
        if board.empty:
            log.warning("leaderboard: no job directories under %s", sweep_dir)
            return
        tracking = config.get("tracking")
        use_mlflow = tracking is not None and store_of(tracking) is not None
        run_ids: dict[int, str] = {}
        if use_mlflow:
            try:
                run_ids = _mlflow_runs(tracking, str(config.hydra.sweep.dir))
            except Exception as exc:  # the leaderboard files matter more than the tags
                log.warning("leaderboard: cannot read the MLflow runs (%s)", exc)
        board["run_id"] = [run_ids.get(int(j), "") for j in board["job"]]
        columns = ["rank", "job", "name"]
        columns += list(dict.fromkeys([metric, *self.metrics]))
        columns += ["status", "run_id", "overrides", "dir"]
        board = board.reindex(columns=columns)
        files = [sweep_dir / "leaderboard.csv", sweep_dir / "leaderboard.md"]
        board.to_csv(files[0], index=False)
        title = f"Sweep {sweep_dir}: {len(board)} jobs ranked by {metric}"
        files[1].write_text(f"# {title}\n\n" + to_markdown(board, columns))
        console.print(leaderboard_table(board, [metric, *self.metrics], title))
        log.info("leaderboard written to %s", files[0])
        if use_mlflow and run_ids:
            try:
                _publish(tracking, board, files)
            except Exception as exc:
                log.warning("leaderboard: cannot tag the MLflow runs (%s)", exc)
