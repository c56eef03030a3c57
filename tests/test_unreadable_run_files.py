"""A finished run folder whose own files were damaged afterwards (cut off, emptied, edited by
hand, deleted), given to the commands that read it: each says one line naming the file and
why, exit 2, never a traceback. ``explain`` and ``benchmarks/importance_stability.py --run`` of a
run whose config_resolved.yaml was not valid YAML ended in a 60-line YAML traceback (exit 1),
of one emptied in ``KeyError: 'data'``; they now say it as predict does."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from unfinished_helpers import QUICK, command, one_error, sweep_folder

from n2react.errors import N2ReactError

ROOT = Path(__file__).resolve().parents[1]
BENCH = str(ROOT / "benchmarks" / "importance_stability.py")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """A real finished run (ridge, 3 outer folds, its final model, no MLflow), made once."""
    where = tmp_path_factory.mktemp("finished")
    run = where / "run"
    train = ["-m", "train", "model=ridge", "cv.outer_folds=3", *QUICK, "tracking=none",
             f"hydra.run.dir={run}"]  # fmt: skip
    res = command(train, where, {"N2_DATA_DIR": str(shared_data)})
    assert res.returncode == 0, res.stderr[-1500:]
    assert (run / "oof_predictions.csv").is_file() and (run / "model.skops").is_file()
    return run


@pytest.fixture
def run(finished: Path, tmp_path: Path) -> Path:
    """A copy of the finished run, to damage."""
    return Path(shutil.copytree(finished, tmp_path / "run"))


@pytest.mark.slow
def test_explain_names_a_finished_runs_unreadable_config(run: Path, tmp_path: Path) -> None:
    config = run / "config_resolved.yaml"
    explain = ["-m", "n2react.explain", str(run)]
    for damage, why in [
        ("data: [1, 2\nseed: 1\n", "not valid YAML: expected ',' or ']', but got ':' at line 2"),
        ("", "empty"),  # said KeyError: 'data'
        ("- 1\n", "not a mapping of settings"),
        (None, "not found"),  # said "no config_resolved.yaml (not a run directory)"
    ]:
        if damage is None:
            config.unlink()
        else:
            config.write_text(damage)
        line = f"{config}: cannot be read ({why})"
        assert one_error(command(explain, tmp_path)) == line
        assert one_error(command([BENCH, "--run", str(run)], tmp_path)) == line
        assert not (run / "explain").exists()


@pytest.mark.slow
def test_resume_names_a_runs_unreadable_config(run: Path, tmp_path: Path) -> None:
    # said yaml.parser.ParserError (not valid YAML) or omegaconf's ConfigTypeError "Index
    # 'final_model' (str) is not an int" (a list) in a 20-line traceback, exit 1; an emptied
    # file read as a run that had finished
    from n2react.resume import check_same_config

    config = run / "config_resolved.yaml"
    resume = ["-m", "train", "model=ridge", "cv.outer_folds=3", *QUICK, "tracking=none",
              f"resume={run}"]  # fmt: skip
    for damage, why in [
        ("data: [1, 2\nseed: 1\n", "not valid YAML: expected ',' or ']', but got ':' at line 2"),
        ("", "empty"),
        ("- 1\n", "not a mapping of settings"),
    ]:
        config.write_text(damage)
        line = f"{config}: cannot be read ({why})"
        assert one_error(command(resume, tmp_path)) == line
        with pytest.raises(N2ReactError) as err:  # a run whose store is asked: this reads it
            check_same_config(run, {"seed": 1})
        assert str(err.value) == line


@pytest.mark.slow
def test_explain_names_a_finished_runs_unreadable_out_of_fold_table(
    run: Path, tmp_path: Path
) -> None:
    # said UnicodeDecodeError / pandas' EmptyDataError in a 45-line traceback, exit 1
    table = run / "oof_predictions.csv"
    explain = ["-m", "n2react.explain", str(run)]
    for damage, why in [
        (b"\xff\xfe\x00garbage\n", "cannot read oof_predictions.csv ('utf-8' codec can't decode "
                                   "byte 0xff in position 0: invalid start byte)"),
        (b"", "cannot read oof_predictions.csv (No columns to parse from file)"),
    ]:  # fmt: skip
        table.write_bytes(damage)
        assert one_error(command(explain, tmp_path)) == f"{run}: {why}"  # as compare says it
        assert not (run / "explain").exists()


@pytest.mark.slow
def test_resume_names_a_finished_folds_unreadable_file(run: Path, tmp_path: Path) -> None:
    # said json's JSONDecodeError / pandas' EmptyDataError in a 40-line traceback, exit 1
    for name in ("summary.json", "model.skops", "model.skops.sha256", "oof_predictions.csv"):
        (run / name).unlink()  # as a run stopped before its final fit, its folds all done
    fold = run / "folds" / "fold_01"
    resume = ["-m", "train", "model=ridge", "cv.outer_folds=3", *QUICK, "tracking=none",
              f"resume={run}"]  # fmt: skip
    for name, damage, why in [
        ("fold.json", '{"metrics": {', "Expecting property name enclosed in double quotes"),
        ("fold.json", "[]", "not a mapping"),
        ("predictions.csv", "", "No columns to parse from file"),
    ]:
        saved = (fold / name).read_bytes()
        (fold / name).write_text(damage)
        res = command(resume, tmp_path)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-1500:]
        last = res.stderr.strip().splitlines()[-1]
        assert last.startswith(f"n2react: error: resume: {fold / name}: cannot be read ({why}")
        assert last.endswith(f"; remove {fold} to fit that outer fold again"), last
        (fold / name).write_bytes(saved)
    shutil.rmtree(fold)  # as the line says: that fold is fitted again, the run finished
    assert command(resume, tmp_path).returncode == 0
    assert (fold / "fold.json").is_file() and (run / "summary.json").is_file()


@pytest.mark.slow
def test_explain_names_a_config_without_its_data_settings(run: Path, tmp_path: Path) -> None:
    # said KeyError: 'data' in a 25-line traceback, exit 1
    config = run / "config_resolved.yaml"
    config.write_text("seed: 1\n")
    assert one_error(command(["-m", "n2react.explain", str(run)], tmp_path)) == (
        f"{config}: no data: settings, which reload the run's data set (not a config of python "
        "-m train?)"
    )


@pytest.mark.slow
def test_a_sweep_jobs_unreadable_summary_is_a_row_of_its_own_when_its_leaderboard_is_refreshed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # one job's summary.json cut off made the whole refresh fail: "leaderboard of <sweep>: not
    # brought up to date (<file>: cannot be read (...))", the other jobs unranked; one edited
    # by hand (a word for a score) was ranked as if it were a score
    import json

    import pandas as pd

    from n2react.leaderboard import UNREADABLE, refresh_sweep

    sweep = sweep_folder(tmp_path)
    summary = sweep / "1_svr" / "summary.json"
    scores = json.loads(summary.read_text())
    ridge = json.loads((sweep / "0_ridge" / "summary.json").read_text())["mean_test_rmse"]
    for damage, why in [
        (summary.read_text()[:10], "Unterminated string"),
        (json.dumps({**scores, "mean_test_rmse": "1.2x"}), "mean_test_rmse: '1.2x' is not a score"),
    ]:
        summary.write_text(damage)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="n2react.leaderboard"):
            board = refresh_sweep(sweep, None)
        assert board is not None
        (line,) = [r.getMessage() for r in caplog.records if r.name == "n2react.leaderboard"]
        assert line.startswith(
            f"leaderboard: job 1 is not ranked: {summary}: cannot be read ({why}"
        )
        csv = pd.read_csv(sweep / "leaderboard.csv", keep_default_na=False)
        for rows in (board, csv):  # the ridge job ranked, the svr one after it, its file named
            assert list(rows["job"]) == [0, 1] and list(rows["rank"]) == [1, 2]
            assert list(rows["status"]) == ["done", UNREADABLE]
            assert float(rows["mean_test_rmse"].iloc[0]) == pytest.approx(ridge)
            assert str(rows["mean_test_rmse"].iloc[1]) in ("", "nan")
            assert str(rows["error"].iloc[1]).startswith(f"{summary}: cannot be read ({why}")
        title = (sweep / "leaderboard.md").read_text().splitlines()[0]
        assert title.endswith("2 jobs ranked by mean_test_rmse (1 summary unreadable)"), title
