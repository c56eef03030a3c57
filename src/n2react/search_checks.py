"""A search's settings checked before any training: each end of every search range against the
estimator it reaches, the oracle's settings (keras-tuner would never finish, or silently replace,
some), and the size of a grid search said in one line.

Split from :mod:`n2react.preflight`, which re-exports these names.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from n2react.errors import ConfigError, first_line

log = logging.getLogger("n2react.preflight")  # its lines keep the name they were logged by


def check_space_ends(pipeline: Any, space: dict[str, Any]) -> None:
    """Each end of every search range, and each choice, set on the pipeline one at a time and
    checked, without fitting, by the estimator it reaches (its ``check_params``, a
    scikit-learn estimator's parameter constraints): a space reaching values the model refuses
    (``model.space.dropout.max=1``) fails now, not minutes in, in whichever trial first draws
    it (or never, in a short search that draws none)."""
    from sklearn.base import BaseEstimator, clone
    from sklearn.utils._param_validation import validate_parameter_constraints

    from n2react.capabilities import ChecksParams
    from n2react.pipeline import config_key

    for name, spec in space.items():
        kind = (spec or {}).get("type")
        if kind == "choice":
            ends = [("values holds ", v) for v in spec.get("values") or []]
        elif kind in ("int", "float") and spec.get("min") is not None:
            cast = int if kind == "int" else float
            ends = [(f"{end}=", cast(spec[end])) for end in ("min", "max") if end in spec]
        else:
            continue
        owner_key = name.rsplit("__", 1)[0]
        for where, value in ends:
            pipe = clone(pipeline).set_params(**{name: value})
            owner = pipe.get_params()[owner_key]
            try:
                if isinstance(owner, ChecksParams):
                    owner.check_params()
                elif isinstance(owner, BaseEstimator):  # scikit-learn's declared constraints
                    constraints = getattr(type(owner), "_parameter_constraints", {})
                    validate_parameter_constraints(
                        constraints, owner.get_params(deep=False), type(owner).__name__
                    )
            except (ValueError, TypeError) as exc:
                why = first_line(exc)
                raise ConfigError(f"{config_key(name)}.{where}{value!r}: {why}") from None


def check_search(search: Any, name: str) -> None:
    """Oracle settings keras-tuner would take and then never finish a search with
    (``max_trials`` null for a sampling search, ``hyperband_iterations=0``), replace silently
    (``num_initial_points=0`` becomes 3 per dimension) or fail on mid-search
    (``max_epochs=0``); and the oracle built once, so that anything else it refuses
    (``factor=1``) fails before the MLflow run starts. Warns when a Bayesian search is all
    random starts."""
    from n2react.hyperparameters import make_hyperparameters

    node = dict(search.oracle or {})

    def whole(key: str, null_ok: bool = False) -> None:
        value = node.get(key)
        if (value is None and not null_ok) or (
            value is not None
            and (isinstance(value, bool) or not isinstance(value, int) or value < 1)
        ):
            raise ConfigError(f"search.oracle.{key}={value!r}: expected a whole number >= 1")

    if search.is_hyperband:
        whole("max_epochs")
        whole("hyperband_iterations")
    elif not search.is_grid and search.max_trials is None:
        raise ConfigError(
            f"search={name}: search.max_trials=null would sample without end; "
            "give the number of trials, e.g. search.max_trials=20"
        )
    if "num_initial_points" in node:
        whole("num_initial_points", null_ok=True)
    hp = make_hyperparameters(search.space)
    starts = node.get("num_initial_points") or max(3 * len(hp.space), 3)  # keras-tuner's
    if "num_initial_points" in node and search.max_trials and search.max_trials <= starts:
        log.warning(
            "search=%s: all search.max_trials=%d trials are random starts (num_initial_points "
            "%d), so this is a random search; raise search.max_trials above %d",
            name,
            search.max_trials,
            starts,
            starts,
        )
    search.make_oracle(hp)


#: Grid points per search above which the plan's line about the grid is a warning.
GRID_WARN_POINTS = 1000


def say_grid_size(search: Any, splits: list[Any], nested: int, final: bool) -> None:
    """Log one line with a grid search's size: points per search, each entry's share, and trials
    in all (each outer fold, ``nested`` nested-validation searches, the final model's); a
    warning above :data:`GRID_WARN_POINTS` points per search, naming how to cut it."""
    from n2react.hyperparameters import make_hyperparameters
    from n2react.pipeline import config_key

    hp = make_hyperparameters(search.space, grid=True).space
    points = int(np.prod([len(list(p.values)) for p in hp]))
    per = min(points, search.max_trials) if search.max_trials else points
    searches = len(splits) + nested + int(final)
    parts = [f"{len(splits)} outer folds"] + [f"{nested} nested validation refits"] * bool(nested)
    big = points > GRID_WARN_POINTS
    cut = "; fix entries (model.space.<name>=null), give float ranges a coarser step, or use "
    log.log(
        logging.WARNING if big else logging.INFO,
        "search=grid: %d points per search (%s), %d trials in all (%d searches: %s)%s",
        points,
        " x ".join(f"{config_key(p.name)} {len(list(p.values))}" for p in hp),
        per * searches,
        searches,
        ", ".join(parts + ["the final model"] * final),
        cut + "search=random search.max_trials=N" if big else "",
    )
