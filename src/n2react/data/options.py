"""The keys of a ``data`` config node that say how a table is read (``conf/data_base/table.yaml``),
checked once before any file is opened: a key of the wrong shape is one :class:`DataError` line
naming it, not a traceback nor a silent misreading (``data.feature_columns='3_α'`` read as the
three columns ``3``, ``_`` and ``α``; ``data.sentinels=abc`` as no sentinel at all)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from n2react.errors import DataError


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def column_list(cfg: Mapping[str, Any], key: str) -> list[str] | None:
    """``data.<key>`` (a list of column names, or null) as a list of strings; a bare name, an
    empty list or a name twice is refused."""
    value = cfg.get(key)
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise DataError(
            f"data.{key}={value!r}: expected a list of column names, e.g. "
            f"data.{key}=[a,b] (quote names with other characters: \"data.{key}=['3_α']\")"
        )
    names = [str(c).strip() for c in value]
    if not names:
        raise DataError(f"data.{key}=[]: an empty list selects no column (null: all of them)")
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise DataError(f"data.{key}: {', '.join(twice)} listed twice")
    return names


def sentinels(cfg: Mapping[str, Any]) -> list[float]:
    """``data.sentinels``: the cell values read as missing. One number stands for a list of one;
    null or [] for none; anything else is refused."""
    value = cfg.get("sentinels")
    if value is None:
        return []
    if _is_number(value):
        return [value]
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise DataError(f"data.sentinels={value!r}: expected a list of numbers, e.g. [-999]")
    bad = [v for v in value if not _is_number(v)]
    if bad:
        raise DataError(
            f"data.sentinels: {bad[0]!r} is not a number (the values that mean missing, e.g. "
            "[-999])"
        )
    return list(value)


def sheet(cfg: Mapping[str, Any]) -> str | int:
    """``data.sheet``: a sheet's name or its position (0 = the first); null is the first."""
    value = cfg.get("sheet", 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DataError(
            f"data.sheet={value!r}: expected a sheet name or its position (0 = the first)"
        )
    return value


def path(cfg: Mapping[str, Any]) -> str | None:
    """``data.path`` as text (``data.path=5`` is the file ``5``, not a number)."""
    value = cfg.get("path")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, Mapping) or (isinstance(value, Sequence) and not isinstance(value, str)):
        raise DataError(f"data.path={value!r}: expected one file or folder")
    return str(value)
