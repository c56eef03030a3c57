"""The authors' published split (``data=authors_folds``): ten files, one per outer fold, each
with a Train and a Test sheet, read sheet by sheet with :func:`n2react.data.sheets.read_sheet`
and :func:`n2react.data.tables.table_to_dataset` into one :class:`Dataset` whose ``folds`` are
the authors' splits."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from n2react.data import options
from n2react.data.files import locate
from n2react.data.sheets import read_sheet
from n2react.data.tables import Dataset, table_to_dataset
from n2react.errors import DataError

log = logging.getLogger(__name__)


def load_fold_files(cfg: Mapping[str, Any]) -> Dataset:
    """The authors' split: one file per fold with a Train and a Test sheet.

    Rows are the union of the Test sheets (each cluster is tested exactly once); fold k trains on
    the rows its Train sheet names. Headers are renamed to the spelling of the other files.
    """
    n_folds = int(cfg.get("n_folds", 10))
    hashes = cfg.get("sha256") or {}
    rename = dict(cfg.get("rename_columns") or {})
    parts: list[Dataset] = []
    train_names: list[list[str]] = []
    sources: list[str] = []
    for k in range(1, n_folds + 1):
        file = str(cfg["file"]).format(fold=k)
        url = str(cfg["url"]).format(fold=k) if cfg.get("url") else None
        h = hashes.get(k, hashes.get(str(k))) if isinstance(hashes, Mapping) else None
        p = locate(file, path=options.path(cfg), url=url, sha256=h)
        sources.append(str(p))
        sheets: dict[str, Dataset] = {}
        for role in ("train", "test"):
            sheet = cfg.get(f"{role}_sheet", role.title())
            df = read_sheet(p, sheet, announce=False).rename(columns=rename)  # named in config
            sheets[role] = table_to_dataset(
                df,
                name=f"{cfg.get('name', 'folds')}[{k}]",
                source=f"{p} [{sheet}]",
                name_column=cfg.get("name_column"),
                target_column=cfg.get("target_column"),
                feature_columns=options.column_list(cfg, "feature_columns"),
                sentinels=options.sentinels(cfg),
                announce_target=False,
            )
        if parts and list(sheets["test"].X.columns) != list(parts[0].X.columns):
            raise DataError(f"{p}: descriptor columns differ from fold 1's")
        parts.append(sheets["test"])
        train_names.append(list(sheets["train"].clusters))
    clusters = np.concatenate([d.clusters for d in parts])
    index = {c: i for i, c in enumerate(clusters)}
    if len(index) != len(clusters):
        dup = pd.Series(clusters)[pd.Series(clusters).duplicated()].iloc[0]
        raise DataError(f"{cfg['file']}: cluster '{dup}' is in the Test sheet of two folds")
    folds: list[tuple[np.ndarray, np.ndarray]] = []
    start = 0
    for k, (part, names) in enumerate(zip(parts, train_names), start=1):
        test_idx = np.arange(start, start + part.n_rows)
        start += part.n_rows
        unknown = [c for c in names if c not in index]
        if unknown:
            raise DataError(f"{sources[k - 1]} [Train]: cluster '{unknown[0]}' is in no Test sheet")
        train_idx = np.array(sorted(index[c] for c in names))
        if np.intersect1d(train_idx, test_idx).size:
            raise DataError(f"{sources[k - 1]}: a cluster is in both its Train and Test sheets")
        folds.append((train_idx, test_idx))
    X = pd.concat([d.X for d in parts], ignore_index=True)
    renamed = {v: k for k, v in rename.items()}.get(parts[0].target_name, parts[0].target_name)
    log.info(
        "target: %s (read as '%s' from the %d fold files %s)",
        parts[0].target_name,
        renamed,
        n_folds,
        cfg["file"],
    )
    return Dataset(
        name=str(cfg.get("name", "folds")),
        source=os.path.commonpath(sources),
        clusters=clusters,
        X=X,
        y=np.concatenate([d.y for d in parts]),
        target_name=parts[0].target_name,
        folds=folds,
        missing=[m for d in parts for m in d.missing],
    )
