"""Command-line mistakes Hydra reported in several lines (its own text, then a HYDRA_FULL_ERROR
hint, exit status 1) or as argparse's usage dump: the real `python -m train` says each in one
`n2react: error:` line and exits 2, as a misspelled group option does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from bad_input_helpers import QUICK, _env, assert_one_error, mlflow_runs


def train(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    dirs = (f"hydra.run.dir={tmp / 'run'}", f"hydra.sweep.dir={tmp / 'multi'}")
    cmd = [sys.executable, "-m", "train", *args, *dirs]
    return subprocess.run(cmd, cwd=tmp, env=_env(), capture_output=True, text=True, timeout=300)


def assert_only_line(out: subprocess.CompletedProcess, *expected: str) -> str:
    line = assert_one_error(out, *expected)
    assert out.stderr.strip() == line and out.returncode == 2, out.stderr[-2000:]
    assert "HYDRA_FULL_ERROR" not in out.stderr
    return line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # the shell took the quotes of data.target_column='lg(k1)': Hydra reads a function call
        (
            ("data.target_column=lg(k1)",),
            (
                "cannot parse override 'data.target_column=lg(k1)'",
                "Unknown function 'lg'",
                """quote it for Hydra inside the shell's quotes: "data.target_column='lg(k1)'\"""",
            ),
        ),
        (
            ("cv.outer_folds=[1",),
            ("cannot parse override 'cv.outer_folds=[1'", "\"cv.outer_folds='[1'\""),
        ),
        (
            ("cv.outer_folds",),
            ("cannot parse override 'cv.outer_folds'", "(an override is key=value)"),
        ),
        # a comma value without -m: Hydra's four lines of choices
        (
            ("data.target_column=a,b",),
            (
                "data.target_column=a,b: a comma list is a sweep, which needs -m",
                "data.target_column='a,b'",
            ),
        ),
    ],
    ids=["function", "bracket", "no =", "comma"],
)
def test_an_override_hydra_cannot_read_is_one_line(
    args: tuple[str, ...], expected: tuple[str, ...], tmp_path: Path
) -> None:
    out = train(tmp_path, *QUICK, *args)
    assert_only_line(out, *expected)
    assert not (tmp_path / "run").exists()


def test_the_quoting_it_suggests_works(tmp_path: Path) -> None:
    """The hinted word, read by a shell, is what Hydra takes as the text lg(k1)."""
    line = assert_only_line(train(tmp_path, "--cfg", "job", "data.target_column=lg(k1)"))
    word = line.rsplit(": ", 1)[1]
    shell = f"{sys.executable} -m train --cfg job {word}"
    out = subprocess.run(
        shell, shell=True, cwd=tmp_path, env=_env(), capture_output=True, text=True
    )
    assert out.returncode == 0 and "target_column: lg(k1)" in out.stdout, out.stderr[-2000:]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("cv.outer_fold=3",),
            (
                "cv.outer_fold: no such key (cv has: outer_folds, inner_folds,",
                "; did you mean cv.outer_folds?; +cv.outer_fold=3 adds a new key)",
            ),
        ),
        (("model.foo=1",), ("model.foo: no such key (model has: name, gpus, estimator, space",)),
        (("seedd=1",), ("seedd: no such key (the config has: hydra, seed,", "did you mean seed?")),
        # a missing key part-way: its parent's keys, the rest of the path kept
        (("model.estimatr.alpha=1",), ("did you mean model.estimator.alpha?",)),
        (("hydra.run.dirr=x",), ("hydra.run has: dir; did you mean hydra.run.dir?",)),
        # in a sweep (each job's config) and under --cfg
        (("-m", "cv.outer_fold=3,4"), ("cv.outer_fold: no such key", "cv.outer_folds?")),
        (("--cfg", "job", "model.foo=1"), ("model.foo: no such key",)),
    ],
    ids=["cv", "model", "top", "part-way", "hydra", "sweep", "cfg"],
)
def test_an_unknown_key_is_one_line(
    args: tuple[str, ...], expected: tuple[str, ...], tmp_path: Path
) -> None:
    out = train(tmp_path, *args, *QUICK)
    assert_only_line(out, *expected)
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "multi").exists()  # the sweep's: it left multi/multirun.yaml
    assert mlflow_runs(tmp_path / "mlflow.db") == []


