"""Where a run's outputs go, checked before anything is written there: the run or sweep folder
named on the command line can be created and has room (before Hydra creates it), the run folder
takes a file, and a run that failed before its first output leaves no empty folder behind. A
sweep's own checks (its folder holds no earlier sweep or run, it resumes none):
:mod:`n2react.sweep_checks`, whose names are re-exported here.

Split from :mod:`n2react.preflight`, which re-exports these names.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from n2react import runstore
from n2react.errors import ConfigError
from n2react.sweep_checks import resumed_sweep_problem as resumed_sweep_problem  # callers' names
from n2react.sweep_checks import reused_sweep_problem as reused_sweep_problem
from n2react.sweep_checks import sweep_dir_problem as sweep_dir_problem
from n2react.sweep_checks import sweeper_params_problem as sweeper_params_problem

log = logging.getLogger(__name__)

#: Free space a run needs at least: its tables, plots, and the fold and final model files.
MIN_FREE_BYTES = 200 * 1024 * 1024


def check_output_dir(path: Path, need: int = MIN_FREE_BYTES) -> None:
    """``path`` (created if missing) must take a file and hold ``need`` bytes more."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".n2react-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot write the run's outputs there ({exc.strerror or type(exc).__name__})"
            "; choose another hydra.run.dir"
        ) from None
    free = shutil.disk_usage(path).free
    if free < need:
        raise ConfigError(
            f"{path}: only {free / 2**20:.0f} MiB free; a run needs at least "
            f"{need / 2**20:.0f} MiB for its models and tables"
        )


def resumed_run_dir(resume: object) -> str | None:
    """The folder ``resume=`` names when it is a run's (its ``config_resolved.yaml``) or a sweep
    job's (its ``.hydra/hydra.yaml``), else None (no resume, an MLflow run id, any other path)."""
    if not resume:
        return None
    path = Path(str(resume)).expanduser()
    if (path / runstore.CONFIG_FILE).is_file() or (path / ".hydra" / "hydra.yaml").is_file():
        return str(path)
    return None


def _resume_elsewhere(argv: list[str], cwd: Path) -> str | None:
    """``resume=<run dir> hydra.run.dir=<another>``: the run continues in its own folder while
    Hydra's log of the attempt went to the other one (the run's train.log missing it)."""
    if any(a in ("-m", "--multirun") for a in argv):  # a sweep's jobs: hydra.run.dir unused
        return None
    given = dict(a.lstrip("+~").partition("=")[::2] for a in argv if "=" in a)
    run_dir, other = resumed_run_dir(given.get("resume")), given.get("hydra.run.dir")
    if run_dir is None or not other:
        return None
    if (cwd / Path(other).expanduser()).resolve() == (cwd / run_dir).resolve():
        return None
    return (
        f"hydra.run.dir={other}: resume={given['resume']} continues the run in {run_dir}, where "
        "its log and outputs go; drop hydra.run.dir"
    )


def output_dir_problem(argv: list[str], cwd: Path | None = None) -> str | None:
    """Why the run or sweep folder named on the command line (``hydra.run.dir=``,
    ``hydra.sweep.dir=``; default: under the working directory) cannot be created, or is not
    the folder ``resume=`` continues; None when it can. Checked before Hydra creates it (Hydra
    would end in a traceback)."""
    if problem := _resume_elsewhere(argv, cwd or Path.cwd()):
        return problem
    targets = []
    for arg in argv:
        key, _, value = arg.lstrip("+~").partition("=")
        if key in ("hydra.run.dir", "hydra.sweep.dir") and value:
            targets.append((key, Path(value)))
    if not targets:
        targets.append(("the working directory", cwd or Path.cwd()))
    for key, path in targets:
        p = path if path.is_absolute() else (cwd or Path.cwd()) / path
        while not p.exists() and p != p.parent:
            p = p.parent
        if not p.is_dir():
            return f"{key}={path}: {p} is not a folder"
        try:  # a real probe: root passes os.access checks even where nothing can be created
            os.rmdir(tempfile.mkdtemp(prefix=".n2react-probe-", dir=p))
        except OSError as exc:
            return f"{key}={path}: cannot create folders in {p} ({exc.strerror or exc})"
        free = shutil.disk_usage(p).free  # Hydra's own first files would fail on a full disk
        if free < MIN_FREE_BYTES:
            return (
                f"{key}={path}: only {free / 2**20:.0f} MiB free in {p}; a run needs at least "
                f"{MIN_FREE_BYTES / 2**20:.0f} MiB for its models and tables"
            )
    return None


def remove_if_unused(run_dir: Path) -> None:
    """Remove a run folder that holds only what Hydra put there at start (``.hydra/``, the log),
    so a run that failed before its first output leaves no empty folder behind; its parent
    (the day's folder) too when that is then empty."""
    try:
        names = {p.name for p in run_dir.iterdir()}
    except OSError:
        return
    if not names <= {".hydra", "train.log"} or runstore.in_use(run_dir):  # another run's
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    day, outputs = run_dir.parent, run_dir.parent.parent
    for folder, looks_right in (
        (day, re.fullmatch(r"\d{4}-\d{2}-\d{2}", day.name)),
        (outputs, outputs.name == "outputs"),
    ):
        if not looks_right:
            return
        try:
            folder.rmdir()  # only when empty
        except OSError:
            return
