"""`explain`, `predict` and `benchmarks/importance_stability.py --run` given what is not a
finished run, as real processes: a run killed part-way (its folder and its MLflow run), a
sweep's folder, a run id not in the store. They said "oof_predictions.csv: not found (is this a
finished nested-CV run?)", "no artifact oof_predictions.csv (not an n2react parent run?)" of an
n2react run, "no model.skops (not a run directory of python -m train ...)" of a sweep's folder
and MLflow's "Run with id=X not found"; each now says the line compare says
(:mod:`n2react.unfinished`). predict said "no model.skops (not a run directory of python -m train,
or a run made with final_model=false?)" of a run killed before its final fit and of a run made
with final_model=false alike; it now tells them apart by the run's config_resolved.yaml."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from resume_helpers import KILLABLE, QUICK, start_and_kill
from unfinished_helpers import (
    command,
    killed_before_final_fit,
    killed_run,
    one_error,
    resume_as_told,
    resume_in_shell,
    sweep_folder,
)

from n2react.jobs import TAG_OVERRIDES, continue_command, resume_command, tagged_overrides

ROOT = Path(__file__).resolve().parents[1]
SHEET = "homonuclear-159-24features.xlsx"


def _not_finished(folder: Path, verb: str, uri: str) -> str:
    # its own overrides plus resume= (a bare resume= is refused: the config differs)
    # (hydra.run.dir is Hydra's, not the task's: resume= continues the run in its own folder)
    again = " ".join([*KILLABLE, "uncertainty.enabled=false", f"tracking.uri={uri}",
                      f"resume={folder}"])  # fmt: skip
    return (
        rf"{re.escape(str(folder))}: its run has not finished \(2 outer fold\(s\) done so far: "
        rf"still running, or stopped part-way\); {verb} once it has finished \(python -m "
        rf"train {re.escape(again)} continues a stopped run\)"
    )


@pytest.mark.slow
def test_explain_and_predict_name_a_run_killed_part_way(tmp_path: Path, shared_data: Path) -> None:
    killed = killed_run(tmp_path)
    run_dir, uri, run_id = killed.run_dir, killed.uri, killed.run_id
    out = tmp_path / "out.csv"
    predict = ["-m", "predict", str(run_dir), str(shared_data / SHEET), "-o", str(out)]
    # "killed/oof_predictions.csv: not found (is this a finished nested-CV run?)"
    said = one_error(command(["-m", "n2react.explain", str(run_dir)], tmp_path))
    assert re.fullmatch(_not_finished(run_dir, "explain it", uri), said), said
    # "killed: no model.skops (not a run directory of python -m train, or ... final_model=false?)"
    said = one_error(command(predict, tmp_path))
    assert re.fullmatch(_not_finished(run_dir, "predict", uri), said), said
    bench = [str(ROOT / "benchmarks" / "importance_stability.py"), "--run", str(run_dir)]
    said = one_error(command(bench, tmp_path))  # said "explain it once it has finished"
    assert re.fullmatch(_not_finished(run_dir, "measure its importance stability", uri), said)

    # its MLflow run, left RUNNING: "no artifact oof_predictions.csv (not an n2react parent
    # run?)" (explain), "has no final model (tag model_uri)" (predict)
    state = f"MLflow run {run_id} is RUNNING (still running, or its process died without a word)"
    own = " ".join([*KILLABLE, "uncertainty.enabled=false", f"tracking.uri={uri}"])
    resume = f"(python -m train {own} resume={run_id} continues a KILLED or FAILED run)"
    said = one_error(command(["-m", "n2react.explain", run_id, "--tracking-uri", uri], tmp_path))
    assert said == (
        f"{state}: it has no oof_predictions.csv before its outer folds are done; explain it "
        f"once it has finished {resume}"
    )
    predict[2] = run_id
    said = one_error(command([*predict, "--tracking-uri", uri], tmp_path))
    assert said == (
        f"{state}: it has no final model (tag model_uri) before its outer folds and final fit "
        f"are done; predict once it has finished {resume}"
    )

    # a run id not in the store: "Run with id=<id> not found", the store searched unsaid
    missing = "0" * 32
    said = one_error(command(["-m", "n2react.cli", "explain", missing], tmp_path,
                             {"MLFLOW_TRACKING_URI": uri}))  # fmt: skip
    assert said == f"MLflow run {missing}: no such run in {uri}"
    predict[2] = missing
    said = one_error(command(["-m", "n2react.cli", *predict[1:], "--tracking-uri", uri], tmp_path))
    assert said == f"MLflow run {missing}: no such run in {uri}"
    assert not out.exists()


@pytest.mark.slow
def test_explain_and_predict_name_a_sweeps_folder(tmp_path: Path, shared_data: Path) -> None:
    # explain: "sweep: no config_resolved.yaml (not a run directory); ...", predict: "sweep: no
    # model.skops (not a run directory of python -m train, or ... final_model=false?)"
    sweep = sweep_folder(tmp_path)
    line = (
        f"{sweep} is a sweep's folder (2 finished job folder(s) in it): name one of its job "
        f"folders, e.g. {sweep / '0_ridge'}; its leaderboard.csv compares every job with the "
        "best one"
    )
    assert one_error(command(["-m", "n2react.cli", "explain", str(sweep)], tmp_path)) == line
    out = tmp_path / "out.csv"
    predict = ["-m", "predict", str(sweep), str(shared_data / SHEET), "-o", str(out)]
    assert one_error(command(predict, tmp_path)) == line
    assert not out.exists()
    # its job folders without multirun.yaml: explain said "runs: no config_resolved.yaml (not a
    # run directory); ... (it holds 2 run(s), e.g. runs/0_ridge)", predict "no model.skops ..."
    runs = tmp_path / "runs"
    shutil.copytree(sweep, runs, ignore=shutil.ignore_patterns("multirun.yaml"))
    line = (
        f"{runs} is a folder of runs (2 finished run folder(s) in it): name one of its run "
        f"folders, e.g. {runs / '0_ridge'}"
    )
    assert one_error(command(["-m", "n2react.cli", "explain", str(runs)], tmp_path)) == line
    predict[2] = str(runs)
    assert one_error(command(predict, tmp_path)) == line
    assert not out.exists()


@pytest.mark.slow
def test_predict_tells_a_run_stopped_before_its_final_fit_from_one_without_a_final_model(
    tmp_path: Path, shared_data: Path
) -> None:
    # both said "no model.skops (not a run directory of python -m train, or a run made with
    # final_model=false?)"
    run_dir = killed_before_final_fit(tmp_path)
    out = tmp_path / "out.csv"
    predict = ["-m", "predict", str(run_dir), str(shared_data / SHEET), "-o", str(out)]
    said = one_error(command(predict, tmp_path))
    # said "python -m train resume=<dir>", refused: "the config differs ..."
    own = " ".join([*KILLABLE, "uncertainty.enabled=false", "tracking=none"])
    assert said == (
        f"{run_dir}: its run has not finished (4 outer fold(s) done, its final model not fitted "
        "yet: still running, or stopped part-way); predict once it has finished (python -m "
        f"train {own} resume={run_dir} continues a stopped run)"
    )
    res = resume_as_told(said, tmp_path)  # the command it gives continues the run
    assert res.returncode == 0, res.stderr[-1500:]
    assert (run_dir / "model.skops").is_file()
    res = command(predict, tmp_path)
    assert res.returncode == 0 and out.is_file(), res.stderr[-1500:]
    out.unlink()
    job = sweep_folder(tmp_path) / "0_ridge"  # final_model=false, finished
    predict[2] = str(job)
    assert one_error(command(predict, tmp_path)) == (
        f"{job}: a run made with final_model=false: it has no final model (model.skops) to "
        "predict with; train it again with final_model=true"
    )
    assert not out.exists()


@pytest.mark.slow
def test_predict_tells_a_finished_mlflow_run_made_with_final_model_false(
    tmp_path: Path, shared_data: Path
) -> None:
    # said "MLflow run X has no final model (tag model_uri)", as of a run that logged none
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    train = ["-m", "train", *QUICK, "progress=false", "uncertainty.enabled=false",
             f"tracking.uri={uri}", f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    res = command(train, tmp_path)
    assert res.returncode == 0, res.stderr[-1500:]
    runs = MlflowClient(uri).search_runs(["1"])
    (run,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert run.info.status == "FINISHED" and "model_uri" not in run.data.tags
    out = tmp_path / "out.csv"
    predict = ["-m", "predict", run.info.run_id, str(shared_data / SHEET), "-o", str(out)]
    assert one_error(command([*predict, "--tracking-uri", uri], tmp_path)) == (
        f"MLflow run {run.info.run_id}: a run made with final_model=false: it has no final model "
        "(tag model_uri) to predict with; train it again with final_model=true"
    )
    assert not out.exists()


def test_the_overrides_a_run_was_tagged_with_give_its_resume_command() -> None:
    # a value with a space comes back whole; a password shown as *** or a cut tag cannot
    tags = {TAG_OVERRIDES: "model=svr experiment.name=my runs ~explain"}
    assert tagged_overrides(tags) == ["model=svr", "experiment.name=my runs", "~explain"]
    assert resume_command(tagged_overrides(tags), "0" * 32) == (
        f"python -m train model=svr 'experiment.name=my runs' '~explain' resume={'0' * 32}"
    )
    hidden = {TAG_OVERRIDES: "model=svr tracking.uri=http://u:***@host"}
    assert tagged_overrides(hidden) is None and tagged_overrides({}) is None
    assert resume_command(None, "run") == "python -m train <its overrides> resume=run"
    assert resume_command(["resume=old", "model=svr"], "d") == "python -m train model=svr resume=d"


@pytest.mark.slow
def test_a_run_started_elsewhere_with_a_relative_path_is_continued_from_its_folder(
    tmp_path: Path, shared_data: Path
) -> None:
    # said "python -m train ... data.path=mydata.xlsx resume=../start/killed" to predict run in
    # another folder: pasted there (or anywhere else) it found neither the run nor the data
    start, elsewhere, third = tmp_path / "my start", tmp_path / "elsewhere", tmp_path / "third"
    for d in (start, elsewhere, third):
        d.mkdir()
    shutil.copyfile(shared_data / SHEET, start / "mydata.xlsx")
    own = [*KILLABLE, "uncertainty.enabled=false", "tracking=none", "data.path=mydata.xlsx"]
    run_dir = start / "killed"
    cmd = [sys.executable, "-m", "train", *own, "hydra.run.dir=killed"]
    start_and_kill(cmd, start, run_dir)
    out = elsewhere / "out.csv"
    predict = ["-m", "predict", "../my start/killed", str(shared_data / SHEET), "-o", str(out)]
    said = one_error(command(predict, elsewhere))
    again = f"cd '{start}' && python -m train {' '.join(own)} 'resume={run_dir}'"
    assert said.endswith(f"predict once it has finished ({again} continues a stopped run)"), said
    said = one_error(command(["-m", "n2react.explain", "../my start/killed"], elsewhere))
    assert said.endswith(f"explain it once it has finished ({again} continues a stopped run)")
    res = resume_in_shell(said, third)  # pasted into a shell in yet another folder
    assert res.returncode == 0, res.stderr[-1500:]
    assert (run_dir / "model.skops").is_file() and (run_dir / "summary.json").is_file()
    res = command(predict, elsewhere)
    assert res.returncode == 0 and out.is_file(), res.stderr[-1500:]


def test_the_command_that_continues_a_run_cds_only_where_a_relative_path_needs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    run_dir = start / "outputs" / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    elsewhere.mkdir()
    (start / "mydata.xlsx").touch()
    hydra = OmegaConf.create({"hydra": {"runtime": {"cwd": str(start)}}})
    OmegaConf.save(hydra, run_dir / ".hydra" / "hydra.yaml")
    overrides = run_dir / ".hydra" / "overrides.yaml"
    OmegaConf.save(OmegaConf.create(["model=ridge", "data.path=mydata.xlsx"]), overrides)
    line = f"python -m train model=ridge data.path=mydata.xlsx resume={run_dir}"
    monkeypatch.chdir(elsewhere)  # the run dir made absolute, the data path read from start
    assert continue_command(Path("../start/outputs/run")) == f"cd {start} && {line}"
    monkeypatch.chdir(start)  # where it was started: no cd
    assert continue_command(Path("outputs/run")) == line
    # no relative path among its overrides (a model name, a path that is not there): no cd
    no_paths = ["model=ridge", "data.path=/abs/x.xlsx", "eval.path=gone.xlsx"]
    OmegaConf.save(OmegaConf.create(no_paths), overrides)
    monkeypatch.chdir(elsewhere)
    assert continue_command(Path("../start/outputs/run")) == (
        f"python -m train {' '.join(no_paths)} resume={run_dir}"
    )


@pytest.mark.slow
def test_predict_names_a_run_folders_missing_or_unreadable_config(
    tmp_path: Path, shared_data: Path
) -> None:
    # each said "no model.skops (not a run directory of python -m train, or a run made with
    # final_model=false?)": the file that would tell went unnamed
    train = ["-m", "train", *QUICK, "progress=false", "uncertainty.enabled=false",
             "tracking=none", f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    res = command(train, tmp_path)
    assert res.returncode == 0, res.stderr[-1500:]
    out = tmp_path / "out.csv"
    run, config = tmp_path / "run", tmp_path / "run" / "config_resolved.yaml"
    predict = ["-m", "predict", str(run), str(shared_data / SHEET), "-o", str(out)]
    unknown = (
        "so whether its run was made with final_model=false or stopped before its final fit is "
        f"unknown; {run} has no model.skops to predict with"
    )
    config.write_text("data: [1, 2\nseed: 1\n")  # cut off, or edited by hand
    assert one_error(command(predict, tmp_path)) == (
        f"{config}: cannot be read (not valid YAML: expected ',' or ']', but got ':' at line "
        f"2), {unknown}"
    )
    config.write_text("")
    assert one_error(command(predict, tmp_path)) == f"{config}: cannot be read (empty), {unknown}"
    config.unlink()
    assert one_error(command(predict, tmp_path)) == (
        f"{run}: no model.skops nor config_resolved.yaml: not a run folder of python -m train (or "
        "its run stopped before it wrote its config): nothing to predict with"
    )
    assert not out.exists()
