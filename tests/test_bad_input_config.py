"""Bad input, end to end (continued from test_bad_input.py): the training config. A value out
of range, a typo of a bool or a number, a misspelled option, a setting that would run clipped or
twice, an unreachable tracking store: each case runs the real `python -m train` and must end in
exactly one `n2react: error:` line naming the key, a non-zero exit, no traceback, and no MLflow
run left in the store."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bad_input_helpers import FILE24, QUICK, _env, assert_one_error, cli, mlflow_runs

# --------------------------------------------------------------------------- config (lead)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(("seed=-1",), ("seed",), id="negative seed"),
        pytest.param(("search=grid", "search.max_trials=0"), ("max_trials",), id="0 trials"),
        # keras-tuner refused it only after the MLflow run had started (a FAILED run)
        pytest.param(
            ("search=random", "search.max_trials=2", "+search.oracle.factor=1"),
            ("search.oracle: cannot build it", "factor"),
            id="oracle typo",
        ),
        pytest.param(
            ("selector=kbest", "selector.step.k=100"), ("k", "100", "24"), id="k>features"
        ),
        # scikit-learn's trees take an integer above the descriptors as all of them: it ran
        # as max_features=1.0 without a word
        pytest.param(
            ("model=extra_trees", "model.estimator.max_features=100"),
            ("model.estimator.max_features=100", "24 descriptors reaching the model"),
            id="max_features>features",
        ),
        pytest.param(
            ("model=rfr", "selector=kbest", "model.estimator.max_features=9"),
            ("model.estimator.max_features=9", "8 descriptors reaching the model"),
            id="max_features>k",
        ),
        pytest.param(
            (
                "model=extra_trees",
                "search=random",
                "search.max_trials=1",
                "model.space.max_features.values=[0.5,30]",
            ),
            ("model.space.max_features.values holds 30", "24 descriptors"),
            id="space max_features>features",
        ),
        # the members of an ensemble and a pairwise base were not checked: they ran clipped
        pytest.param(
            ("model=ensemble", "+model.estimator.estimators.1.1.max_features=100"),
            ("model.estimator.estimators.1.1.max_features=100", "24 descriptors reaching"),
            id="ensemble member max_features>features",
        ),
        pytest.param(
            ("model=anchored_ensemble", "model.estimator.estimators.1.1.base.max_features=30"),
            ("model.estimator.estimators.1.1.base.max_features=30", "24 descriptors"),
            id="anchored pairwise base max_features>features",
        ),
        pytest.param(
            (
                "model=anchored_ensemble",
                "search=random",
                "search.max_trials=1",
                "+model.space.trees__max_features={type:choice,values:[0.5,30]}",
            ),
            ("model.space.trees__max_features.values holds 30", "24 descriptors"),
            id="space member max_features>features",
        ),
        pytest.param(
            ("model=rfr", "pairwise=on", "model.estimator.max_features=100"),
            ("model.estimator.max_features=100", "24 descriptors reaching the model"),
            id="pairwise max_features>features",
        ),
        pytest.param(
            ("model=ridge_trees", "model.estimator.max_features=100"),
            ("model.estimator.max_features=100", "24 descriptors reaching the model"),
            id="ridge_trees max_features>features",
        ),
        pytest.param(("tracking.experiment=''",), ("tracking.experiment",), id="no exp"),
        # a text or a fraction of folds once crashed in the splitter ("cannot build it:
        # full_key: cv.outer") or was cut to a whole number; a bad cv.seed was a traceback
        pytest.param(("cv.outer_folds=abc",), ("cv.outer_folds='abc'", "whole"), id="folds=abc"),
        pytest.param(("cv.outer_folds=2.5",), ("cv.outer_folds=2.5", "whole"), id="folds=2.5"),
        pytest.param(("cv.seed=abc",), ("cv.seed='abc'", "whole"), id="cv.seed=abc"),
        pytest.param(("cv.seed=-5",), ("cv.seed=-5", ">= 0"), id="cv.seed<0"),
        pytest.param(("cv.shuffle=maybe",), ("cv.shuffle='maybe'",), id="shuffle=maybe"),
        # leave one metal out is the same 6 folds every repeat: it ran them twice, counted as
        # independent in the means and intervals
        pytest.param(
            ("cv.groups=metal", "cv.repeats=2", "cv.outer_folds=10"),
            ("cv.repeats=2: 6 groups into cv.outer_folds=10 folds is leave one group out",),
            id="metal repeats",
        ),
        # a typo of false was read as true (an explained run, a refit); a text fraction crashed
        pytest.param(("explain=flase",), ("explain='flase'", "true or false"), id="explain typo"),
        pytest.param(("uncertainty.enabled=no_",), ("uncertainty.enabled",), id="enabled typo"),
        pytest.param(("tracking.enabled=flase",), ("tracking.enabled",), id="tracking typo"),
        pytest.param(("data.formula=flase",), ("data.formula='flase'",), id="formula typo"),
        pytest.param(
            ("pairwise=on", "cv.scheme=pair_split", "cv.pair_test_fraction=abc"),
            ("cv.pair_test_fraction='abc'",),
            id="fraction=abc",
        ),
        # 0.9999 ran on 3 training pairs (only fewer than 2, or no test pair, was refused)
        pytest.param(
            ("pairwise=on", "cv.scheme=pair_split", "cv.pair_test_fraction=0.9999"),
            ("cv.pair_test_fraction=0.9999", "from 0.05 to 0.5"),
            id="fraction=0.9999",
        ),
        pytest.param(
            ("pairwise=on", "cv.scheme=pair_split", "cv.pair_test_fraction=0.001"),
            ("cv.pair_test_fraction=0.001", "from 0.05 to 0.5"),
            id="fraction=0.001",
        ),
        # more pairs than there are ran as all of them; a negative seed ran as its absolute
        # value; a text seed was "a setting of the pipeline is not usable: invalid literal"
        pytest.param(
            ("pairwise=on", "final_model=true", "pairwise.wrapper.max_pairs=100000000"),
            ("pairwise.wrapper.max_pairs=100000000", "all 25,122 ordered pairs of the 159"),
            id="max_pairs>all pairs",
        ),
        # without a final model (QUICK) the largest fit is an outer training fold, 106 of the
        # 159 clusters in 3 folds: a cap between its 11,130 pairs and the 25,122 of all 159
        # capped nothing and was not refused
        pytest.param(
            ("pairwise=on", "pairwise.wrapper.max_pairs=20000"),
            ("pairwise.wrapper.max_pairs=20000", "all 11,130 ordered pairs of the 106"),
            id="max_pairs>fold pairs",
        ),
        pytest.param(
            ("pairwise=on", "cv.scheme=pair_split", "pairwise.wrapper.max_pairs=20098"),
            ("pairwise.wrapper.max_pairs=20098", "all 20,098 training pairs of the pair split"),
            id="max_pairs>pair split",
        ),
        pytest.param(
            ("pairwise=on", "pairwise.wrapper.random_state=-3"),
            ("pairwise.wrapper.random_state", "got -3"),
            id="pairwise seed<0",
        ),
        pytest.param(
            ("pairwise=on", "pairwise.wrapper.random_state=abc"),
            ("pairwise.wrapper.random_state", "got 'abc'"),
            id="pairwise seed=abc",
        ),
        # a pairwise wrapper around anchored_ensemble's pairwise member trained on pairs of
        # pairs (one outer fold in 4 minutes with 5 trees); a pair split without pairwise=on
        # was refused only once its MLflow run was open (a FAILED run left in the store)
        pytest.param(
            ("pairwise=on", "model=anchored_ensemble"),
            ("pairwise=on: model=anchored_ensemble already learns", "pairwise_trees"),
            id="pairwise anchored",
        ),
        pytest.param(
            ("cv.scheme=pair_split",),
            ("cv.scheme=pair_split: needs pairwise=on",),
            id="pair split unwrapped",
        ),
        # scikit-learn's own wording ("The 'alpha' parameter of Ridge must be ...") was
        # "a setting of the pipeline is not usable", the key unnamed; a pair split gave a traceback
        pytest.param(
            ("pairwise=on", "model.estimator.alpha=-1"),
            ("model.estimator.alpha: The 'alpha' parameter of Ridge",),
            id="pairwise base alpha<0",
        ),
        pytest.param(
            ("pairwise=on", "cv.scheme=pair_split", "model.estimator.alpha=-1"),
            ("model.estimator.alpha: The 'alpha' parameter of Ridge",),
            id="pair split base alpha<0",
        ),
        # a linear pairwise base spreads every cluster's references alike (its training
        # residuals): intervals of one width under the name of the model's own spread
        pytest.param(
            ("pairwise=on", "uncertainty.difficulty=spread"),
            ("uncertainty.difficulty=spread: the model's spread is the same for every cluster",),
            id="pairwise ridge spread",
        ),
        # the pair split fits no final model: a transfer file was silently never scored
        pytest.param(
            ("pairwise=on", "cv.scheme=pair_split", "final_model=true", f"eval.path={FILE24}"),
            ("eval.path: cv.scheme=pair_split scores pairs and fits no final model",),
            id="pair split eval.path",
        ),
        # k at least the clusters a difficulty is measured against: the same for every cluster
        pytest.param(("uncertainty.k=53",), ("uncertainty.k=53", "below 53"), id="k too big"),
        pytest.param(("uncertainty.k=true",), ("uncertainty.k=True",), id="k=true"),
        # a 100 % interval has no finite quantile (it divided by zero); 0 % none at all
        pytest.param(
            ("uncertainty.coverage=1",), ("uncertainty.coverage=1", "between 0 and 1"), id="cov=1"
        ),
        pytest.param(
            ("uncertainty.coverage=0",), ("uncertainty.coverage=0", "between 0 and 1"), id="cov=0"
        ),
        pytest.param(
            ("uncertainty.flag_quantile=0",), ("uncertainty.flag_quantile=0", "(0, 1]"), id="fq=0"
        ),
        pytest.param(
            ("uncertainty.flag_quantile=1.5",), ("uncertainty.flag_quantile=1.5",), id="fq=1.5"
        ),
        pytest.param(
            ("uncertainty.validation=honest",),
            ("uncertainty.validation='honest'", "nested or crossfit"),
            id="validation typo",
        ),
        # the authors' fold files' names are not formulas: the fold refusal, not a parse error
        pytest.param(
            ("data=authors_folds", "cv.groups=family"),
            ("cv.groups=family", "own fixed folds"),
            id="authors folds grouped",
        ),
    ],
)
def test_bad_config(args: tuple[str, ...], expected: tuple[str, ...], tmp_path: Path) -> None:
    out = cli(tmp_path, "train", *QUICK, *args)
    assert_one_error(out, *expected)
    assert mlflow_runs(tmp_path / "mlflow.db") == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("model=extra_tree",), ("model=extra_tree: no such option", "extra_trees, gbr")),
        (("cv=kfold5",), ("cv=kfold5: no such option (choose from default)",)),
        # a sweep's comma list: the bad value named, before any job starts
        (("-m", "model=ridge,extra_tree"), ("model=extra_tree: no such option",)),
        (("-m", "+sweep=grd"), ("+sweep=grd: no such option (choose from grid)",)),
        # a group of Hydra's own, whose options its plugins add
        (("-m", "hydra/launcher=joblb"), ("hydra/launcher=joblb: no such option", "joblib")),
        (("experiment=new_composition",), ("experiment=new_composition:", "new_compositions")),
    ],
    ids=["model", "cv", "sweep list", "+sweep", "launcher", "experiment"],
)
def test_a_misspelled_option_is_one_line(
    args: tuple[str, ...], expected: tuple[str, ...], tmp_path: Path
) -> None:
    """Hydra printed a dozen lines (the options, its search path, a HYDRA_FULL_ERROR hint) and
    exit status 1."""
    dirs = (f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'multi'}")
    cmd = [sys.executable, "-m", "train", *args, *QUICK, *dirs]  # -m before the overrides
    out = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    line = assert_one_error(out, *expected)
    assert out.stderr.strip() == line and out.returncode == 2
    assert not (tmp_path / "multi").exists() and not (tmp_path / "run").exists()
    assert mlflow_runs(tmp_path / "mlflow.db") == []


def test_the_console_script_checks_options_too(tmp_path: Path) -> None:
    """n2react-train pointed at the Hydra main, past the checks of ``python -m train``: a
    misspelled option printed Hydra's dozen lines there."""
    script = shutil.which("n2react-train")
    if script is None:
        pytest.skip("n2react-train is not installed (pip install -e .)")
    cmd = [script, "model=extra_tree", *QUICK, f"hydra.run.dir={tmp_path / 'run'}"]
    out = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    line = assert_one_error(out, "model=extra_tree: no such option")
    assert out.stderr.strip() == line and out.returncode == 2


