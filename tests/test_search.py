"""One YAML search space for every oracle; searches resume from their own directory."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from sklearn.utils.estimator_checks import parametrize_with_checks

from n2react.data import load_dataset
from n2react.errors import ConfigError
from n2react.pipeline import PipelineFactory
from n2react.plan import build_plan
from n2react.search import SearchSpec, TunedPipeline, make_hyperparameters, tune
from n2react.splitters import KFoldSplitter


def search_space(cfg):
    return build_plan(cfg).search.space


def test_space_translation_and_grid_size(make_cfg) -> None:
    cfg = make_cfg("model=svr", "selector=kbest", "search=grid")
    space = search_space(cfg)
    assert set(space) == {"model__C", "model__gamma", "model__epsilon", "select__k"}
    hp = make_hyperparameters(space)
    values = {p.name: list(p.values) for p in hp.space}
    np.testing.assert_allclose(sorted(values["model__C"]), [0.1, 1, 10, 100, 1000])
    assert sorted(values["select__k"]) == [4, 8, 12, 16]
    assert build_plan(cfg).search.size() == 5 * 4 * 3 * 4


def test_a_stepped_float_range_reaches_its_max(make_cfg, tmp_path: Path) -> None:
    # keras-tuner counts (0.3 - 0.0) // 0.1 + 1 = 3 values: dropout {0.0 .. 0.3 step 0.1} never
    # tried 0.3 (its 4th value would be 0.30000000000000004, past max)
    keras = build_plan(
        make_cfg("model=keras_mlp", "search=grid", "model.space.dropout.max=0.3")
    ).search
    values = {p.name: list(p.values) for p in make_hyperparameters(keras.space).space}
    assert values["model__dropout"] == [0.0, 0.1, 0.2, 0.3]
    assert keras.grid_points() == 3 * 4 * 4 * 10 * 10
    default = build_plan(make_cfg("model=keras_mlp", "search=grid")).search  # the README's
    values = {p.name: list(p.values) for p in make_hyperparameters(default.space).space}
    assert values["model__dropout"] == [0.0, 0.1, 0.2]
    # every stepped float key, linear or log (a factor), searched by grid and random alike
    linear = ("model.space.alpha.min=0.05", "model.space.alpha.max=0.35",
              "model.space.alpha.step=0.05", "model.space.alpha.sampling=linear")  # fmt: skip
    ds = load_dataset(make_cfg("model=ridge").data)
    X, y = ds.X.iloc[:60], ds.y[:60]
    for name, extra in (("grid", ()), ("random", ("search.max_trials=40",))):
        plan = build_plan(make_cfg("model=ridge", f"search={name}", *linear, *extra))
        result = tune(
            plan.make_pipeline(), plan.search, X, y, splits=KFoldSplitter(3, seed=0).split(60),
            directory=tmp_path / name, project_name="outer_01",
        )  # fmt: skip
        reach = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35]
        assert sorted(set(result.trials["model__alpha"])) == reach, name
    log_space = ("model.space.alpha.min=3e-4", "model.space.alpha.max=0.3")
    hp = make_hyperparameters(build_plan(make_cfg("model=ridge", *log_space)).search.space)
    assert list(hp.space[0].values) == [3e-4, 3e-3, 3e-2, 0.3]


def test_a_grid_runs_a_range_without_step_as_its_10_values_in_order(
    make_cfg, tmp_path: Path
) -> None:
    # keras-tuner lists them from a set (1.0, 0.50, 0.032, 0.13, 2.0, ...) after the configured
    # default: 11 trials for a range the plan counted as 10, and no corner of the grid first
    plan = build_plan(make_cfg("model=ridge", "search=grid", "model.space.alpha.step=null"))
    ds = load_dataset(plan.data)
    result = tune(
        plan.make_pipeline(), plan.search, ds.X.iloc[:60], ds.y[:60],
        splits=KFoldSplitter(3, seed=0).split(60), directory=tmp_path, project_name="outer_01",
    )  # fmt: skip
    alphas = list(result.trials["model__alpha"])
    assert len(alphas) == plan.search.grid_points() == 10
    assert alphas == sorted(alphas) and 0.001 < alphas[0] < alphas[-1] < 1000
    # a sampling search still draws from the whole range
    from keras_tuner.engine.hyperparameters import Float

    hp = make_hyperparameters(build_plan(make_cfg("model=keras_mlp")).search.space)
    assert isinstance(next(p for p in hp.space if p.name == "model__l2"), Float)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.space.C.type=complex", "model.space.C: unknown type 'complex'"),
        ("model.space.epsilon.values=[]", "model.space.epsilon: `values` is empty"),
        ("model.space.C.min=5000", "model.space.C"),
    ],
)
def test_bad_space_names_the_key(make_cfg, override: str, message: str) -> None:
    cfg = make_cfg("model=svr", "search=grid", override)
    with pytest.raises(ConfigError, match=message):
        make_hyperparameters(search_space(cfg))


def test_null_entries_are_fixed_not_searched(make_cfg) -> None:
    cfg = make_cfg("model=keras_mlp", "model.space.units=null")
    assert "model__units" not in search_space(cfg)


def test_interrupted_search_resumes_from_its_directory(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("model=ridge", "search=random", "search.max_trials=4")
    ds = load_dataset(cfg.data)
    X, y = ds.X.iloc[:100], ds.y[:100]
    calls: list[int] = []

    def go(max_trials: int, directory: Path):
        cfg.search.max_trials = max_trials
        plan = build_plan(cfg)
        return tune(
            plan.make_pipeline(), plan.search, X, y,
            splits=KFoldSplitter(3, seed=0).split(len(y)), directory=directory,
            project_name="outer_01", on_trial_end=lambda: calls.append(1),
        )  # fmt: skip

    first = go(2, tmp_path / "a")  # "interrupted" after 2 of 4 trials
    assert len(calls) == 2 and len(first.trials) == 2
    calls.clear()
    resumed = go(4, tmp_path / "a")
    assert len(calls) == 2  # only the 2 missing trials ran
    assert len(resumed.trials) == 4
    calls.clear()
    fresh = go(4, tmp_path / "b")  # a new run directory starts afresh
    assert len(calls) == 4
    assert fresh.best_params == resumed.best_params


def test_a_seed_0_search_repeats(make_cfg, tmp_path: Path) -> None:
    # keras-tuner reads seed 0 as "no seed" (seed or random.randint(1, 10000)): seed=0 searches
    # tried other hyperparameters at every run
    cfg = make_cfg("model=ridge", "search=random", "search.max_trials=2", "seed=0")
    plan = build_plan(cfg)
    ds = load_dataset(cfg.data)
    X, y = ds.X.iloc[:60], ds.y[:60]

    def alphas(directory: Path) -> list[float]:
        result = tune(
            plan.make_pipeline(), plan.search, X, y, splits=KFoldSplitter(3, seed=0).split(60),
            directory=directory, project_name="outer_01",
        )  # fmt: skip
        return list(result.trials["model__alpha"])

    assert alphas(tmp_path / "a") == alphas(tmp_path / "b")
    for name in ("random", "bayesian", "hyperband"):  # each builds with it
        oracle = build_plan(make_cfg("model=keras_mlp", f"search={name}", "seed=0")).search
        assert oracle.make_oracle(make_hyperparameters(oracle.space)).seed == 2**32 - 1


def test_oracles_are_plain_config_targets(make_cfg) -> None:
    import keras_tuner as kt

    for name, cls in [
        ("grid", kt.oracles.GridSearchOracle),
        ("random", kt.oracles.RandomSearchOracle),
        ("bayesian", kt.oracles.BayesianOptimizationOracle),
        ("hyperband", kt.oracles.HyperbandOracle),
    ]:
        cfg = make_cfg(f"search={name}")
        oracle = instantiate(cfg.search.oracle, objective=kt.Objective("score", "min"))
        assert isinstance(oracle, cls)


def test_hyperband_takes_max_trials_and_counts_its_trials(make_cfg) -> None:
    plan = build_plan(make_cfg("model=keras_mlp", "search=hyperband", "search.oracle.max_epochs=9"))
    full = plan.search.size()  # every round of every bracket: 3 brackets of max_epochs 9, factor 3
    assert full == (9 + 3 + 1) + (5 + 2) + 3  # brackets 2, 1, 0 (successive halving)
    capped = build_plan(
        make_cfg("model=keras_mlp", "search=hyperband", "search.oracle.max_epochs=9",
                 "search.max_trials=4")
    )  # fmt: skip
    assert capped.search.size() == 4
    oracle = capped.search.make_oracle(make_hyperparameters(capped.search.space))
    assert oracle.max_trials == 4


def test_the_search_kind_is_declared_not_read_from_the_oracles_name(
    make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # is_hyperband / is_grid looked for "Hyperband" / "Grid" in search.oracle._target_: a
    # Hyperband oracle of the lab's own under another name was counted (and checked) as a
    # sampling search of 10 trials, and got no max_trials cap
    for name in ("grid", "random", "bayesian", "hyperband"):
        assert make_cfg(f"search={name}").search.kind == name  # each option declares its kind
    (tmp_path / "lab_oracles.py").write_text(
        "import keras_tuner as kt\n\nclass SuccessiveHalving(kt.oracles.HyperbandOracle):\n"
        "    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    own = ("model=keras_mlp", "search=hyperband", "search.oracle.max_epochs=9",
           "search.oracle._target_=lab_oracles.SuccessiveHalving")  # fmt: skip
    plan = build_plan(make_cfg(*own))
    assert plan.search.is_hyperband and not plan.search.is_grid
    assert plan.search.size() == (9 + 3 + 1) + (5 + 2) + 3
    capped = build_plan(make_cfg(*own, "search.max_trials=4")).search
    assert capped.make_oracle(make_hyperparameters(capped.space)).max_trials == 4
    with pytest.raises(ConfigError, match="search=hyperband: the model is not trained in epochs"):
        build_plan(make_cfg(*own[1:]))  # declared Hyperband: the default model (rfr) is refused
    with pytest.raises(ConfigError, match=r"search.kind=None: declare what search.oracle runs"):
        build_plan(make_cfg("model=ridge", "search=random", "~search.kind"))


@pytest.mark.parametrize("bad", ["search.max_trials=0", "search.max_trials=-3"])
def test_max_trials_below_one_is_refused(make_cfg, bad: str) -> None:
    with pytest.raises(ConfigError, match="search.max_trials"):
        build_plan(make_cfg("model=ridge", "search=random", bad))


def test_a_grid_cut_short_by_max_trials_says_so(make_cfg, caplog) -> None:
    # search=grid search.max_trials=3 ran the grid's first 3 points (C=0.1, gamma=0.001: one
    # corner) without a word, and the run's figures were those of a barely tuned model
    dataset = load_dataset(build_plan(make_cfg("model=svr")).data)
    with caplog.at_level("WARNING", logger="n2react.plan"):
        build_plan(make_cfg("model=svr", "search=grid", "search.max_trials=3")).validate(dataset)
        said = [r.getMessage() for r in caplog.records if r.name == "n2react.plan"]
        assert len(said) == 1 and "first 3 of the grid's 60 points" in said[0]
        caplog.clear()
        whole = [("search=grid",), ("search=grid", "search.max_trials=60")]
        for over in [*whole, ("search=random", "search.max_trials=3")]:
            build_plan(make_cfg("model=svr", *over)).validate(dataset)
        assert not [r for r in caplog.records if r.name == "n2react.plan"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # keras-tuner sampled without end (random, Bayesian) or looped over hyperband_iterations=0
        (("search=random", "search.max_trials=null"), "search.max_trials=null"),
        (("search=bayesian", "search.max_trials=null"), "search.max_trials=null"),
        (("search=hyperband", "search.oracle.hyperband_iterations=0"), "hyperband_iterations=0"),
        # 0 random starts became 3 per dimension; -1 and max_epochs=0 failed mid-search
        (("search=bayesian", "search.oracle.num_initial_points=0"), "num_initial_points=0"),
        (("search=bayesian", "search.oracle.num_initial_points=-1"), "num_initial_points=-1"),
        (("search=hyperband", "search.oracle.max_epochs=0"), "search.oracle.max_epochs=0"),
        # refused by keras-tuner, but only once the MLflow run had started
        (("search=hyperband", "search.oracle.factor=1"), "factor"),
        # a step of 0 divided by zero while sampling; a negative one sampled nonsense
        (("search=random", "+model.space.n_layers.step=0"), "model.space.n_layers: step=0"),
        (("search=random", "model.space.dropout.step=-0.1"), "model.space.dropout: step=-0.1"),
        (("search=grid", "+model.space.l2.step=1"), "model.space.l2: step=1: must be > 1"),
    ],
)
def test_degenerate_oracle_and_step_settings_are_refused(make_cfg, overrides, message) -> None:
    cfg = make_cfg("model=keras_mlp", "search.max_trials=2", *overrides)
    dataset = load_dataset(build_plan(make_cfg("model=keras_mlp")).data)
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_plan(cfg).validate(dataset)


def test_a_bayesian_search_of_only_random_starts_says_so(make_cfg, caplog) -> None:
    # search=bayesian search.max_trials=2 ran 2 of its 5 random starts: a random search
    dataset = load_dataset(build_plan(make_cfg("model=ridge")).data)
    with caplog.at_level("WARNING", logger="n2react.preflight"):
        over = ("model=svr", "search=bayesian")
        build_plan(make_cfg(*over, "search.max_trials=2")).validate(dataset)
        said = [r.getMessage() for r in caplog.records if r.name == "n2react.preflight"]
        assert len(said) == 1 and "random starts (num_initial_points 5)" in said[0], said
        caplog.clear()
        build_plan(make_cfg(*over, "search.max_trials=6")).validate(dataset)
        assert not [r for r in caplog.records if r.name == "n2react.preflight"]


def test_an_empty_space_says_that_nothing_is_searched(make_cfg, caplog) -> None:
    fixed = [
        f"model.space.{k}=null" for k in ("n_layers", "units", "dropout", "l2", "learning_rate")
    ]
    cfg = make_cfg("model=keras_mlp", "search=random", "search.max_trials=2", *fixed)
    with caplog.at_level("WARNING", logger="n2react.plan"):
        plan = build_plan(cfg)
        plan.validate(load_dataset(plan.data))
    said = [r.getMessage() for r in caplog.records if r.name == "n2react.plan"]
    assert len(said) == 1 and "search=random: the search space is empty" in said[0], said


def test_a_keras_setting_the_model_refuses_names_its_key(make_cfg) -> None:
    # it said "a setting of the pipeline is not usable: l2 must be >= 0", or (l2=-1) nothing
    plan = build_plan(make_cfg("model=keras_mlp", "model.estimator.l2=-1"))
    with pytest.raises(ConfigError, match=re.escape("model.estimator.l2: l2 must be >= 0, got -1")):
        plan.validate(load_dataset(plan.data))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # was "a setting of the pipeline is not usable: KerasMLPRegressor needs at least 2
        # samples to carve out a validation set, got n_samples=40" (the fit checked the rows
        # before its parameters)
        ("model.estimator.validation_fraction=1.0",
         "model.estimator.validation_fraction: validation_fraction must be in [0, 1), got 1.0"),
        # 0 was accepted, read as "off" by the yaml's null-or-number, yet it cut the learning
        # rate after every epoch without improvement (as 1 does)
        ("model.estimator.reduce_lr_patience=0",
         "model.estimator.reduce_lr_patience: reduce_lr_patience must be null (off) or >= 1, "
         "got 0"),
        ("model.estimator.reduce_lr_patience=-2",
         "model.estimator.reduce_lr_patience: reduce_lr_patience must be null (off) or >= 1, "
         "got -2"),
        ("model.estimator.patience=0", "model.estimator.patience: patience must be >= 1, got 0"),
        # was "a setting of the pipeline is not usable: Could not interpret activation ..."
        ("model.estimator.activation=relux",
         "model.estimator.activation: activation must be a Keras activation name, got 'relux'"),
    ],
)  # fmt: skip
def test_a_keras_setting_refused_before_the_data_names_its_key(
    make_cfg, override: str, message: str
) -> None:
    plan = build_plan(make_cfg("model=keras_mlp", override))
    with pytest.raises(ConfigError, match=re.escape(message)):
        plan.validate(load_dataset(plan.data))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("model=keras_mlp", "model.space.dropout.max=1.0"),
         "model.space.dropout.max=1.0: dropout must be in [0, 1)"),
        (("model=keras_mlp", "model.space.n_layers.min=-1"),
         "model.space.n_layers.min=-1: n_layers must be >= 0"),
        (("model=keras_mlp", "model.space.units.values=[0,32]"),
         "model.space.units.values holds 0: units must be >= 1"),
        (("model=svr", "model.space.epsilon.values=[-0.1,0.1]"),
         "model.space.epsilon.values holds -0.1: The 'epsilon' parameter of SVR must be"),
    ],
)  # fmt: skip
def test_a_space_reaching_values_the_model_refuses_fails_before_training(
    make_cfg, overrides: tuple[str, ...], message: str
) -> None:
    # the search failed in whichever trial first drew such a value, minutes into the run (and
    # a short search that drew none finished as if the space were fine); checked without a fit
    cfg = make_cfg(*overrides, "search=random", "search.max_trials=2")
    plan = build_plan(cfg)
    with pytest.raises(ConfigError, match=re.escape(message)):
        plan.validate(load_dataset(plan.data))


def _tuned_ridge() -> TunedPipeline:
    """The run's pipeline (median imputer, standard scaler, ridge) tuned by a 2-trial random
    search over alpha on 3 inner folds, its search state in a temporary folder per fit."""
    factory = PipelineFactory(
        imputer={"_target_": "sklearn.impute.SimpleImputer", "strategy": "median"},
        model={"_target_": "sklearn.linear_model.Ridge"},
        scaler={"_target_": "sklearn.preprocessing.StandardScaler"},
    )
    space = {"model__alpha": {"type": "float", "min": 0.01, "max": 100.0, "sampling": "log"}}
    oracle = {"_target_": "keras_tuner.oracles.RandomSearchOracle", "max_trials": 2, "seed": 1}
    spec = SearchSpec(space, oracle, max_trials=2, kind="random")  # keras-tuner: seed 0 = none
    return TunedPipeline(factory, spec, KFoldSplitter(3, seed=0))


# Every scikit-learn check passes (~20 s), none listed as an expected failure. They failed before
# fit validated its input (n_features_in_, empty data, y=None, lists of rows) and predict called
# check_is_fitted; repeated fits also resumed one another's search from a shared folder.
@parametrize_with_checks([_tuned_ridge()])
def test_sklearn_conformance(estimator, check) -> None:
    check(estimator)


def test_tuned_pipeline_takes_the_imputers_nan_but_no_infinity() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(30, 3)), columns=["a", "b", "c"])
    y = X["a"].to_numpy() - 12.0
    X.iloc[3, 1] = np.nan  # a missing descriptor: the imputer's to fill, in fit and predict
    est = _tuned_ridge().fit(X, y)
    assert list(est.feature_names_in_) == ["a", "b", "c"] and est.n_features_in_ == 3
    assert np.isfinite(est.predict(X)).all() and len(est.search_.trials) == 2
    X.iloc[5, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        _tuned_ridge().fit(X, y)
    with pytest.raises(ValueError, match="infinity"):
        est.predict(X)


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        # the default Hyperband (max_epochs 300, factor 3) starts with 284 trials of 2 epochs:
        # max_trials=20 stopped there and the folds' and final models were refits of 2 epochs,
        # without a word
        (("search.max_trials=20",),
         "search=hyperband: search.max_trials=20 ends inside Hyperband's first round (284 "
         "trials of 2 epochs), before any trial is promoted: every trial, and the refit of the "
         "best, trains 2 epochs"),
        (("search.max_trials=20", "search.oracle.max_epochs=9"), None),  # 9 then 3 promoted
        ((), None),  # the whole Hyperband run
    ],
)  # fmt: skip
def test_hyperband_cut_by_max_trials_before_any_promotion_says_so(
    make_cfg, caplog, overrides: tuple[str, ...], said: str | None
) -> None:
    plan = build_plan(make_cfg("model=keras_mlp", "search=hyperband", *overrides))
    with caplog.at_level("WARNING", logger="n2react.plan"):
        plan.validate(load_dataset(plan.data))
    lines = [r.getMessage() for r in caplog.records if "Hyperband's first round" in r.getMessage()]
    assert lines == ([] if said is None else [lines[0]]) and (said is None or said in lines[0])


@pytest.mark.parametrize(
    ("overrides", "level", "said"),
    [
        # the default Keras space is 3 x 4 x 3 x 10 x 10 = 3600 points, searched by each of 10
        # outer folds, 45 nested-validation refits and the final model: nothing said so
        (("model=keras_mlp",), "WARNING",
         "search=grid: 3600 points per search (model.space.n_layers 3 x model.space.units 4 x "
         "model.space.dropout 3 x model.space.l2 10 x model.space.learning_rate 10), 201600 "
         "trials in all (56 searches: 10 outer folds, 45 nested validation refits, the final "
         "model); fix entries (model.space.<name>=null)"),
        (("model=svr", "cv.outer_folds=2"), "INFO",
         "search=grid: 60 points per search (model.space.C 5 x model.space.gamma 4 x "
         "model.space.epsilon 3), 180 trials in all (3 searches: 2 outer folds, the final "
         "model)"),
    ],
)  # fmt: skip
def test_grid_search_says_its_size_per_search_and_in_all(
    make_cfg, caplog, overrides: tuple[str, ...], level: str, said: str
) -> None:
    plan = build_plan(make_cfg("search=grid", *overrides))
    with caplog.at_level("INFO", logger="n2react.preflight"):
        plan.validate(load_dataset(plan.data))
    lines = [r for r in caplog.records if r.getMessage().startswith("search=grid: ")]
    assert len(lines) == 1 and lines[0].levelname == level and said in lines[0].getMessage()


def test_the_tuned_pipeline_refits_its_best_on_every_row_it_is_given() -> None:
    # after the search, the chosen parameters are refitted on the whole outer training fold:
    # the same pipeline with those parameters fitted on all the rows predicts to the bit alike
    # (a refit on an inner fold's training rows, or any other subset, would not)
    from sklearn.base import clone

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    y = 2.0 * X["a"].to_numpy() - X["b"].to_numpy() + rng.normal(scale=0.5, size=40)
    est = _tuned_ridge().fit(X, y)
    assert est.search_.best_params  # the search chose something to refit with
    expected = clone(est.make_pipeline()).set_params(**est.search_.best_params).fit(X, y)
    assert np.array_equal(est.predict(X), expected.predict(X))
