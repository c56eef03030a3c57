"""Overrides of Hydra's own config that Hydra took into a traceback, or took and then failed
on: the sweeper's params where no config sets them (``hydra.sweeper.params.resume=X``:
OmegaConf's AssertionError, with or without ``-m``), a callback set to null
(``hydra.callbacks.leaderboard=null``, or in a user's config: a warning at every event, the
sweep unranked). Each is
one ``n2react: error:`` line, exit 2, nothing written. The sweeper's params a config sets still
sweep, and a ``resume`` among them is refused like ``-m resume=``; a relative ``--config-path``
is read as Hydra reads it, so the sweep checks apply there too."""

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
SWEEP_WAY = (
    "(hydra.sweeper.params is null), so the command line cannot set them; a sweep's values go on "
    "the command line with -m (python -m train -m model=ridge,svr seed=1,2) or come from a "
    "+sweep=<name> config (+sweep=grid)"
)
RESUMED = "a sweep (-m) does not resume runs"


def train(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    dirs = (f"hydra.run.dir={tmp / 'run'}", f"hydra.sweep.dir={tmp / 'multi'}")
    cmd = [sys.executable, "-m", "train", *args, *dirs]
    return subprocess.run(cmd, cwd=tmp, env=_env(), capture_output=True, text=True, timeout=300)


def assert_nothing_written(tmp: Path) -> None:
    assert not (tmp / "run").exists() and not (tmp / "multi").exists()
    assert not (tmp / "outputs").exists() and not (tmp / "multirun").exists()


def user_config(tmp: Path, params: str) -> tuple[str, ...]:
    """A user's experiment config that sets the sweeper's params (Hydra 1.3's basic sweeper reads
    them), as ``--config-dir`` arguments."""
    conf = tmp / "conf" / "experiment"
    conf.mkdir(parents=True)
    text = f"# @package _global_\nhydra:\n  sweeper:\n    params:\n      {params}\n"
    (conf / "mine.yaml").write_text(text)
    return ("--config-dir", str(tmp / "conf"), "experiment=mine")


@pytest.mark.parametrize(
    "args",
    [
        ("hydra.sweeper.params.resume=X",),
        ("-m", "hydra.sweeper.params.resume=X"),
        ("+hydra.sweeper.params.resume=X",),
        ("-m", "+hydra.sweeper.params.resume=X"),
        ("hydra.sweeper.params={model:ridge}",),
        ("-m", "hydra.sweeper.params={model:ridge}"),
        ("-m", "++hydra.sweeper.params.seed=1,2"),
    ],
    ids=["resume", "-m resume", "+resume", "-m +resume", "mapping", "-m mapping", "-m ++seed"],
)
def test_the_sweepers_params_where_no_config_sets_them_are_one_line(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    """Hydra ended in OmegaConf's 'AssertionError: Unexpected type for root: NoneType' (a key
    under the basic sweeper's null params) or 'AttributeError: 'NoneType' object has no attribute
    'get'' (a mapping merged into it), a traceback and exit 1."""
    out = train(tmp_path, *args, *QUICK)
    override = next(a for a in args if "sweeper" in a)
    line = assert_only_line(out, f"{override}: no config here sets the sweeper's params", SWEEP_WAY)
    resumes = "resume" in override
    assert resumes == ("a run continues by itself, without -m" in line), line
    assert_nothing_written(tmp_path)


def test_a_users_config_that_sets_the_sweepers_params_still_sweeps(tmp_path: Path) -> None:
    """Hydra's basic sweeper reads hydra.sweeper.params from a config: two jobs, ranked; the
    command line may set a key under them there (its values quoted for Hydra)."""
    out = train(tmp_path, "-m", *user_config(tmp_path, "seed: 1,2"), *QUICK)
    assert out.returncode == 0, out.stderr[-3000:]
    multi = tmp_path / "multi"
    assert (multi / "0_ridge").is_dir() and (multi / "1_ridge").is_dir()
    assert (multi / "leaderboard.csv").is_file()
    out = train(tmp_path, "--cfg", "hydra", *user_config(tmp_path / "b", "seed: 1,2"),
                "hydra.sweeper.params.seed='3,4'")  # fmt: skip
    assert out.returncode == 0 and "seed: 3,4" in out.stdout, out.stderr[-3000:]


@pytest.mark.parametrize(
    "args",
    [
        ("-m", "USER:resume: X"),
        ("USER:resume: X",),  # hydra.mode is RUN: a single run, the params unused
        ("-m", "+sweep=grid", "+hydra.sweeper.params.resume=X"),
        ("-m", "USER:seed: 1,2", "+hydra.sweeper.params.resume='X,Y'"),
    ],
    ids=["user config", "user config, no -m", "+sweep=grid", "user config, command line"],
)
def test_a_sweep_over_resume_by_the_sweepers_params_is_refused(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    """Every job would continue the one run X (the sweeper gives each job resume=X): refused like
    -m resume=X before anything is written; without -m the params sweep nothing (Hydra's run
    mode), and resume=X is not given (the run starts afresh)."""
    argv: list[str] = []
    for arg in args:
        argv += (
            user_config(tmp_path, arg.removeprefix("USER:")) if arg.startswith("USER:") else [arg]
        )
    out = train(tmp_path, *argv, *QUICK, "cv.outer_folds=1")
    if "-m" not in args:  # cv.outer_folds=1 refused by the run itself, not by the sweep check
        assert RESUMED not in out.stderr and "cv.outer_folds" in out.stderr, out.stderr[-3000:]
        return
    value = "X,Y" if "'X,Y'" in " ".join(args) else "X"
    line = assert_only_line(out, f"hydra.sweeper.params.resume={value}: {RESUMED}")
    assert line.endswith(f"resume={'<its folder>' if ',' in value else 'X'}"), line
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("hydra.callbacks.leaderboard=null",), "null is not a callback (Hydra would call None"),
        (
            ("-m", "hydra.callbacks.leaderboard=null"),
            "null is not a callback (Hydra would call None",
        ),
        (("-m", "hydra.callbacks.backend_check=3"), "3 is not a callback (a callback is a mapping"),
    ],
    ids=["null", "-m null", "-m number"],
)
def test_a_callback_set_to_a_value_is_one_line(
    args: tuple[str, ...], expected: str, tmp_path: Path
) -> None:
    """hydra.callbacks.leaderboard=null composed: the run, or each job of the sweep, warned
    'Callback NoneType.on_job_end raised AttributeError' at every event and the sweep wrote no
    leaderboard (exit 0); =3 ended in Hydra's 'Top level config must be ...' lines, exit 1."""
    out = train(tmp_path, *args, *QUICK)
    key = args[-1].partition("=")[0]
    line = assert_only_line(out, f"{args[-1]}: {expected}", f'to remove the callback: "~{key}"')
    assert ("a sweep would go unranked" in line) == args[-1].endswith("null"), line
    assert_nothing_written(tmp_path)


