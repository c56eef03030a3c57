"""The run folder: its layout and file names, the n2react version that made it, and the lock
that keeps a second run out of it while one trains.

Every other module asks this one where a run's files are and how to write or read them:

    <run>/config_resolved.yaml  summary.json  final_params.json  oof_predictions.csv  folds.csv
    <run>/run.json                      what made the run: {"n2react_version": ..., "device":
                                        ..., "keras_backend": ...}, written when it starts
                                        (older runs have none, or the version alone)
    <run>/model.skops (+ .sha256)       the final pipeline (old runs: model.joblib)
    <run>/domain.skops (+ .sha256)      the applicability domain of the training clusters
    <run>/folds/fold_NN/                model.skops (+ .sha256), fold.json (written last: the fold
                                        is complete), predictions.csv, trials.csv,
                                        selected_features.txt

Model files and their hashes are read and written by :mod:`n2react.model_files`, every file
whole or not at all by :mod:`n2react.atomic_files` (split from here: their names are re-exported
here, where callers import them).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from n2react.atomic_files import atomic_write as atomic_write  # callers import these here
from n2react.atomic_files import json_text as json_text
from n2react.atomic_files import number as number
from n2react.atomic_files import read_csv as read_csv
from n2react.atomic_files import spreadsheet_safe as spreadsheet_safe
from n2react.atomic_files import write_csv as write_csv
from n2react.atomic_files import write_json as write_json
from n2react.atomic_files import write_text as write_text
from n2react.errors import N2ReactError, first_line
from n2react.model_files import PICKLE_SUFFIXES as PICKLE_SUFFIXES  # callers import these here
from n2react.model_files import SHA256_SUFFIX as SHA256_SUFFIX
from n2react.model_files import TRUST_HINT as TRUST_HINT
from n2react.model_files import TRUSTED_PICKLE as TRUSTED_PICKLE
from n2react.model_files import TRUSTED_TYPES as TRUSTED_TYPES
from n2react.model_files import VERSION_ATTR as VERSION_ATTR
from n2react.model_files import MlflowModel as MlflowModel
from n2react.model_files import check_sha256 as check_sha256
from n2react.model_files import file_sha256 as file_sha256
from n2react.model_files import is_pickle as is_pickle
from n2react.model_files import keep_version as keep_version
from n2react.model_files import load_mlflow_model as load_mlflow_model
from n2react.model_files import load_model_file as load_model_file
from n2react.model_files import mlflow_model_file as mlflow_model_file
from n2react.model_files import read_mlflow_model as read_mlflow_model
from n2react.model_files import recorded_sha256 as recorded_sha256
from n2react.model_files import save_model as save_model
from n2react.model_files import saved_by as saved_by
from n2react.model_files import sha256_path as sha256_path
from n2react.model_files import write_sha256 as write_sha256

if TYPE_CHECKING:
    import pandas as pd
    from omegaconf import DictConfig

log = logging.getLogger(__name__)

CONFIG_FILE = "config_resolved.yaml"
RUN_FILE = "run.json"  # what made the run (:func:`write_made_by`)
SUMMARY_FILE = "summary.json"
FINAL_PARAMS_FILE = "final_params.json"
OOF_FILE = "oof_predictions.csv"
FOLDS_TABLE_FILE = "folds.csv"
MODEL_FILE = "model.skops"
DOMAIN_FILE = "domain.skops"
LEGACY_MODEL_FILE = "model.joblib"
LEGACY_DOMAIN_FILE = "domain.joblib"
FOLDS_DIR = "folds"
FOLD_FILE = "fold.json"  # written last: a fold folder holding it is complete
PREDICTIONS_FILE = "predictions.csv"
SELECTED_FILE = "selected_features.txt"
TRIALS_FILE = "trials.csv"
UNCERTAINTY_FILE = "uncertainty.json"  # the interval calibration (n2react.uncertainty)
#: an outer fold's folder: folds/fold_NN in a run folder, fold_models/fold_NN among its MLflow
#: artifacts (NN: the fold's number)
FOLD_DIR = re.compile(r"^fold_(\d+)$")


# ------------------------------------------------------------------------------ layout
def fold_dir(run_dir: Path, fold: int) -> Path:
    return Path(run_dir) / FOLDS_DIR / f"fold_{fold:02d}"


def model_path(folder: Path, name: str = MODEL_FILE) -> Path | None:
    """The model file ``name`` in ``folder`` (or the pickle an older run wrote); None: none."""
    legacy = {MODEL_FILE: LEGACY_MODEL_FILE, DOMAIN_FILE: LEGACY_DOMAIN_FILE}.get(name)
    for candidate in (name, legacy):
        if candidate and (Path(folder) / candidate).is_file():
            return Path(folder) / candidate
    return None


def fold_model_paths(run_dir: Path) -> dict[int, Path]:
    """Outer fold number -> its model file, for every fold folder of ``run_dir`` that has one."""
    return fold_model_files(Path(run_dir) / FOLDS_DIR)


def fold_model_files(root: Path) -> dict[int, Path]:
    """Outer fold number -> its model file, for every ``fold_NN`` folder in ``root`` that has
    one (a run's ``folds/``, or the ``fold_models/`` artifacts of its MLflow run)."""
    out = {}
    for d in sorted(Path(root).iterdir()) if Path(root).is_dir() else []:
        m = FOLD_DIR.match(d.name)
        p = model_path(d) if m and d.is_dir() else None
        if m is not None and p is not None:
            out[int(m.group(1))] = p
    return out


# ------------------------------------------------------------------------------ run.json
def write_made_by(run_dir: Path, device: Mapping[str, str] | None = None) -> Path:
    """Record in ``run_dir`` the n2react version that starts the run there, and the device it
    starts on (``device``: {"device": ..., "keras_backend": ...})."""
    from n2react import __version__

    return write_json(Path(run_dir) / RUN_FILE, {"n2react_version": __version__, **(device or {})})


def made_by(run_dir: Path) -> str | None:
    """The n2react version that started the run in ``run_dir``; None for a run made before
    versions were recorded (no run.json). A run.json that does not name a version (cut short,
    edited) is an error saying what to do."""
    file = Path(run_dir) / RUN_FILE
    if not file.is_file():
        return None
    try:
        obj = json.loads(file.read_bytes())
        recorded = obj.get("n2react_version") if isinstance(obj, dict) else None
        if not isinstance(recorded, str) or not recorded.strip():
            raise ValueError(f"no n2react_version in {repr(obj)[:60]}")
    except ValueError as exc:
        why = first_line(exc)
        raise N2ReactError(
            f"{file}: not the JSON object n2react writes ({why}), so the n2react version that "
            'started the run is unknown: restore the file (it reads {"n2react_version": '
            '"<version>"}), or start the run again'
        ) from exc
    return recorded


# ------------------------------------------------------------------------------ holding
@contextmanager
def held(run_dir: Path) -> Iterator[None]:
    """The run folder, held by this process for the block: a second run or ``resume=`` into it
    while this one trains is refused, instead of two processes clearing and writing one folder.

    An exclusive ``flock`` on the folder itself (no lock file to leave behind); the kernel drops
    it when the process ends, however it ends. Where the file system cannot lock (some network
    mounts) or the platform has no ``fcntl``, the folder is not held.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise N2ReactError(
                f"{run_dir} is in use by another n2react run: wait for it to end, or choose "
                "another hydra.run.dir"
            ) from None
        except OSError as exc:
            log.debug("%s cannot be locked (%s): not held", run_dir, exc)
        yield
    finally:
        os.close(fd)


def in_use(run_dir: Path) -> bool:
    """Whether another process holds ``run_dir`` (:func:`held`)."""
    try:
        with held(run_dir):
            return False
    except N2ReactError:
        return True
    except OSError:  # gone, or not a folder
        return False


def read_config(file: Path) -> DictConfig:
    """The settings in a run's ``config_resolved.yaml`` ``file``, read once; N2ReactError
    ``<file>: cannot be read (<why>)`` when it is gone, not valid YAML (its problem and line),
    empty or not a mapping of settings. Every reader of a run's config says it alike."""
    import yaml
    from omegaconf import DictConfig, OmegaConf

    file = Path(file)
    try:
        cfg = OmegaConf.load(file)
    except FileNotFoundError:
        why = "not found"
    except yaml.MarkedYAMLError as exc:
        mark = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        why = f"not valid YAML: {exc.problem or first_line(exc)}{mark}"
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        why = first_line(exc)
    else:
        if isinstance(cfg, DictConfig) and len(cfg):
            return cfg
        why = "empty" if isinstance(cfg, DictConfig) else "not a mapping of settings"
    raise N2ReactError(f"{file}: cannot be read ({why})")


def read_oof(path: Path, source: str) -> pd.DataFrame:
    """The out-of-fold table ``path`` of the run ``source`` (its folder, an MLflow run), its
    scores numbers; one line naming the run, the file and its row when it cannot be read, lacks
    a column, has no rows or holds a cell that is blank, not finite or not a number (an edited
    or damaged file)."""
    import numpy as np
    import pandas as pd

    try:
        oof = read_csv(path)
    except Exception as exc:
        raise N2ReactError(f"{source}: cannot read {OOF_FILE} ({first_line(exc)})") from exc
    missing = {"cluster", "y_true", "y_pred", "fold"} - set(oof.columns)
    if missing:
        raise N2ReactError(f"{source}: {OOF_FILE} lacks column(s) {', '.join(sorted(missing))}")
    if oof.empty:
        raise N2ReactError(f"{source}: {OOF_FILE} has no rows (not a finished run?)")
    for col in ("y_true", "y_pred", "fold"):  # an edited or damaged file: a text cell, a blank
        values = pd.to_numeric(oof[col], errors="coerce")
        bad = ~np.isfinite(values.to_numpy(float))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            cell = oof[col].iloc[i]
            what = (
                "is blank"
                if pd.isna(cell)
                else f"{cell} is not finite"
                if pd.notna(values.iloc[i])
                else f"{str(cell)!r} is not a number"
            )
            raise N2ReactError(
                f"{source}: {OOF_FILE} row {i + 2} (cluster {oof['cluster'].iloc[i]}): {col} {what}"
            )
        oof[col] = values
    return oof
