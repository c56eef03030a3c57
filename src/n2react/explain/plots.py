"""The explanation figures. Each function writes a PNG and the CSV behind it, returns both paths.

Descriptor axes use :func:`n2react.descriptors.label`; lg(k1) axes carry k1's unit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from n2react.descriptors import label
from n2react.explain.groups import families, family_table
from n2react.metrics import regression_metrics

LGK = "lg(k₁ / cm³ molecule⁻¹ s⁻¹)"
_SHAP_X = "SHAP value: effect on predicted lg(k₁)"


def _plt():  # noqa: ANN202 - the pyplot module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    _plt().close(fig)
    return path


def beeswarm(values: pd.DataFrame, X: pd.DataFrame, path: Path, title: str, top: int = 15) -> list:
    """SHAP value of each cluster (dot) per descriptor (row), coloured by the descriptor's value.

    ``values`` and ``X`` share rows (index) and columns. CSV: the SHAP values, one row per
    explained cluster.
    """
    plt = _plt()
    order = values.abs().mean().sort_values(ascending=False).index[:top][::-1]
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
    ax.set_yticklabels([label(c) for c in order], fontsize=8)
    ax.set_ylim(-0.7, len(order) - 0.3)
    ax.set_xlabel(_SHAP_X)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.25)
    cb = fig.colorbar(sc, ax=ax, pad=0.01, aspect=30)
    cb.set_ticks([0, 1])
    cb.set_ticklabels(["low", "high"])
    cb.set_label("descriptor value (rank among clusters)", fontsize=8)
    csv = path.with_suffix(".csv")
    values.to_csv(csv, index_label="cluster")
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
) -> list:
    """Horizontal bars of ``table[value]`` (index = descriptor), whiskers ``table[err]`` (sd over
    outer folds); ``marker`` adds a dot per descriptor (e.g. the fold mean beside the final
    model's bar). CSV: the whole table."""
    plt = _plt()
    t = table.sort_values(value, ascending=False).head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7.0, 0.3 * len(t) + 1.4), dpi=150)
    y = np.arange(len(t))
    ax.barh(y, t[value].to_numpy(float), color="#3182bd", label=value.replace("_", " "))
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
    ax.set_yticklabels([label(c) for c in t.index], fontsize=8)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.25)
    csv = path.with_suffix(".csv")
    table.to_csv(csv, index_label="descriptor")
    return [_save(fig, path), csv]


def _per_cluster(oof: pd.DataFrame) -> pd.DataFrame:
    """One row per cluster (mean over repeats)."""
    g = oof.groupby("cluster", sort=False)[["y_true", "y_pred"]].mean().reset_index()
    g["residual"] = g["y_pred"] - g["y_true"]
    return g


def _place_labels(ax, pts: np.ndarray, items: list[tuple[str, float, float, float]]) -> None:  # noqa: ANN001
    """Name each (text, x, y, residual) away from the diagonal, avoiding points and other labels."""
    fig = ax.figure
    fig.canvas.draw()
    to_px = ax.transData.transform
    to_data = ax.transData.inverted().transform
    pix = to_px(pts)
    boxes: list[tuple[float, float, float, float]] = []
    h = 8 * fig.dpi / 72
    for text, x, y, res in items:
        px, py = to_px((x, y))
        w = 0.56 * len(text) * h * 0.9
        sign = 1 if res > 0 else -1  # above the diagonal: go up-left, below: down-right
        best = None
        for dist in (14, 24, 36, 50, 66):
            for ang in (135, 110, 160, 90, 180, 200, 70):
                a = np.deg2rad(ang if sign > 0 else ang + 180)
                cx, cy = px + dist * np.cos(a) * 1.2, py + dist * np.sin(a)
                box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                near = (
                    (pix[:, 0] > box[0] - 3) & (pix[:, 0] < box[2] + 3)
                    & (pix[:, 1] > box[1] - 3) & (pix[:, 1] < box[3] + 3)
                )  # fmt: skip
                clash = any(
                    not (box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3])
                    for b in boxes
                )
                if not clash and not near.any():
                    best = (cx, cy, box)
                    break
            if best:
                break
        if best is None:
            cx, cy = px + 30 * sign * -1, py + 30 * sign
            best = (cx, cy, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        boxes.append(best[2])
        tx, ty = to_data((best[0], best[1]))
        ax.annotate(
            text, (x, y), (tx, ty), fontsize=7, ha="center", va="center",
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "#555555"},
        )  # fmt: skip