def test_a_sweep_with_a_relative_config_path_is_checked(tmp_path: Path) -> None:
    """--config-path ../conf (relative to src/train.py's folder, as Hydra reads it for python -m
    train): the sweep checks were skipped, so -m ... resume=X launched its job, which continued
    (or failed on) the one run X; and a sweep into an earlier sweep's folder overwrote it."""
    out = train(tmp_path, "-m", "--config-path", "../conf", *QUICK, "resume=X")
    assert_only_line(out, f"resume=X: {RESUMED}")
    assert_nothing_written(tmp_path)
    (tmp_path / "multi").mkdir()
    (tmp_path / "multi" / "multirun.yaml").write_text("earlier: sweep\n")
    out = train(tmp_path, "-m", "--config-path", "../conf", *QUICK)
    assert_only_line(out, f"hydra.sweep.dir={tmp_path / 'multi'}: it holds an earlier sweep")
    assert (tmp_path / "multi" / "multirun.yaml").read_text() == "earlier: sweep\n"
    assert sorted(p.name for p in (tmp_path / "multi").iterdir()) == ["multirun.yaml"]


def test_a_sweep_over_a_key_of_hydras_own_config_is_one_line(tmp_path: Path) -> None:
    """-m +hydra.sweeper.params.seed=1,2 where a config sets the params: Hydra's 'Sweeping over
    Hydra's configuration is not supported' and its HYDRA_FULL_ERROR hint, exit 1."""
    args = ("-m", *user_config(tmp_path, "model: ridge"), "+hydra.sweeper.params.seed=1,2")
    out = train(tmp_path, *args, *QUICK)
    expected = "+hydra.sweeper.params.seed=1,2: Hydra does not sweep its own config (hydra.*)"
    assert_only_line(out, expected, """quotes: "+hydra.sweeper.params.seed='1,2'\"""")
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("config", "args"),
    [
        ("experiment/nolb.yaml", ("experiment=nolb",)),
        ("mine.yaml", ("-m", "--config-name", "mine", "model=ridge,svr")),  # flags first
    ],
    ids=["experiment, run", "primary config, sweep"],
)
def test_a_callback_a_config_sets_to_null_is_one_line(
    config: str, args: tuple[str, ...], tmp_path: Path
) -> None:
    """hydra.callbacks.leaderboard: null in a user's config (--config-dir) passed the check of
    the command line: each event warned 'Callback NoneType.on_job_end raised AttributeError',
    and the sweep wrote no leaderboard (exit 0)."""
    conf = tmp_path / "conf" / config
    conf.parent.mkdir(parents=True)
    head = "# @package _global_\n" if "/" in config else "defaults:\n  - config\n  - _self_\n"
    conf.write_text(f"{head}hydra:\n  callbacks:\n    leaderboard: null\n")
    out = train(tmp_path, "--config-dir", str(tmp_path / "conf"), *args, *QUICK)
    assert_only_line(
        out,
        "hydra.callbacks.leaderboard: null is not a callback (Hydra would call None at every "
        "event, a warning each, and a sweep would go unranked), as a config of this command sets "
        'it; to remove the callback, leave leaderboard out of that config and give "~hydra.',
    )
    assert_nothing_written(tmp_path)


