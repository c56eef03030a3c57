"""The check of the callbacks a config sets (``config_callback_problem``, run on the config
Hydra composes for ``python -m train``), on configs composed with Hydra's compose API: a null
callback a user's experiment adds beside the project's own callbacks is refused by its name; a
callback given as an interpolation (a mapping once resolved) is left to Hydra."""

from __future__ import annotations

from pathlib import Path

from n2react.compose import compose_config
from n2react.override_errors import config_callback_problem


def _composed(tmp_path: Path, callbacks: str) -> object:
    """The config of ``--config-dir <tmp>/conf experiment=mine``, whose experiment sets
    ``callbacks`` under hydra.callbacks."""
    conf = tmp_path / "conf" / "experiment"
    conf.mkdir(parents=True)
    text = f"# @package _global_\nhydra:\n  callbacks:\n    {callbacks}\n"
    (conf / "mine.yaml").write_text(text)
    overrides = [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "experiment=mine"]
    return compose_config(overrides, return_hydra_config=True)


def test_a_null_callback_after_the_projects_own_is_named(tmp_path: Path) -> None:
    # the project's callbacks (leaderboard, backend_check: mappings) come first in the config
    cfg = _composed(tmp_path, "mine: null")
    line = config_callback_problem(cfg)
    assert line is not None and line.startswith("hydra.callbacks.mine: null is not a callback")
    assert line.endswith('leave mine out of that config and give "~hydra.callbacks.mine"')


def test_a_callback_given_as_an_interpolation_is_left_to_hydra(tmp_path: Path) -> None:
    cfg = _composed(tmp_path, "check: ${hydra.callbacks.backend_check}")
    assert config_callback_problem(cfg) is None
