"""What the prediction figures say: predict --plot (legend, isomers, many clusters, the title
naming the run's model) and the calibration curves (widths inside the axes, missing levels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from n2react.figures import figure_text


def test_predict_plot_legend_hides_no_interval() -> None:
    """predict --plot put its legend at loc="best" inside the axes: with intervals across the
    whole width (few clusters, wide intervals) it covered the top ones. It sits outside now."""
    import matplotlib.pyplot as plt

    from n2react.figures import prediction_figure

    n = 4
    table = pd.DataFrame({
        "cluster": [f"Mo{i + 2}S2\u00af" for i in range(n)],
        "y_pred": np.linspace(-13, -11, n),
        "y_lower": np.full(n, -16.0),
        "y_upper": np.full(n, -8.0),
        "in_domain": [True, True, False, True],
        "y_true": np.linspace(-12.5, -11.5, n),
    })  # fmt: skip
    fig = prediction_figure(table, "four clusters, wide intervals", 0.9)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    legend = ax.get_legend().get_window_extent(renderer)
    inside = ax.get_window_extent(renderer)
    plt.close(fig)
    assert not legend.overlaps(inside)


def test_predict_plot_says_what_its_rows_are() -> None:
    """The cluster axis had no label: a reader could not tell the rows were sorted by the
    prediction (not by the sheet's order, nor by the measured value)."""
    import matplotlib.pyplot as plt

    from n2react.figures import prediction_figure

    table = pd.DataFrame({
        "cluster": ["FeV2C2\u00af", "Fe2VC\u00af"], "y_pred": [-11.3, -13.0],
        "in_domain": [True, False],
    })  # fmt: skip
    fig = prediction_figure(table, "two clusters", 0.9)
    (ax,) = fig.axes
    ylabel, xlabel = ax.get_ylabel(), ax.get_xlabel()
    plt.close(fig)
    assert ylabel == "cluster (sorted by predicted lg(k1))"
    assert xlabel.startswith("lg(k1)  (k1 in cm")  # the unit stays on the value axis


def test_predict_plot_tells_isomers_apart_by_their_rows() -> None:
    """Two rows of one name (isomers) were two identical tick labels: each says its row now."""
    import matplotlib.pyplot as plt

    from n2react.figures import prediction_figure

    table = pd.DataFrame({
        "cluster": ["Fe2V2C\u00af", "Mo3", "Fe2V2C\u00af"],
        "y_pred": [-13.0, -12.0, -11.0],
        "in_domain": [True, True, True],
        "row": [4, 5, 9],
    })  # fmt: skip
    fig = prediction_figure(table, "isomers", 0.9)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    plt.close(fig)
    assert labels == ["Fe2V2C\u00af (row 4)", "Mo3", "Fe2V2C\u00af (row 9)"]


def _predictions(n: int) -> pd.DataFrame:
    y = np.linspace(-15.0, -9.0, n)
    return pd.DataFrame({
        "cluster": [f"Mo{i % 9 + 2}S{i % 4 + 1} copy{i}" for i in range(n)],
        "y_pred": y, "y_lower": y - 1.0, "y_upper": y + 1.0, "in_domain": np.arange(n) % 7 > 0,
    })  # fmt: skip


def test_predict_plot_of_many_clusters_stays_viewable(tmp_path: Path) -> None:
    """predict --plot drew one row per cluster whatever their number: 200 clusters made a
    6,800-pixel strip with ten blank rows above and below and the lg(k1) axis only at the
    bottom, 3,000 a 99,000-pixel PNG that viewers refuse. It draws the 100 highest predicted
    (the axis label says so), no blank rows, the axis labelled at the top too."""
    import matplotlib.pyplot as plt

    from n2react.figures import PREDICTION_ROWS, prediction_figure, prediction_plot

    table = _predictions(250).sample(frac=1.0, random_state=0)  # not in predicted order
    fig = prediction_figure(table, "250 clusters", 0.9)
    (ax,) = fig.axes
    drawn = [t.get_text() for t in ax.get_yticklabels()]
    top = table.nlargest(PREDICTION_ROWS, "y_pred")["cluster"]
    assert len(drawn) == PREDICTION_ROWS and set(drawn) == set(top)
    low, high = ax.get_ylim()
    assert -1.0 < low < 0.0 and PREDICTION_ROWS - 1 < high < PREDICTION_ROWS
    assert ax.xaxis.get_tick_params(which="major")["labeltop"]
    assert "the 100 of 250 clusters with the highest predicted lg(k1)" in ax.get_xlabel()
    assert fig.get_size_inches()[1] * fig.dpi < 4000
    plt.close(fig)
    prediction_plot(table, tmp_path / "p.png", "250 clusters", 0.9)  # written whole
    from PIL import Image

    with Image.open(tmp_path / "p.png") as im:
        assert im.size[1] < 4000
    # few clusters: all drawn, no note, the axis at the bottom only
    fig = prediction_figure(_predictions(1), "one cluster", 0.9)
    (ax,) = fig.axes
    assert len(ax.get_yticklabels()) == 1 and "highest predicted" not in ax.get_xlabel()
    assert not ax.xaxis.get_tick_params(which="major").get("labeltop", False)
    plt.close(fig)


def test_predict_plot_title_names_the_runs_model_and_protocol(make_cfg, tmp_path: Path) -> None:
    """predict --plot named the model by its run folder only (``model: r_newcomp``): the figure
    did not say which model, data and protocol it came from. A run folder's config names them."""
    from omegaconf import OmegaConf

    from n2react.inference import LoadedModel, _plot_title
    from n2react.runstore import CONFIG_FILE

    run_dir = tmp_path / "r_newcomp"
    run_dir.mkdir()
    cfg = make_cfg("experiment=new_compositions")
    (run_dir / CONFIG_FILE).write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")
    table = _predictions(3).drop(columns=["y_lower", "y_upper"])
    title = _plot_title(str(run_dir), "new.xlsx", LoadedModel(None, [], ""), table, 0.9, [])
    assert title == (
        "new.xlsx: predicted lg(k1), no intervals; model: r_newcomp (extra_trees on "
        "homonuclear_15: grouped by family (new compositions))"
    )
    (run_dir / CONFIG_FILE).unlink()  # a folder without its config: the folder's name only
    title = _plot_title(str(run_dir), "new.xlsx", LoadedModel(None, [], ""), table, 0.9, [])
    assert title.endswith("; model: r_newcomp")


def test_calibration_widths_stay_inside_the_axes_and_missing_levels_are_said(
    tmp_path: Path,
) -> None:
    """The width printed above a point at full coverage (18 Fe-V clusters: 80 to 95 % all
    covered) was drawn across the top of the axes, struck through by the frame; and a curve
    stopping at 90 % (too few clusters for a 95 % interval) did not say why it stopped."""
    import matplotlib.pyplot as plt

    from n2react.uncertainty_report import calibration_figure, calibration_plot

    full = pd.DataFrame({
        "nominal": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95], "observed": [0.89, 0.89, 0.89, 1.0, 1.0, 1.0],
        "width": [1.51, 1.94, 2.32, 2.85, 3.58, 4.58],
    })  # fmt: skip
    short = full.iloc[:5].assign(observed=[0.5, 0.67, 0.72, 0.83, 0.94])
    for curves in ({"FeV (18 clusters)": full}, {"held-out": full, "FeV (18 clusters)": short}):
        fig = calibration_figure(curves, "transfer")
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        (ax,) = fig.axes
        frame = ax.get_window_extent(renderer)
        legend = ax.get_legend().get_window_extent(renderer)
        widths = [t for t in ax.texts if t.get_text() in {f"{w:.2f}" for w in full["width"]}]
        assert len(widths) == sum(len(c) for c in curves.values())
        for t in widths:
            box = t.get_window_extent(renderer)
            assert frame.x0 <= box.x0 and box.x1 <= frame.x1, t.get_text()
            assert frame.y0 <= box.y0 and box.y1 <= frame.y1, t.get_text()
            assert not box.overlaps(legend), t.get_text()
        plt.close(fig)
    calibration_plot({"FeV (18 clusters)": short}, tmp_path / "c.png", "transfer")
    desc = " ".join(figure_text(tmp_path / "c.png")["Description"].split())
    assert "no 95 % point: too few clusters to calibrate it" in desc
    assert "numbers: mean interval width (lg(k1) units)" in desc
