"""What the figures say: titles, legends and labels read back from the PNGs (their text chunks),
label placement, the family colour scheme, constant descriptors left out, the restored epoch
(predict --plot and the calibration curves: tests/test_plots_predictions.py)."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from n2react.descriptors import label
from n2react.explain import draw, group_parity
from n2react.explain.curves import curves_table
from n2react.explain.groups import families
from n2react.figures import figure_text, parity_plot


def _oof(n: int = 60, folds: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    metals = ["Mo", "Ta", "V", "Fe"]
    names = [f"{metals[i % 4]}{i % 7 + 2}S{i % 3 + 1}C{i // 20 + 1}¯" for i in range(n)]
    y = rng.normal(-12, 1.2, n)
    return pd.DataFrame(
        {
            "cluster": names,
            "y_true": y,
            "y_pred": y + rng.normal(0, 0.6, n),
            "fold": np.arange(n) % folds + 1,
        }
    ).drop_duplicates("cluster")


def test_family_styles_keep_18_families_apart(shared_data: Path) -> None:
    clusters = pd.read_excel(shared_data / "homonuclear-159-15features.xlsx")["Clusters"]
    fams = pd.Series(families(clusters))
    styles = group_parity.group_styles(fams)
    assert len(styles) == fams.nunique() >= 18
    assert len(set(styles.values())) == len(styles)  # no two families look alike
    colour = {f: c for f, (c, _) in styles.items()}
    marker = {f: m for f, (_, m) in styles.items()}
    assert colour["Mo-S"] == colour["Mo-C,S"] != colour["Ta-S"]  # the metal is the hue
    assert marker["Mo-S"] == marker["Ta-S"] != marker["Mo-C,S"]  # the ligands are the marker
    # groups that are not metals or families (a spreadsheet column) still get distinct colours
    other = group_parity.group_styles(pd.Series(["lab A", "lab B", "lab A"]))
    assert len(set(other.values())) == 2


def test_giant_names_and_groups_are_cut_in_figures(tmp_path: Path) -> None:
    oof = _oof(30)
    giant = "batch " + "x" * 300
    labels = pd.Series(giant, index=oof["cluster"], name="batch")
    group_parity.parity(oof, labels, tmp_path / "p.png", "t")
    desc = figure_text(tmp_path / "p.png")["Description"]
    assert giant not in desc and max(len(line) for line in desc.splitlines()) < 120


def test_parity_labels_do_not_overlap_each_other() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(0, 0.15, 40), rng.normal(2, 0.1, 10)]
    pc = pd.DataFrame({"cluster": [f"Mo{i}S{i % 5 + 1}C1¯-isomer-long-name" for i in range(50)]})
    pc["y_true"], pc["y_pred"] = x, x + rng.normal(0, 0.2, 50)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.scatter(pc["y_true"], pc["y_pred"])
    ax.set_xlim(-1, 3)
    ax.set_ylim(-1, 3)
    group_parity._label_points(ax, pc, pc.iloc[30:42])  # 12 labels on crowded points
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    from matplotlib.text import Text

    boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]  # the text, not its line
    assert len(boxes) == 12
    assert all(len(t.get_text()) <= 18 for t in ax.texts)  # long names are cut
    overlaps = [(a, b) for a, b in combinations(boxes, 2) if a.overlaps(b)]
    plt.close(fig)
    assert not overlaps


def test_a_label_goes_where_its_line_crosses_no_other_point() -> None:
    """A label moved off the points took the first free place around its own point, and its
    line to the point could run over other clusters' markers. Of the free places it takes the
    nearest whose line crosses none; a label already free moves only to cross fewer; none
    within reach: the fewest crossings."""
    own, r = np.array([0.0, 0.0]), 5.0
    points = np.array([[0, 0], [50, 3], [50, 20], [150, 0], [0, 60]], float)
    assert group_parity.leader_crossings(own, np.array([100.0, 0]), points, r) == 1  # (50, 3)
    assert group_parity.leader_crossings(own, np.array([0.0, -100]), points, r) == 0
    across, free = np.array([100.0, 0]), np.array([0.0, -100])
    assert group_parity.best_spot(own, [[across, free]], points, r) is free  # not the first
    assert group_parity.best_spot(own, [[across], [], [free]], points, r) is free  # farther
    up = np.array([0.0, 100])  # crosses (0, 60)
    assert group_parity.best_spot(own, [[across], [up]], points, r) is across  # fewest, nearest
    assert group_parity.best_spot(own, [[across]], points, r, crossed=1) is None  # not fewer
    assert group_parity.best_spot(own, [[across], [free]], points, r, crossed=1) is free
    # no further than reach rings past the first with a free place
    rings = [[across], [], [], [], [free]]
    assert group_parity.best_spot(own, rings, points, r, reach=3) is across


def test_label_lines_end_at_the_label_and_run_under_the_points() -> None:
    """The line from a label to its point was drawn over the points (the label's zorder): a
    point it crossed was hidden under it. It runs under the markers now, from beside the point
    to the edge of the label's box."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.transforms import Bbox

    ends = group_parity.leader_ends(np.array([0.0, 0.0]), Bbox([[90, -5], [130, 5]]), (2, 1))
    assert np.allclose(ends, [[2, 0], [89, 0]])  # off the point, short of the box's left edge
    assert group_parity.leader_ends(np.array([0.0, 0.0]), Bbox([[-2, -5], [40, 5]])) is None

    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.4, 60)
    pc = pd.DataFrame({"cluster": [f"Mo{i}S2¯" for i in range(60)], "y_true": x})
    pc["y_pred"] = x + rng.normal(0, 0.3, 60)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    dots = ax.scatter(pc["y_true"], pc["y_pred"])
    ax.set_xlim(-2, 2)
    ax.set_ylim(-2, 2)
    group_parity._label_points(ax, pc, pc.iloc[:6])
    lines = ax.get_lines()
    plt.close(fig)
    assert lines and all(line.get_zorder() < dots.get_zorder() for line in lines)


