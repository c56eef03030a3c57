"""A sweep into a folder that holds an earlier sweep: refused in one line (exit 2) before Hydra
launches anything, with or without the Leaderboard callback, whether the earlier sweep's
``multirun.yaml`` is still there or only its job folders are; so is a single run's folder. Every
earlier file is left byte-identical. An empty folder, or one with unrelated files only, still takes
a sweep, and a job of the earlier sweep still continues alone (``resume=``, without ``-m``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bad_input_helpers import _env
from test_override_errors import assert_only_line

QUICK = ("model=ridge", "cv.outer_folds=2", "tracking=none", "explain=false",
         "final_model=false", "progress=false")  # fmt: skip
#: the Leaderboard callback (and the launcher check) left out, as a user's own config may
NO_CALLBACKS = ("~hydra.callbacks.leaderboard", "~hydra.callbacks.backend_check")
ADVICE = (
    "which this one would overwrite; give another hydra.sweep.dir, or remove that folder first "
    "(a job of it continues alone: python -m train <its overrides> resume=<its job folder>)"
)


def train(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "train", *args]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)


def files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def earlier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-job sweep (0_ridge/), copied by each test that changes it."""
    sweep = tmp_path_factory.mktemp("earlier") / "multi"
    out = train(sweep.parent, "-m", *QUICK, f"hydra.sweep.dir={sweep}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert (sweep / "multirun.yaml").is_file() and (sweep / "0_ridge" / ".hydra").is_dir()
    return sweep


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished single run (python -m train hydra.run.dir=<it>), copied by each test."""
    run = tmp_path_factory.mktemp("single") / "run"
    out = train(run.parent, *QUICK, f"hydra.run.dir={run}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert (run / "summary.json").is_file() and (run / ".hydra").is_dir()
    return run


def test_a_sweep_into_an_earlier_sweeps_folder_is_refused(earlier: Path, tmp_path: Path) -> None:
    """Hydra rewrote the earlier sweep's multirun.yaml and ran its job 0 again in 0_ridge/,
    beside the earlier jobs' folders, before any check of ours."""
    sweep = shutil.copytree(earlier, tmp_path / "multi")
    before = files(sweep)
    for again in (("model=ridge,svr",), ("cv.outer_fold=3,4",)):  # (that one used to remove it)
        out = train(tmp_path, "-m", *QUICK, *again, f"hydra.sweep.dir={sweep}")
        assert_only_line(
            out, f"hydra.sweep.dir={sweep}: it holds an earlier sweep (multirun.yaml), {ADVICE}"
        )
        assert files(sweep) == before


@pytest.mark.parametrize("without", ["", "multirun.yaml", "multirun.yaml and .hydra"])
@pytest.mark.parametrize("callbacks", [(), NO_CALLBACKS], ids=["callbacks", "no callbacks"])
def test_an_earlier_sweep_is_refused_without_the_leaderboard_or_its_multirun_yaml(
    earlier: Path, tmp_path: Path, without: str, callbacks: tuple[str, ...]
) -> None:
    """The check lived in the Leaderboard callback: ~hydra.callbacks.leaderboard swept over the
    earlier jobs (their .hydra/, train.log and fold models rewritten, exit 0). And with the
    multirun.yaml gone (deleted, or the job folders copied) the folder was taken with or without
    the callback: the new job 0 wrote into the earlier 0_ridge/."""
    sweep = shutil.copytree(earlier, tmp_path / "multi")
    if without:
        (sweep / "multirun.yaml").unlink()
    if without.endswith(".hydra"):  # a job copied without Hydra's record: its results tell it
        shutil.rmtree(sweep / "0_ridge" / ".hydra")
    before = files(sweep)
    out = train(tmp_path, "-m", *QUICK, "model=ridge,svr", f"hydra.sweep.dir={sweep}", *callbacks)
    held = (
        "job folders of an earlier sweep (0_ridge/) without its multirun.yaml"
        if without
        else "an earlier sweep (multirun.yaml)"
    )
    assert_only_line(out, f"hydra.sweep.dir={sweep}: it holds {held}, {ADVICE}")
    assert files(sweep) == before


def test_the_sweep_folder_is_checked_where_the_config_puts_it(
    earlier: Path, tmp_path: Path
) -> None:
    """hydra.sweep.dir from the config, not the command line (here its Hydra interpolation): the
    folder Hydra would sweep into is the one checked."""
    sweep = shutil.copytree(earlier, tmp_path / "ridge")
    (sweep / "multirun.yaml").unlink()
    before = files(sweep)
    folder = "hydra.sweep.dir=${hydra:runtime.choices.model}"  # relative to the working folder
    out = train(tmp_path, "-m", *QUICK, folder, *NO_CALLBACKS)
    assert_only_line(out, "hydra.sweep.dir=ridge: it holds job folders of an earlier sweep")
    assert files(sweep) == before


def test_an_earlier_sweeps_leaderboard_alone_is_refused(earlier: Path, tmp_path: Path) -> None:
    """The earlier jobs and multirun.yaml removed, its leaderboard and report kept (a summary
    someone kept): the new sweep wrote its own over them."""
    sweep = shutil.copytree(earlier, tmp_path / "multi")
    (sweep / "multirun.yaml").unlink()
    shutil.rmtree(sweep / "0_ridge")
    before = files(sweep)
    assert {p.name for p in before} >= {"leaderboard.csv", "leaderboard.md"}
    out = train(tmp_path, "-m", *QUICK, f"hydra.sweep.dir={sweep}", *NO_CALLBACKS)
    assert_only_line(out, f"hydra.sweep.dir={sweep}: it holds an earlier sweep's leaderboard.csv")
    assert files(sweep) == before


@pytest.mark.parametrize("folder", ["run", "unfinished run", "sweep job"])
def test_a_single_runs_folder_is_refused(
    earlier: Path, single: Path, tmp_path: Path, folder: str
) -> None:
    """hydra.sweep.dir=<a run's folder> (python -m train hydra.run.dir=<it>, or a sweep's job
    folder): the sweep wrote its multirun.yaml, job folders, leaderboard and report beside the
    run's config_resolved.yaml and summary.json (exit 0)."""
    run = shutil.copytree(earlier / "0_ridge" if folder == "sweep job" else single, tmp_path / "r")
    if folder == "unfinished run":
        (run / "summary.json").unlink()
    before = files(run)
    out = train(tmp_path, "-m", *QUICK, "model=ridge,svr", f"hydra.sweep.dir={run}")
    held = "config_resolved.yaml, run.json" + ("" if "unfinished" in folder else ", summary.json")
    line = assert_only_line(out, f"hydra.sweep.dir={run}: it holds a run ({held}), whose files")
    assert line.endswith(f"without -m: python -m train <its overrides> resume={run})")
    assert files(run) == before


@pytest.mark.parametrize("resumed", ["run", "sweep job", "two runs", "run id"])
def test_a_sweep_that_resumes_is_refused(
    earlier: Path, single: Path, tmp_path: Path, resumed: str
) -> None:
    """-m model=ridge,svr resume=<a run's folder>: every job continued that run, in its folder
    (the first one whose config matched finished it, the others failed 'already finished'), and
    the sweep's folder got job folders with only a log, ranked 'unfinished' and 'failed'."""
    run = shutil.copytree(single, tmp_path / "run")
    job = shutil.copytree(earlier / "0_ridge", tmp_path / "job")
    for folder in (run, job):
        (folder / "summary.json").unlink()  # stopped part-way: resume= would continue it
    before = {**files(run), **files(job)}
    value = {"run": run, "sweep job": job, "two runs": f"{run},{job}", "run id": "0123abcd"}
    sweep = tmp_path / "multi"
    out = train(tmp_path, "-m", *QUICK, "model=ridge,svr", f"resume={value[resumed]}",
                f"hydra.sweep.dir={sweep}")  # fmt: skip
    line = assert_only_line(out, f"resume={value[resumed]}: a sweep (-m) does not resume runs")
    tail = "<its folder>" if resumed == "two runs" else value[resumed]
    assert line.endswith(f"without -m: python -m train <its overrides> resume={tail}")
    assert not sweep.exists() and {**files(run), **files(job)} == before


@pytest.mark.slow
def test_an_empty_or_unrelated_folder_takes_a_sweep_and_a_job_resumes_alone(
    earlier: Path, tmp_path: Path
) -> None:
    """Only earlier jobs are refused: an empty folder, and one with unrelated files (left as they
    were), take the sweep; resume= of an earlier sweep's job, without -m, finishes it in its
    folder as before (its summary.json removed: the run stopped before it)."""
    empty, other = tmp_path / "empty", tmp_path / "other"
    empty.mkdir()
    (other / "data").mkdir(parents=True)
    (other / "notes.txt").write_text("mine\n")
    (other / "data" / "table.csv").write_text("a,b\n1,2\n")
    unrelated = files(other)
    for folder in (empty, other):
        out = train(tmp_path, "-m", *QUICK, f"hydra.sweep.dir={folder}", *NO_CALLBACKS)
        assert out.returncode == 0, out.stderr[-2000:]
        assert (folder / "multirun.yaml").is_file() and (
            folder / "0_ridge" / "summary.json"
        ).is_file()
    assert {p: b for p, b in files(other).items() if p in unrelated} == unrelated

    sweep = shutil.copytree(earlier, tmp_path / "multi")
    job = sweep / "0_ridge"
    (job / "summary.json").unlink()
    kept = {p: b for p, b in files(sweep).items() if "folds" in p.parts and p.suffix == ".skops"}
    out = train(tmp_path, *QUICK, f"resume={job}")
    assert out.returncode == 0 and "n2react: error" not in out.stderr, out.stderr[-2000:]
    assert (job / "summary.json").is_file()
    assert {p: b for p, b in files(sweep).items() if p in kept} == kept  # its folds were kept


def test_a_failed_jobs_note_marks_an_earlier_job() -> None:
    """sweep_checks names the file by its text (importing sweep_ranking brings pandas in)."""
    from n2react.sweep_checks import _JOB_MARKS
    from n2react.sweep_ranking import FAILED_FILE

    assert FAILED_FILE in _JOB_MARKS
