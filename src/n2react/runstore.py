"""The run folder: its layout and file names, whole-or-nothing writing, hashing, and model files
that load without running code.

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

Models are written with skops (``skops.io``), whose loader builds only the types it is told to
trust: :data:`TRUSTED_TYPES` (scikit-learn's and n2react's own) and skops' defaults; a file naming
any other type is refused. Pickles (``.joblib`` of older runs) run code when loaded, so they are
refused unless the caller passes ``trust_pickle`` (``--trust-pickle`` in predict). Each model
file has its sha256 beside it (``<file>.sha256``), checked before loading; a missing or
different hash is an error. Every file is written to a temporary name in the same folder and
renamed over its target, so a crash or a full disk never leaves half a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pandas as pd

from n2react.errors import N2ReactError, first_line

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
SHA256_SUFFIX = ".sha256"
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
#: an outer fold's folder: folds/fold_NN in a run folder, fold_models/fold_NN among its MLflow
#: artifacts (NN: the fold's number)
FOLD_DIR = re.compile(r"^fold_(\d+)$")

#: Types a model file may name beyond skops' defaults (scikit-learn estimators, numpy arrays and
#: builtins): scikit-learn helpers the pipelines hold, and n2react's own estimators.
TRUSTED_TYPES: list[str] = [
    "builtins.frozenset",
    "numpy.dtype",
    "sklearn.feature_selection._univariate_selection.f_regression",
    "sklearn.feature_selection._univariate_selection.r_regression",
    "sklearn.feature_selection._mutual_info.mutual_info_regression",
    "sklearn.tree._tree.Tree",
    "sklearn.utils._bunch.Bunch",
    "n2react.domain.ApplicabilityDomain",
    "n2react.models.keras_mlp.KerasMLPRegressor",
    "n2react.models.pairwise.PairwiseRegressor",
    "n2react.models.residual.RidgeResidualTrees",
    "n2react.selectors.RFEVoteSelector",
]

#: the warning once a pickle was loaded with ``--trust-pickle``: it said "loaded" before the
#: sha256 check ran (and before a mismatch refused the file)
TRUSTED_PICKLE = (
    "%s: a pickle from an older run, its sha256 the one the run recorded, loaded because of "
    "--trust-pickle"
)
TRUST_HINT = (
    "pass --trust-pickle to load it anyway if you trust whoever wrote the file "
    "(loading a pickle runs code it names)"
)


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


# ------------------------------------------------------------------------------ writing
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


# ------------------------------------------------------------------------------ hashing
def file_sha256(path: str | Path) -> str:
    """The hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_path(path: str | Path) -> Path:
    return Path(str(path) + SHA256_SUFFIX)


def write_sha256(path: str | Path) -> Path:
    """Record ``path``'s sha256 in ``<path>.sha256`` (checked before the file is loaded)."""
    return write_text(sha256_path(path), file_sha256(path) + "\n")


def check_sha256(file: Path, expected: str | None, where: str, name: str | None = None) -> None:
    """Refuse ``file`` when no sha256 was recorded or it differs from ``expected``."""
    shown = name or file  # errors name it so (default: its path)
    if not expected or not expected.strip():
        raise N2ReactError(f"{shown}: no sha256 recorded ({where}); the file cannot be verified")
    actual = file_sha256(file)
    if actual != expected.strip().lower():
        raise N2ReactError(
            f"{shown}: sha256 {actual[:12]}... differs from the {expected.strip()[:12]}... "
            f"recorded by the run ({where}): the file changed since training"
        )


def recorded_sha256(file: Path) -> str | None:
    side = sha256_path(file)
    if not side.is_file():
        return None
    return (side.read_text().split() or [""])[0]


# ------------------------------------------------------------------------------ models
#: The attribute of a saved model (the final one and each fold's) holding the n2react version
#: that saved it (:func:`keep_version`).
VERSION_ATTR = "n2react_version_"


def keep_version(model: Any) -> None:
    """Record on ``model`` the n2react version saving it (kept in its model file)."""
    from n2react import __version__

    setattr(model, VERSION_ATTR, __version__)


def saved_by(model: Any) -> str | None:
    """The n2react version recorded by :func:`keep_version`; None for a model saved before
    versions were recorded."""
    saved = getattr(model, VERSION_ATTR, None)
    return None if saved is None else str(saved)


def save_model(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` with skops to ``path`` (atomically) and its sha256 beside it."""
    import skops.io as sio

    path = Path(path)
    with atomic_write(path, "wb") as fh:
        sio.dump(obj, fh, compression=zipfile.ZIP_DEFLATED)
    write_sha256(path)
    return path


def is_pickle(path: Path) -> bool:
    return Path(path).suffix.lower() in PICKLE_SUFFIXES


def load_model_file(
    path: str | Path, *, trust_pickle: bool = False, expected: str | None = None, name: str = ""
) -> Any:
    """A model file checked against its sha256 (``expected``, else ``<path>.sha256``), loaded
    without running code: skops with :data:`TRUSTED_TYPES`. A pickle, or a skops file naming
    other types, is refused unless ``trust_pickle``. Errors call it ``name`` (default: its path)."""
    path = Path(path)
    shown = name or str(path)
    if not path.is_file():
        raise N2ReactError(f"{shown}: no such model file")
    where = "its MLflow tag" if expected else sha256_path(path).name
    check_sha256(path, expected or recorded_sha256(path), where, shown)
    if is_pickle(path):
        if not trust_pickle:
            raise N2ReactError(
                f"{shown}: a pickle (an older run's format, or not written by n2react); "
                + TRUST_HINT
            )
        import joblib

        return joblib.load(path)
    return _load_skops(path, trust_pickle, shown)


def _load_skops(path: Path, trust_all: bool, shown: str) -> Any:
    import skops.io as sio

    try:
        found = sio.get_untrusted_types(file=path)
        unknown = [t for t in found if t not in TRUSTED_TYPES]
        if unknown and not trust_all:
            raise N2ReactError(
                f"{shown}: names type(s) n2react does not trust ({', '.join(unknown[:5])}); "
                + TRUST_HINT
            )
        return sio.load(path, trusted=found)
    except N2ReactError:
        raise
    except Exception as exc:  # a corrupt archive, a schema from another skops
        raise N2ReactError(f"{shown}: not a readable model file ({first_line(exc, 200)})") from exc


def mlflow_model_file(local: Path) -> Path:
    """The model file of the downloaded MLflow model folder ``local`` (skops, or an older
    run's pickle)."""
    files = sorted(Path(local).glob("*.skops")) + sorted(Path(local).glob("*.pkl"))
    if not files:
        raise N2ReactError(f"{local}: no model file in the MLflow model")
    return files[0]


def load_mlflow_model(
    local: Path, recorded: str | None, trust_pickle: bool = False, name: str = ""
) -> Any:
    """The sklearn-flavour model in the downloaded MLflow model folder ``local``: its skops file
    checked against ``recorded`` (the run's tag ``model_sha256``) and loaded with
    :data:`TRUSTED_TYPES`, never through MLflow's loader (which trusts the types the model's own
    MLmodel file lists); a pickle (older runs) only with ``trust_pickle``.

    Says nothing of a pickle it loaded: callers load inside ``stderr_silenced()``, where a log
    line is lost, so they write :data:`TRUSTED_PICKLE` after that block. Errors call the model
    ``name`` (what the user gave), not the download, removed once loaded."""
    file = mlflow_model_file(local)
    return load_model_file(file, trust_pickle=trust_pickle, expected=recorded or "", name=name)


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