def test_a_refused_sweep_leaves_nothing(tmp_path: Path) -> None:
    """A sweep no job's config composes for left <sweep dir>/multirun.yaml and the folders
    Hydra made for it; a folder that was there stays, with what it held."""
    cmd = [sys.executable, "-m", "train", "-m", "cv.outer_fold=3,4", *QUICK]
    out = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert_only_line(out, "cv.outer_fold: no such key")
    assert not (tmp_path / "multirun").exists()  # multirun/<date>/<time>_<id>/ by default
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine\n")
    out = subprocess.run([*cmd, f"hydra.sweep.dir={kept}"], cwd=tmp_path, env=_env(),
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert_only_line(out, "cv.outer_fold: no such key")
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]
    assert (kept / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("model=ridge", "-m", "cv.outer_folds=3"),
            "-m goes before all overrides or after them all: python -m train -m model=ridge "
            "cv.outer_folds=3",
        ),
        (("model=ridge", "--cfg", "job", "seed=1"), "--cfg goes before all overrides or after"),
    ],
    ids=["-m", "--cfg"],
)
def test_a_flag_between_overrides_is_one_line(
    args: tuple[str, ...], expected: str, tmp_path: Path
) -> None:
    """argparse printed Hydra's usage (eight lines) and 'unrecognized arguments'."""
    cmd = [sys.executable, "-m", "train", *args]
    out = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert_only_line(out, expected)
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("+seed=3",), ("+seed=3: seed is already in the config (+ adds a new key)", "seed=3")),
        (("~seed=4",), ("~seed=4: seed is 42, not 4", 'to delete it: "~seed"')),
        (("~nosuch",), ("~nosuch: nothing to delete (no such key, or its value is null)",)),
        (("~hydra.callbacks",), ("~hydra.callbacks: Hydra cannot", "~hydra.callbacks.leaderboard")),
        (("~hydra.sweep",), ("~hydra.sweep: Hydra cannot delete its key hydra.sweep",)),
        (("hydra.callbacks=null",), ("callbacks key cannot be null", "~hydra.callbacks.leader")),
        (("hydra.sweep=null",), ("hydra.sweep=null: Hydra's key hydra.sweep cannot be null",)),
    ],
    ids=[
        "+ a key there is",
        "~ another value",
        "~ no such key",
        "~ callbacks",
        "~ hydra key",
        "callbacks null",
        "hydra key null",
    ],
)
def test_adding_a_key_there_is_or_deleting_one_there_is_not_is_one_line(
    args: tuple[str, ...], expected: tuple[str, ...], tmp_path: Path
) -> None:
    """Hydra's 'Could not append to config...' (three lines), 'Could not delete...' or, for a
    key of Hydra's own config deleted or set to null, 'Error merging override' and OmegaConf's
    lines, its HYDRA_FULL_ERROR hint, exit 1."""
    out = train(tmp_path, *QUICK, *args)
    assert_only_line(out, *expected)
    assert not (tmp_path / "run").exists() and not (tmp_path / "multi").exists()