def parity(oof: pd.DataFrame, groups: pd.Series, path: Path, title: str, n_label: int = 8) -> list:
    """Predicted vs measured lg(k1) of every held-out cluster, coloured by group, the ``n_label``
    largest errors named. CSV: cluster, group, y_true, y_pred, residual, labelled."""
    from n2react.plots import EXPERIMENTAL_ERROR

    plt = _plt()
    pc = _per_cluster(oof)
    groups = groups[~groups.index.duplicated()]  # a cluster held out in several repeats
    pc["group"] = groups.reindex(pc["cluster"].astype(str)).fillna("?").to_numpy()
    pooled = regression_metrics(pc["y_true"], pc["y_pred"])
    per_fold = [
        regression_metrics(g["y_true"], g["y_pred"]) for _, g in oof.groupby("fold") if len(g) > 2
    ]
    fig, ax = plt.subplots(figsize=(7.8, 5.6), dpi=150)
    lo = float(min(pc["y_true"].min(), pc["y_pred"].min()))
    hi = float(max(pc["y_true"].max(), pc["y_pred"].max()))
    pad = 0.06 * (hi - lo)
    line = np.array([lo - pad, hi + pad])
    ax.fill_between(
        line, line - EXPERIMENTAL_ERROR, line + EXPERIMENTAL_ERROR, color="grey", alpha=0.15,
        label="±log10(3) experimental error",
    )  # fmt: skip
    ax.plot(line, line, color="black", lw=0.8, label="y = x")
    cmap = plt.get_cmap("tab10" if pc["group"].nunique() <= 10 else "tab20")
    for i, (g, d) in enumerate(sorted(pc.groupby("group"), key=lambda t: -len(t[1]))):
        ax.scatter(
            d["y_true"], d["y_pred"], s=22, color=cmap(i % cmap.N), edgecolors="white",
            linewidths=0.4, label=f"{g} ({len(d)})",
        )  # fmt: skip
    ax.set_xlim(line)
    ax.set_ylim(line)
    ax.set_aspect("equal")
    worst = pc.reindex(pc["residual"].abs().sort_values(ascending=False).index[:n_label])
    pc["labelled"] = pc.index.isin(worst.index)
    _place_labels(
        ax,
        pc[["y_true", "y_pred"]].to_numpy(float),
        [(str(r.cluster), r.y_true, r.y_pred, r.residual) for r in worst.itertuples()],
    )
    ax.set_xlabel(f"measured {LGK}")
    ax.set_ylabel(f"predicted {LGK}")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.25)
    leg = ax.legend(
        title=f"{groups.name or 'group'} (n)", loc="upper left", bbox_to_anchor=(1.02, 1.0),
        fontsize=7, title_fontsize=8, frameon=False,
    )  # fmt: skip
    leg._legend_box.align = "left"
    stats = (
        f"pooled over all {len(pc)} clusters:\n  r = {pooled['r']:.3f}, RMSE = {pooled['rmse']:.3f}"
    )
    if per_fold:
        r = np.array([m["r"] for m in per_fold])
        e = np.array([m["rmse"] for m in per_fold])
        stats += (
            f"\nmean ± sd over {len(per_fold)} outer folds:\n"
            f"  r = {r.mean():.3f} ± {r.std(ddof=1):.3f},"
            f" RMSE = {e.mean():.3f} ± {e.std(ddof=1):.3f}"
        )
    stats += f"\nlabelled: the {len(worst)} largest |errors|"
    ax.text(1.02, 0.0, stats, transform=ax.transAxes, fontsize=7, va="bottom", ha="left")
    csv = path.with_suffix(".csv")
    pc[["cluster", "group", "y_true", "y_pred", "residual", "labelled"]].to_csv(csv, index=False)
    return [_save(fig, path), csv]


