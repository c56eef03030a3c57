"""How well the intervals cover and the trust signals rank errors: metrics and figures.

The same :func:`trust_metrics` scores the run's cross-fitted out-of-fold table and a labelled
transfer set, so the figures in MLflow, ``summary.json`` and ``benchmarks/`` mean the same thing:

* ``interval_coverage`` / ``interval_width``: share of clusters inside their interval, mean width;
* ``uncertainty_spearman``: Spearman(expected_error, |error|);
* ``domain_mae_flagged`` / ``domain_mae_in`` (``domain_n_flagged`` / ``domain_n_in``): MAE of
  the clusters ``in_domain`` rejects / passes;
* ``descriptor_flag_mae_flagged`` / ``descriptor_flag_mae_in``: the same for the descriptor rule
  alone (range or kNN distance; informational in predict's ``descriptor_notes``).
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from n2react.figures import LGK1, save_figure, wrap_title
from n2react.metrics import figure
from n2react.runstore import write_csv
from n2react.uncertainty import LEVELS

log = logging.getLogger(__name__)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation; NaN when either side is constant or there are < 3 pairs."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b)[0])


def _mae(err: np.ndarray, mask: np.ndarray) -> float:
    return float(np.mean(err[mask])) if mask.any() else float("nan")


def trust_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    expected_error: np.ndarray,
    in_domain: np.ndarray,
    descriptor_flag: np.ndarray | None = None,
    prefix: str = "",
) -> dict[str, float]:
    """Coverage, width, Spearman(expected_error, |error|) and the MAE flagged vs passed."""
    y = np.asarray(y_true, float)
    err = np.abs(np.asarray(y_pred, float) - y)
    inside = np.asarray(in_domain, bool)
    out = {
        "interval_coverage": float(np.mean((y >= lower) & (y <= upper))),
        "interval_width": float(np.mean(np.asarray(upper) - np.asarray(lower))),
        "uncertainty_spearman": spearman(expected_error, err),
        "domain_mae_flagged": _mae(err, ~inside),
        "domain_mae_in": _mae(err, inside),
        "domain_n_flagged": float((~inside).sum()),
        "domain_n_in": float(inside.sum()),
    }
    if descriptor_flag is not None:
        flag = np.asarray(descriptor_flag, bool)
        out["descriptor_flag_mae_flagged"] = _mae(err, flag)
        out["descriptor_flag_mae_in"] = _mae(err, ~flag)
    return {f"{prefix}{k}": v for k, v in out.items()}


def descriptor_flag(assessed: pd.DataFrame) -> np.ndarray:
    """The descriptor rule of :meth:`n2react.domain.ApplicabilityDomain.assess`'s table: a
    descriptor outside the training range, or the kNN distance above its threshold."""
    far = (assessed["knn_distance"] > assessed["knn_threshold"]).to_numpy()
    return far | (assessed["n_outside_range"] > 0).to_numpy()


def descriptor_flags(result: Any, ligands: Sequence[str]) -> pd.DataFrame:
    """Per out-of-fold prediction (fold, row): the applicability domain fitted on that fold's
    training rows only: ``new_element`` and ``descriptor_flag`` (range or kNN distance)."""
    from n2react.domain import ApplicabilityDomain

    ds = result.dataset
    frames = []
    for f in result.folds:
        tr, te = f.split.train, f.split.test
        dom = ApplicabilityDomain(ligands=list(ligands)).fit(ds.X.iloc[tr], ds.clusters[tr])
        a = dom.assess(ds.X.iloc[te], ds.clusters[te])
        new = (a["new_elements"].fillna("") != "").to_numpy()
        frames.append(
            pd.DataFrame(
                {
                    "fold": f.split.fold,
                    "row": te,
                    "new_element": new,
                    "descriptor_flag": descriptor_flag(a),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def crossfit_metrics(crossfit: pd.DataFrame) -> dict[str, float]:
    """:func:`trust_metrics` of the cross-fitted table (``in_domain`` and ``descriptor_flag``
    columns included), plus the observed coverage at each level of the plot."""
    t = crossfit
    out = trust_metrics(
        t["y_true"], t["y_pred"], t["y_lower"], t["y_upper"], t["expected_error"],
        t["in_domain"], t.get("descriptor_flag"),
    )  # fmt: skip
    return out


def coverage_curve(crossfit: pd.DataFrame) -> pd.DataFrame:
    """Nominal level, observed coverage and mean width (one row per level of the plot)."""
    rows = []
    for level in LEVELS:
        rows.append(
            {
                "nominal": level,
                "observed": float(crossfit[f"covered_{level:g}"].mean()),
                "width": float(crossfit[f"width_{level:g}"].mean()),
            }
        )
    return pd.DataFrame(rows)


def group_columns(crossfit: pd.DataFrame, coverage: float) -> pd.DataFrame | None:
    """Per group: interval_coverage, interval_width, expected_error (None: no groups)."""
    if "group" not in crossfit:
        return None
    g = crossfit.groupby("group")
    return pd.DataFrame(
        {
            "interval_coverage": g[f"covered_{coverage:g}"].mean(),
            "interval_width": g[f"width_{coverage:g}"].mean(),
            "expected_error": g["expected_error"].mean(),
        }
    ).reset_index()


def calibration_plot(curves: dict[str, pd.DataFrame], path: Path, title: str = "") -> Path:
    """:func:`calibration_figure` written to ``path`` (whole or not at all)."""
    return save_figure(calibration_figure(curves, title), path)


def calibration_figure(curves: dict[str, pd.DataFrame], title: str = "") -> Any:
    """Observed vs nominal coverage of the prediction intervals, with the diagonal; each curve
    (label -> :func:`coverage_curve` table) is annotated with its mean width in lg(k1) units
    (inside the axes, also over a point at full coverage).
    A curve lacking some of the levels (too few calibration clusters for them) says which."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 5.2), dpi=150)
    ax.plot(
        [0.45, 1.0], [0.45, 1.0], color="grey", ls="--", lw=1, label="ideal (observed = nominal)"
    )
    # one curve: each width on the side of the point away from the diagonal; two: the first's
    # above-left, the second's below-right, so that they stay apart
    offsets = [None] if len(curves) == 1 else [(-26, 4), (4, -10), (4, 4)]
    styles = zip(("#3182bd", "#de2d26", "#31a354"), offsets, strict=True)
    for (label, c), (color, offset) in zip(curves.items(), styles, strict=False):
        missing = [f"{100 * lv:g} %" for lv in LEVELS if not np.isclose(c["nominal"], lv).any()]
        if missing and len(c):
            label += f" (no {', '.join(missing)} point: too few clusters to calibrate it)"
        ax.plot(c["nominal"], c["observed"], marker="o", color=color,
                label=textwrap.fill(" ".join(label.split()), 58))  # fmt: skip
        for _, row in c.iterrows():
            at = (row["nominal"], row["observed"])
            xy = offset or ((-26, 4) if row["observed"] > row["nominal"] else (4, -10))
            ax.annotate(f"{row['width']:.2f}", at, textcoords="offset points", xytext=xy,
                        fontsize=6, color=color)  # fmt: skip
    ax.set_xlim(0.45, 1.0)
    ax.set_ylim(0.0, 1.07)  # room above full coverage for the widths printed over its points
    ax.set_yticks(np.linspace(0.0, 1.0, 6))
    ax.set_xlabel("nominal coverage of the interval")
    ax.set_ylabel("observed share of clusters inside their interval")
    ax.set_title(wrap_title(title or "prediction intervals: calibration"), fontsize=9)
    # in the legend: at the top left it sat under the widths of points at full coverage
    ax.plot([], [], " ", label=f"numbers: mean interval width ({LGK1} units)")
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    return fig