def test_parity_quotes_pooled_figures_and_fold_means_only_under_kfold(tmp_path: Path) -> None:
    oof = _oof()
    title = "ridge on homonuclear_15: KFold (known families), 3 folds"
    parity_plot(oof, None, tmp_path / "kfold.png", title=title)
    text = figure_text(tmp_path / "kfold.png")
    assert text["Title"].replace("\n", " ") == title
    desc = text["Description"]
    assert "pooled over" in desc and "mean ± sd over 3 outer folds" in desc
    assert "±0.477 (a factor of 3 in k1)" in text["Description"] and "k₁" not in str(text)
    grouped = oof.assign(group=[c[:2] for c in oof["cluster"]])
    parity_plot(grouped, None, tmp_path / "grouped.png", title="grouped by metal")
    text = figure_text(tmp_path / "grouped.png")
    assert "pooled over" in text["Description"] and "mean ± sd" not in text["Description"]

    labels = pd.Series(families(oof["cluster"]), index=oof["cluster"], name="family")
    group_parity.parity(
        oof, labels, tmp_path / "by_group.png", "Held-out: grouped by family", grouped=True
    )
    text = figure_text(tmp_path / "by_group.png")
    assert "grouped by family" in text["Title"] and "Mo-C,S" in text["Description"]
    assert "mean ± sd" not in text["Description"]


def test_residuals_print_n_mae_and_bias(tmp_path: Path) -> None:
    oof = _oof()
    draw.residuals_by_family(oof, tmp_path / "res.png", "ridge on data: KFold")
    desc = figure_text(tmp_path / "res.png")["Description"]
    table = pd.read_csv(tmp_path / "res.csv", index_col=0)
    for fam, row in table.iterrows():
        assert f"{fam}  n={int(row['n'])}, MAE {row['mae']:.2f}, bias {row['bias']:+.2f}" in desc


def test_importance_plots_leave_constant_descriptors_out_and_say_top_k(tmp_path: Path) -> None:
    cols = [f"3_d{i}" for i in range(20)] + ["0_n_O"]
    table = pd.DataFrame({"mean": np.r_[np.linspace(1, 0.1, 20), 0.0], "std": 0.01}, index=cols)
    draw.importance_bars(
        table, tmp_path / "bars.png", value="mean", err="std", xlabel="x", title="t", top=15,
        leave_out=["0_n_O"],
    )  # fmt: skip
    text = figure_text(tmp_path / "bars.png")
    assert "top 15 of 20 descriptors (constant, left out: 0_n_O)" in text["Title"]
    assert label("0_n_O") not in text["Description"] and label("3_d0") in text["Description"]
    assert len(pd.read_csv(tmp_path / "bars.csv")) == 21  # the table keeps every descriptor

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(30, 21)), columns=cols).assign(**{"0_n_O": 0.0})
    values = X * 0.1
    draw.beeswarm(values, X, tmp_path / "swarm.png", "SHAP", top=15, leave_out=["0_n_O"])
    text = figure_text(tmp_path / "swarm.png")
    assert "top 15 of 20 descriptors" in text["Title"] and "0_n_O" in text["Title"]
    assert label("0_n_O") not in text["Description"]


