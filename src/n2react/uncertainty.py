"""Conformal prediction intervals and an expected error, calibrated on a run's held-out errors.

The outer CV already gives every cluster an out-of-fold residual ``y - y_hat`` under the run's
protocol (a grouped run: from held-out groups). Those residuals calibrate split-conformal
intervals (CV+ style: no calibration rows are set aside; :func:`conformal_intervals`), optionally
normalised by a *difficulty* (:mod:`n2react.difficulty`: none, knn_distance, knn_residual,
spread, spread_knn) so the width follows how hard a cluster is.

A residual's difficulty is computed the way a new cluster's is: against the training rows of the
outer fold that predicted it (a new cluster: against all training rows; its spread: by the fold's
own model, a new cluster's by the final model). ``expected_error`` is the difficulty times the
median normalised score (an estimate of the cluster's |error|); a cluster is *flagged* when its
expected error exceeds the ``flag_quantile`` of the calibration clusters' own.

This module holds the ``uncertainty:`` config (:class:`UncertaintySpec`), the conformal arithmetic
and the fitted :class:`Calibration` (plain data, saved as JSON beside the model: no pickle).
Fitting it on a run's out-of-fold results, with the cross-fitted table the run logs, is
:mod:`n2react.uncertainty_fit`; calibrating on a labelled file of new clusters instead is
:mod:`n2react.calibration_set`.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from n2react.difficulty import DIFFICULTIES, SPREAD_DIFFICULTIES, Neighbourhood, base_kind, combine
from n2react.errors import ConfigError, DataError
from n2react.nested_residuals import VALIDATIONS
from n2react.runstore import write_json

#: The cross-fitted out-of-fold table and the calibration plot of a run.
OOF_FILE = "oof_uncertainty.csv"
PLOT_FILE = "calibration.png"
#: The nominal coverages of the calibration plot.
LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
FORMAT = 1


def min_residuals(coverage: float) -> int:
    """How many residuals a ``coverage`` interval needs to be finite (1 / (1 - coverage))."""
    return int(math.ceil(round(1.0 / (1.0 - coverage), 6)))


def check_coverage(
    coverage: float, n: int | None = None, where: str = "coverage", what: str = "out-of-fold"
) -> float:
    """``coverage`` as a float in (0, 1), refused when ``n`` residuals (``what``: out-of-fold,
    or the calibration file's name) cannot calibrate it. ``where``: the config key, or the
    command-line flag (``--coverage``) the value came from, as the user typed it."""
    c = float(coverage)
    sep = " " if where.startswith("--") else "="
    if not 0.0 < c < 1.0:
        raise ConfigError(f"{where}{sep}{coverage}: expected a fraction between 0 and 1, e.g. 0.9")
    if n is not None and n < min_residuals(c):
        raise DataError(
            f"{where}{sep}{c:g}: too few {what} residuals to calibrate it ({n}; a {100 * c:g}% "
            f"interval needs at least {min_residuals(c)})"
        )
    return c


@dataclass(frozen=True)
class UncertaintySpec:
    """The ``uncertainty:`` block of the config."""

    difficulty: str = "knn_residual"
    k: int = 3
    coverage: float = 0.9
    flag_quantile: float = 0.9
    #: the difficulty behind expected_error and the flag ("same": ``difficulty``)
    expected_error: str = "same"
    #: labelled clusters of the kind to be predicted that calibrate the intervals instead of the
    #: out-of-fold residuals (:mod:`n2react.calibration_set`); None: the out-of-fold residuals
    calibration_path: str | None = None
    #: how the run validates them: "crossfit" (each fold calibrated on the other folds' residuals,
    #: from models that trained on it) or "nested" (on refits that never saw it:
    #: :mod:`n2react.nested_residuals`)
    validation: str = "nested"

    @classmethod
    def from_config(cls, node: dict[str, Any] | None) -> UncertaintySpec:
        node = dict(node or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(node) - known)
        if unknown:
            raise ConfigError(f"uncertainty.{unknown[0]}: unknown key")
        spec = cls(**node)
        if spec.difficulty not in DIFFICULTIES:
            raise ConfigError(
                f"uncertainty.difficulty={spec.difficulty!r}: expected one of "
                + ", ".join(DIFFICULTIES)
            )
        if spec.expected_error not in ("same", *DIFFICULTIES):
            raise ConfigError(
                f"uncertainty.expected_error={spec.expected_error!r}: expected same or one of "
                + ", ".join(DIFFICULTIES)
            )
        if isinstance(spec.k, bool) or not isinstance(spec.k, int) or spec.k < 1:
            raise ConfigError(f"uncertainty.k={spec.k!r}: expected a whole number >= 1")
        if spec.validation not in VALIDATIONS:
            raise ConfigError(
                f"uncertainty.validation={spec.validation!r}: expected " + " or ".join(VALIDATIONS)
            )
        check_coverage(spec.coverage, where="uncertainty.coverage")
        if not 0.0 < float(spec.flag_quantile) <= 1.0:
            raise ConfigError(f"uncertainty.flag_quantile={spec.flag_quantile}: expected (0, 1]")
        return spec

    def needed(self) -> int:
        """Residuals the run needs: enough for the plot's highest level and the logged one."""
        return max(min_residuals(self.coverage), min_residuals(max(LEVELS)))

    @property
    def error_kind(self) -> str:
        """The difficulty that expected_error and the flag are read from."""
        return self.difficulty if self.expected_error == "same" else self.expected_error

    @property
    def needs_spread(self) -> bool:
        return bool({self.difficulty, self.error_kind} & set(SPREAD_DIFFICULTIES))

    @property
    def uses_neighbours(self) -> bool:
        """Whether a difficulty is read off the ``k`` nearest reference clusters."""
        return {base_kind(self.difficulty), base_kind(self.error_kind)} != {"none"}


# --------------------------------------------------------------------------- calibration


def conformal_intervals(
    residuals: np.ndarray, sigmas: np.ndarray, y_hat: np.ndarray, s: np.ndarray, level: float
) -> np.ndarray:
    """(n, 2) split-conformal intervals ``y_hat -+ q * s``: ``q`` the ceil(level (n + 1))-th
    smallest normalised score ``|residual| / sigma`` of the ``n`` calibration residuals.

    (crepes' ConformalRegressor, used before, takes the score at ``int((1 - level) (n + 1))``
    from the top: in floating point one rank too high whenever that product is whole, e.g. the
    145th smallest of 159 instead of the 144th for a 90 % interval.)"""
    n = len(residuals)
    check_coverage(level, n)
    scores = np.sort(np.abs(np.asarray(residuals, float)) / np.asarray(sigmas, float))
    q = scores[math.ceil(round(level * (n + 1), 9)) - 1]
    y_hat = np.asarray(y_hat, float)
    half = q * np.asarray(s, float)
    return np.column_stack([y_hat - half, y_hat + half])


@dataclass
class Calibration:
    """A fitted calibration: plain arrays, saved and loaded as JSON (never unpickled)."""

    difficulty: str
    k: int
    flag_quantile: float
    residuals: np.ndarray  # y - y_hat of each out-of-fold prediction
    sigmas: np.ndarray  # their difficulty (against the training rows of their fold)
    columns: list[str]  # the descriptors the difficulty reads
    train_X: np.ndarray  # the training clusters' raw descriptors (the final model's rows)
    train_abs_residual: np.ndarray  # their out-of-fold |residual| (mean over repeats)
    protocol: str = ""
    #: the difficulty of expected_error and the flag ("": ``difficulty``) and its values on the
    #: calibration residuals (None: ``sigmas``)
    error_difficulty: str = ""
    error_sigmas: np.ndarray | None = None
    #: where the residuals come from: "out-of-fold", or the calibration file's name
    source: str = "out-of-fold"
    #: the calibration file's clusters' raw descriptors (None: out-of-fold residuals)
    calib_X: np.ndarray | None = None
    #: what the outer folds of the out-of-fold residuals held out (:func:`n2react.splitters.
    #: held_out_text`: metal, family, column:<name>, clusters, pairs, folds); "" in a run saved
    #: before it was recorded
    held_out: str = ""

    @property
    def n(self) -> int:
        return len(self.residuals)

    @property
    def error_kind(self) -> str:
        return self.error_difficulty or self.difficulty

    @property
    def _error_sigmas(self) -> np.ndarray:
        return self.sigmas if self.error_sigmas is None else self.error_sigmas

    @property
    def scale(self) -> float:
        """The median normalised score: expected_error = scale * (error) difficulty."""
        return float(np.median(np.abs(self.residuals) / self._error_sigmas))

    @property
    def threshold(self) -> float:
        """The expected error above which a cluster is flagged."""
        return float(np.quantile(self.scale * self._error_sigmas, self.flag_quantile))

    @property
    def needs_spread(self) -> bool:
        """Whether :meth:`predict` needs the model's spread (see :func:`model_spread`)."""
        return bool({self.difficulty, self.error_kind} & set(SPREAD_DIFFICULTIES))

    def difficulty_of(
        self, X: pd.DataFrame, spread: np.ndarray | None = None, kind: str | None = None
    ) -> np.ndarray:
        """The difficulty ``kind`` (default: the intervals' one) of the clusters ``X`` against
        the training clusters."""
        kind = kind or self.difficulty
        if base_kind(kind) == "none":
            return combine(kind, spread, np.ones(len(X)))
        ref = Neighbourhood(self.train_X, self.train_abs_residual)
        base = ref.difficulty(self.raw(X), base_kind(kind), self.k)
        return combine(kind, spread, base)

    def raw(self, X: pd.DataFrame) -> np.ndarray:
        """The clusters' raw descriptors in :attr:`columns`' order (non-numbers as NaN), the
        form of ``train_X`` and ``calib_X``."""
        absent = [c for c in self.columns if c not in X.columns]
        if absent:
            raise DataError(f"uncertainty: descriptor column(s) missing: {', '.join(absent)}")
        return X[self.columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)

    def predict(
        self,
        X: pd.DataFrame,
        y_pred: np.ndarray,
        coverage: float = 0.9,
        spread: np.ndarray | None = None,
        where: str = "coverage",
    ) -> pd.DataFrame:
        """``y_lower``, ``y_upper`` (the ``coverage`` interval), ``expected_error``, ``flagged``;
        ``spread``: the final model's :func:`model_spread` of ``X`` when :attr:`needs_spread`;
        ``where``: what a refused ``coverage`` is called (a key, or predict's ``--coverage``)."""
        check_coverage(coverage, self.n, where=where, what=self.source)
        s = self.difficulty_of(X, spread)
        iv = conformal_intervals(self.residuals, self.sigmas, y_pred, s, coverage)
        ee = self.scale * (
            s
            if self.error_kind == self.difficulty
            else self.difficulty_of(X, spread, self.error_kind)
        )
        return pd.DataFrame(
            {
                "y_lower": iv[:, 0],
                "y_upper": iv[:, 1],
                "expected_error": ee,
                "flagged": ee > self.threshold,
            }
        )

    def save(self, path: str | Path) -> Path:
        """Write the calibration as JSON, whole or not at all."""
        data = {
            k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(self).items()
        }
        data["format"] = FORMAT
        return write_json(path, data)


def _check_fields(path: str | Path, data: dict[str, Any]) -> None:
    """``{"format": 1}`` said "Calibration.__init__() missing 8 required positional arguments:
    ..."; a JSON object without the calibration's fields (or with others) is named in one line."""
    known = {f.name: f for f in fields(Calibration)}
    missing = [
        name
        for name, f in known.items()
        if f.default is MISSING and f.default_factory is MISSING and name not in data
    ]
    unknown = sorted(set(data) - set(known))
    if missing or unknown:
        what = "; ".join(
            f"{label} field(s) {', '.join(names)}"
            for label, names in (("lacking", missing), ("with unknown", unknown))
            if names
        )
        raise DataError(
            f"{path}: cannot be read (a JSON object {what}: not the interval calibration "
            "the run wrote)"
        )


def load_calibration(path: str | Path) -> Calibration:
    """Read a calibration written by :meth:`Calibration.save` (plain JSON); a file holding JSON
    other than an object (a list, a number) is ``<file>: cannot be read (...)``, one line."""
    try:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict):  # [1], 5, "x", null: .pop below was a traceback
            kind = {list: "a JSON list", str: "a JSON string", bool: "a JSON true/false"}.get(
                type(data), "JSON null" if data is None else "a JSON number"
            )
            raise DataError(
                f"{path}: cannot be read ({kind}: not the interval calibration the run wrote)"
            )
        if data.pop("format", None) != FORMAT:
            raise ValueError("unknown format")
        _check_fields(path, data)
        arrays = ("residuals", "sigmas", "train_abs_residual", "error_sigmas")
        for key in arrays:
            if data.get(key) is not None:
                data[key] = np.asarray(data[key], dtype=float)
        for key in ("train_X", "calib_X"):
            if data.get(key) is not None:
                data[key] = np.asarray(data[key], dtype=float).reshape(-1, len(data["columns"]))
        return Calibration(**data)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise DataError(f"{path}: not a readable n2react calibration ({exc})") from exc