#: The curves behind ``uncertainty/calibration.png`` (curve, nominal, observed, width).
CURVE_FILE = "calibration_curve.csv"


def draw_calibration(
    out: Path, title: str, label: str, curve: pd.DataFrame, first: bool = False
) -> list[Path]:
    """Add ``curve`` (:func:`coverage_curve`) to the run's calibration figure in ``out`` and
    redraw it with every curve it holds; ``first`` draws the new curve first (the intervals
    the run ships). Returns the table behind the figure and the figure."""
    from n2react.uncertainty import PLOT_FILE

    label = " ".join(label.split())  # one line in the table; the figure wraps it
    new = curve.assign(curve=label)[["curve", "nominal", "observed", "width"]]
    table = out / CURVE_FILE
    old = pd.read_csv(table) if table.exists() else new.iloc[:0]
    old = old[old["curve"] != label]
    both = pd.concat([new, old] if first else [old, new], ignore_index=True)
    curves = {c: both[both["curve"] == c] for c in dict.fromkeys(both["curve"])}
    plot = calibration_plot(curves, out / PLOT_FILE, title=f"{title}: interval calibration")
    return [write_csv(table, both), plot]


def error_plot(table: pd.DataFrame, path: Path, title: str = "") -> Path:
    """:func:`error_figure` written to ``path`` (whole or not at all)."""
    return save_figure(error_figure(table, title), path)


