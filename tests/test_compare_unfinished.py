"""`n2react compare` given what is not a finished run, as real processes: a run killed part-way
(its folder and its MLflow run), a sweep's folder, a run id that is not in the store. Each said
something wrong or unclear ("not an n2react parent run?" of an n2react run, "Run with id=X not
found" without the store); each is now one line that says what it is and what to give."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from resume_helpers import KILLABLE
from unfinished_helpers import command, killed_run, one_error, resume_as_told, sweep_folder


def _compare(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return command(["-m", "n2react.compare", *args], cwd)


@pytest.mark.slow
def test_a_run_killed_part_way_is_named_unfinished(tmp_path: Path) -> None:
    # its folder said "no oof_predictions.csv (not a finished nested-CV run of python -m
    # train?)", its MLflow run (left RUNNING by SIGKILL) "no artifact oof_predictions.csv (not
    # an n2react parent run?)"
    killed = killed_run(tmp_path)
    run_dir, uri, run_id = killed.run_dir, killed.uri, killed.run_id
    # both said "python -m train resume=<its folder or run id>", refused: "the config differs"
    own = " ".join([*KILLABLE, "uncertainty.enabled=false", f"tracking.uri={uri}"])
    said = one_error(_compare(str(run_dir), str(tmp_path), cwd=tmp_path))
    assert re.fullmatch(
        rf"{re.escape(str(run_dir))}: its run has not finished \(\d outer fold\(s\) done so far: "
        r"still running, or stopped part-way\); compare it once it has finished \(python -m "
        rf"train {re.escape(own)} resume={re.escape(str(run_dir))} continues a stopped run\)",
        said,
    ), said
    said = one_error(_compare(run_id, str(tmp_path), "--tracking-uri", uri, cwd=tmp_path))
    assert said == (
        f"MLflow run {run_id} is RUNNING (still running, or its process died without a word): "
        "it has no oof_predictions.csv before its outer folds are done; compare it once it has "
        f"finished (python -m train {own} resume={run_id} continues a KILLED or FAILED run)"
    )
    # a run id not in the store named no store: "Run with id=<id> not found"
    said = one_error(_compare("0" * 32, run_id, "--tracking-uri", uri, cwd=tmp_path))
    assert said == f"MLflow run {'0' * 32}: no such run in {uri}"
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / "mlflow.db").write_bytes((tmp_path / "mlflow.db").read_bytes())
    said = one_error(_compare("0" * 32, run_id, cwd=tmp_path / "cwd"))
    assert said == (
        f"MLflow run {'0' * 32}: no such run in sqlite:///mlflow.db (the default store; name "
        "yours with --tracking-uri)"
    )
    # the command the run id's line gives continues the run: it finishes
    said = one_error(_compare(run_id, str(tmp_path), "--tracking-uri", uri, cwd=tmp_path))
    res = resume_as_told(said, tmp_path)
    assert res.returncode == 0, res.stderr[-1500:]
    assert (run_dir / "summary.json").is_file()
    client = MlflowClient(uri)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert "oof_predictions.csv" in [a.path for a in client.list_artifacts(run_id)]


@pytest.mark.slow
def test_a_sweep_folder_names_its_job_folders(tmp_path: Path) -> None:
    # "sweep: no oof_predictions.csv (not a finished nested-CV run of python -m train?)"
    sweep = sweep_folder(tmp_path)
    said = one_error(_compare(str(sweep), str(sweep / "0_ridge"), cwd=tmp_path))
    assert said == (
        f"{sweep} is a sweep's folder (2 finished job folder(s) in it): name two of its job "
        f"folders, e.g. {sweep / '0_ridge'} {sweep / '1_svr'}; its leaderboard.csv compares "
        "every job with the best one"
    )
    res = _compare(str(sweep / "0_ridge"), str(sweep / "1_svr"), "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-1500:]