@pytest.mark.parametrize(
    "argv",
    [
        "model=extra_trees pairwise=on cv.groups=metal",
        "-m +sweep=grid hydra/launcher=joblib",
        "-m model=ridge,svr hydra/launcher=parallel",
        "-m model=glob(*)",
        "-m model=choice(ridge,svr)",
        "experiment=new_compositions",
        "~experiment",
        "--cfg job model=svr",
        "--help",
        "--config-dir /nowhere model=extra_tree",  # another search path: Hydra tells
    ],
)
def test_valid_options_pass_the_option_check(argv: str) -> None:
    from n2react.compose import config_dir
    from n2react.group_options import option_problem

    assert option_problem(argv.split(), str(config_dir())) is None


@pytest.mark.slow
def test_unreachable_tracking_server_fails_fast(tmp_path: Path) -> None:
    start = time.monotonic()
    try:
        out = cli(tmp_path, "train", *QUICK, "tracking.uri=http://127.0.0.1:9/", timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("still running after 60 s")
    assert time.monotonic() - start < 60
    assert_one_error(out, "127.0.0.1:9")


def test_file_tracking_uri_runs_or_says_why(tmp_path: Path) -> None:
    out = cli(tmp_path, "train", *QUICK, f"tracking.uri=file://{tmp_path / 'store'}")
    if out.returncode != 0:
        assert_one_error(out, "tracking.uri")
    assert "Traceback" not in out.stderr
