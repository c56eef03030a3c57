"""A sweep's checks before Hydra launches it (``python -m train -m ...``), on the config composed
as Hydra composes it: its folder holds no earlier sweep or run, it resumes no run, and the
command line sets the sweeper's params only where a config gives it some. The CLI reads the
folder and ``resume=`` from the composition Hydra makes anyway to tell the run's mode
(:func:`checked_where_hydra_composes`): no composition of its own on a run's start.

Split from :mod:`n2react.output_dirs`, which re-exports these names.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from n2react import runstore
from n2react.jobs import UNKNOWN_OVERRIDES

log = logging.getLogger(__name__)


#: what marks a folder in a sweep's folder as an earlier sweep's job: Hydra's record of the job
#: (read by the leaderboard), its results, its failure note (sweep_ranking.FAILED_FILE, not
#: imported: it brings pandas into every command's start)
_JOB_MARKS = (".hydra", runstore.SUMMARY_FILE, "job_failed.json")


#: what marks a folder as a single run's (``python -m train hydra.run.dir=<it>``): its config,
#: who made it, its results
_RUN_MARKS = (runstore.CONFIG_FILE, runstore.RUN_FILE, runstore.SUMMARY_FILE)


def reused_sweep_problem(sweep_dir: Path) -> str | None:
    """Why a sweep may not start in ``sweep_dir``: an earlier sweep's folder (its
    ``multirun.yaml``, which Hydra would overwrite), or one that holds earlier jobs' folders
    (``0_ridge/`` with its ``.hydra/`` or ``summary.json``) even without it: the new jobs would
    write into the same numbered folders, and the leaderboard would rank the old ones with them.
    Its leaderboard or report files alone are refused too (the new sweep writes them), and so is
    a single run's folder (its ``config_resolved.yaml`` or ``summary.json`` at the top). None
    otherwise (a new folder, an empty one, one with unrelated files only). A job of that
    sweep continues alone, without ``-m``: ``resume=<its job folder>``."""
    from n2react.sweep_plan import MULTIRUN_FILE

    sweep_dir = Path(sweep_dir)
    if (sweep_dir / MULTIRUN_FILE).exists():
        return _reused(sweep_dir, f"an earlier sweep ({MULTIRUN_FILE})")
    if run := [name for name in _RUN_MARKS if (sweep_dir / name).is_file()]:
        return (
            f"hydra.sweep.dir={sweep_dir}: it holds a run ({', '.join(run)}), whose files the "
            "sweep's jobs and leaderboard would be mixed with; give another hydra.sweep.dir (a run "
            f"continues by itself, without -m: python -m train {UNKNOWN_OVERRIDES} "
            f"resume={sweep_dir})"
        )
    try:
        jobs = sorted(
            p.name
            for p in sweep_dir.iterdir()
            if p.is_dir() and any((p / mark).exists() for mark in _JOB_MARKS)
        )
    except OSError:  # not there (or not a folder: output_dir_problem says so)
        return None
    if jobs:
        shown = ", ".join(f"{name}/" for name in jobs[:3]) + (", ..." if len(jobs) > 3 else "")
        return _reused(
            sweep_dir, f"job folders of an earlier sweep ({shown}) without its {MULTIRUN_FILE}"
        )
    # its jobs gone, its ranking and report kept: the new sweep would write over them (imported
    # here: an existing folder is rare, and the report module brings pandas)
    from n2react.sweep_ranking import FILES
    from n2react.sweep_report import HTML_FILE, PNG_FILE

    board = [name for name in (*FILES, HTML_FILE, PNG_FILE) if (sweep_dir / name).is_file()]
    return _reused(sweep_dir, f"an earlier sweep's {', '.join(board)}") if board else None


def _reused(sweep_dir: Path, held: str) -> str:
    return (
        f"hydra.sweep.dir={sweep_dir}: it holds {held}, which this one would overwrite; give "
        "another hydra.sweep.dir, or remove that folder first (a job of it continues alone: "
        f"python -m train {UNKNOWN_OVERRIDES} resume=<its job folder>)"
    )


def sweep_dir_problem(
    argv: Sequence[str],
    config_path: str,
    task_function: Callable[..., Any] | None = None,
    also: Sequence[Callable[[Any], str | None]] = (),
) -> str | None:
    """Why a ``python -m train`` command line may not run, composed as Hydra composes it: the
    first problem of ``also`` (checks of the composed config, for a run or a sweep alike, as
    :func:`checked_where_hydra_composes` runs them), then for a sweep (``-m``, or
    ``hydra.mode=MULTIRUN`` in the config; the folder from the command line or any config),
    before Hydra launches anything, whatever the config's callbacks: a ``resume=``
    (:func:`resumed_sweep_problem`), or :func:`reused_sweep_problem` of its folder. None for a
    single run without a problem of ``also``, or when Hydra cannot compose the command (Hydra
    reports that itself). ``task_function``: the Hydra main, whose file or module a relative
    ``--config-path`` is read against (without it such a command is not checked). The CLI
    checks the config Hydra composes itself instead (:func:`checked_where_hydra_composes`),
    where it can."""
    args = _parsed(argv)
    if args is None or any(
        (args.help, args.hydra_help, args.cfg, args.shell_completion, args.info)
    ):  # (Hydra runs nothing)
        return None
    try:
        with _composed(args, config_path, task_function) as composed:
            if composed is None:
                return None
            return composed_problem(composed[0], args.multirun, also)
    except Exception:  # never refuse a command because the check itself failed
        log.debug("cannot tell the sweep's folder", exc_info=True)
        return None


def composed_problem(
    cfg: Any, multirun: bool, also: Sequence[Callable[[Any], str | None]] = ()
) -> str | None:
    """The first problem of ``also`` (checks of the composed config ``cfg``, for a run or a
    sweep alike), then :func:`composed_sweep_problem`'s; None when there is none."""
    found = (check(cfg) for check in also)
    return next((p for p in found if p), None) or composed_sweep_problem(cfg, multirun)


