"""Fit a run's :class:`~n2react.uncertainty.Calibration` on its out-of-fold results.

:func:`calibrate` returns the run's calibration (plain data, saved as JSON beside the model: no
pickle) and a *cross-fitted* table in which each outer fold's intervals, expected errors and flags
come from a calibration that never saw that fold's residuals, nor its rows as neighbours: the
figures the run logs. As in CV+, the other folds' residuals come from models trained with that
fold's rows, so its lg(k1) still reaches them (with ``knn_residual``, through its neighbours'
residuals, which flatters the ranking figures); ``validation=nested`` takes them from refits that
never saw the fold (:mod:`n2react.nested_residuals`). The spec, the conformal arithmetic and the
calibration object are :mod:`n2react.uncertainty`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from n2react.difficulty import Neighbourhood, base_kind, combine, model_spread
from n2react.errors import DataError
from n2react.nested_residuals import FoldResiduals, nested_view
from n2react.uncertainty import LEVELS, Calibration, UncertaintySpec, conformal_intervals

log = logging.getLogger(__name__)


def _oof(result: Any, spread: bool = False) -> pd.DataFrame:
    """One row per out-of-fold prediction: row index, fold, repeat, y, y_hat, group (and with
    ``spread`` the spread of the fold's own model on it)."""
    ds = result.dataset
    frames = []
    for f in result.folds:
        frame = pd.DataFrame(
            {
                "row": f.split.test,
                "cluster": ds.clusters[f.split.test],
                "fold": f.split.fold,
                "repeat": f.split.repeat,
                "y_true": ds.y[f.split.test],
                "y_pred": f.y_pred_test,
            }
        )
        if spread:
            if f.model is None:
                raise DataError(
                    f"outer fold {f.split.fold}: its fitted model is not available, so the "
                    "spread of its predictions cannot be measured (uncertainty.difficulty)"
                )
            frame["spread"] = model_spread(f.model, ds.X.iloc[f.split.test])
        frames.append(frame)
    oof = pd.concat(frames, ignore_index=True)
    if ds.groups is not None:
        oof["group"] = ds.groups[oof["row"].to_numpy()]
    oof["residual"] = oof["y_true"] - oof["y_pred"]
    return oof


def _sigmas(
    raw: np.ndarray,
    rep: pd.DataFrame,
    part: pd.DataFrame,
    abs_res: np.ndarray,
    spec: UncertaintySpec,
    leave: set,
    kind: str | None = None,
) -> np.ndarray:
    """Difficulty of each row of ``part`` against the rows of ``rep`` (one repeat's out-of-fold
    table) in neither its own fold nor the folds in ``leave`` (the held-out fold evaluated);
    ``kind``: the difficulty (default ``spec.difficulty``)."""
    kind = kind or spec.difficulty
    spread = part["spread"].to_numpy() if spec.needs_spread else None
    if base_kind(kind) == "none":
        return combine(kind, spread, np.ones(len(part)))
    out = np.empty(len(part))
    folds = part["fold"].to_numpy()
    for g in np.unique(folds):
        here = folds == g
        ref = rep.loc[~rep["fold"].isin(leave | {g}), "row"].to_numpy()
        if len(ref) < 2:  # two outer folds: no third to compare with (calibrate says so)
            ref = rep.loc[rep["fold"] != g, "row"].to_numpy()
        nb = Neighbourhood(raw[ref], abs_res[ref])
        out[here] = nb.difficulty(raw[part["row"].to_numpy()[here]], base_kind(kind), spec.k)
    return combine(kind, spread, out)


def calibrate(
    result: Any,
    spec: UncertaintySpec,
    protocol: str = "",
    nested: dict[tuple[int, int], FoldResiduals] | None = None,
) -> tuple[Calibration, pd.DataFrame]:
    """The run's calibration and the cross-fitted out-of-fold table.

    The table has, per out-of-fold prediction: ``y_lower``/``y_upper`` at ``spec.coverage``,
    ``expected_error``, ``flagged``, ``covered_<level>`` and ``width_<level>`` for the plot's
    levels, each from a calibration fitted on the other outer folds of the same repeat only;
    with ``nested`` (:func:`n2react.nested_residuals.nested_residuals`), on their residuals from
    models that never trained on the fold scored.
    """
    oof = _oof(result, spec.needs_spread)
    need = spec.needed()
    if len(oof) < need:
        raise DataError(
            f"too few out-of-fold residuals to calibrate intervals ({len(oof)}; need at least "
            f"{need} for {100 * max(LEVELS):g}% intervals)"
        )
    ds = result.dataset
    if {base_kind(spec.difficulty), base_kind(spec.error_kind)} != {"none"} and oof.groupby(
        "repeat"
    )["fold"].nunique().min() < 3:
        log.warning(
            "with 2 outer folds, the cross-fitted difficulty of a calibration cluster is measured "
            "against the held-out fold too (there is no third fold)"
        )
    raw = ds.X.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    n_rows = len(raw)
    table = []
    final_sigmas = np.empty(len(oof))
    final_error = np.empty(len(oof))
    own = spec.error_kind == spec.difficulty
    for repeat, rep in oof.groupby("repeat", sort=True):
        abs_res = np.full(n_rows, np.nan)
        abs_res[rep["row"].to_numpy()] = np.abs(rep["residual"].to_numpy())
        final_sigmas[rep.index.to_numpy()] = _sigmas(raw, rep, rep, abs_res, spec, set())
        final_error[rep.index.to_numpy()] = (
            final_sigmas[rep.index.to_numpy()]
            if own
            else _sigmas(raw, rep, rep, abs_res, spec, set(), spec.error_kind)
        )
        folds = sorted(rep["fold"].unique())
        for f in folds:
            test, rep_f, abs_f = rep[rep["fold"] == f], rep, abs_res
            if nested is not None:
                rep_f, abs_f = nested_view(rep, abs_res, f, nested[(repeat, f)])
            cal = rep_f[rep_f["fold"] != f]
            if len(cal) < need:
                raise DataError(
                    f"too few out-of-fold residuals to calibrate fold {f} on the other folds "
                    f"({len(cal)}; need at least {need}): use more rows or fewer folds"
                )
            s_cal = _sigmas(raw, rep_f, cal, abs_f, spec, {f})
            s_test = _sigmas(raw, rep_f, test, abs_f, spec, set())
            r = cal["residual"].to_numpy()
            e_cal, e_test = s_cal, s_test
            if not own:
                e_cal = _sigmas(raw, rep_f, cal, abs_f, spec, {f}, spec.error_kind)
                e_test = _sigmas(raw, rep_f, test, abs_f, spec, set(), spec.error_kind)
            scale = float(np.median(np.abs(r) / e_cal))
            part = test.copy()
            part["expected_error"] = scale * e_test
            limit = np.quantile(scale * e_cal, spec.flag_quantile)
            part["flagged"] = part["expected_error"] > limit
            for level in sorted(set(LEVELS) | {spec.coverage}):
                iv = conformal_intervals(r, s_cal, test["y_pred"].to_numpy(), s_test, level)
                y = test["y_true"].to_numpy()
                part[f"covered_{level:g}"] = (y >= iv[:, 0]) & (y <= iv[:, 1])
                part[f"width_{level:g}"] = iv[:, 1] - iv[:, 0]
                if level == spec.coverage:
                    part["y_lower"], part["y_upper"] = iv[:, 0], iv[:, 1]
            table.append(part)
    mean_abs = oof.assign(a=oof["residual"].abs()).groupby("row")["a"].mean()
    tested = mean_abs.index.to_numpy()  # the references a new cluster is compared with
    calib = Calibration(
        difficulty=spec.difficulty,
        k=int(spec.k),
        flag_quantile=float(spec.flag_quantile),
        residuals=oof["residual"].to_numpy(dtype=float),
        sigmas=final_sigmas,
        columns=[str(c) for c in ds.X.columns],
        train_X=raw[tested],
        train_abs_residual=mean_abs.to_numpy(dtype=float),
        protocol=protocol,
        error_difficulty="" if own else spec.error_kind,
        error_sigmas=None if own else final_error,
    )
    crossfit = pd.concat(table).sort_index()
    crossfit["abs_error"] = crossfit["residual"].abs()
    return calib, crossfit
