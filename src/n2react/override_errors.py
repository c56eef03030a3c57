"""Command-line mistakes Hydra reports in several lines, said in one.

- an override Hydra cannot parse (``data.target_column=lg(k1)``: the shell took the quotes),
- a key the config does not have (``cv.outer_fold=3``),
- a comma value outside a sweep (``data.target_column=a,b``), or under ``hydra.`` in a sweep
  (``-m +hydra.sweeper.params.seed=1,2``: Hydra sweeps none of its own keys),
- ``+key=v`` for a key the config has (``+seed=3``), ``~key=v`` whose value differs
  (``~seed=4``), ``~key`` for a key it has not, ``+group=option`` or ``++group=option`` for a
  config group it has (``+model=ridge``), ``~group=option`` for an option not chosen,
  ``~hydra.callbacks`` or ``hydra.callbacks=null`` (a key of Hydra's own config, which keeps
  them all, each of its type), ``hydra.callbacks.leaderboard=null`` (:func:`callback_problem`:
  Hydra takes it, then calls None),
- a flag between overrides (``model=ridge -m cv.outer_folds=3``: argparse's usage dump), and an
  unknown flag (``--foo``: the same dump).

The first five are Hydra's own exceptions, met only where Hydra composes the config:
:func:`report_in_one_line` has Hydra's reporter turn them into the CLI's one line there, so a
command without them costs nothing more. :func:`flag_problem` is checked before Hydra runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from n2react.credentials import redact
from n2react.sweep_checks import reused_sweep_problem as reused_sweep_problem  # was here

log = logging.getLogger(__name__)

_MULTIRUN = ("-m", "--multirun")
#: Hydra's modes, one per command: the flag and its argparse name
_MODES = {"--run": "run", "-m": "multirun", "--cfg": "cfg", "--info": "info",
          "--shell-completion": "shell-completion"}  # fmt: skip
_GROUPING = set("()[]{},")  # what Hydra's grammar reads in a value (a call, a list, a sweep)


def shell_word(text: str) -> str:
    """``text`` as one shell word, readable: bare when safe, else in double quotes (which keep
    Hydra's single quotes), else as :func:`shlex.quote` writes it."""
    if shlex.quote(text) == text:
        return text
    if not any(c in text for c in '"$`\\!'):
        return f'"{text}"'
    return shlex.quote(text)


def _quoted_for_hydra(override: str) -> str | None:
    """``key='value'`` as the shell must pass it, for a value with Hydra's grouping characters
    and no quotes of its own; else None."""
    key, sep, value = override.partition("=")
    if not sep or not value or "'" in value or '"' in value or not _GROUPING & set(value):
        return None
    return shell_word(f"{key}='{value}'")


def _parse_problem(exc: Any) -> str:
    """``lg(k1)`` read as a function call and the like: the override, Hydra's reason, and the
    quoting that passes the value as text."""
    override = str(getattr(exc, "override", "") or "")
    reason = [
        line.strip().removeprefix("HydraException ")
        for line in str(exc).splitlines()
        if line.strip()
        and not line.startswith("Error parsing override")
        and not line.startswith("See https://hydra.cc")
    ]
    line = f"cannot parse override {override!r}: {'; '.join(reason) or type(exc).__name__}"
    if "=" not in override.lstrip("~"):
        return f"{line} (an override is key=value)"
    if quoted := _quoted_for_hydra(override):
        line += (
            f"; to pass the value as text, quote it for Hydra inside the shell's quotes: {quoted}"
        )
    return line


def _ambiguous_problem(override: str) -> str:
    """``key=a,b`` without ``-m``: Hydra's four lines of choices, in one."""
    key, _, value = override.partition("=")
    quoted = _quoted_for_hydra(override) or shell_word(override)
    as_list = shell_word(f"{key}=[{value}]")
    return (
        f"{override}: a comma list is a sweep, which needs -m; for one value with commas quote it "
        f"for Hydra inside the shell's quotes: {quoted}; for a list: {as_list}"
    )


def _key_problem(exc: Any, key: str, append: str) -> str | None:
    """``cv.outer_fold=3``: the keys there are, the nearest one, and how to add a new key."""
    import difflib

    from omegaconf import DictConfig

    cause = exc.__cause__
    missing = str(getattr(cause, "key", "") or "")
    full_key = str(getattr(cause, "full_key", "") or "")
    if not missing or not full_key.endswith(missing):
        return None
    parent = full_key[: -len(missing)].rstrip(".")
    where = parent or "the config"
    node = getattr(cause, "parent_node", None)
    keys = [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []
    rest = key.lstrip("+~")[len(full_key) :]  # model.foo.bar: .bar, after the missing model.foo
    parts = [f"{where} has: {', '.join(keys)}" if keys else f"{where} has no keys"]
    for near in difflib.get_close_matches(missing, keys, n=1):
        parts.append(f"did you mean {parent + '.' if parent else ''}{near}{rest}?")
    parts.append(f"{shell_word(append)} adds a new key")
    return f"{key}: no such key ({'; '.join(parts)})"


def _add_delete_problem(message: str) -> str | None:
    """``+seed=3`` (a key the config has), ``~seed=4`` (its value is not 4), ``~nosuch``: Hydra's
    two or three lines, in one; None for another message."""
    if found := re.match(
        r"Could not append to config\. An item is already at '(.+)'\.\nEither remove \+ prefix: "
        r"'(.+)'\n",
        message,
    ):
        key, override = found[1], found[2]
        return (
            f"+{override}: {key} is already in the config (+ adds a new key); to set it: "
            f"{shell_word(override)}"
        )
    if found := re.fullmatch(
        r"Could not delete from config\. The value of '(.+?)' is (.*) and not (.*)\.", message
    ):
        key, value, given = found[1], found[2], found[3]
        return (
            f"~{key}={given}: {key} is {value}, not {given} (~key=value deletes a key of that "
            f"value only); to delete it: {shell_word('~' + key)}"
        )
    if found := re.fullmatch(r"Could not delete from config\. '(.+)' does not exist\.", message):
        return f"~{found[1]}: nothing to delete (no such key, or its value is null)"
    return None


def _hydra_key_problem(exc: Any) -> str | None:
    """``~hydra.callbacks``, ``hydra.callbacks=null``: a key of Hydra's own config, which keeps
    all its keys, each of its type (Hydra's 'Error merging override' and the OmegaConf error
    under it); None for another error."""
    from omegaconf.errors import OmegaConfBaseException

    found = re.fullmatch(r"Error merging override (\S+)", str(exc))
    cause = exc.__cause__
    if not found or not isinstance(cause, OmegaConfBaseException):
        return None
    override = found[1]
    key = str(getattr(cause, "full_key", "") or override.lstrip("~").partition("=")[0])
    reason = str(getattr(cause, "msg", "") or cause).splitlines()[0] if str(cause) else ""
    if not key.startswith("hydra."):
        return None
    every = "it would remove every callback: the sweep's leaderboard and the launcher check"
    remove = "remove one by name: ~hydra.callbacks.leaderboard (the leaderboard) or "
    remove += "~hydra.callbacks.backend_check"
    null = "is not Optional" in reason
    if override.startswith("~"):
        if "support deletion" not in reason:
            return None
        if key != "hydra.callbacks":
            return f"{override}: Hydra cannot delete its key {key}; set what is under it instead"
        problem = f"Hydra cannot delete its callbacks key ({every})"
    elif key == "hydra.callbacks":
        problem = "Hydra's callbacks key cannot be null" if null else "Hydra's callbacks key"
        problem += f" ({every})" if null else f" maps names to callbacks ({reason})"
    else:
        value = override.partition("=")[2]
        return f"{override}: Hydra's key {key} cannot " + (
            "be null" if null else f"take {value} ({reason})"
        )
    return f"{override}: {problem}; {remove}"


def callback_problem(argv: Sequence[str]) -> str | None:
    """``hydra.callbacks.leaderboard=null`` (or a number, a word): Hydra composes it, then calls
    the null callback at every event of the run or sweep, a warning each time, and the sweep goes
    unranked (no leaderboard, no exit status 1 for a failed job); another value ends in Hydra's
    lines before the run. One line, with the way to remove it: ``~hydra.callbacks.<name>``. A
    mapping (merged into the callback) and a sweep over it are left to Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    for arg in argv:
        key = arg.lstrip("+").partition("=")[0]
        if not re.fullmatch(r"hydra\.callbacks\.[^.=]+", key) or "=" not in arg:
            continue
        try:
            override = OverridesParser.create().parse_override(arg)
        except HydraException:  # unparsable: Hydra's report says so (hydra_problem)
            continue
        if override.is_delete() or override.is_sweep_override():
            continue
        value = override.value()
        if isinstance(value, dict | list):  # a list is refused as Hydra merges it
            continue
        remove = shell_word("~" + key.lstrip("+"))
        return redact(f"{arg}: {_not_a_callback(value)}; to remove the callback: {remove}")
    return None


def _not_a_callback(value: object) -> str:
    """What Hydra does with a callback that is ``value`` (null, a number, a word)."""
    why = (
        "Hydra would call None at every event, a warning each, and a sweep would go unranked"
        if value is None
        else "a callback is a mapping with its _target_"
    )
    return f"{'null' if value is None else value} is not a callback ({why})"


def config_callback_problem(cfg: Any) -> str | None:
    """:func:`callback_problem` of a callback a config sets (a user's config through
    ``--config-dir``, an experiment): ``hydra.callbacks.leaderboard: null`` in the composed
    ``cfg``. The line says how to remove it, since ``~hydra.callbacks.<name>`` finds nothing to
    delete where a config left it null. A mapping, a list and an interpolation are left to
    Hydra."""
    from omegaconf import DictConfig, OmegaConf

    callbacks = OmegaConf.select(cfg, "hydra.callbacks")
    if not isinstance(callbacks, DictConfig):
        return None
    for name, value in OmegaConf.to_container(callbacks, resolve=False).items():
        if isinstance(value, dict | list) or OmegaConf.is_interpolation(callbacks, str(name)):
            continue
        key = f"hydra.callbacks.{name}"
        return redact(
            f"{key}: {_not_a_callback(value)}, as a config of this command sets it; to remove "
            f"the callback, leave {name} out of that config and give {shell_word('~' + key)}"
        )
    return None


def hydra_problem(
    exc: BaseException, argv: Sequence[str] = (), config_path: str | None = None
) -> str | None:
    """One line for an override Hydra refused (unparsable, an unknown key, a comma value outside
    a sweep, ``+`` for a key there is, ``~`` for one there is not or of another value, and with
    the command line ``argv`` and the primary config's folder ``config_path``, ``+`` or ``++``
    for a config group the config has, and a config location Hydra cannot find:
    :func:`n2react.config_location.config_location_problem`); None for any other error (Hydra
    reports it as it does)."""
    from hydra.errors import ConfigCompositionException, OverrideParseException

    try:
        from n2react.config_location import config_location_problem

        if line := config_location_problem(exc, argv, config_path):
            return redact(line)
        if isinstance(exc, OverrideParseException):
            return redact(_parse_problem(exc))
        if not isinstance(exc, ConfigCompositionException):
            return None
        message = str(exc)
        if found := re.match(r"Ambiguous value for argument '(.+)'\n", message):
            return redact(_ambiguous_problem(found[1]))
        if found := re.fullmatch(r"Sweeping over Hydra's configuration is not supported : '(.+)'",
                                 message):  # fmt: skip
            quoted = _quoted_for_hydra(found[1]) or shell_word(found[1])
            return redact(
                f"{found[1]}: Hydra does not sweep its own config (hydra.*); for one value with "
                f"commas (the sweeper's params: each job's sweep) quote it for Hydra inside the "
                f"shell's quotes: {quoted}"
            )
        if line := _add_delete_problem(message) or _hydra_key_problem(exc):
            return redact(line)
        if config_path is not None:
            from n2react.group_options import added_group_problem, deleted_group_problem

            if line := added_group_problem(message, argv, config_path):
                return redact(line)
            if line := deleted_group_problem(message, argv, config_path):
                return redact(line)
        found = re.match(
            r"Could not override '(.+)'\.\nTo append to your config use (\S+)", message
        )
        if found and exc.__cause__ is not None:
            line = _key_problem(exc, found[1], found[2])
            return None if line is None else redact(line)
    except Exception:  # never hide Hydra's report because this one failed
        log.debug("cannot put Hydra's error in one line", exc_info=True)
    return None


#: the sweep this command starts, as its folder was before: (the sweep folder, the first folder
#: of its path the sweep makes (None: none), the names that were in the sweep folder)
_sweep: tuple[Path, Path | None, set[str]] | None = None


def sweep_starting(sweep_dir: Path) -> None:
    """Note the folder of the sweep about to start (called as the multirun starts, before Hydra
    makes the folder and writes its ``multirun.yaml``): what :func:`remove_refused_sweep` may
    remove is what was not there."""
    global _sweep
    sweep_dir = Path(sweep_dir).absolute()
    first = None
    for folder in [sweep_dir, *sweep_dir.parents]:
        if folder.exists():
            break
        first = folder
    names = set(os.listdir(sweep_dir)) if first is None and sweep_dir.is_dir() else set()
    _sweep = (sweep_dir, first, names)


def remove_refused_sweep() -> None:
    """A sweep refused before any job ran (an override no job's config takes): remove the
    ``multirun.yaml`` Hydra wrote and the folders it made for it, unless that file was there
    before or something else was written beside it (a job's folder: a job ran)."""
    from n2react.sweep_plan import MULTIRUN_FILE  # the sweep's config, written before any job

    if _sweep is None:
        return
    sweep_dir, first, before = _sweep
    try:
        new = set(os.listdir(sweep_dir)) - before
    except OSError:  # not made
        return
    if new != {MULTIRUN_FILE}:
        return
    try:
        (sweep_dir / MULTIRUN_FILE).unlink()
        folder = sweep_dir
        while first is not None and folder != first.parent:  # the folders made for it, if empty
            folder.rmdir()
            folder = folder.parent
    except OSError as exc:
        log.debug("%s: not removed (%s)", sweep_dir, exc)


def report_in_one_line(
    exit_with: Callable[[str], Any], argv: Sequence[str] = (), config_path: str | None = None
) -> None:
    """Have Hydra's reporter (``run_and_report``, around its composition and run) end with
    ``exit_with(line)`` on an error :func:`hydra_problem` puts in one line (``argv``,
    ``config_path``: the command line and its primary config's folder, which tell a group given
    with ``+`` apart). Nothing changes with ``HYDRA_FULL_ERROR=1`` (Hydra's full traceback is
    asked for) or without that reporter."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return
    try:
        import hydra._internal.utils as hydra_utils

        report = hydra_utils.run_and_report
    except (ImportError, AttributeError):  # another Hydra: its own report stands
        log.debug("no Hydra reporter to wrap", exc_info=True)
        return
    if getattr(report, "n2react_one_line", False):
        return

    def run_and_report(func: Any) -> Any:
        def checked() -> Any:
            try:
                return func()
            except Exception as exc:
                line = hydra_problem(exc, argv, config_path)
                remove_refused_sweep()  # a sweep refused before its first job leaves nothing
                if line is None:
                    raise
                exit_with(line)

        return report(checked)

    run_and_report.n2react_one_line = True  # type: ignore[attr-defined]
    hydra_utils.run_and_report = run_and_report


def _unknown_flag(flag: str, parser: Any) -> str:
    """``--foo``: one line naming it (and the nearest flag there is) instead of the usage."""
    import difflib

    name = flag.partition("=")[0]
    known = {o.lstrip("-"): o for action in parser._actions for o in action.option_strings}
    line = f"{name}: no such flag"
    for near in difflib.get_close_matches(name.lstrip("-"), list(known), n=1):  # cgf: cfg
        line += f"; did you mean {known[near]}?"
    return f"{line} (python -m train --help lists them; overrides are key=value)"


def version_asked(argv: Sequence[str]) -> bool:
    """Whether Hydra's parser reads ``--version`` (or a prefix of it) in ``argv``: each check
    that parses the command line made Hydra print its version again (six times)."""
    import contextlib
    import io

    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    parser.exit_on_error = False
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            parser.parse_known_args(list(argv))
        except SystemExit as exc:  # only --version exits here (Hydra's parser has no -h)
            return not exc.code
        except argparse.ArgumentError:
            return False
    return False


def flag_problem(argv: Sequence[str]) -> str | None:
    """A flag between overrides (``model=ridge -m cv.outer_folds=3``) or a flag Hydra does not
    have (``--foo``), which Hydra's argparse refuses with its usage: one line saying where it
    goes, or that there is no such flag; None otherwise."""
    from hydra._internal.utils import get_args_parser

    argv = list(argv)
    parser = get_args_parser()
    parser.exit_on_error = False  # a bad flag value: argparse's usage (7 lines) and its line
    try:
        args, extra = parser.parse_known_args(argv)
    except argparse.ArgumentError as exc:
        return redact(_bad_flag_value(exc, parser))
    except SystemExit:  # --version: Hydra prints it
        return None
    if unknown := [a for a in extra if a.startswith("-")]:
        return redact(_unknown_flag(unknown[0], parser))
    modes = [f for f, on in _MODES.items() if getattr(args, on.replace("-", "_"), None)]
    if len(modes) > 1:  # Hydra's ValueError traceback
        return f"{' and '.join(modes)}: one of {', '.join(_MODES)} at a time"
    if not extra:
        return None
    start = len(argv) - argv[::-1].index(extra[0]) - 1 if extra[0] in argv else len(argv)
    flags = [a for a in argv[:start] if a.startswith("-")]
    if not flags:
        return None
    flag = flags[-1]
    overrides = [*(args.overrides or []), *extra]
    line = f"{flag} goes before all overrides or after them all"
    if all(a in _MULTIRUN or a in overrides for a in argv):
        command = " ".join(shell_word(o) for o in overrides)
        line += f": python -m train {flag} {command}"
    return redact(line)


def _bad_flag_value(exc: argparse.ArgumentError, parser: argparse.ArgumentParser) -> str:
    """``--info bogus``: the flag, the value and the values Hydra takes, in one line."""
    flag = (exc.argument_name or "").split("/")[0]
    action = parser._option_string_actions.get(flag)
    bad = re.match(r"invalid choice: '?(.*?)'? \(choose from", exc.message)
    if bad and action is not None and action.choices:
        return f"{flag} {bad[1]}: no such value (choose from {', '.join(action.choices)})"
    return f"{flag}: {exc.message}" if flag else exc.message