def error_figure(table: pd.DataFrame, title: str = "") -> Any:
    """|error| against expected_error per cluster, in-domain green, flagged red, with y = x; the
    title ends with their Spearman correlation (``-`` when undefined: one expected error)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ee = table["expected_error"].to_numpy(float)
    err = np.abs(table["y_pred"].to_numpy(float) - table["y_true"].to_numpy(float))
    inside = table["in_domain"].astype(bool).to_numpy()
    fig, ax = plt.subplots(figsize=(5.6, 5.0), dpi=150)
    top = float(max(np.nanmax(ee), np.nanmax(err))) * 1.1 if len(ee) else 1.0
    ax.plot([0, top], [0, top], color="grey", ls="--", lw=1, label="|error| = expected error")
    for mask, color, what in ((inside, "#31a354", "in domain"), (~inside, "#de2d26", "flagged")):
        if mask.any():
            ax.scatter(ee[mask], err[mask], s=20, c=color,
                       label=f"{what} ({mask.sum()}, MAE {err[mask].mean():.2f})")  # fmt: skip
    rho = spearman(ee, err)
    ax.set_xlabel(f"expected error ({LGK1} units)")
    ax.set_ylabel(f"|predicted - measured| {LGK1}")
    ax.set_title(wrap_title(f"{title} Spearman {figure(rho, '+.2f')}".strip()), fontsize=9)
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    return fig


def evaluate_run(
    result: Any,
    spec: Any,
    ligands: Sequence[str],
    run_dir: Path,
    title: str,
    protocol: str,
    progress: bool = False,
    procedure: Callable[[str], Any] | None = None,
) -> tuple[Any, dict[str, float], list[Path], pd.DataFrame | None]:
    """Calibrate the run's intervals on its out-of-fold residuals and validate them cross-fitted.

    Returns the calibration (saved later with the final model), the metrics (NaN ones left out),
    the files written (the cross-fitted table, the calibration plot) and the per-group columns.
    ``in_domain`` of a held-out cluster is what predict would say of it with a calibration and
    domain fitted without its fold: no new element and expected error not flagged.
    ``procedure(name)``: a fresh fold procedure, for nested validation of a searched run
    (:func:`n2react.nested_residuals.nested_residuals`).
    """
    from n2react.nested_residuals import nested_residuals
    from n2react.terminal import refit_bar
    from n2react.uncertainty import OOF_FILE
    from n2react.uncertainty_fit import calibrate

    nested = None
    if spec.validation == "nested":
        bar = refit_bar if progress else None
        nested = nested_residuals(result, spec.needs_spread, bar, procedure)
    calib, crossfit = calibrate(result, spec, protocol, nested)
    flags = descriptor_flags(result, ligands)
    crossfit = crossfit.merge(flags, on=["fold", "row"], how="left", validate="one_to_one")
    crossfit["in_domain"] = ~(crossfit["flagged"] | crossfit["new_element"])
    metrics = {k: v for k, v in crossfit_metrics(crossfit).items() if np.isfinite(v)}
    if spec.error_kind == "none":  # one expected error per fold: no ranking to measure
        metrics.pop("uncertainty_spearman", None)
    curve = coverage_curve(crossfit)
    out = run_dir / "uncertainty"
    out.mkdir(parents=True, exist_ok=True)
    keep = ["cluster", "fold", "repeat", "group", "y_true", "y_pred", "y_lower", "y_upper",
            "expected_error", "in_domain", "new_element", "descriptor_flag"]  # fmt: skip
    write_csv(out / OOF_FILE, crossfit[[c for c in keep if c in crossfit]])
    how = "the other folds' errors" + (", refitted without it" if nested is not None else "")
    label = f"held-out clusters, {protocol}: each fold calibrated on {how}"
    (out / CURVE_FILE).unlink(missing_ok=True)  # an earlier run's curves (resume) are not ours
    drawn = draw_calibration(out, title, label, curve)
    log.info(
        "%g%% intervals (%s): cover %.0f%% of held-out clusters, mean width %.2f; "
        "Spearman(expected error, |error|) %s; %s",
        100 * spec.coverage,
        spec.difficulty,
        100 * metrics["interval_coverage"],
        metrics["interval_width"],
        figure(metrics.get("uncertainty_spearman"), "+.2f"),  # none: "-", not "+nan"
        flag_split_text(metrics),
    )
    return calib, metrics, [out / OOF_FILE, *drawn], group_columns(crossfit, spec.coverage)


def flag_split_text(metrics: Mapping[str, float]) -> str:
    """The MAE of flagged vs passed clusters for a log line; a side with no cluster says so
    (leave one metal out flags every cluster: "vs in domain nan (0)" read like a failure)."""
    n_out, n_in = int(metrics["domain_n_flagged"]), int(metrics["domain_n_in"])
    mae_out, mae_in = metrics.get("domain_mae_flagged"), metrics.get("domain_mae_in")
    if not n_in:
        return f"all {n_out} clusters flagged (MAE {mae_out:.3f}): no in-domain cluster to compare"
    if not n_out:
        return f"no cluster flagged (MAE {mae_in:.3f})"
    return f"MAE flagged {mae_out:.3f} ({n_out}) vs in domain {mae_in:.3f} ({n_in})"