def composed_sweep_problem(cfg: Any, multirun: bool) -> str | None:
    """Why the command whose config Hydra composed (``cfg``, as a multirun: the config Hydra
    reads the mode from, with ``HydraConfig`` set to it) may not sweep: for a sweep
    (``multirun``: ``-m``; else the config's ``hydra.mode``) its ``resume=``
    (:func:`resumed_sweep_problem`) or its folder (:func:`reused_sweep_problem`). None for a
    single run."""
    from hydra.types import RunMode

    if not multirun and cfg.hydra.mode != RunMode.MULTIRUN:  # (-m wins over RUN there)
        return None
    resumed = _resumed(cfg)
    if resumed:
        return resumed_sweep_problem(resumed)
    return reused_sweep_problem(Path(str(cfg.hydra.sweep.dir)))


@contextlib.contextmanager
def checked_where_hydra_composes(
    argv: Sequence[str],
    exit_with: Callable[[str], Any],
    also: Sequence[Callable[[Any], str | None]] = (),
) -> Iterator[bool]:
    """While Hydra's main runs the command line ``argv``: the config Hydra composes to tell its
    mode (``Hydra.get_mode``, before it runs or sweeps anything, for a run or a sweep alike) is
    checked by each of ``also`` (a check of the composed config), then by
    :func:`composed_sweep_problem`; the first problem ends it with ``exit_with(line)``. So the
    checks read Hydra's own composition (its search path: ``--config-dir``, a relative
    ``--config-path``, a user's experiment) at no cost of their own, whatever the config's
    callbacks. Yields False (nothing checked) under a Hydra without ``get_mode``: the caller
    composes for itself then (:func:`sweep_dir_problem`)."""
    try:
        from hydra._internal.hydra import Hydra

        get_mode = Hydra.get_mode
    except (ImportError, AttributeError):
        log.debug("no Hydra.get_mode to check the composed config in", exc_info=True)
        yield False
        return
    args = _parsed(argv)
    multirun = bool(args is not None and args.multirun)

    def checked_get_mode(self: Any, *given: Any, **named: Any) -> Any:
        composed: list[Any] = []
        compose = self.compose_config

        def compose_and_keep(*args: Any, **kwargs: Any) -> Any:
            composed.append(cfg := compose(*args, **kwargs))
            return cfg

        self.compose_config = compose_and_keep  # this instance, for this call only
        try:
            mode = get_mode(self, *given, **named)
        finally:
            del self.compose_config
        problem = None
        if composed:  # (Hydra could not compose the command: its run reports that)
            try:
                cfg = composed[-1]
                with _hydra_config(cfg):
                    problem = composed_problem(cfg, multirun, also)
            except Exception:  # never refuse a command because the check itself failed
                log.debug("cannot check the composed config", exc_info=True)
        if problem:
            exit_with(problem)
        return mode

    Hydra.get_mode = checked_get_mode  # type: ignore[method-assign]
    try:
        yield True
    finally:
        Hydra.get_mode = get_mode  # type: ignore[method-assign]


