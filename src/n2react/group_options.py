"""A misspelled config group option (``model=extra_tree``, ``cv=kfold5``) named in one line, a
group the config already has given with ``+`` or ``++`` (``+model=ridge``), a group given no
option (``model=null``, a Hydra ValueError traceback; ``~model``, a group a run needs removed;
``~search``, a run without the search params it logs), a list of options (``model=[svr,rfr]``,
merged into one config), ``~group=option`` for an option not chosen (``~device=foo``) and an
empty mapping for a search space (``model.space={}``, merged into the space: nothing emptied).

Hydra reports it as a dozen lines (``Could not find 'model/extra_tree'``, the options one a line,
the search path, a hint about ``HYDRA_FULL_ERROR``) and exit status 1. :func:`option_problem`
looks the command line's group overrides up where Hydra would (the primary config, Hydra's own
groups and those of its plugins, e.g. ``hydra/launcher=joblib``), each value of a ``-m`` comma
list included, so that ``python -m train`` refuses them first with the CLI's one line.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shlex
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)


def _hydra_overrides(argv: Sequence[str]) -> list[str] | None:
    """The overrides of a ``python -m train`` command line as Hydra's parser reads them; None when
    the command changes where configs are found (``--config-dir`` and the like, a
    ``hydra.searchpath``): Hydra alone can tell then."""
    from hydra._internal.utils import get_args_parser

    with contextlib.redirect_stderr(io.StringIO()):  # a bad flag: Hydra's parser reports it
        try:
            args, _ = get_args_parser().parse_known_args(list(argv))
        except SystemExit:
            return None
    if args.config_dir or args.config_path or args.config_name:
        return None
    overrides = list(args.overrides or [])
    if any(o.lstrip("+~").startswith("hydra.searchpath") for o in overrides):
        return None
    return overrides


def _command_line(argv: Sequence[str], config_path: str) -> tuple[list[Any], Any] | None:
    """The group overrides of ``argv``, parsed, and the config repository they choose from; None
    when there are none or Hydra alone can tell (:func:`_hydra_overrides`)."""
    overrides = _hydra_overrides(argv)
    if not overrides:
        return None
    from hydra._internal.config_repository import ConfigRepository
    from hydra._internal.utils import create_config_search_path
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return parsed, ConfigRepository(create_config_search_path(config_path))


def _values(override: Any) -> list[str]:
    """The option names a group override asks for (each of a ``-m`` comma list); none for a
    deletion, ``null``, a list of options or a glob (Hydra filters those itself)."""
    from hydra.core.override_parser.types import ValueType

    if override.is_delete():
        return []
    if override.value_type == ValueType.ELEMENT:
        value = override.value()
        return [override.get_value_element_as_str()] if isinstance(value, str) else []
    if override.value_type in (ValueType.SIMPLE_CHOICE_SWEEP, ValueType.CHOICE_SWEEP):
        return [v for v in override.sweep_string_iterator() if v != "null"]
    return []


def option_problem(argv: Sequence[str], config_path: str) -> str | None:
    """One line naming the first group override whose option does not exist (``model=extra_tree:
    no such option (choose from ...)``); None when all exist, or when the check cannot tell
    (Hydra then reports as it does)."""
    try:
        found = _command_line(argv, config_path)
        if found is None:
            return None
        from hydra.core.object_type import ObjectType

        parsed, repo = found
        for override in parsed:
            group = override.key_or_group
            if line := _empty_space_problem(override):
                return line
            if not repo.group_exists(group):
                continue  # a key (seed=1, cv.groups=metal), not a group
            if line := _no_option_problem(override, parsed, repo):
                return line
            if line := _list_problem(override, repo):
                return line
            for name in _values(override):
                if not repo.config_exists(f"{group}/{name}"):
                    options = repo.get_group_options(group, ObjectType.CONFIG)
                    return (
                        f"{override.get_key_element()}={name}: no such option "
                        f"(choose from {', '.join(options)})"
                    )
    except Exception:  # never refuse a command because the check itself failed
        log.debug("cannot check the group options", exc_info=True)
    return None


#: The config groups a run cannot go without (the plan reads their nodes: ``cfg.data``,
#: ``cfg.model``, ``cfg.cv``); ``~features``, ``~scaler`` and the like leave that step out.
NEEDED_GROUPS = ("data", "model", "cv")
#: Optional groups whose removal runs as their "off" option does but leaves their params out of
#: the run's MLflow record (``~search``: no ``search.name``, ``search.objective``; ``~scaler``:
#: no ``scaler.name``): the option that runs the same and logs it. (``~tracking`` and
#: ``~device`` run as ``tracking=none`` and ``device=auto`` do, with nothing less logged: left
#: alone.)
NONE_OPTIONS = {
    "search": "none",
    "scaler": "none",
    "selector": "none",
    "features": "raw",
    "pairwise": "off",
}


def _list_problem(override: Any, repo: Any) -> str | None:
    """``model=[svr,rfr]``: Hydra's list of options for a group (its multi-select defaults) merges
    them into one config (svr's keys under rfr's estimator: a later "unexpected keyword
    argument"); this project's groups take one option. Hydra's own groups are left to Hydra."""
    from hydra.core.object_type import ObjectType
    from hydra.core.override_parser.types import ValueType

    if override.is_delete() or override.key_or_group.split("/")[0] == "hydra":
        return None
    if override.value_type in (ValueType.SIMPLE_CHOICE_SWEEP, ValueType.CHOICE_SWEEP):
        return _list_in_sweep_problem(override)
    value = override.value()
    if override.value_type != ValueType.ELEMENT or not isinstance(value, list):
        return None
    key, names = _key(override), [str(v) for v in value]
    line = f"{override.input_line}: a config group takes one option, not a list"
    if len(names) < 2:
        options = ", ".join(repo.get_group_options(override.key_or_group, ObjectType.CONFIG))
        return f"{line}; choose one: {key}={names[0] if names else '<option>'} ({options})"
    return (
        f"{line} (Hydra would merge {', '.join(names)} into one {key}); for one: {key}={names[0]}; "
        f"to try each, a sweep: python -m train -m {key}={','.join(names)}"
    )


#: the config groups with a search space (``model.space``, ``selector.space``)
SPACE_GROUPS = ("model", "selector")


def _empty_space_problem(override: Any) -> str | None:
    """``model.space={}`` (or ``selector.space={}``, ``model.space.C={}``, one value of a ``-m``
    list): Hydra merges a mapping into the one there, so ``{}`` changes nothing and the run
    searches the space it was meant to empty. One line: what does empty it (``model.space=null``
    or ``~model.space``: each fold fits the configured settings, as with an empty space)."""
    from hydra.core.override_parser.types import ValueType

    given = str(override.key_or_group).split(".")
    if override.is_delete() or len(given) < 2:
        return None
    if given[0] not in SPACE_GROUPS or given[1] != "space":
        return None
    if override.value_type in (ValueType.SIMPLE_CHOICE_SWEEP, ValueType.CHOICE_SWEEP):
        values = list(override.value().list)
    elif override.value_type == ValueType.ELEMENT:
        values = [override.value()]
    else:
        return None
    inner = next((p for v in values if (p := _empty_mapping(v)) is not None), None)
    if inner is None:
        return None
    parts = [*given, *inner]  # model.space={C:{}}: model.space.C
    key = ".".join(parts)
    line = (
        f"{override.input_line}: {{}} does not empty {key} (Hydra merges a mapping into the one "
        "there, so the run would search it as before)"
    )
    if len(parts) > 2:  # model.space.C={}
        return f"{line}; to fix {parts[-1]} at its configured value: {key}=null"
    return (
        f"{line}; to search none of the {parts[0]}'s settings (each fold fits them as configured): "
        f"{key}=null (or ~{key}); for no search at all: search=none"
    )


def _empty_mapping(value: Any) -> list[str] | None:
    """The keys down to the first empty mapping in ``value`` (``[]``: ``value`` is one); None
    when it holds none."""
    if not isinstance(value, dict):
        return None
    if not value:
        return []
    for name, item in value.items():
        if (inner := _empty_mapping(item)) is not None:
            return [str(name), *inner]
    return None


def _list_in_sweep_problem(override: Any) -> str | None:
    """``-m model=[svr,rfr],ridge``: a list among a sweep's options (one job of svr and rfr
    merged): the sweep of each option, the lists flattened (``-m model=svr,rfr,ridge``)."""
    choices = list(override.value().list)
    lists = [c for c in choices if isinstance(c, list)]
    if not lists:
        return None
    key, flat = _key(override), []
    for choice in choices:
        for name in map(str, choice if isinstance(choice, list) else [choice]):
            if name not in flat:
                flat.append(name)
    merged = next((c for c in lists if len(c) > 1), None)
    why = f": Hydra would merge [{','.join(map(str, merged))}] into one {key}" if merged else ""
    return (
        f"{override.input_line}: a config group takes one option, not a list (in a sweep "
        f"too{why}); to try each, a sweep: python -m train -m {key}={','.join(flat)}"
    )


def _is_null(override: Any) -> bool:
    """``model=null``, ``+model=null``, or a ``-m`` list holding null (``model=svr,null``)."""
    from hydra.core.override_parser.types import ValueType

    if override.is_delete():
        return False
    if override.value_type in (ValueType.SIMPLE_CHOICE_SWEEP, ValueType.CHOICE_SWEEP):
        return "null" in list(override.sweep_string_iterator())
    return override.value_type == ValueType.ELEMENT and override.value() is None


def _no_option_problem(
    override: Any, parsed: list[Any], repo: Any, config_name: str = "config"
) -> str | None:
    """A group given no option: ``model=null`` (Hydra's ValueError traceback, "Config group
    override must be a string or a list") or removed with ``~`` when a run needs it
    (``~model``: lines about a missing key once the run reads it), or removed when the run goes
    on without its logged params (``~search``). One line: what a group takes and the override to
    write, with the group's options and its default; None otherwise."""
    from hydra.core.object_type import ObjectType

    group, key = override.key_or_group, _key(override)
    deleted = override.is_delete() and not override.package
    line = str(override.input_line)
    if deleted and group in NONE_OPTIONS:  # ~search, ~search=grid, ~scaler
        return (
            f"{line}: ~ removes the {group} group, and the run then logs no {group}.name; "
            f"write {group}={NONE_OPTIONS[group]} instead (the same run, logged)"
        )
    removed = deleted and group in NEEDED_GROUPS
    if not removed and not _is_null(override):
        return None
    options = ", ".join(repo.get_group_options(group, ObjectType.CONFIG))
    default = _choices(repo, [o for o in parsed if o is not override], config_name).get(key)
    if removed:
        return (
            f"{line}: a run needs one {group} option, and ~ removes the group; choose one: "
            f"{key}=<option> ({options}; default: {default or 'none'})"
        )
    if default is None:  # an optional group (experiment) or one the config has not (sweep)
        return (
            f"{line}: a config group takes one of its options, not null; to run without "
            f"{key}, leave it out ({key} options: {options})"
        )
    return (
        f"{line}: a config group takes one of its options, not null; choose one: "
        f"{key}=<option> ({options}; default: {default})"
    )


def _key(override: Any) -> str:
    """The defaults list's key of a group override: ``model``, ``model@pkg``,
    ``hydra/launcher``."""
    return (
        f"{override.key_or_group}@{override.package}" if override.package else override.key_or_group
    )


def _choices(repo: Any, overrides: list[Any], config_name: str) -> dict[str, str | None]:
    """The option each group of the defaults list takes with ``overrides`` (None: an optional
    group left out, ``experiment: null``); empty when that cannot be told."""
    from hydra._internal.defaults_list import create_defaults_list

    try:
        found = create_defaults_list(repo, config_name, overrides, True, skip_missing=True)
    except Exception:  # another mistake on the command line: no default named
        log.debug("cannot list the defaults", exc_info=True)
        return {}
    choices: dict[str, str | None] = dict(found.overrides.known_choices)
    for default in found.defaults:
        key, path = default.override_key, default.config_path
        if key and path:
            choices[key] = path[len(key.split("@")[0]) + 1 :]
    return choices


def added_group_problem(
    message: str, argv: Sequence[str], config_path: str, config_name: str = "config"
) -> str | None:
    """One line for Hydra's ``Multiple values for model`` / ``model appears more than once in
    the final defaults list`` (``+model=ridge``: ``+`` for a group the defaults list has) and
    ``force-add of config groups is not supported`` (``++model=ridge``): the override, the
    group's default and the override that works. Hydra names the group only: the override is
    looked up in ``argv``. None for another message, or when no override of ``argv`` is it."""
    forced = re.fullmatch(r"force-add of config groups is not supported: '(.+)'", message)
    twice = re.match(
        r"Multiple values for (\S+)\. To override a value use", message
    ) or re.fullmatch(r"(\S+) appears more than once in the final defaults list", message)
    if not forced and not twice:
        return None
    found = _command_line(argv, config_path)
    if found is None:
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed, repo = found
    if forced:
        key = _key(OverridesParser.create().parse_override(forced[1]))
        culprit = next((o for o in parsed if o.is_force_add() and _key(o) == key), None)
    else:
        key = twice[1]
        culprit = next((o for o in parsed if o.is_add() and _key(o) == key), None)
    if culprit is None:  # a config's own defaults list (an experiment's), not the command line
        return None
    if none := _no_option_problem(culprit, parsed, repo, config_name):  # ++model=null
        return none
    line = str(culprit.input_line)
    value = line.partition("=")[2]
    plain = [o for o in parsed if _key(o) == key and o is not culprit and not o.is_delete()]
    if plain and not forced:
        return (
            f"{line}: {key} is already chosen by {plain[0].input_line}; a group takes one option: "
            f"give {key}= once, without '+'"
        )
    choices = _choices(repo, [o for o in parsed if o is not culprit], config_name)
    if forced and key not in choices:  # ++sweep=grid: + adds a group the config has not
        return f"{line}: ++ is for keys, not config groups; to add {key}: +{key}={value}"
    default = f" (default: {choices[key] or 'null'})" if key in choices else ""
    use = shlex.quote(f"{key}={value}")
    if forced:
        return (
            f"{line}: ++ is for keys, not config groups; {key} is in the config{default}: use {use}"
        )
    return f"{line}: {key} is already in the config{default}; use {use} without '+'"


def deleted_group_problem(
    message: str, argv: Sequence[str], config_path: str, config_name: str = "config"
) -> str | None:
    """One line for Hydra's ``Could not delete 'device=foo'. No match in the defaults list``
    (``~device=foo``: ``~group=option`` removes the group only when that option is chosen): the
    group's option here and the override that removes it. None for another message, or when no
    override of ``argv`` is it."""
    found = re.fullmatch(
        r"Could not delete '(.+?)(?:=(.*))?'\. No match in the defaults list", message
    )
    command = _command_line(argv, config_path) if found else None
    if not found or command is None:
        return None
    from hydra.core.object_type import ObjectType

    parsed, repo = command
    key = found[1]
    culprit = next((o for o in parsed if o.is_delete() and _key(o) == key), None)
    if culprit is None:  # a config's own defaults list, not the command line
        return None
    group = culprit.key_or_group
    options = ", ".join(repo.get_group_options(group, ObjectType.CONFIG))
    choices = _choices(repo, [o for o in parsed if o is not culprit], config_name)
    line = str(culprit.input_line)
    if key not in choices or choices[key] is None:  # ~sweep, ~experiment=paper_regular
        return (
            f"{line}: no {key} option is chosen here, so there is nothing to remove "
            f"({key} options: {options})"
        )
    return (
        f"{line}: {key} is {choices[key]} here, not {found[2]} (~{key}=<option> removes the "
        f"group only when that option is chosen); to remove it: ~{key} ({key} options: {options})"
    )
