"""The explanation figures. Each function writes a PNG and the CSV behind it, returns both paths;
the held-out parity coloured by group is :mod:`n2react.explain.group_parity`'s.

Drawn from result tables only (no training here). Descriptor axes use
:func:`n2react.descriptors.plot_label`; lg(k1) axes carry k1's unit; the notation (lg(k1), the
±0.477 band) is :mod:`n2react.figures`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from n2react.composition import DEFAULT_LIGANDS
from n2react.descriptors import plot_label
from n2react.explain.group_parity import split_group
from n2react.explain.groups import families, family_table, per_cluster
from n2react.explain.importance import fold_columns
from n2react.figures import (
    BAND,
    EXPERIMENTAL_ERROR,
    LGK1,
    save_figure,
    short_name,
    wrap_title,
)
from n2react.runstore import write_csv

_SHAP_X = f"SHAP value: effect on predicted {LGK1}"
#: The one row of residuals_by_family for the clusters whose names are not formulas.
NOT_FORMULAS = "names not formulas"


def _plt():  # noqa: ANN202 - the pyplot module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    return save_figure(fig, path)


def _shown(
    names: Sequence[str],
    leave_out: Sequence[str],
    top: int,
    unused: Sequence[str] = (),
    kept: pd.DataFrame | None = None,
) -> str:
    """``'top 15 of 23 descriptors (constant, left out: 0_n_O)'`` for a title; ``unused``
    (no effect at all: a selector dropped them) are counted apart, not drawn. ``kept``
    (descriptor x fold, :func:`n2react.explain.importance.kept_by_folds`): each outer fold's
    selector kept its own, so the figure shows those any fold kept, more than one fold's k
    (``'5 of 15 descriptors kept by any fold's selector (each fold keeps its own 4, importance
    0 in a fold that dropped it; 10 never kept, not drawn)'``)."""
    n = len([c for c in names if c not in set(leave_out) | set(unused)])
    constant = f" (constant, left out: {', '.join(leave_out)})" if len(leave_out) else ""
    if kept is not None:
        total, sizes = n + len(unused), kept.sum(axis=0).astype(int)
        size = f"{sizes.min()}" if sizes.min() == sizes.max() else f"{sizes.min()}-{sizes.max()}"
        head = f"top {top} of the {n}" if n > top else f"{n}"
        head += (
            f" of {total} descriptors kept by any fold's selector (each fold keeps its own "
            f"{size}, importance 0 in a fold that dropped it"
        )
        never = f"; {len(unused)} never kept, not drawn" if len(unused) else ""
        return f"{head}{never}){constant}"
    head = f"top {top} of {n} descriptors" if n > top else f"all {n} descriptors"
    if len(unused):
        head += f" with an effect ({len(unused)} unused, importance 0, not drawn)"
    return head + constant


def _no_effect(table: pd.DataFrame) -> list[str]:
    """The columns of ``table`` that are 0 everywhere (NaN aside): descriptors the model never
    uses (a selector dropped them), whose rows would only fill a plot with zeros."""
    a = table.abs()
    scale = float(np.nanmax(a.to_numpy(float))) if a.notna().any().any() else 0.0
    return [str(c) for c in table.columns if not (a[c] > 1e-12 * scale).any()] if scale else []


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
    unused = _no_effect(kept)
    kept = kept.drop(columns=unused)
    order = kept.abs().mean().sort_values(ascending=False).index[:top][::-1]
    title = f"{title}; {_shown(list(values.columns), leave_out, top, unused)}"
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
    legend: Mapping[str, str] | None = None,
    selected: pd.DataFrame | None = None,
) -> list:
    """Horizontal bars of ``table[value]`` (index = descriptor), whiskers ``table[err]`` (sd over
    outer folds, cut at 0 for a quantity that cannot be negative: all values >= 0); ``marker``
    adds a dot per descriptor (e.g. the fold mean beside the final model's bar); ``legend``:
    the legend's name of ``value`` / ``marker`` (which model, on which clusters); ``leave_out``
    (constant descriptors) not drawn. ``selected``: which descriptors each outer fold's selector
    kept (descriptor x fold, :func:`n2react.explain.importance.kept_by_folds`): the title says
    the figure shows those any fold kept, and a column right of the bars how many folds kept
    each (``folds_kept`` in the CSV). CSV: the whole table."""
    plt = _plt()
    if selected is not None:
        table = table.assign(folds_kept=selected.sum(axis=1).reindex(table.index).astype(int))
    kept = table.drop(index=[c for c in leave_out if c in table.index])
    drawn = [value] + [c for c in (marker, err) if c is not None and c in kept]
    unused = _no_effect(kept[drawn + fold_columns(kept)].T)  # fold_NN: 0 in every fold too
    if selected is not None:  # kept by a fold, however small its effect: drawn
        unused = [c for c in unused if not kept.loc[c, "folds_kept"]]
    kept = kept.drop(index=unused)
    t = kept.sort_values(value, ascending=False).head(top).iloc[::-1]
    title = f"{title}; {_shown(list(table.index), leave_out, top, unused, selected)}"
    fig, ax = plt.subplots(figsize=(7.0, 0.3 * len(t) + 1.4), dpi=150)
    y = np.arange(len(t))
    names = {"final": "final model (all clusters)", "mean": "mean over outer folds"}
    names.update(legend or {})
    ax.barh(y, t[value].to_numpy(float), color="#3182bd", label=names.get(value, value))
    centre = marker if marker is not None and marker in t and t[marker].notna().any() else value
    nonneg = bool((kept[[value] + ([marker] if marker in kept else [])] >= 0).all().all())
    xerr = _whiskers(t[centre], t[err], nonneg) if err and t[err].notna().any() else None
    if centre == marker:
        default = f"{marker.replace('_', ' ')} ± sd over outer folds"
        ax.errorbar(
            t[marker].to_numpy(float), y, xerr=xerr, fmt="o", ms=3, color="black",
            elinewidth=0.8, capsize=2, label=names.get(marker, default),
        )  # fmt: skip
    elif xerr is not None:
        ax.errorbar(
            t[value].to_numpy(float), y, xerr=xerr, fmt="none", ecolor="black", elinewidth=0.8,
            capsize=2,
        )  # fmt: skip
    if centre == marker or legend:  # under the x label, where it hides no bar
        from matplotlib.transforms import ScaledTranslation

        below = ax.transAxes + ScaledTranslation(0, -0.5, fig.dpi_scale_trans)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, 0), bbox_transform=below,
                  frameon=False, borderaxespad=0)  # fmt: skip
    ax.set_yticks(y)
    ax.set_yticklabels([plot_label(c) for c in t.index], fontsize=8)
    if selected is not None:
        _folds_kept_column(ax, t["folds_kept"], selected.shape[1])
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel(xlabel)
    ax.set_title(wrap_title(title, 80), fontsize=9)
    ax.grid(axis="x", alpha=0.25)
    csv = path.with_suffix(".csv")
    write_csv(csv, table, index=True, index_label="descriptor")
    return [_save(fig, path), csv]


