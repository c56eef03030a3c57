"""The data set a config names: :func:`load_dataset` reads a ``data`` config node
(``conf/data/*.yaml``) into a validated :class:`Dataset`.

One module per job: :mod:`n2react.data.files` finds the files (an explicit path, else
``$N2_DATA_DIR``, else the public copy fetched once with a pinned sha256),
:mod:`n2react.data.sheets` reads a spreadsheet or text file, :mod:`n2react.data.tables` validates
it, :mod:`n2react.data.authors_folds` reads the authors' ten fold files (``data=authors_folds``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from n2react.composition import DEFAULT_LIGANDS, formula_features
from n2react.data import options
from n2react.data.authors_folds import load_fold_files
from n2react.data.files import is_pinned_file, locate
from n2react.data.sheets import other_sheets, read_sheet, warn_once
from n2react.data.tables import Dataset, NotATable, short_list, table_to_dataset
from n2react.errors import DataError

__all__ = [
    "Dataset",
    "data_name",
    "has_fixed_folds",
    "load_dataset",
    "reads_published_sheet",
    "takes_published_descriptors",
    "with_formula_features",
]


def load_dataset(cfg: Mapping[str, Any], group_column: str | None = None) -> Dataset:
    """Load the dataset described by a ``data`` config node (see ``conf/data/*.yaml``).

    With ``formula: true`` the formula-level descriptors read off the cluster names
    (:mod:`n2react.composition`) are appended to the file's descriptors. ``group_column`` (from
    ``cv.groups=column:<name>``) is read as the rows' groups, not as a descriptor.
    """
    ds = _load(cfg, group_column)
    check_variation(ds)
    if cfg.get("formula"):
        ligands = cfg.get("formula_ligands") or DEFAULT_LIGANDS
        ds = with_formula_features(ds, ligands, options.column_list(cfg, "formula_columns"))
    return ds


def with_formula_features(
    ds: Dataset, ligands: Sequence[str] = DEFAULT_LIGANDS, columns: Sequence[str] | None = None
) -> Dataset:
    """``ds`` with the ``0_`` formula-level columns appended (from its cluster names); only
    ``columns`` of them when given (``data.formula_columns``)."""
    extra = formula_features(
        ds.clusters, ligands=list(ligands), source=ds.source, sheet_rows=ds.rows, written=ds.written
    )
    if columns is not None:
        unknown = [str(c) for c in columns if c not in extra.columns]
        if unknown:
            raise DataError(
                f"data.formula_columns: {', '.join(unknown)} is not a formula-level column "
                f"(expected some of {', '.join(extra.columns)})"
            )
        extra = extra[[str(c) for c in columns]]
    clash = [c for c in extra.columns if c in ds.X.columns]
    if clash:
        raise DataError(f"{ds.source}: column(s) {', '.join(clash)} already exist (data.formula)")
    X = pd.concat([ds.X.reset_index(drop=True), extra], axis=1)
    return replace(ds, X=X)


def data_name(cfg: Mapping[str, Any]) -> str:
    """The data as a run names them (titles, the MLflow ``dataset`` tag, messages): the
    option's ``name``, or for a spreadsheet of the user's (``data.path`` naming a file other than
    the option's own) that file's name, so a run on ``my_clusters.xlsx`` is not titled
    ``homonuclear_24``."""
    name, path, source = str(cfg.get("name", "data")), cfg.get("path"), _source(cfg)
    if source is None or not source.user_file or not path:
        return name
    p = Path(str(path)).expanduser()
    return name if p.is_dir() or p.name == cfg.get("file") else p.stem


def takes_published_descriptors(
    cfg: Mapping[str, Any], dataset: Dataset, group_column: str | None = None
) -> bool:
    """Whether a table data config read the published file it names the standard way, listing
    no descriptors (:func:`reads_published_sheet`), so that its descriptors are that file's known
    ones: saying which would tell nothing."""
    return cfg.get("feature_columns") is None and reads_published_sheet(
        cfg, Path(dataset.source), group_column
    )


def reads_published_sheet(cfg: Mapping[str, Any], p: Path, group_column: str | None) -> bool:
    """Whether a table data config reads ``p``, the published file it names (``data.file``, its
    sha256 the pinned ``data.sha256``: the data set's own sheet, not the user's), the standard
    way (its first sheet, the name and target columns found by themselves, no
    ``cv.groups=column:``): then which sheet, which target column and which descriptors were
    taken are the file's known ones, and the lines saying so are left out."""
    standard = (
        options.sheet(cfg) == 0
        and group_column is None
        and all(cfg.get(key) is None for key in ("name_column", "target_column"))
    )
    pinned = cfg.get("sha256")
    if not standard or _source(cfg) is not SOURCES["table"] or not isinstance(pinned, str):
        return False
    return is_pinned_file(p, pinned)


def has_fixed_folds(cfg: Mapping[str, Any]) -> bool:
    """Whether the data config's files fix the outer folds themselves (``data=authors_folds``):
    no cv.groups, and the protocol says so."""
    source = _source(cfg)
    return source is not None and source.fixed_folds


@dataclass(frozen=True)
class Source:
    """What a ``data.kind`` is: how its files are read into a :class:`Dataset` (``load(cfg,
    group_column)``), whether they fix the outer folds, whether ``data.path`` may name a
    spreadsheet of the user's."""

    load: Callable[[Mapping[str, Any], str | None], Dataset]
    fixed_folds: bool = False
    user_file: bool = False


def _table(cfg: Mapping[str, Any], group_column: str | None) -> Dataset:
    sheet, features, sentinels = (
        options.sheet(cfg),
        options.column_list(cfg, "feature_columns"),
        options.sentinels(cfg),
    )
    p = locate(cfg["file"], path=options.path(cfg), url=cfg.get("url"), sha256=cfg.get("sha256"))
    try:  # the published sheet read the standard way: which sheet and target go without saying
        announce = not reads_published_sheet(cfg, p, group_column)
        return _table_of(cfg, p, sheet, features, sentinels, group_column, announce)
    except NotATable as exc:  # a notes sheet first: name the sheet read and the others
        raise DataError(f"{exc}{other_sheets(p, sheet, 'data.sheet=')}") from None


def _table_of(
    cfg: Mapping[str, Any],
    p: Path,
    sheet: str | int,
    features: list[str] | None,
    sentinels: list[float],
    group_column: str | None,
    announce: bool,
) -> Dataset:
    return table_to_dataset(
        read_sheet(p, sheet, announce=announce),
        name=data_name(cfg),
        source=str(p),
        name_column=cfg.get("name_column"),
        target_column=cfg.get("target_column"),
        feature_columns=features,
        sentinels=sentinels,
        group_column=group_column,
        announce_target=announce,
    )


def _fold_files(cfg: Mapping[str, Any], group_column: str | None) -> Dataset:
    if group_column is not None:
        raise DataError("cv.groups=column:...: the authors' fold files keep their own folds")
    return load_fold_files(cfg)


#: ``data.kind`` -> what it is: ``table`` (conf/data_base/table.yaml, every data option but one),
#: ``folds`` (conf/data/authors_folds.yaml).
SOURCES: dict[str, Source] = {
    "table": Source(_table, user_file=True),
    "folds": Source(_fold_files, fixed_folds=True),
}


def _source(cfg: Mapping[str, Any]) -> Source | None:
    return SOURCES.get(str(cfg.get("kind", "table")))


def _load(cfg: Mapping[str, Any], group_column: str | None = None) -> Dataset:
    source = _source(cfg)
    if source is None:
        raise DataError(
            f"data.kind: unknown kind '{cfg.get('kind')}' (expected {' or '.join(SOURCES)})"
        )
    return source.load(cfg, group_column)


def check_variation(ds: Dataset) -> None:
    """Refuse a constant target or all-constant descriptors; warn about constant descriptors."""
    y = ds.y[np.isfinite(ds.y)]
    if len(y) and np.ptp(y) == 0:
        raise DataError(
            f"{ds.source}: the target {ds.target_name} is constant ({y[0]:g} in all "
            f"{len(y)} rows): there is nothing to learn"
        )
    constant = [str(c) for c in ds.X.columns if ds.X[c].nunique(dropna=True) <= 1]
    if constant and len(constant) == ds.X.shape[1]:
        raise DataError(
            f"{ds.source}: every descriptor is constant ({short_list(constant)}): "
            "there is nothing to learn from"
        )
    if constant:
        warn_once(
            f"{ds.source}: constant descriptor column(s) carry no information: "
            f"{short_list(constant)}"
        )