def test_a_config_that_sets_the_multirun_mode_is_checked_as_a_sweep(tmp_path: Path) -> None:
    """hydra.mode: MULTIRUN from a user's experiment, no -m on the command line: a sweep all the
    same, its resume= refused as with -m."""
    conf = tmp_path / "conf" / "experiment"
    conf.mkdir(parents=True)
    (conf / "many.yaml").write_text("# @package _global_\nhydra:\n  mode: MULTIRUN\n")
    args = ("--config-dir", str(tmp_path / "conf"), "experiment=many", *QUICK, "resume=X")
    assert_only_line(train(tmp_path, *args), f"resume=X: {RESUMED}")
    assert_nothing_written(tmp_path)


def test_the_console_script_reads_a_relative_config_path_as_hydra_does(tmp_path: Path) -> None:
    """n2react-train runs train.cli from a module, not a file: Hydra reads --config-path
    n2react_conf as the package pkg://n2react_conf, and so do the sweep checks."""
    script = shutil.which("n2react-train")
    if script is None:
        pytest.skip("n2react-train is not installed (pip install -e .)")
    dirs = (f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'multi'}")
    cmd = [script, "-m", "--config-path", "n2react_conf", *QUICK, "resume=X", *dirs]
    out = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert_only_line(out, f"resume=X: {RESUMED}")
    assert_nothing_written(tmp_path)


