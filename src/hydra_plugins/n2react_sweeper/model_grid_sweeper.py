"""A Hydra sweeper that adds the chosen model's own sweep axes (``model.sweep``) to the grid."""

from __future__ import annotations

import logging
from typing import Any

# BasicSweeper is Hydra's own grid sweeper (cartesian product, batching, `hydra.sweeper.params`);
# Hydra exposes it only under hydra._internal, with no public equivalent to subclass. Rewriting it
# on the public Sweeper API would copy ~150 lines of Hydra; hydra-core is pinned to 1.3.x in
# pyproject.toml, and tests/test_cli.py's sweep test fails loudly if the import ever moves.
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class ModelGridSweeper(BasicSweeper):
    """Hydra's basic (grid) sweeper plus ``model.sweep``: {override key: "v1,v2,..."}.

    Each model config lists the values of the hyperparameters worth sweeping, so
    ``+sweep=grid`` means the same thing for every model. When the model itself is swept
    (``model=svr,rfr``) the per-model axes are left out, since they differ between models.
    """

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.params = self.grid_params(
            dict(self.params or {}), config, list(config.hydra.overrides.task), announce=True
        )

    @staticmethod
    def grid_params(
        params: dict[str, Any], config: DictConfig, task: list[str], announce: bool = False
    ) -> dict[str, Any]:
        """``params`` plus the model's own ``sweep:`` axes (the model's entries win, e.g.
        keras_mlp fixes the scaler and sweeps its depth), unless the model itself is swept;
        also what :func:`n2react.sweep_plan.planned_jobs` reads a saved sweep with."""
        sweeping_model = any(
            str(a).split("=", 1)[0].lstrip("+~") == "model" and "," in str(a) for a in task
        )
        extra = OmegaConf.select(config, "model.sweep")
        if extra is None or sweeping_model:
            if sweeping_model and announce:
                log.info("model is swept: its own sweep axes (model.sweep) are not added")
            return params
        out = dict(params)
        for key, values in OmegaConf.to_container(extra, resolve=True).items():
            out[str(key)] = str(values)
        return out