def residuals_by_family(oof: pd.DataFrame, path: Path, title: str) -> list:
    """Residual (predicted - measured) of every held-out cluster per family (box + points),
    families ordered by bias. CSV: the per-family table (n, MAE, bias, RMSE, max |error|)."""
    from n2react.plots import EXPERIMENTAL_ERROR

    plt = _plt()
    pc = _per_cluster(oof)
    pc["family"] = families(pc["cluster"])
    table = family_table(oof)
    order = pc.groupby("family")["residual"].mean().sort_values().index.tolist()
    fig, ax = plt.subplots(figsize=(7.2, 0.32 * len(order) + 1.5), dpi=150)
    data = [pc.loc[pc["family"] == f, "residual"].to_numpy(float) for f in order]
    ax.axvspan(-EXPERIMENTAL_ERROR, EXPERIMENTAL_ERROR, color="grey", alpha=0.15)
    ax.boxplot(
        data, vert=False, widths=0.6, showfliers=False, patch_artist=True,
        boxprops={"facecolor": "#deebf7", "edgecolor": "#6baed6"},
        medianprops={"color": "#08519c"}, whiskerprops={"color": "#6baed6"},
        capprops={"color": "#6baed6"},
    )  # fmt: skip
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.scatter(d, i + rng.uniform(-0.18, 0.18, len(d)), s=10, color="#d94801", zorder=3)
    ax.axvline(0, color="black", lw=0.7)
    ax.set_yticks(range(1, len(order) + 1))
    ax.set_yticklabels(
        [f"{f}  (n={int(table.loc[f, 'n'])}, MAE {table.loc[f, 'mae']:.2f})" for f in order],
        fontsize=7,
    )
    ax.set_xlabel("residual: predicted - measured lg(k₁)  (grey: ±log10(3) experimental error)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.25)
    csv = path.with_suffix(".csv")
    table.to_csv(csv, index_label="family")
    return [_save(fig, path), csv]


def learning_curves(table: pd.DataFrame, path: Path, title: str) -> list:
    """Train and validation loss per epoch: the final model bold, each outer-fold model thin.
    CSV: model, epoch, loss, val_loss."""
    plt = _plt()
    from matplotlib.ticker import FormatStrFormatter

    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.8), dpi=150, sharey=True)
    folds = [m for m in table["model"].unique() if m != "final"]
    cmap = plt.get_cmap("viridis")
    for ax, col, name in zip(axes, ("loss", "val_loss"), ("training", "validation")):
        for i, m in enumerate(folds):
            d = table[table["model"] == m]
            ax.plot(d["epoch"], d[col], lw=0.8, alpha=0.7, color=cmap(i / max(len(folds) - 1, 1)))
        d = table[table["model"] == "final"]
        if len(d):
            ax.plot(d["epoch"], d[col], lw=2.0, color="black", label="final model")
        ax.plot([], [], lw=0.8, color=cmap(0.5), label=f"{len(folds)} outer-fold models")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2g"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_xlabel("epoch")
        ax.set_title(
            f"{name} loss" + (" (early-stopping rows)" if col == "val_loss" else ""), fontsize=9
        )
        ax.grid(alpha=0.25, which="both")
    axes[0].set_ylabel("MSE of lg(k₁)")
    axes[1].legend(fontsize=7, frameon=False, loc="upper right")
    fig.suptitle(title, fontsize=10)
    csv = path.with_suffix(".csv")
    table.to_csv(csv, index=False)
    return [_save(fig, path), csv]
