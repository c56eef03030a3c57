"""Build the per-fold pipeline and its search space.

impute -> features (e.g. interactions) -> scale -> select -> model (optionally pairwise-wrapped).
Every fitted piece lives in the pipeline, so a fresh one per fold keeps test rows out of all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from sklearn.pipeline import Pipeline

from n2react.errors import ConfigError


def _build(node: Any, key: str) -> Any:
    try:
        return instantiate(node, _convert_="all")
    except InstantiationException as exc:
        msg = str(exc).strip().splitlines()
        raise ConfigError(f"{key}: cannot build it: {msg[-1] if msg else exc}") from exc


def build_pipeline(cfg: DictConfig) -> Pipeline:
    """A fresh, unfitted pipeline for one fold; every fitted piece of the model lives in it."""
    steps: list[tuple[str, Any]] = [("impute", _build(cfg.imputer, "imputer"))]
    features = cfg.get("features")
    if features is not None and features.get("step") is not None:
        steps.append(("features", _build(features.step, "features.step")))
    if cfg.scaler.get("step") is not None:
        steps.append(("scale", _build(cfg.scaler.step, "scaler.step")))
    if cfg.selector.get("step") is not None:
        steps.append(("select", _build(cfg.selector.step, "selector.step")))
    model = _build(cfg.model.estimator, "model.estimator")
    wrapper = cfg.get("pairwise", {}).get("wrapper")
    if wrapper is not None:
        model = _build_wrapper(wrapper, model)
    steps.append(("model", model))
    return Pipeline(steps)


def _build_wrapper(node: Any, base: Any) -> Any:
    try:
        return instantiate(node, base=base, _convert_="all")
    except InstantiationException as exc:
        msg = str(exc).strip().splitlines()
        raise ConfigError(f"pairwise.wrapper: cannot build it: {msg[-1] if msg else exc}") from exc


def model_prefix(cfg: DictConfig) -> str:
    """Pipeline-parameter prefix of the model's own parameters (through a pairwise wrapper)."""
    wrapped = cfg.get("pairwise", {}).get("wrapper") is not None
    return "model__base__" if wrapped else "model__"


def search_space(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """The search space as pipeline parameter name -> spec (from model.space and selector.space)."""
    space: dict[str, dict[str, Any]] = {}
    for group, step in (("model", model_prefix(cfg)[:-2]), ("selector", "select")):
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
