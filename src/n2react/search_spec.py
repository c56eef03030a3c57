"""The search as configured: :class:`SearchSpec`, read once from the ``search`` config node.

What a search is (its space, oracle, objective, trial budget and kind) and what follows from it
without running a trial: the keras-tuner oracle it builds, how many trials it runs, a trial's
values as pipeline parameters. Running the search by inner cross-validation is
:mod:`n2react.search`'s job (which re-exports these names).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from n2react import tuner_internals
from n2react.backend import import_quietly
from n2react.distributed import Distributed
from n2react.errors import ConfigError
from n2react.hyperparameters import make_hyperparameters
from n2react.metrics import MAXIMIZE
from n2react.pipeline import config_key

__all__ = ["KINDS", "SEED_ZERO", "SearchSpec"]

#: The oracle seed that stands for ``seed=0``: keras-tuner takes 0 for "no seed" (``seed or
#: random.randint(1, 10000)``), so that seed=0 searches would not repeat; the largest seed NumPy
#: takes instead (shared with seed=4294967295 only).
SEED_ZERO = 2**32 - 1

#: What a search config declares its oracle runs (``search.kind``): a grid enumerates the space
#: (its size is the grid's), random and Bayesian searches sample it (they need max_trials), a
#: Hyperband search trains in epoch budgets (a model trained in epochs only).
KINDS = ("grid", "random", "bayesian", "hyperband")


@dataclass(frozen=True)
class SearchSpec:
    """The search, read once from the ``search`` config node.

    ``space`` maps pipeline parameter names (``model__C``, ``select__k``) to specs; ``oracle`` is
    the plain ``_target_`` node of a keras-tuner oracle (None: no search); ``epochs_param`` is
    the pipeline parameter a Hyperband budget sets (None: the model is not trained in epochs);
    ``kind`` is what the search config declares its oracle runs (``search.kind``, one of
    :data:`KINDS`): how many trials a grid or a Hyperband search has and what it needs follow
    from it, never from the oracle's class name.
    """

    space: Mapping[str, Mapping[str, Any]]
    oracle: Mapping[str, Any] | None
    objective: str = "rmse"
    max_trials: int | None = None
    epochs_param: str | None = None
    #: ``search.distributed`` (None: the search runs in this process only)
    distributed: Distributed | None = None
    kind: str | None = None

    @classmethod
    def from_config(
        cls, node: Mapping[str, Any], space: Mapping[str, Mapping[str, Any]], epochs: str | None
    ) -> SearchSpec:
        objective = str(node.get("objective", "rmse"))
        if objective not in ("r", "rmse", "mae", "r2"):
            raise ConfigError(f"search.objective: {objective!r} is not one of r, rmse, mae, r2")
        max_trials = node.get("max_trials")
        if max_trials is not None and (not isinstance(max_trials, int) or max_trials < 1):
            raise ConfigError(f"search.max_trials={max_trials!r}: expected a whole number >= 1")
        oracle = node.get("oracle")
        distributed = Distributed.from_config(node.get("distributed"))
        oracle = dict(oracle) if oracle else None
        kind = node.get("kind")
        if oracle is not None and kind not in KINDS:
            raise ConfigError(
                f"search.kind={kind!r}: declare what search.oracle runs, one of {', '.join(KINDS)}"
            )
        kind = kind if oracle is not None else None
        spec = cls(dict(space), oracle, objective, max_trials, epochs, distributed, kind)
        if spec.is_hyperband and spec.active and epochs is None:
            raise ConfigError(
                "search=hyperband: the model is not trained in epochs (no max_epochs); "
                "use it with model=keras_mlp, or pick search=grid|random|bayesian"
            )
        return spec

    @property
    def active(self) -> bool:
        return self.oracle is not None and bool(self.space)

    @property
    def is_hyperband(self) -> bool:
        return self.kind == "hyperband"

    @property
    def is_grid(self) -> bool:
        return self.kind == "grid"

    def check(self, pipeline: Pipeline) -> None:
        """Fail before training when the space cannot be translated or set on the pipeline."""
        if self.active:
            make_hyperparameters(self.space, pipeline.get_params())
            unknown = [p for p in self.space if p not in pipeline.get_params()]
            if unknown:
                raise ConfigError(f"{config_key(unknown[0])}: the model has no such parameter")

    def make_oracle(self, hp: Any) -> Any:
        """A fresh keras-tuner oracle over ``hp`` (Hyperband gets ``max_trials`` too)."""
        from hydra.utils import instantiate

        kt = import_quietly("keras_tuner")
        direction = "max" if self.objective in MAXIMIZE else "min"
        node = dict(self.oracle or {})
        if node.get("seed") == 0:  # keras-tuner reads seed 0 as none (a random seed each time)
            node["seed"] = SEED_ZERO
        try:
            oracle = instantiate(
                node,
                objective=kt.Objective("score", direction=direction),
                hyperparameters=hp,
                _convert_="all",
            )
        except Exception as exc:
            raise ConfigError(
                f"search.oracle: cannot build it: {str(exc).splitlines()[-1]}"
            ) from exc
        if self.is_hyperband and self.max_trials:
            oracle.max_trials = int(self.max_trials)  # the base Oracle stops at max_trials
        return oracle

    def size(self) -> int:
        """How many trials the search runs at most (for progress bars)."""
        if not self.active:
            return 0
        if self.is_grid:
            grid = self.grid_points()
            return min(grid, self.max_trials) if self.max_trials else grid
        if self.is_hyperband:
            total = _hyperband_trials(self.make_oracle(make_hyperparameters(self.space)))
            return min(total, self.max_trials) if self.max_trials else total
        return int(self.max_trials) if self.max_trials else 10

    def hyperband_first_round(self) -> tuple[int, int]:
        """(trials, epochs each) of the round a Hyperband search starts with (none promoted
        before all of them have run)."""
        oracle = self.make_oracle(make_hyperparameters(self.space))
        return tuner_internals.hyperband_first_round(oracle)

    def grid_points(self) -> int:
        """How many points the whole grid of the space has."""
        hp = make_hyperparameters(self.space, grid=True)
        return int(np.prod([len(list(p.values)) for p in hp.space]))

    def pipeline_params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A trial's values as pipeline parameters; Hyperband's epoch budget becomes max_epochs."""
        params = {k: v for k, v in values.items() if not k.startswith("tuner/")}
        if "tuner/epochs" in values and self.epochs_param is not None:
            params[self.epochs_param] = int(values["tuner/epochs"])
        return params


def _hyperband_trials(oracle: Any) -> int:
    """Trials of one full Hyperband run: every round of every bracket, times its iterations."""
    n = tuner_internals.hyperband_trials(oracle)
    its = oracle.hyperband_iterations
    return int(n * (its if math.isfinite(its) else 1))
