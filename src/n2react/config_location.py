"""Where the configs are, when Hydra cannot find them, said in one line: a ``--config-path`` or
``--config-dir`` that is no folder, a ``--config-path`` that is a YAML file, a ``--config-name``
that is no config there. Hydra reported each in several lines (its search path, its
``HYDRA_FULL_ERROR`` hint; a traceback with ``--help``), exit 1.

:func:`config_location_problem` reads Hydra's own exception (where Hydra looked), so it says
what Hydra found, whichever way the command runs (``python -m train`` reads a relative
``--config-path`` against ``src/``, ``n2react-train`` as a Python package); it is one case of
:func:`n2react.override_errors.hydra_problem`. :func:`info_held` keeps Hydra's ``--info`` from
printing its first lines before that line.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

#: Hydra's messages (hydra 1.3: ``_internal/utils.py``, ``config_loader_impl.py``,
#: ``defaults_list.py``)
_NO_CONFIG_DIR = re.compile(r"Additional config directory '(.+)' not found")
_NO_PRIMARY_DIR = re.compile(
    r"Primary config directory not found\.\nCheck that the config directory '(.+)' exists"
)
_NO_PRIMARY_MODULE = re.compile(r"Primary config module '(.+)' not found\.")
_NO_PRIMARY = re.compile(r"Cannot find primary config '(.+?)'\. Check that it's in your config")
_SEARCH_PATH = re.compile(r"provider=(main|command-line), path=(\S+)")
_YAML_PATH = "Using config_path to specify the config name is not supported"

#: how to name the project's own configs beside a user's
_ADD = "(--config-dir <folder> adds a folder of your own configs to the project's instead)"


def config_location_problem(
    exc: BaseException, argv: Sequence[str] = (), config_path: str | None = None
) -> str | None:
    """One line for a config location Hydra cannot find (``exc``: what Hydra raised for the
    command line ``argv``; ``config_path``: the project's config folder, named as the one
    there is); None for any other error."""
    message = str(exc)
    flags = _flags(argv)
    if found := _NO_CONFIG_DIR.match(message):
        given = flags.get("config_dir") or found[1]
        return f"--config-dir {given}: {_not_a_folder(found[1], given)}"
    project = f"the project's configs are in {_shown(config_path)}; " if config_path else ""
    if found := _NO_PRIMARY_DIR.match(message):
        given = flags.get("config_path") or found[1]
        relative = "" if Path(given).is_absolute() else (
            " (a relative --config-path is read against the folder of train.py, not the working "
            "folder)"
        )  # fmt: skip
        return (
            f"--config-path {given}: {_not_a_folder(found[1], given)}{relative}; {project}give "
            f"the folder's absolute path {_ADD}"
        )
    if found := _NO_PRIMARY_MODULE.match(message):
        given = flags.get("config_path") or found[1]
        return (
            f"--config-path {given}: no Python package {found[1]} (run as a module, as "
            "n2react-train is, Hydra reads a relative --config-path as a package); "
            f"{project}give the folder's absolute path {_ADD}"
        )
    if found := _NO_PRIMARY.match(message):
        return _no_primary_problem(found[1], message, flags)
    if message.startswith(_YAML_PATH) and (given := flags.get("config_path")):
        folder, name = Path(given).parent, Path(given).stem
        return (
            f"--config-path {given}: a folder, not a config file; give the folder and the "
            f"config's name: --config-path {folder} --config-name {name}"
        )
    return None


@contextlib.contextmanager
def info_held(argv: Sequence[str]) -> Iterator[None]:
    """With ``--info`` on the command line, what Hydra prints to stdout is held until it has
    finished, and dropped if it raised: ``--info`` (``all``, ``config``, ``searchpath``, ...)
    printed its header, the plugins and the search path's header before composing the config,
    so ``--info --config-name nosuch`` gave them on stdout before the one error line."""
    if _parsed(argv).get("info") is None:
        yield
        return
    held = io.StringIO()
    with contextlib.redirect_stdout(held):  # Hydra's stdout log handler takes sys.stdout then
        yield
    sys.stdout.write(held.getvalue())


def _no_primary_problem(name: str, message: str, flags: dict[str, str]) -> str:
    """``--config-name nosuch`` (or a ``--config-path`` folder without ``config.yaml``): the
    folders Hydra searched (the primary one and ``--config-dir``) and the configs they hold."""
    folders = [path for _, path in _SEARCH_PATH.findall(message)]
    names = _primary_configs(folders)
    shown = " or ".join(_shown(f) for f in folders) or "the config search path"
    if flags.get("config_name") or not flags.get("config_path"):
        held = f"choose from {', '.join(names)}" if names else "it holds no configs"
        return f"--config-name {name}: no such config in {shown} ({held})"
    held = f"choose one with --config-name: {', '.join(names)}" if names else "it holds no configs"
    return (
        f"--config-path {flags['config_path']}: no {name}.yaml in {shown}, the config a run starts "
        f"from ({held})"
    )


def _primary_configs(folders: Sequence[str]) -> list[str]:
    """The configs at the top of ``folders`` (Hydra's ``file://`` or ``pkg://`` paths)."""
    try:
        from hydra._internal.config_repository import ConfigRepository
        from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
        from hydra.core.object_type import ObjectType
        from hydra.core.plugins import Plugins

        Plugins.instance()  # (the config sources: file://, pkg://)
        search_path = ConfigSearchPathImpl()
        for folder in folders:
            search_path.append("main", folder)
        return list(ConfigRepository(search_path).get_group_options("", ObjectType.CONFIG))
    except Exception:  # the line goes without them
        return []


def _not_a_folder(path: str, given: str) -> str:
    """``no such folder`` or ``not a folder``, with the absolute ``path`` where ``given`` is
    not it."""
    state = "not a folder (a file)" if Path(path).exists() else "no such folder"
    return state if Path(given) == Path(path) else f"{state}: {path}"


def _shown(path: str) -> str:
    """A Hydra search-path entry as a person names it (a folder, or a Python package)."""
    if path.startswith("file://"):
        return path.removeprefix("file://")
    if path.startswith("pkg://"):
        return f"the Python package {path.removeprefix('pkg://')}"
    return path


def _flags(argv: Sequence[str]) -> dict[str, str]:
    """``--config-path``, ``--config-dir``, ``--config-name`` as the command line gives them."""
    args = _parsed(argv)
    names = ("config_path", "config_dir", "config_name")
    return {name: str(args[name]) for name in names if args.get(name)}


def _parsed(argv: Sequence[str]) -> dict[str, Any]:
    """Hydra's flags as its parser reads ``argv``; empty for a command line it refuses."""
    from hydra._internal.utils import get_args_parser

    with contextlib.redirect_stderr(io.StringIO()):
        try:
            return vars(get_args_parser().parse_known_args(list(argv))[0])
        except SystemExit:
            return {}