def test_learning_curves_mark_the_restored_epoch_and_name_the_folds(tmp_path: Path) -> None:
    hist = {"loss": [3.0, 2.0, 1.0, 0.9], "val_loss": [3.0, 2.0, 1.5, 1.8], "best_epoch": [3.0]}
    table = curves_table({"final": hist, 1: {"loss": [2.0, 1.0], "val_loss": [2.0, 1.0]}})
    final = table[table["model"] == "final"]
    assert final.loc[final["restored"], "epoch"].tolist() == [3]
    assert not table.loc[table["model"] == "fold_01", "restored"].any()  # no record: none
    draw.learning_curves(table, tmp_path / "curves.png", "keras_mlp on data: KFold")
    desc = figure_text(tmp_path / "curves.png")["Description"]
    assert "restored best epoch" in desc and "fold 1 model" in desc and "final model" in desc
    assert "MSE of lg(k1)" in desc


def test_titles_say_when_formula_descriptors_were_added(make_cfg, tmp_path: Path) -> None:
    """Two runs that differ only in data.formula (README: `n2react compare` of extra trees with
    and without them) had figures with the same title; the run's and a redrawn explain figure
    now say which data they show."""
    from n2react.explain import Budget, explain_run
    from n2react.run import run

    quick = ("data=homonuclear_15", "model=extra_trees", "model.estimator.n_estimators=20",
             "cv.outer_folds=3", "tracking=none", "explain=false",
             "uncertainty.enabled=false")  # fmt: skip
    run(make_cfg(*quick), tmp_path / "plain")
    run(make_cfg(*quick, "data.formula=true"), tmp_path / "all")
    run(make_cfg(*quick, "data.formula=true", "data.formula_columns=[0_n_metal,0_n_C]",
                 "eval.path=heteronuclear-FeV-18-15features.xlsx"), tmp_path / "two")  # fmt: skip
    titles = {k: figure_text(tmp_path / k / "parity.png")["Title"] for k in ("plain", "all", "two")}
    assert titles["plain"].startswith("extra_trees on homonuclear_15: KFold")
    assert titles["all"].startswith("extra_trees on homonuclear_15 + formula: KFold")
    assert " ".join(titles["two"].split()).startswith(
        "extra_trees on homonuclear_15 + 2 formula descriptors: KFold"
    )
    transfer = figure_text(tmp_path / "two" / "transfer" / "transfer_parity.png")["Title"]
    assert "clusters of homonuclear_15 + 2 formula descriptors" in " ".join(transfer.split())
    explain_run(tmp_path / "two", budget=Budget(max_rows=20, fold_rows=10, background=10,
                                                 n_repeats=2))  # fmt: skip
    shap = " ".join(
        figure_text(tmp_path / "two" / "explain" / "shap_importance.png")["Title"].split()
    )
    assert "on homonuclear_15 + 2 formula descriptors: KFold" in shap


def test_parity_points_are_drawn_over_the_identity_line() -> None:
    """parity.png drew y = x and the ±0.477 band over the points: a forest's in-fold points,
    fitted exactly (r 1.000), vanished under the black line though the legend listed them."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PathCollection

    from n2react.figures import parity_figure

    oof = _oof()
    train = oof.assign(y_pred=oof["y_true"])  # fitted exactly: on the line
    fig = parity_figure(oof, train, "extra_trees on homonuclear_15: KFold")
    (ax,) = fig.axes
    (diag,) = [line for line in ax.get_lines() if line.get_label() == "y = x"]
    band = [c for c in ax.collections if not isinstance(c, PathCollection)]
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points) == 2 and len(band) == 1
    assert max(diag.get_zorder(), band[0].get_zorder()) < min(p.get_zorder() for p in points)
    plt.close(fig)


def test_many_groups_keep_distinct_colour_and_marker(tmp_path: Path) -> None:
    """Past 20 spreadsheet groups (cv.groups=column:batch) tab20's colours came round again,
    all circles: batch 00 and batch 20 looked the same; past 10 metals so did two metals'
    families. Each further 20 groups take another marker; more than 10 metals, tab20's hues."""
    batches = pd.Series([f"batch {i:02d}" for i in range(70)])
    styles = group_parity.group_styles(batches)
    assert len(set(styles.values())) == 70
    metals = ["Mo", "Fe", "V", "Ta", "Rh", "Co", "Ni", "Cu", "Ru", "Pd", "Pt", "Au"]
    fams = pd.Series([f"{m}-S" for m in metals] + [m for m in metals])
    styles = group_parity.group_styles(fams)
    assert len(set(styles.values())) == len(fams) == 24
    assert len({c for c, _ in styles.values()}) == 12  # the metal is still the hue
    oof = _oof(140)
    labels = pd.Series(batches.to_numpy()[np.arange(len(oof)) % 35], index=oof["cluster"])
    group_parity.parity(oof, labels.rename("batch"), tmp_path / "p.png", "grouped by column:batch")
    desc = figure_text(tmp_path / "p.png")["Description"]
    assert "batch 00 (4)" in desc and "batch 34 (4)" in desc  # 35 groups: each in the legend