def test_the_sweep_check_composes_for_itself_where_hydra_cannot_be_hooked() -> None:
    """sweep_checks.sweep_dir_problem, the CLI's check under a Hydra without get_mode."""
    from n2react.compose import config_dir
    from n2react.sweep_checks import sweep_dir_problem

    conf = str(config_dir())
    line = sweep_dir_problem(["-m", *QUICK, "resume=X"], conf)
    assert line is not None and line.startswith(f"resume=X: {RESUMED}")
    assert sweep_dir_problem([*QUICK, "resume=X"], conf) is None


@pytest.mark.parametrize("sweep", [(), ("-m",)], ids=["run", "sweep"])
def test_the_fallback_check_refuses_a_callback_a_config_sets_to_null(
    sweep: tuple[str, ...], tmp_path: Path
) -> None:
    """The CLI's check under a Hydra without get_mode ran the sweep checks only: a user's
    hydra.callbacks.leaderboard: null went on to Hydra (a warning at each event, an unranked
    sweep). It now runs the checks of the composed config it is given, as the hook does."""
    from n2react.compose import config_dir
    from n2react.override_errors import config_callback_problem
    from n2react.sweep_checks import sweep_dir_problem

    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    text = "# @package _global_\nhydra:\n  callbacks:\n    leaderboard: null\n"
    (tmp_path / "conf" / "experiment" / "nolb.yaml").write_text(text)
    argv = [*sweep, "--config-dir", str(tmp_path / "conf"), "experiment=nolb", *QUICK]
    line = sweep_dir_problem(argv, str(config_dir()), also=[config_callback_problem])
    assert line is not None and line.startswith("hydra.callbacks.leaderboard: null is not a ")
    assert sweep_dir_problem(argv, str(config_dir())) is None  # (not a sweep check)