def _folds_kept_column(ax, counts: pd.Series, folds: int) -> None:  # noqa: ANN001
    """Right of the bars, one row each: in how many of the ``folds`` outer folds the selector
    kept the descriptor (``3/5``; grey when not in all of them)."""
    kw = {"xycoords": ("axes fraction", "data"), "textcoords": "offset points", "fontsize": 7}
    for i, n in enumerate(counts.to_numpy(int)):
        colour = "black" if n == folds else "#777777"
        ax.annotate(f"{n}/{folds}", (1.0, i), (6, 0), va="center", color=colour, **kw)
    ax.annotate("kept in\nfolds", (1.0, 1.0), (6, 3), xycoords="axes fraction",
                textcoords="offset points", va="bottom", fontsize=7)  # fmt: skip


def _whiskers(centre: pd.Series, sd: pd.Series, nonneg: bool) -> np.ndarray:
    """(2, n) whisker lengths of ``centre`` ± ``sd`` (NaN: none); the lower one cut at 0 when
    the quantity cannot be negative (a mean |SHAP| is never below 0)."""
    c, e = centre.to_numpy(float), np.nan_to_num(sd.to_numpy(float))
    low = np.minimum(e, np.clip(c, 0, None)) if nonneg else e
    return np.vstack([low, e])


def residuals_by_family(
    oof: pd.DataFrame, path: Path, title: str, ligands: Sequence[str] = DEFAULT_LIGANDS
) -> list:
    """Residual (predicted - measured) of every held-out cluster per family (box + points),
    families ordered by bias, each labelled with its n, MAE and bias; clusters whose names are
    not formulas (each its own "family") share one row, :data:`NOT_FORMULAS`. CSV: the
    per-family table (n, MAE, bias, RMSE, max |error|), each name its own row as it was.
    ``ligands``: the run's ``data.formula_ligands``."""
    plt = _plt()

    def shown(clusters: pd.Series) -> list[str]:
        return [f if split_group(f) else NOT_FORMULAS for f in families(clusters, ligands)]

    pc = per_cluster(oof)
    pc["family"] = shown(pc["cluster"])
    table = family_table(oof, ligands, labels=shown(oof["cluster"]))
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
    write_csv(csv, family_table(oof, ligands), index=True, index_label="family")
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
