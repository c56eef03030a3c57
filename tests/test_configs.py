"""Every option under conf/ composes, builds with `_target_`, fits, and has a valid space."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

from n2react.data import load_dataset
from n2react.plan import build_plan
from n2react.search import make_hyperparameters

CONF = Path(__file__).resolve().parents[1] / "conf"
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
SELECTORS = sorted(p.stem for p in (CONF / "selector").glob("*.yaml"))
SCALERS = sorted(p.stem for p in (CONF / "scaler").glob("*.yaml"))


def test_contract_options_exist() -> None:
    assert {"svr", "rfr", "gbr", "extra_trees", "ridge", "keras_mlp"} <= set(MODELS)
    assert {"none", "kbest", "rfe", "rfe_vote"} <= set(SELECTORS)
    assert {"none", "standard", "minmax", "robust"} <= set(SCALERS)
    searches = {p.stem for p in (CONF / "search").glob("*.yaml")}
    assert {"none", "grid", "random", "bayesian", "hyperband"} <= searches
    assert {"auto", "cpu", "gpu"} <= {p.stem for p in (CONF / "device").glob("*.yaml")}


def test_the_readme_says_where_features_interactions_is_refused() -> None:
    # the README's option table offered features=interactions everywhere; the run refuses it on
    # data that already holds the products (data.holds_products) and on a single descriptor
    readme = (CONF.parent / "README.md").read_text(encoding="utf-8")
    (row,) = [line for line in readme.splitlines() if line.startswith("| `features` |")]
    holding = [
        p.stem for p in (CONF / "data").glob("*.yaml") if "holds_products: true" in p.read_text()
    ]
    assert holding and all(f"`data={name}`" in row for name in holding), row
    assert "data.holds_products" in row and "single descriptor" in row, row


@pytest.mark.parametrize("model", MODELS)
def test_each_model_builds_fits_and_has_a_valid_space(make_cfg, model: str) -> None:
    over = ["model.estimator.max_epochs=20"] if model == "keras_mlp" else []
    cfg = make_cfg(f"model={model}", "selector=kbest", *over)
    ds = load_dataset(cfg.data)
    plan = build_plan(cfg)
    pipe = plan.make_pipeline()
    clone(pipe).fit(ds.X.iloc[:60], ds.y[:60])
    pred = pipe.fit(ds.X.iloc[:60], ds.y[:60]).predict(ds.X.iloc[60:70])
    assert np.isfinite(pred).all() and pred.shape == (10,)
    space = plan.search.space
    assert space, f"{model} has no search space"
    hp = make_hyperparameters(space, pipe.get_params())
    pipe.set_params(**{p.name: p.default for p in hp.space})  # every name is a real parameter
    assert "sweep" in cfg.model, f"{model} lists no values for +sweep=grid"


def test_every_row_of_the_readme_model_table_composes(make_cfg) -> None:
    """benchmarks/model_table.py regenerates the README table: each of its rows must compose."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "model_table", CONF.parent / "benchmarks" / "model_table.py"
    )
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    assert len(table.ROWS) >= 10
    for _label, overrides in table.ROWS:
        cfg = make_cfg(*overrides.split())  # a bad row fails here, naming its override
        build_plan(cfg).make_pipeline()


def test_write_readme_leaves_the_readme_whole_when_writing_fails(tmp_path: Path) -> None:
    """benchmarks/*.py --write-readme truncated README.md before writing it (Path.write_text):
    a failure part-way (here a row that cannot be encoded) left it empty. It is written to a
    temporary file and renamed, so the README stays as it was."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "model_table", CONF.parent / "benchmarks" / "model_table.py"
    )
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    readme = tmp_path / "README.md"
    before = f"# n2react ±\n{table.BEGIN}\nold rows\n{table.END}\ntail σ\n"
    readme.write_text(before, encoding="utf-8")
    label = table.ROWS[0][0]
    with pytest.raises(UnicodeEncodeError):
        table.write_readme({label: f"| {label} | \ud800 |"}, readme)  # a lone surrogate
    assert readme.read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]  # no temporary left
    table.write_readme({label: f"| {label} | `new` |"}, readme)
    assert f"| {label} | `new` |" in readme.read_text(encoding="utf-8")


def test_compose_config_is_the_project_config(tmp_path) -> None:
    from n2react.compose import compose_config, config_dir

    assert config_dir() == (Path(__file__).resolve().parents[1] / "conf").resolve()
    cfg = compose_config(["model=gbr"], {"progress": False, "tracking.uri": "sqlite:///x.db"})
    assert cfg.model.name == "gbr" and cfg.progress is False
    assert cfg.tracking.uri == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model=nosuchmodel"], "model=nosuchmodel: no such option (choose from anchored"),
        (["cv.outerfolds=3"], "cv.outerfolds: no such key (cv has: outer_folds"),
        (["--help"], "cannot parse override '--help'"),
    ],
)
def test_compose_config_names_a_bad_override_in_one_line(overrides, expected: str) -> None:
    """A benchmark or notebook gets the error train reports, as a ConfigError, not Hydra's."""
    from n2react.compose import compose_config
    from n2react.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        compose_config(overrides)
    assert expected in str(err.value) and "\n" not in str(err.value)
