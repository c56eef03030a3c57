"""The held-out parity figure coloured by group (``explain/parity_by_group.png``): the colour
and marker of each metal, family or spreadsheet group, and the naming of the largest errors with
labels kept off the points and each other. The other explanation figures are
:mod:`n2react.explain.draw`'s."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from n2react.composition import METALS
from n2react.explain.groups import per_cluster
from n2react.figures import (
    BAND,
    EXPERIMENTAL_ERROR,
    LGK1_AXIS,
    WITHIN,
    save_figure,
    short_name,
    wrap_title,
)
from n2react.metrics import regression_metrics
from n2react.runstore import write_csv

#: More groups than this are drawn in one colour (their legend would not fit, nor would the
#: colours stay apart): the CSV names each cluster's group.
MAX_GROUPS = 40
#: A marker's area (points squared, matplotlib's ``s``) and its width in points.
_MARKER_S = 26
_MARKER_PT = _MARKER_S**0.5
#: Marker per ligand pattern (bare first, then the others by how many clusters they have).
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")


def _plt():  # noqa: ANN202 - the pyplot module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def split_group(group: str) -> tuple[str, str] | None:
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
    parts = {g: split_group(g) for g in counts.index}
    if not all(parts.values()):
        cmap = plt.get_cmap("tab10" if len(counts) <= 10 else "tab20")
        return {
            g: (cmap(i % cmap.N), MARKERS[(i // cmap.N) % len(MARKERS)])
            for i, g in enumerate(counts.index)
        }
    by_metal = pd.Series({g: p[0] for g, p in parts.items()})
    metals = counts.groupby(by_metal).sum().sort_values(ascending=False).index
    patterns = counts.groupby(pd.Series({g: p[1] for g, p in parts.items()})).sum()
    patterns = [""] + [p for p in patterns.sort_values(ascending=False).index if p]
    cmap = plt.get_cmap("tab10" if len(metals) <= 10 else "tab20")
    hue = {m: cmap(i % cmap.N) for i, m in enumerate(metals)}
    marker = {p: MARKERS[i % len(MARKERS)] for i, p in enumerate(patterns)}
    return {g: (hue[m], marker[lig]) for g, (m, lig) in parts.items()}


def _label_points(ax, pc: pd.DataFrame, worst: pd.DataFrame) -> None:  # noqa: ANN001
    """Name the ``worst`` clusters: labels pushed off the points and each other (adjustText),
    any two still touching stacked apart, moved where their line crosses fewest other points,
    then a thin line from each label to its point, drawn under the points (one it still crosses
    shows over it)."""
    from adjustText import adjust_text

    style = {"fontsize": 7, "ha": "center", "va": "center", "zorder": 5}
    texts = [
        ax.text(r.y_true, r.y_pred, short_name(r.cluster), **style) for r in worst.itertuples()
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
    _off_points(ax, texts, pc, worst)
    renderer = ax.figure.canvas.get_renderer()
    for t, r in zip(texts, worst.itertuples()):
        own = ax.transData.transform((r.y_true, r.y_pred))
        ends = leader_ends(own, t.get_window_extent(renderer))
        if ends is not None:
            (x0, y0), (x1, y1) = ax.transData.inverted().transform(ends)
            # above the band and the y = x line, under the points
            ax.plot([x0, x1], [y0, y1], lw=0.5, color="#555555", zorder=0.95)


def leader_ends(own: np.ndarray, box: Any, gap: tuple[float, float] = (2.0, 1.0)) -> Any:
    """The line from a point (``own``, pixels) to its label's ``box`` (a Bbox, pixels): from
    ``gap[0]`` pixels off the point to ``gap[1]`` pixels off the box's edge, on the way to the
    box's centre; None when the point is at or next to the box (no line to draw)."""
    centre = np.array([(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2])
    d = centre - np.asarray(own, float)
    length = float(np.hypot(*d))
    with np.errstate(divide="ignore"):  # the edge: where the ray leaves the box
        inside = min(box.width / 2 / abs(d[0]), box.height / 2 / abs(d[1])) * length
    free = length - inside - gap[0] - gap[1]
    if free <= 0:
        return None
    u = d / length
    return np.array([own + u * gap[0], own + u * (gap[0] + free)])


def leader_crossings(own: np.ndarray, spot: np.ndarray, points: np.ndarray, r: float) -> int:
    """How many of ``points`` (n x 2, pixels) the line from ``own`` to a label centred at ``spot``
    passes over: their centre nearer the segment than ``r`` (a marker's half-width and a margin).
    ``own`` itself (any point within half a pixel of it) is not counted."""
    own, d = np.asarray(own, float), np.asarray(spot, float) - np.asarray(own, float)
    rel = np.asarray(points, float) - own
    t = np.clip(rel @ d / (d @ d), 0.0, 1.0) if d @ d > 0 else np.zeros(len(rel))
    near = np.hypot(*(rel - t[:, None] * d).T) < r
    return int((near & (np.hypot(*rel.T) > 0.5)).sum())


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


def _off_points(ax, texts: list, pc: pd.DataFrame, worst: pd.DataFrame) -> None:  # noqa: ANN001
    """Move a label that still covers a point (adjustText only pushes them, and can leave one on
    another cluster's marker), or whose line to its point crosses another point, to a place
    around its own point where it covers none, nor another label, inside the axes
    (:func:`best_spot`); labels already clear, their line crossing nothing, stay where they
    are, and a clear one moves only where its line crosses fewer points."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    xy = ax.transData.transform(pc[["y_true", "y_pred"]].to_numpy(float))
    r = _MARKER_PT / 2 * fig.dpi / 72 + 1.0  # a marker's half-width in pixels, and a margin
    area = ax.get_window_extent(renderer)

    def clear(box: Any, others: list) -> bool:
        inside = (box.x0 >= area.x0 and box.x1 <= area.x1 and box.y0 >= area.y0
                  and box.y1 <= area.y1)  # fmt: skip
        hit = ((xy[:, 0] > box.x0 - r) & (xy[:, 0] < box.x1 + r)
               & (xy[:, 1] > box.y0 - r) & (xy[:, 1] < box.y1 + r))  # fmt: skip
        return inside and not hit.any() and not any(box.overlaps(o) for o in others)

    boxes = [t.get_window_extent(renderer) for t in texts]
    for i, (t, row) in enumerate(zip(texts, worst.itertuples())):
        others = boxes[:i] + boxes[i + 1 :]
        own = ax.transData.transform((row.y_true, row.y_pred))
        w, h = boxes[i].width, boxes[i].height
        now = np.array([boxes[i].x0 + w / 2, boxes[i].y0 + h / 2])
        crossed = leader_crossings(own, now, xy, r) if clear(boxes[i], others) else None
        if crossed == 0:
            continue
        rings = []
        for step in range(1, 16):  # rings of candidates, nearest first
            d = step * 0.5 * h + r
            ring = []
            for a in np.linspace(0, 2 * np.pi, 24, endpoint=False):
                # the box's centre so that its nearest edge is d from the point
                centre = own + np.array([np.cos(a) * (d + w / 2), np.sin(a) * (d + h / 2)])
                if clear(boxes[i].translated(*(centre - now)), others):
                    ring.append(centre)
            rings.append(ring)
        found = best_spot(own, rings, xy, r, crossed)
        if found is not None:
            t.set_position(ax.transData.inverted().transform(found))
            boxes[i] = boxes[i].translated(*(found - now))


def best_spot(
    own: np.ndarray, rings: list[list[np.ndarray]], points: np.ndarray, r: float,
    crossed: int | None = None, reach: int = 3,
) -> np.ndarray | None:  # fmt: skip
    """Where a label goes, of the free places around its point (``rings``, nearest ring first,
    each a list of label centres in pixels, empty where none is free): the first place whose
    line to the point crosses no other point (:func:`leader_crossings`), looking no further
    than ``reach`` rings past the first with a free place (a label stays near its point);
    without one, the nearest place of fewest crossings. ``crossed``: the crossings of the label
    where it is, when that place is free (None when not): a place is taken only if it crosses
    fewer. None: the label stays where it is."""
    best, fewest, last = None, crossed, len(rings)
    for k, ring in enumerate(rings):
        if k > last:
            break
        if ring and last == len(rings):
            last = k + reach
        for spot in ring:
            n = leader_crossings(own, spot, points, r)
            if fewest is None or n < fewest:
                best, fewest = spot, n
            if n == 0:
                return best
    return best


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
    fig, pc = parity_figure(oof, groups, title, n_label, grouped)
    csv = path.with_suffix(".csv")
    write_csv(csv, pc[["cluster", "group", "y_true", "y_pred", "residual", "labelled"]])
    return [save_figure(fig, path), csv]


def parity_figure(
    oof: pd.DataFrame, groups: pd.Series, title: str, n_label: int = 8, grouped: bool = False
) -> tuple[Any, pd.DataFrame]:
    """The Figure of :func:`parity` and the per-cluster table behind it. The group legend sits
    right of the axes at the top, the band's and the line's at the bottom, above the axis (below
    it, it ran into the last tick label)."""
    plt = _plt()
    pc = per_cluster(oof)
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
    many = len(styles) > MAX_GROUPS  # e.g. names that are not formulas: one "metal" each
    if many:
        ax.scatter(pc["y_true"], pc["y_pred"], s=_MARKER_S, color="#3182bd", edgecolors="white",
                   linewidths=0.4, label=f"all clusters ({len(pc)})")  # fmt: skip
    for g in [] if many else sorted(styles, key=lambda g: (split_group(g) or (g, ""), g)):
        d = pc[pc["group"] == g]
        colour, marker = styles[g]
        ax.scatter(
            d["y_true"], d["y_pred"], s=_MARKER_S, color=colour, marker=marker, edgecolors="white",
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
    ncol = 1 if len(styles) <= 14 or many else min(max(2, -(-len(styles) // 20)), 4)  # <= 20 rows
    name = groups.name or "group"
    head = f"{name}: {len(styles)} groups, too many to colour apart" if many else f"{name} (n)"
    leg = ax.legend(
        [handles[i] for i in keep], [names[i] for i in keep], title=head, loc="upper left",
        bbox_to_anchor=(1.02, 1.0), fontsize=7, title_fontsize=8, frameon=False, ncol=ncol,
        borderaxespad=0,
    )  # fmt: skip
    leg._legend_box.align = "left"
    ax.add_artist(leg)
    ax.legend(
        [band, diag], [band.get_label(), diag.get_label()], loc="lower left",
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
    return fig, pc