@contextlib.contextmanager
def _hydra_config(cfg: Any) -> Iterator[None]:
    """``HydraConfig`` set to ``cfg`` (a folder may name ``${hydra:...}``), then as it was."""
    from hydra.core.hydra_config import HydraConfig

    before = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)
    try:
        yield
    finally:
        HydraConfig.instance().cfg = before


def resumed_sweep_problem(resumed: str) -> str:
    """``-m ... resume=<run dir or run id>``: every job would continue that one run (in its
    folder, not in the sweep's: the first job whose config matches it finishes it, the others are
    refused, and the leaderboard ranks none); ``resume=a,b`` likewise. ``resumed``: the
    override as given (or ``resume=<value>`` from a config, ``hydra.sweeper.params.resume=<value>``
    from the sweeper's params)."""
    value = resumed.partition("=")[2]
    several = "," in value  # a sweep over resume= itself
    return (
        f"{resumed}: a sweep (-m) does not resume runs (its jobs would continue "
        f"{'those runs' if several else 'that one run'} in place of runs of their own); a run, or "
        f"a sweep's job, continues by itself, without -m: python -m train {UNKNOWN_OVERRIDES} "
        f"resume={'<its folder>' if several else value}"
    )


def _resumed(cfg: object) -> str | None:
    """The ``resume=`` of a multirun's composed config: its command-line override (one value or
    a sweep over several), else the sweeper's params (``hydra.sweeper.params.resume``, from a
    config or the command line), else a value from a config; None when it resumes nothing."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    lines = list(OmegaConf.select(cfg, "hydra.overrides.task") or [])
    for override in OverridesParser.create().parse_overrides(lines):
        if override.key_or_group == "resume" and not override.is_delete():
            if override.is_sweep_override() or override.value() not in (None, ""):
                return override.input_line.lstrip("+")
    # the sweeper puts its params' values into each job's overrides (Hydra's basic sweeper, and
    # +sweep=grid's): not applied here
    swept = OmegaConf.select(cfg, "hydra.sweeper.params.resume", default=None)
    if swept not in (None, ""):
        return f"hydra.sweeper.params.resume={swept}"
    value = OmegaConf.select(cfg, "resume", default=None)  # (a sweep's override is not applied)
    return None if value in (None, "") else f"resume={value}"


#: the basic sweeper's (and +sweep=grid's) axes: ``key: a,b``, each a job's override
PARAMS = "hydra.sweeper.params"


def _sets_params(override: str) -> bool:
    """``hydra.sweeper.params.<key>=<values>`` or ``hydra.sweeper.params={...}`` (``+``, ``++``
    too); not a deletion, nor null."""
    key, sep, value = override.lstrip("+").partition("=")
    under = key == PARAMS or key.startswith(PARAMS + ".")
    return under and bool(sep) and value.strip().lower() != "null"


def sweeper_params_problem(
    argv: Sequence[str], config_path: str, task_function: Callable[..., Any] | None = None
) -> str | None:
    """Why the command line cannot set the sweeper's params: no config sets any (Hydra's basic
    sweeper keeps ``hydra.sweeper.params`` null), and OmegaConf cannot set a key under null nor
    merge a mapping into it (Hydra ended in an AssertionError or AttributeError traceback, with
    or without ``-m``); the line says how a sweep's values are given. None when a config sets
    them (``+sweep=grid``, ``experiment=paper_pairwise``, a user's config), or when the command
    cannot be composed without them (Hydra reports that)."""
    args = _parsed(argv)
    given = [o for o in args.overrides if _sets_params(o)] if args is not None else []
    if not given:
        return None
    from omegaconf import OmegaConf

    try:
        with _composed(args, config_path, task_function, drop=_sets_params) as composed:
            if composed is None:
                return None
            cfg, hydra = composed
            if OmegaConf.select(cfg, PARAMS) is not None:
                return None
            sweeps = hydra.config_loader.get_group_options("sweep")
    except Exception:  # never refuse a command because the check itself failed
        log.debug("cannot compose the command without its sweeper params", exc_info=True)
        return None
    key, _, value = given[0].lstrip("+").partition("=")
    named = f" ({', '.join(f'+sweep={name}' for name in sweeps)})" if sweeps else ""
    line = (
        f"{given[0]}: no config here sets the sweeper's params ({PARAMS} is null), so the command "
        "line cannot set them; a sweep's values go on the command line with -m (python -m train "
        f"-m model=ridge,svr seed=1,2) or come from a +sweep=<name> config{named}"
    )
    if key == f"{PARAMS}.resume":
        line += (
            "; a sweep does not resume runs: a run continues by itself, without -m: python -m "
            f"train {UNKNOWN_OVERRIDES} resume={'<its folder>' if ',' in value else value}"
        )
    return line


def _parsed(argv: Sequence[str]) -> Any | None:
    """The command line as Hydra's parser reads it; None for a bad flag (Hydra reports it)."""
    from hydra._internal.utils import get_args_parser

    with contextlib.redirect_stderr(io.StringIO()):
        try:
            return get_args_parser().parse_args(list(argv))
        except SystemExit:
            return None


@contextlib.contextmanager
def _composed(
    args: Any,
    config_path: str,
    task_function: Callable[..., Any] | None = None,
    drop: Callable[[str], bool] = lambda override: False,
) -> Iterator[tuple[Any, Any] | None]:
    """The config of the command line ``args`` (:func:`_parsed`), composed as
    :func:`hydra._internal.utils._run_hydra` picks it (as a multirun, with its overrides but
    those ``drop`` names): (the config, Hydra), with ``HydraConfig`` set to it (a folder may name
    ``${hydra:...}``); None under a caller's Hydra, or for a relative ``--config-path`` without
    the ``task_function`` it is read against. Raises what composing raises."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import (
        create_automatic_config_search_path,
        detect_calling_file_or_module_from_task_function,
    )
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    calling: tuple[str | None, str | None] = (None, None)
    path = args.config_path or config_path
    relative = bool(args.config_path) and not (
        path.startswith("pkg://") or Path(path).is_absolute()
    )
    if relative and task_function is not None:  # read against the main's file (python -m train)
        # or its module's package (n2react-train, HYDRA_MAIN_MODULE), as Hydra reads it
        calling = detect_calling_file_or_module_from_task_function(task_function)
    if GlobalHydra.instance().is_initialized() or (relative and calling == (None, None)):
        yield None  # a caller's Hydra, left as it is; a path Hydra reads against a stack frame
        return
    search_path = create_automatic_config_search_path(*calling, path)
    if args.config_dir is not None:
        from hydra.core.config_search_path import SearchPathQuery

        search_path.prepend("command-line", f"file://{os.path.abspath(args.config_dir)}",
                            SearchPathQuery(provider="schema"))  # fmt: skip
    hydra = Hydra.create_main_hydra2(task_name="train", config_search_path=search_path)
    try:
        cfg = hydra.compose_config(
            args.config_name or "config",
            [o for o in args.overrides if not drop(o)],
            run_mode=RunMode.MULTIRUN, with_log_configuration=False,
            validate_sweep_overrides=False,
        )  # fmt: skip
        with _hydra_config(cfg):
            yield cfg, hydra
    finally:
        GlobalHydra.instance().clear()
