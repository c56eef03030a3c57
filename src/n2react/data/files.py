"""Find the data files: an explicit path, else ``$N2_DATA_DIR``, else the public copy fetched
once into a cache (pooch) and checked against its pinned sha256. Reading the tables is
:mod:`n2react.data.sheets`'s job, validating them :mod:`n2react.data.tables`'s."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from n2react.errors import DataError

log = logging.getLogger(__name__)

DATA_DIR_ENV = "N2_DATA_DIR"
CACHE_DIR_ENV = "N2_CACHE_DIR"


def _cache_dir() -> Path:
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("n2react"))


def locate(
    file: str,
    *,
    path: str | os.PathLike[str] | None = None,
    url: str | None = None,
    sha256: str | None = None,
) -> Path:
    """Return a local path for ``file``: ``path``, else ``$N2_DATA_DIR/file``, else the cache.

    ``path`` may be the file itself or a folder holding ``file``.
    """
    if path is not None and str(path) != "":
        p = Path(path).expanduser()
        if p.is_dir():
            if not (p / file).exists():
                raise DataError(
                    f"data.path: folder {p} holds no {file} (the file this data option reads); "
                    f"name your spreadsheet itself: data.path={p / 'your_file.xlsx'}"
                )
            p = p / file
        if not p.exists():
            raise DataError(f"data.path: {p} does not exist")
        return p
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        p = Path(env).expanduser() / file
        if p.exists():
            _check_hash(p, sha256)
            return p
    cached = _cache_dir() / file
    # a cached copy that differs from the pinned hash is fetched again (the error line says so)
    stale = cached.exists() and sha256 is not None and _sha256(cached) != sha256
    if cached.exists() and not stale:
        return cached
    if not url:
        raise DataError(_not_found(file, env, None, "no download URL is configured"))
    import pooch

    pooch.get_logger().setLevel(logging.WARNING)  # its "Downloading ..." line: ours, once fetched
    try:
        fetched = pooch.retrieve(
            url,
            known_hash=f"sha256:{sha256}" if sha256 else None,
            fname=Path(file).name,
            path=cached.parent,
            progressbar=False,
        )
    except Exception as exc:  # network errors, hash mismatch, ...
        reason = _short_reason(exc) + ("; the cached copy differs from it" if stale else "")
        raise DataError(_not_found(file, env, url, reason)) from exc
    log.info("%s fetched from %s (sha256 checked) into %s", file, url, cached.parent)
    return Path(fetched)


#: What a failed fetch's error text means, for the one error line (requests' own text is long).
_REASONS = {
    "Failed to resolve": "no network: the host name does not resolve",
    "NameResolution": "no network: the host name does not resolve",
    "Name or service": "no network: the host name does not resolve",
    "Connection refused": "the server refused the connection",
    "timed out": "the connection timed out",
    "does not match the known hash": "the downloaded file differs from the pinned sha256",
}


def _short_reason(exc: Exception) -> str:
    text = str(exc)
    for needle, reason in _REASONS.items():
        if needle in text:
            return reason
    first = text.splitlines()[0] if text else ""
    if len(first) > 160:  # cut at a word, and say so
        first = first[:160].rsplit(" ", 1)[0] + " ..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _not_found(file: str, env: str | None, url: str | None, reason: str) -> str:
    where = f"{DATA_DIR_ENV} is unset"
    if env:  # a typo in the folder, or the wrong folder
        there = "no such folder" if not Path(env).expanduser().is_dir() else f"no {file} there"
        where = f"{DATA_DIR_ENV}={env}: {there}"
    fetch = f"fetching {url} failed ({reason})" if url else reason
    return (
        f"data file {file} not found (data.path is unset, {where}) and {fetch}; "
        f"point at it with data.path=/path/to/{Path(file).name} or "
        f"{DATA_DIR_ENV}=/folder/holding/it"
    )


def _sha256(p: Path) -> str:

    h = hashlib.sha256()
    with p.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_pinned_file(p: Path, sha256: str | None) -> bool:
    """Whether the file ``p`` is byte for byte the published one whose sha256 is ``sha256``."""
    return bool(sha256) and p.is_file() and _sha256(p) == sha256


def _check_hash(p: Path, sha256: str | None) -> None:
    if sha256 and _sha256(p) != sha256:
        log.warning("%s differs from the published file (sha256 mismatch); using it anyway", p)
