"""The explanation figures. Each function writes a PNG and the CSV behind it, returns both paths.

Drawn from result tables only (no training here). Descriptor axes use
:func:`n2react.descriptors.plot_label`; lg(k1) axes carry k1's unit; the notation (lg(k1), the
±0.477 band) is :mod:`n2react.figures`'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from n2react.composition import DEFAULT_LIGANDS, METALS
from n2react.descriptors import plot_label
from n2react.explain.groups import families, family_table
from n2react.figures import (
    BAND,
    EXPERIMENTAL_ERROR,
    LGK1,
    LGK1_AXIS,
    WITHIN,
    save_figure,
    short_name,
    wrap_title,
)
from n2react.metrics import regression_metrics
from n2react.runstore import write_csv

_SHAP_X = f"SHAP value: effect on predicted {LGK1}"
#: Marker per ligand pattern (bare first, then the others by how many clusters they have).
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")


def _plt():  # noqa: ANN202 - the pyplot module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    return save_figure(fig, path)


def _shown(names: Sequence[str], leave_out: Sequence[str], top: int) -> str:
    """``'top 15 of 23 descriptors (constant, left out: 0_n_O)'`` for a title."""
    n = len([c for c in names if c not in set(leave_out)])
    head = f"top {top} of {n} descriptors" if n > top else f"all {n} descriptors"
    return head + (f" (constant, left out: {', '.join(leave_out)})" if len(leave_out) else "")


def beeswarm(
    values: pd.DataFrame,
    X: pd.DataFrame,
    path: Path,
    title: str,
    top: int = 15,
    leave_out: Sequence[str] = (),
) -> list:
    """SHAP value of each cluster (dot) per descriptor (row), coloured by the descriptor's value;
    the ``top`` descriptors by mean |SHAP|, ``leave_out`` (constant descriptors) not drawn.

    ``values`` and ``X`` share rows (index) and columns. CSV: the SHAP values, one row per
    explained cluster (every descriptor).
    """
    plt = _plt()
    kept = values.drop(columns=[c for c in leave_out if c in values])
    order = kept.abs().mean().sort_values(ascending=False).index[:top][::-1]
    title = f"{title}; {_shown(list(values.columns), leave_out, top)}"
    fig, ax = plt.subplots(figsize=(7.2, 0.36 * len(order) + 1.4), dpi=150)
    rng = np.random.default_rng(0)
    for i, col in enumerate(order):
        v = values[col].to_numpy(float)
        x = pd.to_numeric(X.loc[values.index, col], errors="coerce").to_numpy(float)
        colour = pd.Series(x).rank(pct=True).to_numpy()
        span = np.ptp(v) or 1.0
        bins = np.round((v - v.min()) / span * 60).astype(int)
        counts = pd.Series(bins).groupby(bins).cumcount().to_numpy()
        dens = pd.Series(bins).map(pd.Series(bins).value_counts()).to_numpy()
        jitter = np.where(counts % 2, 1, -1) * ((counts + 1) // 2) / np.maximum(dens, 1) * 0.7
        jitter += rng.uniform(-0.03, 0.03, len(v))
        nan = np.isnan(colour)
        ax.scatter(v[nan], i + jitter[nan], s=9, c="#bbbbbb", edgecolors="none")
        sc = ax.scatter(
            v[~nan], i + jitter[~nan], s=9, c=colour[~nan], cmap="coolwarm", vmin=0, vmax=1,
            edgecolors="none",
        )  # fmt: skip
    ax.axvline(0, color="black", lw=0.7)
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([plot_label(c) for c in order], fontsize=8)
    ax.set_ylim(-0.7, len(order) - 0.3)
    ax.set_xlabel(_SHAP_X)
    ax.set_title(wrap_title(title, 80), fontsize=9)
    ax.grid(axis="x", alpha=0.25)
    cb = fig.colorbar(sc, ax=ax, pad=0.01, aspect=30)
    cb.set_ticks([0, 1])
    cb.set_ticklabels(["low", "high"])
    cb.set_label("descriptor value (rank among clusters)", fontsize=8)
    csv = path.with_suffix(".csv")
    write_csv(csv, values, index=True, index_label="cluster")
    return [_save(fig, path), csv]


def importance_bars(
    table: pd.DataFrame,
    path: Path,
    *,
    value: str,
    err: str | None,
    xlabel: str,
    title: str,
    top: int = 25,
    marker: str | None = None,
    leave_out: Sequence[str] = (),
) -> list:
    """Horizontal bars of ``table[value]`` (index = descriptor), whiskers ``table[err]`` (sd over
    outer folds); ``marker`` adds a dot per descriptor (e.g. the fold mean beside the final
    model's bar); ``leave_out`` (constant descriptors) not drawn. CSV: the whole table."""
    plt = _plt()
    kept = table.drop(index=[c for c in leave_out if c in table.index])
    t = kept.sort_values(value, ascending=False).head(top).iloc[::-1]
    title = f"{title}; {_shown(list(table.index), leave_out, top)}"
    fig, ax = plt.subplots(figsize=(7.0, 0.3 * len(t) + 1.4), dpi=150)
    y = np.arange(len(t))
    names = {"final": "final model (all clusters)", "mean": "mean over outer folds"}
    ax.barh(y, t[value].to_numpy(float), color="#3182bd", label=names.get(value, value))
    if marker is not None and marker in t and t[marker].notna().any():
        e = t[err].to_numpy(float) if err else None
        ax.errorbar(
            t[marker].to_numpy(float), y, xerr=e, fmt="o", ms=3, color="black", elinewidth=0.8,
            capsize=2, label=f"{marker.replace('_', ' ')} ± sd over outer folds",
        )  # fmt: skip
        ax.legend(fontsize=7, loc="lower right", frameon=False)
    elif err and t[err].notna().any():
        ax.errorbar(
            t[value].to_numpy(float), y, xerr=t[err].to_numpy(float), fmt="none",
            ecolor="black", elinewidth=0.8, capsize=2,
        )  # fmt: skip
    ax.set_yticks(y)
    ax.set_yticklabels([plot_label(c) for c in t.index], fontsize=8)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel(xlabel)
    ax.set_title(wrap_title(title, 80), fontsize=9)
    ax.grid(axis="x", alpha=0.25)
    csv = path.with_suffix(".csv")
    write_csv(csv, table, index=True, index_label="descriptor")
    return [_save(fig, path), csv]


def _per_cluster(oof: pd.DataFrame) -> pd.DataFrame:
    """One row per cluster (mean over repeats)."""
    g = oof.groupby("cluster", sort=False)[["y_true", "y_pred"]].mean().reset_index()
    g["residual"] = g["y_pred"] - g["y_true"]
    return g


def _split_group(group: str) -> tuple[str, str] | None:
    """``'Mo-C,S'`` -> ``('Mo', 'C,S')``, ``'FeV'`` -> ``('FeV', '')``; None when the label is
    not a metal or family label (a spreadsheet column's groups)."""
    metal, _, ligands = str(group).partition("-")
    is_metal = re.fullmatch(f"({'|'.join(sorted(METALS, key=len, reverse=True))})+", metal)
    is_ligands = re.fullmatch(r"([A-Z][a-z]?)(,[A-Z][a-z]?)*", ligands) or not ligands
    return (metal, ligands) if is_metal and is_ligands else None


def group_styles(groups: pd.Series) -> dict[str, tuple[object, str]]:
    """Colour and marker per group: for metal/family labels the metal sets the hue and the ligand
    pattern the marker (18 families stay apart: 6 hues x 7 markers; more than 10 metals take
    tab20's hues); other labels get tab10/tab20 colours, circles for the first 20 and another
    marker for each further 20 (so that no two of up to 240 groups look alike)."""
    plt = _plt()
    counts = groups.value_counts()
    parts = {g: _split_group(g) for g in counts.index}
    if not all(parts.values()):
        cmap = plt.get_cmap("tab10" if len(counts) <= 10 else "tab20")
        return {
            g: (cmap(i % cmap.N), _MARKERS[(i // cmap.N) % len(_MARKERS)])
            for i, g in enumerate(counts.index)
        }
    by_metal = pd.Series({g: p[0] for g, p in parts.items()})
    metals = counts.groupby(by_metal).sum().sort_values(ascending=False).index
    patterns = counts.groupby(pd.Series({g: p[1] for g, p in parts.items()})).sum()
    patterns = [""] + [p for p in patterns.sort_values(ascending=False).index if p]
    cmap = plt.get_cmap("tab10" if len(metals) <= 10 else "tab20")
    hue = {m: cmap(i % cmap.N) for i, m in enumerate(metals)}
    marker = {p: _MARKERS[i % len(_MARKERS)] for i, p in enumerate(patterns)}
    return {g: (hue[m], marker[lig]) for g, (m, lig) in parts.items()}


def _label_points(ax, pc: pd.DataFrame, worst: pd.DataFrame) -> None:  # noqa: ANN001
    """Name the ``worst`` clusters: labels pushed off the points and each other (adjustText),
    any two still touching stacked apart, then a thin line from each label to its point."""
    from adjustText import adjust_text

    texts = [
        ax.text(r.y_true, r.y_pred, short_name(r.cluster), fontsize=7, ha="center", va="center")
        for r in worst.itertuples()
    ]
    if not texts:
        return
    adjust_text(
        texts,
        x=pc["y_true"].to_numpy(float),
        y=pc["y_pred"].to_numpy(float),
        ax=ax,
        expand=(1.5, 1.9),
        force_text=(0.4, 0.6),
        force_static=(0.3, 0.5),
    )
    _unstack(ax, texts)
    for t, r in zip(texts, worst.itertuples()):
        pos = t.get_position()
        t.remove()
        ax.annotate(
            t.get_text(), (r.y_true, r.y_pred), pos, fontsize=7, ha="center", va="center",
            zorder=5, arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "#555555",
                                  "shrinkA": 1, "shrinkB": 2},
        )  # fmt: skip


def _unstack(ax, texts: list) -> None:  # noqa: ANN001
    """Move a label that still overlaps an earlier one up or down by its height (adjustText
    can leave two piled at the edge of the axes)."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    placed: list = []
    for t in texts:
        box = t.get_window_extent(renderer)
        shift = 0.0
        for k in (0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6):
            moved = box.translated(0, k * box.height * 1.15)
            if not any(moved.overlaps(p) for p in placed):
                shift = k * box.height * 1.15
                break
        if shift:
            x, y = ax.transData.transform(t.get_position())
            t.set_position(ax.transData.inverted().transform((x, y + shift)))
        placed.append(box.translated(0, shift))


def parity(
    oof: pd.DataFrame,
    groups: pd.Series,
    path: Path,
    title: str,
    n_label: int = 8,
    grouped: bool = False,
) -> list:
    """Predicted vs measured lg(k1) of every held-out cluster, coloured by group (metal by hue,
    ligand pattern by marker), the ``n_label`` largest errors named. The figures are pooled
    over all clusters; ``grouped=False`` (KFold) adds the mean ± sd over the outer folds, which
    says little when each fold is one whole group. CSV: cluster, group, y_true, y_pred,
    residual, labelled."""
    plt = _plt()
    pc = _per_cluster(oof)
    groups = groups[~groups.index.duplicated()]  # a cluster held out in several repeats
    pc["group"] = groups.reindex(pc["cluster"].astype(str)).fillna("?").to_numpy()
    pooled = regression_metrics(pc["y_true"], pc["y_pred"])
    within = int((pc["residual"].abs() <= EXPERIMENTAL_ERROR).sum())
    per_fold = [
        regression_metrics(g["y_true"], g["y_pred"]) for _, g in oof.groupby("fold") if len(g) > 2
    ]
    fig, ax = plt.subplots(figsize=(8.2, 5.8), dpi=150)
    lo = float(min(pc["y_true"].min(), pc["y_pred"].min()))
    hi = float(max(pc["y_true"].max(), pc["y_pred"].max()))
    pad = 0.06 * (hi - lo)
    line = np.array([lo - pad, hi + pad])
    band = ax.fill_between(
        line, line - EXPERIMENTAL_ERROR, line + EXPERIMENTAL_ERROR, color="grey", alpha=0.15,
        label=f"{BAND}: experimental error", zorder=0.8,
    )  # fmt: skip
    (diag,) = ax.plot(line, line, color="black", lw=0.8, label="y = x", zorder=0.9)  # under points
    styles = group_styles(pc["group"])
    for g in sorted(styles, key=lambda g: (_split_group(g) or (g, ""), g)):
        d = pc[pc["group"] == g]
        colour, marker = styles[g]
        ax.scatter(
            d["y_true"], d["y_pred"], s=26, color=colour, marker=marker, edgecolors="white",
            linewidths=0.4, label=f"{short_name(g, 24)} ({len(d)})",
        )  # fmt: skip
    ax.set_xlim(line)
    ax.set_ylim(line)
    ax.set_aspect("equal")
    worst = pc.reindex(pc["residual"].abs().sort_values(ascending=False).index[:n_label])
    pc["labelled"] = pc.index.isin(worst.index)
    _label_points(ax, pc, worst)
    ax.set_xlabel(f"measured {LGK1_AXIS}")
    ax.set_ylabel(f"predicted {LGK1_AXIS}")
    ax.set_title(wrap_title(title, 80), fontsize=9)
    ax.grid(alpha=0.25)
    handles, names = ax.get_legend_handles_labels()
    keep = [i for i, h in enumerate(handles) if h not in (band, diag)]
    ncol = 1 if len(styles) <= 14 else min(max(2, -(-len(styles) // 20)), 4)  # <= 20 rows
    leg = ax.legend(
        [handles[i] for i in keep], [names[i] for i in keep],
        title=f"{groups.name or 'group'} (n)", loc="upper left", bbox_to_anchor=(1.02, 1.0),
        fontsize=7, title_fontsize=8, frameon=False, ncol=ncol, borderaxespad=0,
    )  # fmt: skip
    leg._legend_box.align = "left"
    ax.add_artist(leg)
    ax.legend(
        [band, diag], [band.get_label(), diag.get_label()], loc="upper left",
        bbox_to_anchor=(1.02, 0.0), fontsize=7, frameon=False, borderaxespad=0,
    )  # fmt: skip
    stats = (
        f"pooled over all {len(pc)} clusters: r {pooled['r']:.3f}, RMSE {pooled['rmse']:.3f}, "
        f"MAE {pooled['mae']:.3f}, {WITHIN}: {within}"
    )
    if per_fold and not grouped:
        r = np.array([m["r"] for m in per_fold])
        e = np.array([m["rmse"] for m in per_fold])
        stats += (
            f"\nmean ± sd over {len(per_fold)} outer folds: r {r.mean():.3f} ± "
            f"{r.std(ddof=1):.3f}, RMSE {e.mean():.3f} ± {e.std(ddof=1):.3f}"
        )
    elif grouped:
        stats += "\nfolds hold out whole groups: pooled figures, not fold means"
    stats += f"\nnamed: the {len(worst)} largest |errors|"
    ax.text(0.0, -0.13, stats, transform=ax.transAxes, fontsize=7, va="top", ha="left")
    csv = path.with_suffix(".csv")
    write_csv(csv, pc[["cluster", "group", "y_true", "y_pred", "residual", "labelled"]])
    return [_save(fig, path), csv]


def residuals_by_family(
    oof: pd.DataFrame, path: Path, title: str, ligands: Sequence[str] = DEFAULT_LIGANDS
) -> list:
    """Residual (predicted - measured) of every held-out cluster per family (box + points),
    families ordered by bias, each labelled with its n, MAE and bias. CSV: the per-family table
    (n, MAE, bias, RMSE, max |error|). ``ligands``: the run's ``data.formula_ligands``."""
    plt = _plt()
    pc = _per_cluster(oof)
    pc["family"] = families(pc["cluster"], ligands)
    table = family_table(oof, ligands)
    order = pc.groupby("family")["residual"].mean().sort_values().index.tolist()
    fig, ax = plt.subplots(figsize=(7.6, 0.32 * len(order) + 1.7), dpi=150)
    data = [pc.loc[pc["family"] == f, "residual"].to_numpy(float) for f in order]
    ax.axvspan(
        -EXPERIMENTAL_ERROR, EXPERIMENTAL_ERROR, color="grey", alpha=0.15,
        label=f"{BAND}: experimental error",
    )  # fmt: skip
    ax.boxplot(
        data, vert=False, widths=0.6, showfliers=False, patch_artist=True,
        boxprops={"facecolor": "#deebf7", "edgecolor": "#6baed6"},
        medianprops={"color": "#08519c"}, whiskerprops={"color": "#6baed6"},
        capprops={"color": "#6baed6"},
    )  # fmt: skip
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.scatter(d, i + rng.uniform(-0.18, 0.18, len(d)), s=10, color="#d94801", zorder=3)
    bias = table["bias"].reindex(order).to_numpy(float)
    ax.scatter(bias, range(1, len(order) + 1), marker="D", s=22, color="black", zorder=4,
               edgecolors="white", linewidths=0.5, label="bias (mean residual)")  # fmt: skip
    ax.axvline(0, color="black", lw=0.7)
    ax.set_yticks(range(1, len(order) + 1))
    ax.set_yticklabels(
        [
            f"{short_name(f, 24)}  n={int(table.loc[f, 'n'])}, MAE {table.loc[f, 'mae']:.2f}, "
            f"bias {table.loc[f, 'bias']:+.2f}"
            for f in order
        ],
        fontsize=7,
    )
    ax.set_xlabel(f"residual: predicted - measured {LGK1}")
    ax.set_title(wrap_title(f"{title}; families ordered by bias", 80), fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.1 - 0.4 / max(len(order), 1)),
              fontsize=7, frameon=False, ncol=2, borderaxespad=0)  # fmt: skip
    ax.grid(axis="x", alpha=0.25)
    csv = path.with_suffix(".csv")
    write_csv(csv, table, index=True, index_label="family")
    return [_save(fig, path), csv]


def learning_curves(table: pd.DataFrame, path: Path, title: str) -> list:
    """Train and validation loss per epoch: the final model black, each outer-fold model in its
    own colour and named, a dot at the epoch whose weights were restored (``restored`` column,
    else the lowest validation loss). CSV: model, epoch, loss, val_loss (, restored)."""
    plt = _plt()
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.0), dpi=150, sharey=True)
    models = [m for m in table["model"].unique() if m != "final"]
    models += ["final"] if (table["model"] == "final").any() else []
    cmap = plt.get_cmap("viridis")
    for ax, col, name in zip(axes, ("loss", "val_loss"), ("training", "validation")):
        for i, m in enumerate(models):
            d = table[table["model"] == m]
            final = m == "final"
            colour = "black" if final else cmap(i / max(len(models) - 1, 1))
            ax.plot(
                d["epoch"], d[col], lw=2.0 if final else 0.9, alpha=1.0 if final else 0.75,
                color=colour, label=_curve_name(m),
            )  # fmt: skip
            best = _restored(d)
            if best is not None and np.isfinite(d[col].loc[best]):
                ax.plot(d["epoch"].loc[best], d[col].loc[best], "o", ms=6.5 if final else 5,
                        mfc=colour, mec="white", mew=0.6, zorder=4)  # fmt: skip
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=8))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("epoch")
        ax.set_title(
            f"{name} loss" + (" (early-stopping rows)" if col == "val_loss" else ""), fontsize=9
        )
        ax.grid(alpha=0.25, which="major")
    axes[0].set_ylabel(f"MSE of {LGK1}")
    axes[1].plot([], [], "o", ms=5, color="grey", mec="white", label="restored best epoch")
    axes[1].legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                   borderaxespad=0)  # fmt: skip
    fig.suptitle(wrap_title(title, 100), fontsize=10)
    csv = path.with_suffix(".csv")
    write_csv(csv, table)
    return [_save(fig, path), csv]


def _curve_name(model: str) -> str:
    """``fold_03`` -> ``fold 3 model``; ``final`` -> ``final model (all clusters)``."""
    if model == "final":
        return "final model (all clusters)"
    return f"fold {int(model.split('_')[-1])} model" if model.startswith("fold_") else model


def _restored(d: pd.DataFrame) -> object | None:
    """Index (in ``d``) of the epoch whose weights the model kept, or None."""
    if "restored" in d and d["restored"].astype(bool).any():
        return d.index[d["restored"].astype(bool).to_numpy()][0]
    val = pd.to_numeric(d["val_loss"], errors="coerce")
    return val.idxmin() if val.notna().any() else None