def test_product_descriptors_read_as_products_on_the_axes(tmp_path: Path) -> None:
    """data=homonuclear_15_interactions: the importance plots named a product column by the
    authors' header, two codes side by side ('2_σave 2_Δnsave'), which does not say it is a
    product. The axis joins them by ×; the CSVs keep the header."""
    from n2react.descriptors import plot_label

    assert plot_label("2_σave 2_Δnsave") == "2_σave × 2_Δnsave"
    assert plot_label("2_σave") == label("2_σave") and plot_label("my column") == "my column"
    table = pd.DataFrame({"mean": [0.3, 0.1], "std": [0.05, 0.02]},
                         index=["2_σave 2_Δnsave", "2_σave"])  # fmt: skip
    png, csv = draw.importance_bars(table, tmp_path / "imp.png", value="mean", err="std",
                                    xlabel="x", title="t")  # fmt: skip
    desc = figure_text(png)["Description"]
    assert "2_σave × 2_Δnsave" in desc and "2_σave (avg. spin density)" in desc
    assert "2_σave 2_Δnsave" in pd.read_csv(csv)["descriptor"].tolist()
    values = pd.DataFrame(np.random.default_rng(0).normal(size=(10, 2)), columns=table.index)
    png, _ = draw.beeswarm(values, values, tmp_path / "bee.png", "t")
    assert "2_σave × 2_Δnsave" in figure_text(png)["Description"]


def test_a_dense_parity_cloud_lets_the_line_show(make_cfg, tmp_path: Path) -> None:
    """The paper's pair split draws 5,000 held-out pairs: opaque, they hid y = x and their own
    density; and a difference of lg(k1) was given k1's unit (cm³ molecule⁻¹ s⁻¹), which a
    ratio of rate constants does not have. Now small and see-through, and no unit."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PathCollection

    from n2react.figures import DENSE_POINTS, parity_figure
    from n2react.run import run

    rng = np.random.default_rng(0)
    y = rng.normal(0, 2, DENSE_POINTS + 100)
    cloud = pd.DataFrame({"cluster": [f"c{i}" for i in range(len(y))], "y_true": y,
                          "y_pred": y + rng.normal(0, 1, len(y))})  # fmt: skip
    for frame, dense in ((cloud, True), (cloud.iloc[:50], False)):
        fig = parity_figure(frame, None, "pairs")
        (points,) = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
        assert (points.get_alpha() < 0.5) is dense
        plt.close(fig)
    run(make_cfg("data=homonuclear_15", "model=ridge", "pairwise=on", "cv.scheme=pair_split",
                 "pairwise.wrapper.max_pairs=500", "final_model=false", "tracking=none",
                 "explain=false"), tmp_path / "pairs")  # fmt: skip
    desc = figure_text(tmp_path / "pairs" / "parity.png")["Description"]
    assert "measured lg(k1)_i - lg(k1)_j" in desc and "held-out pairs, pooled over" in desc
    assert "cm³" not in desc and "out-of-fold" not in desc


def test_group_parity_band_legend_clears_the_axis_labels() -> None:
    """parity_by_group.png hung the legend of the band and y = x below the bottom right corner
    of the axes, where it ran into the last x tick label (-10.0 on 12 Mo-S clusters). It sits
    right of the axes now, above their bottom, clear of every tick label and of the groups'."""
    import matplotlib.pyplot as plt

    oof = _oof(12)
    groups = pd.Series("Mo", index=oof["cluster"], name="metal")
    fig, table = group_parity.parity_figure(oof, groups, "ridge on my.xlsx: KFold")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    groups_legend, band_legend = ax.artists[0], ax.get_legend()
    box = band_legend.get_window_extent(renderer)
    ticks = [t.get_window_extent(renderer) for t in ax.get_xticklabels() + ax.get_yticklabels()]
    assert not any(box.overlaps(t) for t in ticks if t.width > 0)
    assert not box.overlaps(groups_legend.get_window_extent(renderer))
    assert box.y0 >= ax.get_window_extent(renderer).y0 - 1
    assert len(table) == len(oof) and table["labelled"].sum() == 8
    plt.close(fig)


