"""Model files that load without running code, and the sha256 beside each.

Models are written with skops (``skops.io``), whose loader builds only the types it is told to
trust: :data:`TRUSTED_TYPES` (scikit-learn's and n2react's own) and skops' defaults; a file naming
any other type is refused. Pickles (``.joblib`` of older runs) run code when loaded, so they are
refused unless the caller passes ``trust_pickle`` (``--trust-pickle`` in predict). Each model
file has its sha256 beside it (``<file>.sha256``), checked before loading; a missing or
different hash is an error. The final model of an MLflow run is read from its downloaded model
folder the same way (:func:`load_mlflow_model`), never through MLflow's loader.

Below :mod:`n2react.model_loading` (which finds a run's model files and loads them through this
module); split from :mod:`n2react.runstore` (which re-exports these names).
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

from n2react.atomic_files import atomic_write, write_text
from n2react.errors import N2ReactError, first_line

SHA256_SUFFIX = ".sha256"
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")

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


class MlflowModel(NamedTuple):
    """A model read from a downloaded MLflow model folder, and the file it was read from."""

    model: Any
    file: Path

    @property
    def pickled(self) -> bool:
        """The file was an older run's pickle (loaded because of ``trust_pickle``)."""
        return is_pickle(self.file)


def read_mlflow_model(
    local: Path, recorded: str | None, trust_pickle: bool = False, name: str = ""
) -> MlflowModel:
    """The sklearn-flavour model in the downloaded MLflow model folder ``local``, with its file
    (the folder is looked through once): its skops file checked against ``recorded`` (the run's
    tag ``model_sha256``) and loaded with :data:`TRUSTED_TYPES`, never through MLflow's loader
    (which trusts the types the model's own MLmodel file lists); a pickle (older runs) only with
    ``trust_pickle``.

    Says nothing of a pickle it loaded: callers load inside ``stderr_silenced()``, where a log
    line is lost, so they write :data:`TRUSTED_PICKLE` after that block when
    :attr:`MlflowModel.pickled`. Errors call the model ``name`` (what the user gave), not the
    download, removed once loaded."""
    file = mlflow_model_file(local)
    model = load_model_file(file, trust_pickle=trust_pickle, expected=recorded or "", name=name)
    return MlflowModel(model, file)


def load_mlflow_model(
    local: Path, recorded: str | None, trust_pickle: bool = False, name: str = ""
) -> Any:
    """The model alone of :func:`read_mlflow_model` (same checks, same errors)."""
    return read_mlflow_model(local, recorded, trust_pickle, name).model