def test_an_empty_callbacks_mapping_keeps_them_all(tmp_path: Path) -> None:
    """hydra.callbacks={} merges nothing into the callbacks (Hydra merges a mapping): the
    leaderboard and the launcher check stay, so it is not refused."""
    out = train(tmp_path, "--cfg", "hydra", "hydra.callbacks={}")
    assert out.returncode == 0, out.stderr[-2000:]
    callbacks = out.stdout.split("  callbacks:\n", 1)[1].split("\n  output_subdir", 1)[0]
    assert "n2react.leaderboard.Leaderboard" in callbacks, out.stdout
    assert "n2react.launchers.BackendCheck" in callbacks, out.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("+model=ridge",),
            "+model=ridge: model is already in the config (default: rfr); use model=ridge without "
            "'+'",
        ),
        (("+data=homonuclear_8",), "data is already in the config (default: homonuclear_24)"),
        # the default the rest of the command line gives (paper_regular: authors_folds)
        (("experiment=paper_regular", "+data=homonuclear_8"), "(default: authors_folds)"),
        (("+cv=default",), "+cv=default: cv is already in the config (default: default)"),
        (("model=svr", "+model=ridge"), "+model=ridge: model is already chosen by model=svr"),
        (
            ("++model=ridge",),
            "++model=ridge: ++ is for keys, not config groups; model is in the config (default: "
            "rfr): use model=ridge",
        ),
        (("++sweep=grid",), "++sweep=grid: ++ is for keys, not config groups; to add sweep: "),
        (("-m", "+model=ridge,svr"), "use model=ridge,svr without '+'"),
    ],
    ids=["+model", "+data", "+data after an experiment", "+ the default", "+ and plain", "++",
         "++ a group not in the config", "sweep"],
)  # fmt: skip
def test_a_group_given_with_plus_is_one_line(
    args: tuple[str, ...], expected: str, tmp_path: Path
) -> None:
    """Hydra said 'Multiple values for model. To override a value use 'override model: ridge''
    (or 'cv appears more than once in the final defaults list', or 'force-add of config groups
    is not supported'), naming no override, and its HYDRA_FULL_ERROR hint, exit 1."""
    flags = [a for a in args if a == "-m"]
    out = train(tmp_path, *flags, *QUICK[1:], *[a for a in args if a not in flags])
    assert_only_line(out, expected)
    assert not (tmp_path / "run").exists() and not (tmp_path / "multi").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("model=null",), "model=null: a config group takes one of its options, not null; "
         "choose one: model=<option> (anchored_ensemble, ensemble, extra_trees, gbr, keras_mlp, "
         "rfr, ridge, ridge_trees, svr; default: rfr)"),
        (("+model=null",), "+model=null: a config group takes one of its options, not null; "
         "choose one: model=<option> ("),
        # ++model=ridge's line suggested model=<its value>: model=null, the traceback again
        (("++model=null",), "++model=null: a config group takes one of its options, not null"),
        (("data=null",), "choose one: data=<option> (authors_folds, homonuclear_15, "),
        (("experiment=null",), "experiment=null: a config group takes one of its options, not "
         "null; to run without experiment, leave it out (experiment options: new_compositions"),
        (("-m", "model=ridge,null"), "model=ridge,null: a config group takes one of its options"),
        # the run read cfg.model: "Key 'model' is not in struct", full_key, HYDRA_FULL_ERROR
        (("~model",), "~model: a run needs one model option, and ~ removes the group; choose "
         "one: model=<option> (anchored_ensemble, "),
        (("~model=svr",), "~model=svr: a run needs one model option"),  # Hydra: "No match"
        (("~cv",), "~cv: a run needs one cv option"),
    ],
    ids=["null", "+null", "++null", "data", "optional group", "in a sweep", "~model", "~model=",
         "~cv"],
)  # fmt: skip
def test_a_group_given_no_option_is_one_line(
    args: tuple[str, ...], expected: str, tmp_path: Path
) -> None:
    """model=null was Hydra's ValueError traceback ('Config group override must be a string or a
    list. Got NoneType'), exit 1; ~model ran until the plan read the config's model."""
    flags = [a for a in args if a == "-m"]
    out = train(tmp_path, *flags, *QUICK[1:], *[a for a in args if a not in flags])
    assert_only_line(out, expected)
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "multi").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # svr's keys merged into rfr's estimator: "cannot build it: ... unexpected keyword
        # argument 'kernel'" once the run built the model
        (("model=[svr,rfr]",), "model=[svr,rfr]: a config group takes one option, not a list "
         "(Hydra would merge svr, rfr into one model); for one: model=svr; to try each, a sweep: "
         "python -m train -m model=svr,rfr"),
        (("-m", "model=[svr,rfr]"), "model=[svr,rfr]: a config group takes one option, not a"),
        # a list among a sweep's options was "model=[svr,rfr]: no such option (choose from ..."
        (("-m", "model=[svr,rfr],ridge"), "model=[svr,rfr],ridge: a config group takes one "
         "option, not a list (in a sweep too: Hydra would merge [svr,rfr] into one model); to "
         "try each, a sweep: python -m train -m model=svr,rfr,ridge"),
        (("-m", "model=choice(ridge,[svr],[rfr,svr])"), "to try each, a sweep: python -m train "
         "-m model=ridge,svr,rfr"),
        (("model=[svr]",), "model=[svr]: a config group takes one option, not a list; choose "
         "one: model=svr (anchored_ensemble, "),
        # Hydra's "Could not delete 'features=foo'. No match in the defaults list", exit 1
        (("~device=foo",), "~device=foo: device is auto here, not foo (~device=<option> "
         "removes the group only when that option is chosen); to remove it: ~device "
         "(device options: auto, cpu, gpu)"),
        (("device=cpu", "~device=gpu"), "device is cpu here, not gpu"),
        (("-m", "~device=foo"), "~device=foo: device is auto here, not foo"),
        (("~experiment=paper_regular",), "~experiment=paper_regular: no experiment option is "
         "chosen here, so there is nothing to remove (experiment options: new_compositions, "),
        # ran without a search, but logged no search.name / search.objective (search=none does)
        (("~search",), "~search: ~ removes the search group, and the run then logs no "
         "search.name; write search=none instead (the same run, logged)"),
        (("~search=none",), "~search=none: ~ removes the search group"),
        # scaler, selector, features, pairwise: the same (no scaler.name ... logged)
        (("~scaler",), "~scaler: ~ removes the scaler group, and the run then logs no "
         "scaler.name; write scaler=none instead (the same run, logged)"),
        (("~features=foo",), "~features=foo: ~ removes the features group, and the run then "
         "logs no features.name; write features=raw instead"),
        (("~pairwise",), "~pairwise: ~ removes the pairwise group"),
        # Hydra merged {} into the space: the run searched the space as before
        (("selector=kbest", "selector.space={}"), "selector.space={}: {} does not empty "
         "selector.space (Hydra merges a mapping into the one there, so the run would search it "
         "as before); to search none of the selector's settings (each fold fits them as "
         "configured): selector.space=null (or ~selector.space); for no search at all: "
         "search=none"),
        (("-m", "model.space={},null"), "model.space={},null: {} does not empty model.space"),
        (("model=ridge", "+model.space={alpha:{}}"), "+model.space={alpha:{}}: {} does not empty "
         "model.space.alpha (Hydra merges a mapping into the one there, so the run would search "
         "it as before); to fix alpha at its configured value: model.space.alpha=null"),
    ],
    ids=["list", "list in a sweep", "list among a sweep's options", "lists in choice()",
         "one-item list", "~ another option", "~ the default",
         "~ in a sweep", "~ an optional group", "~search", "~search=", "~scaler", "~features",
         "~pairwise", "space={}", "space={} in a sweep", "space entry {}"],
)  # fmt: skip
def test_a_list_of_options_or_a_group_removed_amiss_is_one_line(
    args: tuple[str, ...], expected: str, tmp_path: Path
) -> None:
    flags = [a for a in args if a == "-m"]
    out = train(tmp_path, *flags, *QUICK[1:], *[a for a in args if a not in flags])
    assert_only_line(out, expected)
    assert list(tmp_path.iterdir()) == []  # no run/, multi/, outputs/, mlflow.db


