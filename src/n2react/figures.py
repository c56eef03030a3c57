"""The run's figures (parity, descriptor selection frequency, applicability domain) drawn from
result tables, no training code here; and what every figure shares: the lg(k1) notation and the
±0.477 band, writing a PNG with its text. The titles are :mod:`n2react.titles`'s (importable from
here too); the explanation figures are :mod:`n2react.explain.draw`'s."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from n2react.metrics import regression_metrics
from n2react.provenance import USED_MARKS, USED_TEXT
from n2react.titles import data_title as data_title  # the titles: re-exported, as before
from n2react.titles import model_title as model_title
from n2react.titles import run_dir_title as run_dir_title
from n2react.titles import run_setting as run_setting
from n2react.titles import wrap_title

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: log10(3): the experimental error bar of lg(k1) used by the reference paper.
EXPERIMENTAL_ERROR = float(np.log10(3.0))
#: The unit of the rate constant k1 whose decadic logarithm is modelled.
K1_UNIT = "k1 in cm³ molecule⁻¹ s⁻¹"
#: One notation in every figure, the terminal and the README: the quantity, its axis label and
#: the experimental band (±log10(3) = ±0.477 in lg(k1), a factor of 3 in k1).
LGK1 = "lg(k1)"
LGK1_AXIS = f"{LGK1}  ({K1_UNIT})"
BAND = f"±{EXPERIMENTAL_ERROR:.3f} (a factor of 3 in k1)"
WITHIN = f"within ±{EXPERIMENTAL_ERROR:.3f}"


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG (cut to its content: long titles and outside legends are not clipped)
    and close it. The PNG's text chunks carry its title (``Title``) and every text drawn
    (``Description``: titles, legend entries, tick labels, notes), so a figure can be checked
    without looking at it (:func:`figure_text`)."""
    from matplotlib.text import Text

    for ax in fig.axes:  # place the ticks, so that their labels are Text (no extra full draw)
        ax.get_xticklabels()
        ax.get_yticklabels()
    texts = [t.get_text() for t in fig.findobj(Text) if t.get_visible() and t.get_text()]
    titles = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    titles += [ax.get_title() for ax in fig.axes if ax.get_title()]
    meta = {"Title": " | ".join(titles), "Description": "\n".join(texts)}
    from n2react.runstore import atomic_write

    with atomic_write(path, "wb") as fh:  # whole or not at all
        fig.savefig(fh, format="png", bbox_inches="tight", metadata=meta)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def figure_text(path: Path) -> dict[str, str]:
    """The ``Title`` and ``Description`` a PNG written by :func:`save_figure` carries."""
    from PIL import Image

    with Image.open(path) as im:
        return {k: str(v) for k, v in im.text.items()}


def short_name(name: object, width: int = 18) -> str:
    """A cluster name cut to ``width`` characters (``…`` marks the cut) for labels in figures."""
    text = " ".join(str(name).split())
    return text if len(text) <= width else text[: width - 1] + "…"


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


#: From this many held-out points on, a parity plot draws them small and see-through.
DENSE_POINTS = 500


def parity_plot(
    oof: pd.DataFrame,
    train: pd.DataFrame | None,
    path: Path,
    title: str = "",
    quantity: str = LGK1,
    unit: str = K1_UNIT,
    points: str = "test (out-of-fold)",
) -> Path:
    """:func:`parity_figure` written to ``path`` (whole or not at all)."""
    return save_figure(parity_figure(oof, train, title, quantity, unit, points), path)


