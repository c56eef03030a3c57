"""The search space of ``conf/model/*.yaml`` (``model.space``, ``selector.space``) as keras-tuner
hyperparameters: one translation for every oracle (grid, random, Bayesian, Hyperband) and every
model; a range or choice keras-tuner cannot take is one ConfigError naming its key."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
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


def _decimals(x: float) -> int:
    """Digits after the decimal point ``x`` is written with (0.05: 2, 1e-5: 5, 10: 0)."""
    exponent = Decimal(repr(float(x))).normalize().as_tuple().exponent
    return max(-int(exponent), 0)


def stepped_values(low: float, high: float, step: float, log: bool = False) -> list[float]:
    """The values of a stepped float range, ``high`` included when a whole number of steps
    reaches it up to rounding (keras-tuner's own count, ``(0.3 - 0.0) // 0.1 + 1``, stops at 0.2
    and its values drift: 0.30000000000000004), each rounded to the digits it is written with."""
    if log:  # step is a factor
        n = int(math.log(high / low, step) + 1e-9) + 1
        return [float(f"{low * step**i:.12g}") for i in range(n)]
    digits = max(_decimals(low), _decimals(step))
    n = math.floor(round((high - low) / step, 9)) + 1
    return [round(low + i * step, digits) + 0.0 for i in range(n)]


def make_hyperparameters(
    space: Mapping[str, Mapping[str, Any]],
    defaults: Mapping[str, Any] | None = None,
    *,
    grid: bool = False,
) -> Any:
    """Translate the YAML search space into a ``keras_tuner.HyperParameters``.

    ``grid``: for a grid search, a float range without a step is its 10 evenly spaced values
    in ascending order (keras-tuner lists them from a set, in no order, and a grid tried the
    configured default before them: 11 values, not the 10 the plan counts)."""
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
            if t == "float" and (step is not None or grid):
                # checked as keras-tuner's Float (min <= max, log above 0), searched as the
                # same values in a Choice: sampled, and read by a Bayesian oracle, alike
                lo, hi, sampling = float(spec["min"]), float(spec["max"]), spec.get("sampling")
                checked = kt.HyperParameters()
                checked.Float(name, lo, hi, step=step, sampling=sampling)
                if step is None:
                    values, default = sorted(checked.space[0].values), None
                else:
                    values = stepped_values(lo, hi, float(step), log=sampling == "log")
                hp.Choice(name, values, ordered=True, default=default)
            elif t in ("float", "int"):
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
