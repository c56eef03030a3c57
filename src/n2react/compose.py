"""The project's config composed with Hydra's compose API, as ``python -m train`` would see it
(for benchmarks, tests and notebooks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from n2react.errors import ConfigError


def config_dir() -> Path:
    """conf/ (shipped as package ``n2react_conf``; in a checkout a link to conf/)."""
    import n2react_conf

    return Path(n2react_conf.__file__).resolve().parent


def compose_config(
    overrides: Sequence[str] = (),
    settings: Mapping[str, Any] | None = None,
    *,
    return_hydra_config: bool = False,
) -> DictConfig:
    """The config with Hydra ``overrides``, then ``settings`` (dotted key -> value) set on it.

    An override Hydra cannot parse or apply (an unknown key or option, a stray ``--flag``) raises
    :class:`~n2react.errors.ConfigError` with one line naming the override, as ``python -m train``
    reports it (else Hydra's first line); so does one Hydra composes but a run refuses
    (``model=[svr,rfr]``, which merges two models; ``~search``, which logs no search.name)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException

    if any(o.startswith("~") or "=[" in o or "{}" in o for o in overrides):  # composed, but
        from n2react.group_options import option_problem  # not a run's (model=[svr,rfr],
        # ~search, model.space={})

        if (why := option_problem(list(overrides), str(config_dir()))) is not None:
            raise ConfigError(why)
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    # a Hydra the caller left initialised (a notebook's hydra.initialize()): put aside while
    # this composes, else initialize_config_dir refuses ("GlobalHydra is already initialized")
    theirs = get_gh_backup() if GlobalHydra.instance().is_initialized() else None
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(
                config_name="config",
                overrides=list(overrides),
                return_hydra_config=return_hydra_config,
            )
    except HydraException as exc:
        from n2react.override_errors import hydra_problem

        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        why = hydra_problem(exc, list(overrides), str(config_dir())) or (
            lines[0] if lines else type(exc).__name__
        )
        if isinstance(exc, MissingConfigException):  # a misspelled option: the options too
            from n2react.group_options import option_problem

            why = option_problem(list(overrides), str(config_dir())) or why
        raise ConfigError(why) from exc
    except ValueError as exc:  # model=null: Hydra's "Config group override must be a string"
        from n2react.group_options import option_problem

        if (why := option_problem(list(overrides), str(config_dir()))) is None:
            raise
        raise ConfigError(why) from exc
    finally:
        if theirs is not None:
            restore_gh_from_backup(theirs)
    with open_dict(cfg):
        for key, value in (settings or {}).items():
            OmegaConf.update(cfg, key, value, force_add=True)
    return cfg
