"""The sweep's leaderboard and report when a job fails: the sweep goes on, the finished jobs are
ranked with their intervals, the failed one is marked, and the multirun exits non-zero (a sweep
stopped or refused part-way: tests/test_leaderboard_stopped.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from leaderboard_helpers import _train
from mlflow.tracking import MlflowClient

from n2react.board import vs_best_note
from n2react.figures import figure_text
from n2react.leaderboard import higher_is_better, paired_with_best, rank_tag
from n2react.runstore import OOF_FILE


def _two_jobs(tmp_path: Path) -> list[tuple[int, Path, pd.DataFrame]]:
    """Two jobs' out-of-fold tables (in ``tmp_path/0`` and ``tmp_path/1``) on the same 4 folds
    of 40 clusters: job 1's errors are half job 0's everywhere. (job, folder, table) each."""
    rng = np.random.default_rng(0)
    y, err = rng.normal(size=40), rng.normal(0.0, 0.5, size=40)
    jobs = []
    for job, scale in ((0, 1.0), (1, 0.5)):
        folder = tmp_path / str(job)
        folder.mkdir()
        oof = pd.DataFrame({"cluster": [f"c{i}" for i in range(40)], "fold": np.arange(40) % 4 + 1,
                            "y_true": y, "y_pred": y + scale * err})  # fmt: skip
        oof.to_csv(folder / OOF_FILE, index=False)
        jobs.append((job, folder, oof))
    return jobs


def test_rank_tags_sort_as_numbers_and_directions() -> None:
    assert sorted(rank_tag(k, 12) for k in (10, 2, 1, 12)) == ["01", "02", "10", "12"]
    assert rank_tag(7, 120) == "007"
    assert higher_is_better("pooled_test_within") and higher_is_better("mean_test_r")
    assert higher_is_better("pooled_test_r") and not higher_is_better("std_test_r")
    assert not higher_is_better("pooled_test_mae")


def test_vs_best_is_the_jobs_figure_minus_the_best_and_p_is_the_bests_share(tmp_path) -> None:
    # two jobs' out-of-fold tables on the same folds: the best's errors are half the other's
    # everywhere, so the other's MAE is worse in every resample (P(best better) = 1)
    rows = []
    for job, folder, oof in _two_jobs(tmp_path):
        mae = float(np.mean(np.abs(oof["y_pred"] - oof["y_true"])))
        rows.append({"job": job, "status": "done", "dir": str(folder), "pooled_test_mae": mae})
    board = pd.DataFrame(rows).sort_values("pooled_test_mae", ignore_index=True)
    board = paired_with_best(board, "pooled_test_mae")
    best, other = board.iloc[0], board.iloc[1]
    assert best["job"] == 1 and best["vs_best"] == 0 and np.isnan(best["p_best_better"])
    assert other["vs_best"] == pytest.approx(other["pooled_test_mae"] - best["pooled_test_mae"])
    assert 0 < other["vs_best_ci_low"] <= other["vs_best"] <= other["vs_best_ci_high"]
    assert other["p_best_better"] == 1.0
    # 40 clusters resampled: enough units for the leaderboard to stand by it
    assert other["vs_best_units"] == 40 and vs_best_note(board, "pooled_test_mae") == ""


def test_vs_best_on_too_few_folds_says_it_is_no_finding(tmp_path: Path) -> None:
    # 4 folds, the best better in each: P(best better) = 1.00 and an interval off zero, read as
    # "worse than the best" though it rests on 4 units. The figures stay (and their columns);
    # vs_best_units says on how many units, and the md file, the terminal table and the report
    # say it is too few to tell.
    from n2react.leaderboard import to_markdown, write_board
    from n2react.sweep_report import to_html
    from n2react.terminal import leaderboard_table

    rows = []
    for job, folder, oof in _two_jobs(tmp_path):
        folds = (oof["y_pred"] - oof["y_true"]).abs().groupby(oof["fold"]).mean()
        rows.append({"job": job, "name": f"job{job}", "status": "done", "error": "",
                     "dir": str(folder), "run_id": "", "overrides": "",
                     "mean_test_mae": float(folds.mean())})  # fmt: skip
    board = pd.DataFrame(rows).sort_values("mean_test_mae", ignore_index=True)
    board.insert(0, "rank", [1, 2])
    board = paired_with_best(board, "mean_test_mae")
    other = board.iloc[1]
    assert other["vs_best_ci_low"] > 0 and other["p_best_better"] == 1.0  # the figures stay
    assert list(board["vs_best_units"]) == [4, 4]
    note = vs_best_note(board, "mean_test_mae")
    assert note.startswith("vs best: too few units (4 folds) to tell which job is better")
    assert note.endswith("its differences, intervals and P(best better) are no finding")
    write_board(board, tmp_path, "Sweep", "mean_test_mae")
    md = (tmp_path / "leaderboard.md").read_text()
    assert f"> {note}" in md and "| vs_best_units |" in md
    assert "<NA>" not in to_markdown(board.assign(vs_best_units=pd.NA), list(board.columns))
    csv = pd.read_csv(tmp_path / "leaderboard.csv")
    assert list(csv["vs_best_units"]) == [4, 4]
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(leaderboard_table(board, ["mean_test_mae"], "Sweep"))
    assert "too few units (4 folds) to tell" in " ".join(console.export_text().split())
    page = to_html(board, "mean_test_mae", "Sweep", b"")
    assert "too few units (4 folds) to tell" in page


@pytest.mark.slow
def test_a_job_whose_ranking_figure_is_undefined_is_still_ranked(tmp_path: Path) -> None:
    """Ridge with alpha=1e300 predicts one value per fold: mean_test_r is NaN, null in its
    summary.json. Read back as None (no float in the column), the sweep's end failed in the
    terminal table (TypeError: unsupported format string passed to NoneType.__format__,
    leaderboard.md written with 'None' cells) and had no report; null reads back as NaN."""
    sweep = tmp_path / "multi"
    out = _train(
        tmp_path, "model=ridge", "model.estimator.alpha=1e300", "cv.outer_folds=3",
        "final_model=false", "explain=false", "progress=false", "tracking=none",
        "optimized_metric=mean_test_r", f"hydra.sweep.dir={sweep}", "-m",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    said = out.stdout + out.stderr  # (Hydra's log lines go to stdout)
    assert "raised" not in said and "Traceback" not in said, said[-2000:]
    assert "leaderboard written to" in said
    # the terminal table: the undefined figure as '-', as the others (it printed nan)
    (job_row,) = [ln for ln in said.splitlines() if "│ ridge" in ln]
    cells = [c.strip() for c in job_row.split("│")[1:-1]]
    assert cells[3] == "-" and "nan" not in cells, job_row
    board = pd.read_csv(sweep / "leaderboard.csv")
    assert list(board["status"]) == ["done"] and pd.isna(board["mean_test_r"].iloc[0])
    assert board["mean_test_rmse"].iloc[0] > 0
    assert "None" not in (sweep / "leaderboard.md").read_text()
    assert (sweep / "sweep_report.html").is_file()


@pytest.mark.slow
def test_sweep_with_a_failing_job_still_ranks_the_others(tmp_path: Path) -> None:
    sweep = tmp_path / "multi"
    out = _train(
        tmp_path, "model=ridge", "selector=kbest", "cv.outer_folds=3",
        "final_model=false", "explain=false", "progress=false", "selector.step.k=0,5,8",
        f"hydra.sweep.dir={sweep}", "-m", timeout=900
    )  # fmt: skip
    assert out.returncode == 1, out.stderr[-2000:]  # a job failed: the sweep says so
    assert "Traceback" not in out.stderr
    assert "n2react: error: 1 of 3 jobs failed (job 0)" in out.stderr
    board = pd.read_csv(sweep / "leaderboard.csv")
    assert list(board["rank"]) == [1, 2, 3]
    assert list(board["status"]) == ["done", "done", "failed"]
    failed = board.iloc[2]
    assert failed["job"] == 0 and "k=0" in failed["name"] and isinstance(failed["error"], str)
    assert pd.isna(failed["mean_test_rmse"])
    done = board.iloc[:2]
    assert (done["mean_test_rmse_ci_low"] < done["mean_test_rmse"]).all()
    assert done["vs_best"].notna().all() and done["vs_best_ci_high"].iloc[1] >= 0
    assert list(done["vs_best_units"]) == [3, 3]  # 3 outer folds: no verdict
    assert "failed" in (sweep / "leaderboard.md").read_text()
    assert "vs best: too few units (3 folds) to tell" in (sweep / "leaderboard.md").read_text()
    report = (sweep / "sweep_report.html").read_text()
    assert "failed: " in report and "selector.step.k=0" in report
    assert "too few units (3 folds) to tell" in report
    assert "too few units (3 folds) to tell" in " ".join(out.stderr.split())  # the table
    assert (sweep / "sweep_report.png").stat().st_size > 1000
    # the chart says what the jobs ran on and under which protocol, and the metric's unit
    text = figure_text(sweep / "sweep_report.png")
    title = " ".join(text["Title"].split())
    assert title == "3 jobs ranked by mean_test_rmse (homonuclear_24: KFold (known families))"
    assert "mean_test_rmse (lower is better, lg(k1) units)" in text["Description"]
    # MLflow: the failed job left no run (refused before training) or a FAILED one, the others
    # are ranked, the best has the report
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("n2react")
    parents = [
        r
        for r in client.search_runs([exp.experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    ]
    status = {int(r.data.tags["job"]): r.info.status for r in parents}
    assert status.get(0) in (None, "FAILED")
    assert {j: s for j, s in status.items() if j != 0} == {1: "FINISHED", 2: "FINISHED"}
    best = board["run_id"].iloc[0]
    assert "sweep_report.html" in {a.path for a in client.list_artifacts(best)}
    assert client.get_run(best).data.metrics["leaderboard_rank"] == 1


@pytest.mark.slow
def test_a_job_whose_explain_failed_is_ranked_and_noted(tmp_path: Path) -> None:
    """An explain failure is a warning and an MLflow tag, the run FINISHED: in a sweep the job
    counted as done and neither the closing table nor the leaderboard said so."""
    sweep = tmp_path / "multi"
    (sweep / "1_ridge").mkdir(parents=True)
    (sweep / "1_ridge" / "explain").write_text("not a folder\n")  # job 1's explain fails
    out = _train(
        tmp_path, "model=ridge", "cv.outer_folds=3", "final_model=false", "progress=false",
        "tracking=none", "seed=1,2", f"hydra.sweep.dir={sweep}", "-m",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    said = out.stdout + out.stderr  # (Hydra's log lines go to stdout)
    board = pd.read_csv(sweep / "leaderboard.csv")
    assert list(board["status"]) == ["done", "done"] and board["mean_test_rmse"].notna().all()
    assert list(board.columns[-5:]) == ["status", "error", "run_id", "overrides", "dir"]
    errors = dict(zip(board["job"], board["error"].fillna(""), strict=True))
    assert errors[0] == "" and errors[1].startswith("explain failed: ")
    assert "cannot create the folder" in errors[1]
    assert "explain failed: " in (sweep / "leaderboard.md").read_text()
    table_end = said.index("leaderboard written to")
    (line,) = [ln for ln in said[:table_end].splitlines() if "job 1: explain failed: " in ln]
    assert f"python -m n2react.explain {sweep / '1_ridge'}" in line
    assert "job 0:" not in said


@pytest.mark.slow
def test_a_sweep_whose_jobs_all_fail_says_so(tmp_path: Path) -> None:
    # it said "2 of 2 jobs failed (job 0, 1); the others are ranked in ..."
    sweep = tmp_path / "multi"
    out = _train(
        tmp_path, "model=ridge", "selector=kbest", "cv.outer_folds=3",
        "progress=false", "selector.step.k=0,-1", f"hydra.sweep.dir={sweep}", "-m"
    )  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    *jobs, last = [ln for ln in out.stderr.splitlines() if ln.startswith("n2react: error:")]
    # each job's line says whose it is (under a parallel launcher they interleave)
    assert sorted(ln.split(" (")[0] for ln in jobs) == [
        "n2react: error: job 0",
        "n2react: error: job 1",
    ], jobs
    assert last == (
        f"n2react: error: all 2 jobs failed (jobs 0, 1); their errors are in "
        f"{sweep / 'leaderboard.csv'}"
    )
    board = pd.read_csv(sweep / "leaderboard.csv")
    assert list(board["status"]) == ["failed", "failed"] and board["error"].notna().all()


@pytest.mark.slow
def test_the_leaderboard_of_a_sweep_that_never_reached_its_store_leaves_it_alone(
    tmp_path: Path,
) -> None:
    # every job refused before training: the leaderboard created an empty mlflow.db (a run that
    # never started leaves none); on a tracking server that does not answer it retried for about
    # 15 s (urllib3 lines) before a warning that quoted MLflow's whole exception
    import socket
    import time

    common = ["model=ridge", "cv.outer_folds=1,0", "progress=false"]
    # a one-job multirun: it said "all 1 jobs failed" under "1 jobs ranked by ..."
    out = _train(
        tmp_path, *common[:1], "cv.outer_folds=1", f"hydra.sweep.dir={tmp_path / 'a'}", "-m"
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("n2react: error: the sweep's one job failed (job 0); its error is in")
    assert ": 1 job ranked by mean_test_rmse" in (tmp_path / "a" / "leaderboard.md").read_text()
    assert not (tmp_path / "mlflow.db").exists()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    t0 = time.monotonic()
    out = _train(
        tmp_path, *common, f"tracking.uri={dead}", f"hydra.sweep.dir={tmp_path / 'b'}", "-m"
    )
    elapsed = time.monotonic() - t0
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    said = out.stdout + out.stderr  # (Hydra's log lines go to stdout)
    assert "Retrying" not in said and elapsed < 60, (elapsed, said[-2000:])
    assert "leaderboard: the MLflow runs are not ranked (no tracking server answers" in said
    assert (tmp_path / "b" / "leaderboard.csv").is_file()


def test_the_sweep_report_names_a_users_file_as_the_runs_do(tmp_path: Path) -> None:
    # a sweep on data.path=mine.xlsx was titled 'homonuclear_24' (the option's name) while its
    # runs' own titles and MLflow tags name the file (n2react.data.data_name)
    import yaml

    from n2react.sweep_report import _what, job_settings

    job = tmp_path / "0_ridge"
    job.mkdir()
    data = {"kind": "table", "name": "homonuclear_24", "file": "homonuclear-159-24features.xlsx",
            "path": str(tmp_path / "mine.xlsx")}  # fmt: skip
    config = {"data": data, "cv": {"scheme": "nested", "groups": None}}
    (job / "config_resolved.yaml").write_text(yaml.safe_dump(config))
    settings = job_settings(pd.DataFrame({"dir": [str(job)]}), tmp_path)
    assert _what(settings) == "mine: KFold (known families)"


@pytest.mark.slow
def test_a_sweep_across_protocols_says_its_ranks_compare_them(tmp_path: Path) -> None:
    # experiment=paper_pairwise ranked its pair-split job above its nested one without a word
    sweep = tmp_path / "multi"
    out = _train(
        tmp_path, "data=homonuclear_15", "model=ridge", "cv.outer_folds=3",
        "final_model=false", "explain=false", "progress=false", "uncertainty.enabled=false",
        "cv.groups=null,family", f"hydra.sweep.dir={sweep}", "-m"
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    said = " ".join((out.stdout + out.stderr).split())
    assert "the jobs ran under 2 protocols (KFold (known families); grouped by family" in said
    assert "their ranks compare the protocols as much as the configs" in said


def test_a_sweep_over_optimized_metric_is_refused_in_one_line(tmp_path: Path) -> None:
    # optimized_metric=mean_test_mae,mean_test_rmse -m ran the same jobs twice and ranked both
    # by mean_test_rmse (the sweep's default), whatever each job's metric
    from omegaconf import OmegaConf

    from n2react.sweep_plan import swept_ranking_problem

    sweep = tmp_path / "multi"
    out = _train(tmp_path, "model=ridge", "tracking=none", "optimized_metric=mean_test_mae,"
                 "mean_test_rmse", f"hydra.sweep.dir={sweep}", "-m")  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [
        "n2react: error: optimized_metric=mean_test_mae,mean_test_rmse: a sweep's jobs are ranked "
        "together by one metric, and this key changes nothing a job trains (only the figure it "
        "returns to the sweeper): give one value; the leaderboard lists mean_test_r, "
        "mean_test_rmse and mean_test_mae of every job"
    ]
    assert not sweep.exists()  # refused before any job

    def config(params: dict | None, task: list[str]) -> object:
        return OmegaConf.create({"hydra": {"sweeper": {"params": params},
                                           "overrides": {"task": task}}})  # fmt: skip

    swept = {"optimized_metric": "mean_test_r,pooled_test_r"}
    assert "optimized_metric=mean_test_r,pooled_test_r:" in swept_ranking_problem(
        config(swept, ["seed=1,2"])
    )
    # one value (on the command line it wins over the sweeper's axis): ranked by it
    assert swept_ranking_problem(config(swept, ["optimized_metric=mean_test_r"])) is None
    assert swept_ranking_problem(config(None, ["optimized_metric=mean_test_r", "seed=1,2"])) is None