def parity_figure(
    oof: pd.DataFrame,
    train: pd.DataFrame | None,
    title: str = "",
    quantity: str = LGK1,
    unit: str = K1_UNIT,
    points: str = "test (out-of-fold)",
) -> Figure:
    """Predicted vs measured lg(k1): held-out (test) points over in-fold (train) points, both
    over the y = x line and the ±0.477 band.
    ``points``: what the held-out points are, in the legend (a transfer file's are new clusters).

    ``oof`` and ``train`` have columns cluster, y_true, y_pred (``oof`` also fold, and group in a
    grouped run); train predictions are averaged per cluster over the folds it was trained in.
    The legend (below the axes, off the points) gives r, RMSE, MAE and the count within the
    ±0.477 band pooled over all points; under KFold also the test mean ± sd over the outer folds
    (what MLflow logs as mean_test_r/rmse). A grouped run quotes the pooled figures only: its
    folds are whole groups of very different size and spread, so a per-fold r says little.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 6.0), dpi=150)
    test_m = regression_metrics(oof["y_true"], oof["y_pred"])
    within = int((np.abs(oof["y_pred"] - oof["y_true"]) <= EXPERIMENTAL_ERROR).sum())
    lo = float(min(oof["y_true"].min(), oof["y_pred"].min()))
    hi = float(max(oof["y_true"].max(), oof["y_pred"].max()))
    if train is not None and len(train):
        tr = train.groupby("cluster", sort=False)[["y_true", "y_pred"]].mean()
        tr_m = regression_metrics(tr["y_true"], tr["y_pred"])
        ax.scatter(
            tr["y_true"],
            tr["y_pred"],
            s=16,
            c="#6baed6",
            edgecolors="none",
            zorder=2,
            label=f"train (in-fold), pooled: r {tr_m['r']:.3f}, RMSE {tr_m['rmse']:.3f}",
        )
        lo, hi = min(lo, float(tr.min().min())), max(hi, float(tr.max().max()))
    # a dense cloud (the paper's pair split: 5,000 pairs) is drawn see-through, small, so that
    # its density and the y = x line under it show
    dense = len(oof) > DENSE_POINTS
    ax.scatter(
        oof["y_true"],
        oof["y_pred"],
        s=6 if dense else 22,
        c="#d94801",
        alpha=0.3 if dense else 1.0,
        edgecolors="none" if dense else "white",
        linewidths=0.4,
        zorder=3,
        label=(
            f"{points}, pooled over {len(oof)}: r {test_m['r']:.3f}, "
            f"RMSE {test_m['rmse']:.3f}, MAE {test_m['mae']:.3f}, {WITHIN}: {within}"
        ),
    )
    grouped = "group" in oof and oof["group"].notna().any()
    folds = None if grouped else mean_over_folds(oof)
    if folds is not None and folds["n"] > 1:  # an invisible handle: one more legend line
        ax.plot(
            [],
            [],
            " ",
            label=(
                f"test, mean ± sd over {folds['n']:.0f} outer folds (MLflow mean_test_*): "
                f"r {folds['r']:.3f} ± {folds['r_std']:.3f}, "
                f"RMSE {folds['rmse']:.3f} ± {folds['rmse_std']:.3f}"
            ),
        )
    elif grouped:
        ax.plot([], [], " ", label="folds hold out whole groups: pooled figures, not fold means")
    pad = 0.05 * (hi - lo)
    line = np.array([lo - pad, hi + pad])
    # under the points: drawn over them, the line hid the in-fold points a forest fits exactly
    ax.plot(line, line, color="black", lw=1, label="y = x", zorder=0.9)
    ax.fill_between(
        line,
        line - EXPERIMENTAL_ERROR,
        line + EXPERIMENTAL_ERROR,
        color="grey",
        alpha=0.15,
        label=f"{BAND}: experimental error",
        zorder=0.8,
    )
    ax.set_xlim(line)
    ax.set_ylim(line)
    ax.set_aspect("equal")
    suffix = f"  ({unit})" if unit else ""
    ax.set_xlabel(f"measured {quantity}{suffix}")
    ax.set_ylabel(f"predicted {quantity}{suffix}")
    if title:
        ax.set_title(wrap_title(title, 64), fontsize=10)
    ax.legend(
        loc="upper left", bbox_to_anchor=(-0.12, -0.11), fontsize=7, frameon=False, borderaxespad=0
    )
    ax.grid(alpha=0.25)
    return fig


def selection_frequency_plot(
    freq: pd.DataFrame, path: Path, title: str = "", selector: str = ""
) -> Path:
    """Horizontal bars: mean selection frequency of each descriptor over the outer folds.

    ``freq`` is descriptor x fold (fraction of the selector's resamples that kept it); the whiskers
    show the range over folds. Descriptors are named as in the other importance plots; ``title``
    (the run's model, data and protocol) follows the selector as the run's titles name it,
    with its size (``selector``: ``rfe_vote selector n_features_to_select=8``, ``...
    searched``; empty: the method's name alone).
    """
    import matplotlib

    from n2react.descriptors import plot_label

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
    ax.set_yticklabels([plot_label(str(c)) for c in mean.index], fontsize=8)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel(f"selection frequency (mean, range over {freq.shape[1]} outer folds)")
    head = f"Stability selection ({selector or 'RFE vote'})"
    ax.set_title(wrap_title(f"{head}: {title}" if title else head), fontsize=10)
    ax.grid(axis="x", alpha=0.25)
    fig.tight_layout()
    return save_figure(fig, path)


def domain_plot(
    table: pd.DataFrame, path: Path, title: str = "", verdict: pd.DataFrame | None = None
) -> Path:
    """Each cluster's kNN distance to the training set (sorted) against the threshold.

    ``table`` is :meth:`n2react.domain.ApplicabilityDomain.assess`'s output. Points are green in
    the domain and red outside it, the marker saying the first reason, and the out-of-domain
    clusters are named. ``verdict`` (same rows, an ``in_domain`` column) is the run's
    own verdict when it has an interval calibration (new element or high expected error): the
    points then follow it, and the descriptor checks drawn here (range, kNN distance) are
    notes, ringed, not flags. Without it the descriptor rule is the verdict (new element,
    descriptor range, kNN distance).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = table.reset_index(drop=True)
    if verdict is not None:
        t["in_domain"] = verdict["in_domain"].astype(bool).to_numpy()
    t = t.sort_values("knn_distance", kind="stable").reset_index(drop=True)
    inside = t["in_domain"].astype(bool).to_numpy()
    x = np.arange(len(t))
    y = t["knn_distance"].to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.14 * len(t) + 2.0), 4.2), dpi=150)
    if inside.any():
        ax.scatter(x[inside], y[inside], s=18, c="#31a354", label=f"in domain ({inside.sum()})")
    new = (t["new_elements"].fillna("") != "").to_numpy()
    rng = (t["n_outside_range"] > 0).to_numpy()
    thr = float(t["knn_threshold"].iloc[0]) if len(t) else float("nan")
    if verdict is None:
        kinds = [
            (~inside & new, "D", "outside: new element"),
            (~inside & ~new & rng, "^", "outside: descriptor range"),
            (~inside & ~new & ~rng, "s", "outside: kNN distance"),
        ]
    else:
        kinds = [
            (~inside & new, "D", "outside: new element"),
            (~inside & ~new, "s", "outside: high expected error"),
        ]
    for mask, marker, what in kinds:
        if mask.any():
            ax.scatter(x[mask], y[mask], s=24, c="#de2d26", marker=marker,
                       label=f"{what} ({mask.sum()})")  # fmt: skip
    if verdict is not None:
        noted = (rng | (y > thr)) & ~new
        if noted.any():
            what = f"descriptor note, not a flag: range or distance ({noted.sum()})"
            ax.scatter(x[noted], y[noted], s=70, facecolors="none", edgecolors="black", lw=0.8,
                       label=what)  # fmt: skip
    line = f"threshold {thr:.2f}" if verdict is None else f"kNN distance note threshold {thr:.2f}"
    ax.axhline(thr, color="black", ls="--", lw=1, label=line)
    pad = 0.02 * (np.nanmax(y) if len(y) else 1.0)
    for i in np.flatnonzero(~inside):
        ax.annotate(short_name(t["cluster"].iat[i]), (x[i], y[i] + pad), rotation=90, fontsize=6,
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
    return save_figure(fig, path)


#: The most clusters predict's figure draws (one row each; 100 rows make a 3,500-pixel-tall
#: PNG, while 3,000 made one of 99,000 pixels that viewers refuse): the highest predicted.
PREDICTION_ROWS = 100
#: From this many rows on, the lg(k1) axis is labelled at the top too (it is a long scroll).
TOP_AXIS_ROWS = 30


def prediction_plot(table: pd.DataFrame, path: Path, title: str, coverage: float) -> Path:
    """predict's clusters, sorted by predicted lg(k1): each prediction with its interval, green in
    the domain and red outside it, the measured value (black x) when the sheet has one."""
    return save_figure(prediction_figure(table, title, coverage), path)


def prediction_figure(table: pd.DataFrame, title: str, coverage: float) -> Any:
    """The matplotlib Figure of :func:`prediction_plot`; its legend sits right of the axes, where
    it hides no cluster's interval. Of more than :data:`PREDICTION_ROWS` clusters, the ones
    with the highest predicted lg(k1) are drawn, and the axis label says so; from
    :data:`TOP_AXIS_ROWS` rows on the lg(k1) axis is labelled at the top as well."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = table.sort_values("y_pred", kind="stable").reset_index(drop=True)
    total = len(t)
    t = t.iloc[max(total - PREDICTION_ROWS, 0) :].reset_index(drop=True)
    inside = t["in_domain"].astype(bool).to_numpy()
    y = np.arange(len(t))
    pred = t["y_pred"].to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(7.0, max(3.0, 0.22 * len(t) + 1.5)), dpi=150)
    has_iv = {"y_lower", "y_upper"} <= set(t.columns)
    for mask, color, what in ((inside, "#31a354", "in domain"), (~inside, "#de2d26", "flagged")):
        if not mask.any():
            continue
        if has_iv:
            lo, hi = t["y_lower"].to_numpy(float)[mask], t["y_upper"].to_numpy(float)[mask]
            ax.hlines(y[mask], lo, hi, color=color, lw=2, alpha=0.45)
        ax.scatter(pred[mask], y[mask], s=22, c=color, zorder=3,
                   label=f"predicted, {what} ({mask.sum()})")  # fmt: skip
    if "y_true" in t.columns:
        ax.scatter(t["y_true"].to_numpy(float), y, s=26, c="black", marker="x", zorder=4,
                   label="measured")  # fmt: skip
    if has_iv:
        ax.plot([], [], color="grey", lw=2, alpha=0.45, label=f"{100 * coverage:g} % interval")
    used = t["used_by_run"].fillna("") if "used_by_run" in t else pd.Series("", t.index)
    ax.set_yticks(y)
    from n2react.isomers import row_labels

    names = row_labels(t, t["cluster"].map(lambda c: short_name(c, 24)))  # isomers: their rows
    ax.set_yticklabels([c + USED_MARKS.get(u, "")
                        for c, u in zip(names, used, strict=True)], fontsize=7)  # fmt: skip
    notes = [f"{m} {USED_TEXT[u]}" for u, m in USED_MARKS.items() if (used == u).any()]
    if total > len(t):
        notes.insert(0, f"the {len(t)} of {total} clusters with the highest predicted {LGK1}; "
                        "all of them in the CSV")  # fmt: skip
    ax.set_xlabel(LGK1_AXIS + "".join(f"\n{n}" for n in notes))
    ax.set_ylabel(f"cluster (sorted by predicted {LGK1})")
    ax.set_ylim(-0.7, len(t) - 0.3)  # no blank rows above and below the clusters
    if len(t) >= TOP_AXIS_ROWS:
        ax.tick_params(axis="x", top=True, labeltop=True)
    ax.set_title(wrap_title(title), fontsize=10)
    # outside the axes: inside, "best" still covered the top intervals when they filled the width
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    ax.grid(axis="x", alpha=0.25)
    fig.tight_layout()
    return fig
