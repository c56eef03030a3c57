"""Figures drawn from result tables (no training code here)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from n2react.metrics import regression_metrics

#: log10(3): the experimental error bar of lg(k1) used by the reference paper.
EXPERIMENTAL_ERROR = float(np.log10(3.0))
#: The unit of the rate constant k1 whose decadic logarithm is modelled.
K1_UNIT = "k1 in cm³ molecule⁻¹ s⁻¹"


def mean_over_folds(oof: pd.DataFrame) -> dict[str, float] | None:
    """Mean and std (ddof=1) over the outer folds of the per-fold test r and RMSE: the figures
    MLflow shows as mean_test_r / mean_test_rmse. None without a fold column."""
    if "fold" not in oof:
        return None
    keys = ["repeat", "fold"] if "repeat" in oof else ["fold"]
    per_fold = [
        regression_metrics(g["y_true"], g["y_pred"]) for _, g in oof.groupby(keys, sort=True)
    ]
    out = {"n": float(len(per_fold))}
    for m in ("r", "rmse"):
        values = pd.Series([f[m] for f in per_fold], dtype=float)
        out[m] = float(values.mean())
        out[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def parity_plot(
    oof: pd.DataFrame,
    train: pd.DataFrame | None,
    path: Path,
    title: str = "",
    quantity: str = "lg(k1)",
    unit: str = K1_UNIT,
) -> Path:
    """Predicted vs measured lg(k1): held-out (test) points over in-fold (train) points.

    ``oof`` and ``train`` have columns cluster, y_true, y_pred (``oof`` also fold); train
    predictions are averaged per cluster over the folds it was trained in. The legend gives r and
    RMSE pooled over all points and, for the test points, their mean ± std over the outer folds
    (what MLflow logs as mean_test_r/rmse); they differ. The band is the ±log10(3) error.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 5.4), dpi=150)
    test_m = regression_metrics(oof["y_true"], oof["y_pred"])
    lo = float(min(oof["y_true"].min(), oof["y_pred"].min()))
    hi = float(max(oof["y_true"].max(), oof["y_pred"].max()))
    if train is not None and len(train):
        tr = train.groupby("cluster", sort=False)[["y_true", "y_pred"]].mean()
        tr_m = regression_metrics(tr["y_true"], tr["y_pred"])
        ax.scatter(
            tr["y_true"],
            tr["y_pred"],
            s=16,
            c="#9ecae1",
            edgecolors="none",
            label=f"train (in-fold), pooled: r={tr_m['r']:.3f}  RMSE={tr_m['rmse']:.3f}",
        )
        lo, hi = min(lo, float(tr.min().min())), max(hi, float(tr.max().max()))
    ax.scatter(
        oof["y_true"],
        oof["y_pred"],
        s=22,
        c="#d94801",
        edgecolors="white",
        linewidths=0.4,
        label=f"test (out-of-fold), pooled: r={test_m['r']:.3f}  RMSE={test_m['rmse']:.3f}",
    )
    folds = mean_over_folds(oof)
    if folds is not None:  # an invisible handle: one more legend line
        ax.plot(
            [],
            [],
            " ",
            label=(
                f"test, mean±std of {folds['n']:.0f} folds (MLflow): r={folds['r']:.3f}±"
                f"{folds['r_std']:.3f}  RMSE={folds['rmse']:.3f}±{folds['rmse_std']:.3f}"
            ),
        )
    pad = 0.05 * (hi - lo)
    line = np.array([lo - pad, hi + pad])
    ax.plot(line, line, color="black", lw=1, label="y = x")
    ax.fill_between(
        line,
        line - EXPERIMENTAL_ERROR,
        line + EXPERIMENTAL_ERROR,
        color="grey",
        alpha=0.15,
        label="±log10(3) experimental error",
    )
    ax.set_xlim(line)
    ax.set_ylim(line)
    ax.set_aspect("equal")
    suffix = f"  ({unit})" if unit else ""
    ax.set_xlabel(f"measured {quantity}{suffix}")
    ax.set_ylabel(f"predicted {quantity}{suffix}")
    if title:
        ax.set_title(textwrap.fill(title, 70), fontsize=10)
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def selection_frequency_plot(freq: pd.DataFrame, path: Path) -> Path:
    """Horizontal bars: mean selection frequency of each descriptor over the outer folds.

    ``freq`` is descriptor x fold (fraction of the selector's resamples that kept it); the whiskers
    show the range over folds.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean = freq.mean(axis=1).sort_values()
    lo = freq.min(axis=1)[mean.index]
    hi = freq.max(axis=1)[mean.index]
    fig, ax = plt.subplots(figsize=(6.0, 0.28 * len(mean) + 1.2), dpi=150)
    ax.barh(range(len(mean)), mean.to_numpy(), color="#3182bd")
    ax.errorbar(
        mean.to_numpy(),
        range(len(mean)),
        xerr=[mean.to_numpy() - lo.to_numpy(), hi.to_numpy() - mean.to_numpy()],
        fmt="none",
        ecolor="black",
        elinewidth=0.8,
        capsize=2,
    )
    ax.set_yticks(range(len(mean)))
    ax.set_yticklabels(mean.index, fontsize=8)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel(f"selection frequency (mean, range over {freq.shape[1]} outer folds)")
    ax.set_title("stability selection (RFE vote)", fontsize=10)
    ax.grid(axis="x", alpha=0.25)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def domain_plot(table: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Each cluster's kNN distance to the training set (sorted) against the threshold.

    ``table`` is :meth:`n2react.domain.ApplicabilityDomain.assess`'s output. Points are green in
    the domain and red outside it, the marker saying the first reason (new element, descriptor
    range, kNN distance), so a red point under the line is out for one of the first two; the
    out-of-domain clusters are named.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = table.sort_values("knn_distance", kind="stable").reset_index(drop=True)
    inside = t["in_domain"].astype(bool).to_numpy()
    x = np.arange(len(t))
    y = t["knn_distance"].to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.14 * len(t) + 2.0), 4.2), dpi=150)
    if inside.any():
        ax.scatter(x[inside], y[inside], s=18, c="#31a354", label=f"in domain ({inside.sum()})")
    new = (t["new_elements"].fillna("") != "").to_numpy()
    rng = (t["n_outside_range"] > 0).to_numpy()
    kinds = [
        (~inside & new, "D", "outside: new element"),
        (~inside & ~new & rng, "^", "outside: descriptor range"),
        (~inside & ~new & ~rng, "s", "outside: kNN distance"),
    ]
    for mask, marker, what in kinds:
        if mask.any():
            ax.scatter(x[mask], y[mask], s=24, c="#de2d26", marker=marker,
                       label=f"{what} ({mask.sum()})")  # fmt: skip
    thr = float(t["knn_threshold"].iloc[0]) if len(t) else float("nan")
    ax.axhline(thr, color="black", ls="--", lw=1, label=f"threshold {thr:.2f}")
    pad = 0.02 * (np.nanmax(y) if len(y) else 1.0)
    for i in np.flatnonzero(~inside):
        ax.annotate(str(t["cluster"].iat[i]), (x[i], y[i] + pad), rotation=90, fontsize=6,
                    ha="center", va="bottom", color="#a50f15")  # fmt: skip
    top = max(np.nanmax(y) if len(y) else 0.0, thr)
    ax.set_ylim(0, 1.3 * top if top > 0 else 1.0)
    ax.set_xticks([])
    ax.set_xlabel(f"{len(t)} clusters, sorted by kNN distance")
    ax.set_ylabel("kNN distance to training (sd units)")
    ax.set_title(textwrap.fill(title or "applicability domain", 80), fontsize=10)
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax.grid(axis="y", alpha=0.25)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