ROOT = Path(__file__).resolve().parents[1]
PROJECT = f"the project's configs are in {ROOT / 'conf'}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--config-path", "conf"), (f"--config-path conf: no such folder: {ROOT / 'src' / 'conf'} "
                                     "(a relative --config-path is read against the folder of "
                                     "train.py", PROJECT)),
        (("--config-path", "{tmp}/none"), ("--config-path {tmp}/none: no such folder; ", PROJECT)),
        (("--config-path", "{tmp}/conf/config.yaml"),
         ("--config-path {tmp}/conf/config.yaml: a folder, not a config file; give the folder and "
          "the config's name: --config-path {tmp}/conf --config-name config",)),
        (("--config-path", "{tmp}/conf"), ("--config-path {tmp}/conf: no config.yaml in "
                                           "{tmp}/conf", "(choose one with --config-name: mine)")),
        (("--config-dir", "{tmp}/none"), ("--config-dir {tmp}/none: no such folder",)),
        (("--config-dir", "none"), ("--config-dir none: no such folder: {tmp}/none",)),
        (("--config-dir", "{tmp}/conf/mine.yaml"),
         ("--config-dir {tmp}/conf/mine.yaml: not a folder (a file)",)),
        (("--config-name", "nosuch"),
         (f"--config-name nosuch: no such config in {ROOT / 'conf'} (choose from config)",)),
        (("--config-name", "nosuch", "--config-dir", "{tmp}/conf"),
         (f"--config-name nosuch: no such config in {ROOT / 'conf'} or {{tmp}}/conf (choose from "
          "config, mine)",)),
        (("--config-path", "{tmp}/conf", "--config-name", "nosuch"),
         ("--config-name nosuch: no such config in {tmp}/conf (choose from mine)",)),
        (("-m", "--config-name", "nosuch", "model=ridge,svr"), ("--config-name nosuch: no such",)),
        (("--help", "--config-name", "nosuch"), ("--config-name nosuch: no such config",)),
    ],
    ids=["relative path", "no folder", "a yaml path", "no config.yaml", "dir: none",
         "dir: relative", "dir: a file", "name", "name and dir", "path and name", "sweep",
         "--help"],
)  # fmt: skip
def test_a_config_location_hydra_cannot_find_is_one_line(
    args: tuple[str, ...], expected: tuple[str, ...], tmp_path: Path
) -> None:
    """Hydra's 'Primary config directory not found' (or '... module ...'), 'Additional config
    directory ... not found', 'Cannot find primary config' with its search path, and its
    ValueError for a YAML --config-path: several lines and exit 1 (a traceback with --help)."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "mine.yaml").write_text("defaults:\n  - config\n  - _self_\n")
    tmp = str(tmp_path)
    out = train(tmp_path, *(a.replace("{tmp}", tmp) for a in args))
    assert_only_line(out, *(e.replace("{tmp}", tmp) for e in expected))
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("info", [("--info",), ("--info", "all"), ("-i", "config")])
def test_info_of_a_config_hydra_cannot_find_is_the_one_line(
    info: tuple[str, ...], tmp_path: Path
) -> None:
    """--info --config-name nosuch printed Hydra's header, its plugins and 'Config search path'
    on stdout before the error line (--info config the search path's header): now the line of
    --config-name nosuch alone, exit 2."""
    out = train(tmp_path, *info, "--config-name", "nosuch")
    assert_only_line(out, f"--config-name nosuch: no such config in {ROOT / 'conf'} (choose from")
    assert out.stdout == ""
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--info", "bogus"),
         "--info bogus: no such value (choose from all, config, defaults, defaults-tree, plugins, "
         "searchpath)"),
        (("--cfg", "bogus"), "--cfg bogus: no such value (choose from job, hydra, all)"),
    ],
)  # fmt: skip
def test_a_bad_value_of_hydras_flag_is_one_line(
    args: tuple[str, ...], expected: str, tmp_path: Path
) -> None:
    """--info bogus printed Hydra's argparse usage (7 lines) and its error line, exit 2."""
    out = train(tmp_path, *args)
    assert out.stderr.strip() == f"n2react: error: {expected}" and out.returncode == 2
    assert out.stdout == ""
    assert_nothing_written(tmp_path)


def test_the_console_script_names_a_relative_config_path_it_cannot_find(tmp_path: Path) -> None:
    """n2react-train reads a relative --config-path as a Python package: Hydra's 'Primary config
    module 'conf' not found', exit 1."""
    script = shutil.which("n2react-train")
    if script is None:
        pytest.skip("n2react-train is not installed (pip install -e .)")
    for given in ("conf", "../conf"):
        cmd = [script, "--config-path", given, "hydra.run.dir=run"]
        out = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True,
                             timeout=300)  # fmt: skip
        assert_only_line(out, f"--config-path {given}: no Python package conf (run as a module",
                         PROJECT)  # fmt: skip
        assert list(tmp_path.iterdir()) == []


def test_a_yaml_config_path_is_told_the_folder_and_config_name_to_give(tmp_path: Path) -> None:
    """The line gives the command's --config-path and --config-name as they are to be typed:
    the config's name without .yaml (Hydra refuses --config-name mine.yaml alike)."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "mine.yaml").write_text("defaults:\n  - config\n  - _self_\n")
    line = assert_only_line(train(tmp_path, "--config-path", str(tmp_path / "conf" / "mine.yaml")))
    assert line.endswith(f"--config-path {tmp_path / 'conf'} --config-name mine"), line
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("args", [("--version",), ("--vers",), ("--version", "model=ridge")])
def test_the_version_is_printed_once(args: tuple[str, ...], tmp_path: Path) -> None:
    """--version printed 'Hydra 1.3.8' six times: once per check that parses the command line."""
    import hydra

    from n2react import __version__

    out = train(tmp_path, *args)
    assert out.returncode == 0 and out.stderr == ""
    assert out.stdout == f"n2react {__version__} (Hydra {hydra.__version__})\n"
    assert_nothing_written(tmp_path)