def test_names_that_are_not_formulas_do_not_blow_up_the_group_figures(tmp_path: Path) -> None:
    """A sheet whose cluster names are not formulas ('sample 1' ...) made each name its own
    metal and family: parity_by_group.png had a legend of 159 entries run over the plot and
    the band's legend, residuals_by_family.png 159 rows of one cluster (6,800 pixels tall).
    Past 40 groups the parity draws one colour and says why; the residuals gather such names
    in one row (the CSV keeps a row per name)."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PathCollection
    from PIL import Image

    from n2react.explain.groups import group_labels_of

    oof = _oof(60).reset_index(drop=True)
    oof["cluster"] = [f"sample {i + 1}" for i in range(45)] + list(oof["cluster"][45:])
    labels = group_labels_of(oof["cluster"])
    assert labels.nunique() > group_parity.MAX_GROUPS
    fig, _ = group_parity.parity_figure(oof, labels, "ridge on samples.xlsx: KFold")
    (ax,) = fig.axes
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points) == 1 and len(points[0].get_offsets()) == len(oof)
    assert ax.artists[0].get_title().get_text() == (
        f"metal: {labels.nunique()} groups, too many to colour apart"
    )
    plt.close(fig)
    png, csv = draw.residuals_by_family(oof, tmp_path / "res.png", "ridge on samples.xlsx")
    desc = figure_text(png)["Description"]
    assert f"{draw.NOT_FORMULAS}  n=45" in desc and "Mo-C,S" in desc and "sample 1 " not in desc
    with Image.open(png) as im:
        assert im.size[1] < 1500
    table = pd.read_csv(csv)
    assert "sample 1" in set(table["family"]) and draw.NOT_FORMULAS not in set(table["family"])


def test_importance_bars_count_the_folds_that_kept_each_descriptor(tmp_path: Path) -> None:
    """Each fold's selector keeping its own 2 of 6 descriptors, 4 of them kept by some fold:
    the bars were titled "all 4 descriptors with an effect (2 unused ...)" as if the model
    used 4; the title says they are those any fold kept (2 each), the figure and the CSV how
    many of the 3 folds kept each. One kept by a fold but of no effect there is drawn too."""
    names = [f"3_d{i}" for i in range(6)]
    selected = pd.DataFrame(
        {"fold_01": [1, 1, 0, 0, 0, 0], "fold_02": [1, 0, 1, 0, 0, 0],
         "fold_03": [1, 0, 0, 1, 0, 0]}, index=names,
    ).astype(bool)  # fmt: skip
    folds = pd.DataFrame(
        {"fold_01": [0.5, 0.2, 0, 0, 0, 0], "fold_02": [0.4, 0, 0.1, 0, 0, 0],
         "fold_03": [0.6, 0, 0, 0.0, 0, 0]}, index=names,
    )  # fmt: skip
    table = pd.concat([folds.mean(axis=1).rename("mean"), folds.std(axis=1).rename("std"),
                       folds], axis=1)  # fmt: skip
    draw.importance_bars(table, tmp_path / "bars.png", value="mean", err="std", xlabel="x",
                         title="t", selected=selected)  # fmt: skip
    text = figure_text(tmp_path / "bars.png")
    assert " ".join(text["Title"].split()) == (
        "t; 4 of 6 descriptors kept by any fold's selector (each fold keeps its own 2, "
        "importance 0 in a fold that dropped it; 2 never kept, not drawn)"
    )
    assert "3/3" in text["Description"] and text["Description"].count("1/3") == 3
    assert label("3_d3") in text["Description"] and label("3_d4") not in text["Description"]
    csv = pd.read_csv(tmp_path / "bars.csv", index_col=0)
    assert csv["folds_kept"].to_dict() == dict(zip(names, [3, 1, 1, 1, 0, 0], strict=True))
