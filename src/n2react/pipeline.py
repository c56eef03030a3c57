"""Build the per-fold pipeline (impute -> scale -> select -> model) and its search space."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from sklearn.pipeline import Pipeline

from n2react.errors import ConfigError

#: Pipeline step names; a search-space key `C` of the model becomes the parameter `model__C`.
STEP_OF_GROUP = {"imputer": "impute", "scaler": "scale", "selector": "select", "model": "model"}


def _build(node: Any, key: str) -> Any:
    try:
        return instantiate(node, _convert_="all")
    except InstantiationException as exc:
        msg = str(exc).strip().splitlines()
        raise ConfigError(f"{key}: cannot build it: {msg[-1] if msg else exc}") from exc


def build_pipeline(cfg: DictConfig) -> Pipeline:
    """A fresh, unfitted pipeline for one fold; every fitted piece of the model lives in it."""
    steps: list[tuple[str, Any]] = [("impute", _build(cfg.imputer, "imputer"))]
    if cfg.scaler.get("step") is not None:
        steps.append(("scale", _build(cfg.scaler.step, "scaler.step")))
    if cfg.selector.get("step") is not None:
        steps.append(("select", _build(cfg.selector.step, "selector.step")))
    steps.append(("model", _build(cfg.model.estimator, "model.estimator")))
    return Pipeline(steps)


def search_space(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """The search space as pipeline parameter name -> spec (from model.space and selector.space)."""
    space: dict[str, dict[str, Any]] = {}
    for group, step in (("model", "model"), ("selector", "select")):
        node = cfg[group]
        if group == "selector" and node.get("step") is None:
            continue
        raw = node.get("space") or {}
        for key, spec in raw.items():
            if spec is None:  # fixed (e.g. swept by Hydra instead)
                continue
            if not isinstance(spec, Mapping | DictConfig):
                raise ConfigError(f"{group}.space.{key}: expected a mapping with a `type`")
            space[f"{step}__{key}"] = dict(OmegaConf.to_container(spec, resolve=True))
    return space
