"""Whole-or-nothing files: every file n2react writes goes to a temporary name in the same folder
and is renamed over its target, so a crash or a full disk never leaves half a file; JSON with NaN
as null; CSV cells a spreadsheet would run as formulas neutralised (and restored when read back).

The lowest of n2react's file modules: it imports nothing from n2react but its errors, so any
module may write through it. Split from :mod:`n2react.runstore` (which re-exports these names).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from n2react.errors import N2ReactError

if TYPE_CHECKING:  # pandas is imported where a table is read or written: every command's start
    import pandas as pd  # (python -m train --help, a refused command) goes through this module


def _cannot_write(path: Path, exc: OSError) -> N2ReactError:
    return N2ReactError(f"{path}: cannot write ({exc.strerror or type(exc).__name__})")


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A file object on a temporary file beside ``path``, renamed over ``path`` when the block
    ends without error; otherwise removed (an earlier ``path`` is kept). An OSError (no space,
    no permission) becomes one-line N2ReactError naming ``path``."""
    out = Path(path)
    tmp: str | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        kwargs = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
        tmp = None
    except OSError as exc:
        raise _cannot_write(out, exc) from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_write(path) as fh:
        fh.write(text)
    return Path(path)


def json_text(obj: Any) -> str:
    """``obj`` as JSON text (indented, one trailing newline); a NaN or infinite number (an
    undefined r) is null: JSON has no NaN, and text with one is refused by strict readers (jq,
    browsers). What :func:`write_json` writes and the commands' ``--json`` print."""
    return json.dumps(_no_nan(obj), indent=2, default=str) + "\n"


def write_json(path: str | Path, obj: Any) -> Path:
    """``obj`` as JSON (:func:`json_text`: NaN and infinities as null), written atomically."""
    return write_text(path, json_text(obj))


def number(value: Any) -> float:
    """A number read back from a file :func:`write_json` wrote: null (a NaN there) is NaN."""
    return math.nan if value is None else float(value)


def _no_nan(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_no_nan(v) for v in obj]
    return obj


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _neutral(v: Any) -> Any:
    if isinstance(v, str) and v.startswith(_FORMULA_START):
        try:
            float(v)  # "-1.5" is a number, not a formula
            return v
        except ValueError:
            return "'" + v
    return v


def spreadsheet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with text cells that a spreadsheet would run as a formula (starting with ``=``,
    ``+``, ``-``, ``@``, tab or CR, and not a number) prefixed with ``'``, as spreadsheet tools
    expect; numbers and other cells unchanged."""
    import pandas as pd

    out = table.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(_neutral)
    if out.index.dtype == object:
        out.index = out.index.map(_neutral)
    return out


def _restored(v: Any) -> Any:
    if isinstance(v, str) and len(v) > 1 and v[0] == "'" and v[1] in _FORMULA_START:
        return v[1:]
    return v


def read_csv(path: str | Path, **kwargs: Any) -> pd.DataFrame:
    """A CSV written by :func:`write_csv`, its neutralised text cells as they were."""
    import pandas as pd

    table = pd.read_csv(path, **kwargs)
    for col in table.columns:
        if table[col].dtype == object or pd.api.types.is_string_dtype(table[col]):
            table[col] = table[col].map(_restored)
    return table


def write_csv(path: str | Path, table: pd.DataFrame, **kwargs: Any) -> Path:
    """``table.to_csv`` atomically, names neutralised for spreadsheets (``index=False`` unless
    given)."""
    kwargs.setdefault("index", False)
    with atomic_write(path) as fh:
        spreadsheet_safe(table).to_csv(fh, **kwargs)
    return Path(path)
