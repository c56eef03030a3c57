"""The pipeline steps' config nodes (``imputer``, ``features.step``, ``scaler.step``,
``selector.step``) as a user overrides them: a value that is no config node, a scaler's range
given as a list (the only form the command line has), a range that cannot work. Each is refused
in one line naming the key, or used."""

from __future__ import annotations

import pytest

from n2react.data import load_dataset
from n2react.errors import ConfigError
from n2react.plan import build_plan

QUICK = ("model=ridge", "cv.outer_folds=3", "final_model=false", "explain=false", "tracking=none")


@pytest.mark.parametrize("key", ["scaler.step", "selector.step", "features.step", "imputer"])
def test_a_step_that_is_no_config_node_is_one_line(key: str, make_cfg) -> None:
    # scaler.step=hello was a traceback ("Input cfg is not an OmegaConf config object")
    with pytest.raises(ConfigError, match=f"^{key}='hello': expected a config node"):
        build_plan(make_cfg(*QUICK, f"{key}=hello"))


@pytest.mark.parametrize(
    ("over", "param", "value"),
    [
        (("scaler=minmax", "+scaler.step.feature_range=[-1,1]"), "feature_range", (-1, 1)),
        (("scaler=robust", "+scaler.step.quantile_range=[10,90]"), "quantile_range", (10, 90)),
    ],
)
def test_a_scaler_range_given_as_a_list_is_used(over, param, value, make_cfg) -> None:
    # scikit-learn takes these ranges as tuples only: the list the command line gives was
    # refused ("must be an instance of 'tuple'"), so no range could be set at all
    plan = build_plan(make_cfg(*QUICK, *over))
    dataset = load_dataset(plan.data)
    plan.validate(dataset)
    pipeline = plan.make_pipeline()
    assert pipeline.named_steps["scale"].get_params()[param] == value
    pipeline.fit(dataset.X, dataset.y)


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        (("scaler=minmax", "+scaler.step.feature_range=[1,0]"), "scaler.step: Minimum of"),
        (("scaler=robust", "+scaler.step.quantile_range=[90,10]"), "scaler.step: Invalid"),
        # chi2 needs non-negative inputs: the standard scaler's are not
        (
            ("selector=kbest", "selector.step.score_func.path=sklearn.feature_selection.chi2"),
            "selector.step: Input X must be non-negative",
        ),
    ],
)
def test_a_step_that_cannot_fit_is_named(over, expected: str, make_cfg) -> None:
    # it was "a setting of the pipeline is not usable: ...", naming no key
    plan = build_plan(make_cfg(*QUICK, *over))
    with pytest.raises(ConfigError) as err:
        plan.validate(load_dataset(plan.data))
    assert str(err.value).startswith(expected), str(err.value)
