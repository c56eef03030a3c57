"""The search space of ``conf/model/*.yaml`` (``model.space``, ``selector.space``) as keras-tuner
hyperparameters: one translation for every oracle (grid, random, Bayesian, Hyperband) and every
model; a range or choice keras-tuner cannot take is one ConfigError naming its key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from n2react.backend import import_quietly
from n2react.errors import ConfigError
from n2react.pipeline import config_key


def _default_for(spec: Mapping[str, Any], current: Any) -> Any:
    """The pipeline's configured value, when the hyperparameter can take it."""
    t = spec.get("type")
    if current is None or isinstance(current, bool) != (t == "bool"):
        return None
    if t == "choice":
        return current if current in list(spec.get("values", [])) else None
    if t in ("float", "int") and isinstance(current, int | float):
        lo, hi = spec.get("min"), spec.get("max")
        if lo is not None and hi is not None and lo <= current <= hi:
            if spec.get("step") is None:
                return int(current) if t == "int" else float(current)
    return None


def make_hyperparameters(
    space: Mapping[str, Mapping[str, Any]], defaults: Mapping[str, Any] | None = None
) -> Any:
    """Translate the YAML search space into a ``keras_tuner.HyperParameters``."""
    kt = import_quietly("keras_tuner")
    hp = kt.HyperParameters()
    defaults = defaults or {}
    for name, spec in space.items():
        key = config_key(name)
        t = spec.get("type")
        default = _default_for(spec, defaults.get(name))
        try:
            step, low = spec.get("step"), int(spec.get("sampling") == "log")  # log: a factor
            if step is not None and not (isinstance(step, int | float) and step > low):
                raise ValueError(f"step={step!r}: must be > {low} (or left out: no steps)")
            if t in ("float", "int"):
                cast, make = (float, hp.Float) if t == "float" else (int, hp.Int)
                make(
                    name,
                    cast(spec["min"]),
                    cast(spec["max"]),
                    step=step,
                    sampling=spec.get("sampling", "linear"),
                    default=default,
                )
            elif t == "choice":
                values = list(spec["values"])
                if not values:
                    raise ValueError("`values` is empty")
                hp.Choice(name, values, default=default)
            elif t == "bool":
                hp.Boolean(name, default=bool(default) if default is not None else False)
            else:
                raise ValueError(f"unknown type {t!r} (expected float, int, choice or bool)")
        except KeyError as exc:
            raise ConfigError(f"{key}: missing `{exc.args[0]}`") from exc
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{key}: {str(exc).splitlines()[0]}") from exc
    return hp
