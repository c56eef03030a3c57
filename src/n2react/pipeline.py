"""The per-fold pipeline, built fresh from plain config nodes.

impute -> features (e.g. interactions) -> scale -> select -> model (optionally pairwise-wrapped).
Every fitted piece lives in the pipeline, so a fresh one per fold keeps test rows out of all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from sklearn.pipeline import Pipeline

from n2react.errors import ConfigError

Node = Mapping[str, Any]


def _build(node: Node, key: str, **kwargs: Any) -> Any:
    try:
        return instantiate(dict(node), **kwargs, _convert_="all")
    except InstantiationException as exc:
        msg = str(exc).strip().splitlines()
        raise ConfigError(f"{key}: cannot build it: {msg[-1] if msg else exc}") from exc


@dataclass(frozen=True)
class PipelineFactory:
    """Plain (resolved) config nodes of each step; calling it builds a fresh, unfitted pipeline."""

    imputer: Node
    model: Node
    features: Node | None = None
    scaler: Node | None = None
    selector: Node | None = None
    wrapper: Node | None = None

    def __call__(self) -> Pipeline:
        steps: list[tuple[str, Any]] = [("impute", _build(self.imputer, "imputer"))]
        for name, node, key in (
            ("features", self.features, "features.step"),
            ("scale", self.scaler, "scaler.step"),
            ("select", self.selector, "selector.step"),
        ):
            if node is not None:
                steps.append((name, _build(node, key)))
        if self.scaler is not None:  # scikit-learn's scalers take their ranges as tuples only
            ranges = {k: tuple(v) for k, v in self.scaler.items() if isinstance(v, list | tuple)}
            dict(steps)["scale"].set_params(**ranges)
        model = _build(self.model, "model.estimator")
        if self.wrapper is not None:
            model = _build(self.wrapper, "pairwise.wrapper", base=model)
        steps.append(("model", model))
        return Pipeline(steps)

    @property
    def model_prefix(self) -> str:
        """Pipeline-parameter prefix of the model's own parameters (through a pairwise wrapper)."""
        return "model__base__" if self.wrapper is not None else "model__"


def search_space(
    factory: PipelineFactory, model_space: Node | None, selector_space: Node | None
) -> dict[str, dict[str, Any]]:
    """The search space as pipeline parameter name -> spec (model.space and selector.space)."""
    space: dict[str, dict[str, Any]] = {}
    groups = [("model", factory.model_prefix[:-2], model_space)]
    if factory.selector is not None:
        groups.append(("selector", "select", selector_space))
    for group, step, raw in groups:
        for key, spec in (raw or {}).items():
            if spec is None:  # fixed (e.g. swept by Hydra instead)
                continue
            if not isinstance(spec, Mapping):
                raise ConfigError(f"{group}.space.{key}: expected a mapping with a `type`")
            space[f"{step}__{key}"] = dict(spec)
    return space


def config_key(param: str) -> str:
    """The config key a pipeline parameter comes from (for messages): model__C -> model.space.C."""
    return (
        param.replace("model__base__", "model.space.")
        .replace("model__", "model.space.")
        .replace("select__", "selector.space.")
    )