@pytest.mark.parametrize("removed", ["~tracking", "~device"])
def test_removing_tracking_or_device_is_left_alone(removed: str) -> None:
    """~tracking runs as tracking=none does (no store, the same outputs), ~device as device=auto
    (the same params and run.json)."""
    from n2react.compose import config_dir
    from n2react.group_options import option_problem

    assert option_problem([removed, "model=ridge"], str(config_dir())) is None


def test_compose_config_says_a_group_removed_amiss_in_one_line() -> None:
    from n2react.compose import compose_config
    from n2react.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^~device=foo: device is auto here, not foo \("):
        compose_config(["~device=foo"])


@pytest.mark.parametrize(
    ("override", "start"),
    [("model=[svr,rfr]", "model=[svr,rfr]: a config group takes one option, not a list"),
     ("~search", "~search: ~ removes the search group")],
)  # fmt: skip
def test_compose_config_refuses_what_a_run_refuses(override: str, start: str) -> None:
    """Hydra composes both (a merged model; a config without search), python -m train refuses
    them: compose_config did not."""
    from n2react.compose import compose_config
    from n2react.errors import ConfigError

    with pytest.raises(ConfigError, match="^" + re.escape(start)):
        compose_config([override])
    compose_config(["search=random", "~search.kind"])  # a key removed, not a group: composed


def test_a_search_space_emptied_as_the_refusal_says() -> None:
    """selector.space={} left k searched (Hydra merged {} into the space) and compose_config
    composed it; selector.space=null, the override the refusal names, leaves only the model's
    settings searched."""
    from n2react.compose import compose_config
    from n2react.errors import ConfigError
    from n2react.plan import build_plan

    with pytest.raises(ConfigError, match=r"^selector\.space=\{\}: \{\} does not empty"):
        compose_config(["selector=kbest", "selector.space={}"])
    chosen = ["model=ridge", "selector=kbest", "search=random"]
    assert set(build_plan(compose_config(chosen)).search.space) == {"model__alpha", "select__k"}
    for empty in ("selector.space=null", "~selector.space"):
        assert set(build_plan(compose_config([*chosen, empty])).search.space) == {"model__alpha"}


def test_compose_config_says_a_group_given_no_option_in_one_line() -> None:
    from n2react.compose import compose_config
    from n2react.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^model=null: a config group takes one of its opt"):
        compose_config(["model=null"])


def test_compose_config_says_a_group_given_with_plus_in_one_line() -> None:
    from n2react.compose import compose_config
    from n2react.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^\+data=homonuclear_8: data is already in the con"):
        compose_config(["+data=homonuclear_8"])


def test_compose_config_composes_beside_a_hydra_the_caller_left_initialised() -> None:
    """A Hydra initialised and left so (a notebook's hydra.initialize(), or an earlier test of the
    same worker) made compose_config raise Hydra's ValueError "GlobalHydra is already
    initialized" (model=null alone passed: its check comes before Hydra). It composes now, and
    the caller's Hydra is there again after it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from n2react.compose import compose_config, config_dir
    from n2react.errors import ConfigError

    initialize_config_dir(config_dir=str(config_dir() / "model"), version_base="1.3")
    try:
        assert compose_config(["model=svr", "seed=3"]).seed == 3
        with pytest.raises(ConfigError, match=r"^\+data=homonuclear_8: data is already in the"):
            compose_config(["+data=homonuclear_8"])
        assert GlobalHydra.instance().is_initialized()
        assert "estimator" in compose(config_name="svr")  # the caller's config folder
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--foo", "model=ridge"), "--foo: no such flag (python -m train --help lists them"),
        (("--cgf", "job"), "--cgf: no such flag; did you mean --cfg?"),
        (("--cfg", "job", "-m"), "-m and --cfg: one of --run, -m, --cfg, --info,"),
    ],
    ids=["unknown", "misspelled", "two modes"],
)
def test_an_unknown_flag_is_one_line(args: tuple[str, ...], expected: str, tmp_path: Path) -> None:
    """argparse printed Hydra's usage (eight lines) and 'unrecognized arguments'; two of Hydra's
    modes were a ValueError traceback."""
    cmd = [sys.executable, "-m", "train", *args]
    out = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert_only_line(out, expected)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", ["-m model=ridge,svr seed=1", "model=ridge seed=1 -m", "--help"])
def test_flags_before_or_after_all_overrides_pass(argv: str) -> None:
    from n2react.override_errors import flag_problem

    assert flag_problem(argv.split()) is None


def test_hydra_full_error_keeps_hydras_traceback(tmp_path: Path) -> None:
    """HYDRA_FULL_ERROR=1 asks for Hydra's full report: it is left alone."""
    cmd = [sys.executable, "-m", "train", "cv.outer_fold=3", "--cfg", "job"]
    env = {**_env(), "HYDRA_FULL_ERROR": "1"}
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "Traceback" in out.stderr and "n2react: error" not in out.stderr
