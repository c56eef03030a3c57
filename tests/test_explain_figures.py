"""What the explanation figures say: labels kept off the points, descriptor names that read
cleanly, titles that name the descriptor selector."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.text import Text
from omegaconf import OmegaConf

from n2react.composition import DEFAULT_LIGANDS
from n2react.composition import feature_names as formula_names
from n2react.descriptors import GLOSSARY, label
from n2react.explain.group_parity import _MARKER_PT, parity_figure
from n2react.explain.groups import group_labels_of
from n2react.explain.source import load_run
from n2react.figures import model_title
from n2react.run import run


def test_no_cluster_label_of_the_parity_figure_sits_on_a_point(make_cfg, tmp_path):
    """In the ridge run's parity_by_group.png the label Mo6S3¯ sat on other clusters' points
    (adjustText pushes labels off points but does not make sure of it). A label left on a
    point moves to the nearest free place around its own point now."""
    cfg = make_cfg("model=ridge", "cv.outer_folds=3", "tracking=none", "explain=false",
                   "final_model=false", "uncertainty.enabled=false")  # fmt: skip
    run(cfg, tmp_path / "run")
    data = load_run(tmp_path / "run")
    clusters = pd.unique(data.oof["cluster"].astype(str))
    groups = group_labels_of(clusters, None, data.dataset, list(DEFAULT_LIGANDS))
    fig, pc = parity_figure(data.oof, groups, "ridge")
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    xy = ax.transData.transform(pc[["y_true", "y_pred"]].to_numpy(float))
    r = _MARKER_PT / 2 * fig.dpi / 72  # a marker's half-width in pixels
    labels = [t for t in ax.texts if "pooled" not in t.get_text()]  # not the figures below
    assert len(labels) == pc["labelled"].sum() == 8
    for t in labels:
        box = Text.get_window_extent(t, renderer)  # the label's text, not its line
        on = (np.abs(xy[:, 0] - (box.x0 + box.x1) / 2) < box.width / 2 + r) & (
            np.abs(xy[:, 1] - (box.y0 + box.y1) / 2) < box.height / 2 + r
        )
        assert not on.any(), (t.get_text(), pc.loc[on, "cluster"].tolist())


def test_descriptor_labels_nest_no_brackets():
    """Summed descriptors were labelled "3_EA (electron affinity (sum))"; they read
    "3_EA (summed electron affinity)" now, and no label nests brackets."""
    assert label("3_EA") == "3_EA (summed electron affinity)"
    assert label("2_Q", unit=True) == "2_Q (summed metal charge) [e]"
    for code in [*GLOSSARY, *formula_names()]:
        text = label(code)
        assert text.count("(") == text.count(")") == 1, text


def test_titles_name_the_descriptor_selector(make_cfg):
    """A run with selector=kbest was titled "ridge on homonuclear_24: ..." like one without;
    its titles (run, explain, terminal) name the selector now, and selector=none adds nothing."""

    def title(*overrides: str) -> str:
        return model_title(OmegaConf.to_container(make_cfg(*overrides), resolve=True))

    assert title("model=ridge") == "ridge"
    assert title("model=ridge", "selector=kbest") == "ridge (kbest selector k=8)"
    assert title("model=svr", "selector=rfe_vote") == (
        "svr (rfe_vote selector n_features_to_select=8)"
    )
    assert title("model=ridge", "pairwise=on", "selector=kbest") == (
        "ridge (pairwise, kbest selector k=8)"
    )
    assert title("model=ridge", "pairwise=on") == "ridge (pairwise)"


def test_a_kbest_title_gives_its_k(make_cfg):
    """A kbest run's titles said "kbest selector" whatever its k (selector.step.k=4 and =12 read
    alike); they give the k now, the size parameter of every selector (the keys of its space),
    and under a search, which tunes it per fold, say so rather than quote the default."""

    def title(*overrides: str) -> str:
        return model_title(OmegaConf.to_container(make_cfg(*overrides), resolve=True))

    assert title("model=ridge", "selector=kbest", "selector.step.k=12") == (
        "ridge (kbest selector k=12)"
    )
    assert "k=4" in title("model=ridge", "selector=kbest", "selector.step.k=4")
    assert title("model=ridge", "selector=rfe", "selector.step.n_features_to_select=4") == (
        "ridge (rfe selector n_features_to_select=4)"
    )
    assert title("model=ridge", "selector=kbest", "search=random") == (
        "ridge (kbest selector k searched)"
    )


def test_importance_figures_of_a_kbest_run_say_each_fold_kept_its_own(make_cfg, tmp_path):
    """Under selector=kbest k=4 the SHAP and permutation importance figures drew 5 descriptors
    titled "all 5 descriptors with an effect": each outer fold's selector keeps its own 4, and
    the figure showed them all as if the model used 5. The title says now that it shows those
    any fold kept (4 each) and a column how many folds kept each one (folds_kept in the CSV)."""
    from n2react.figures import figure_text

    cfg = make_cfg("model=ridge", "selector=kbest", "selector.step.k=4", "data=homonuclear_15",
                   "cv.outer_folds=5", "tracking=none", "final_model=false",
                   "uncertainty.enabled=false")  # fmt: skip
    run(cfg, tmp_path / "run")
    for stem in ("shap_importance", "permutation_importance"):
        table = pd.read_csv(tmp_path / "run" / "explain" / f"{stem}.csv", index_col=0)
        kept = table["folds_kept"]
        assert kept.sum() == 4 * 5 and kept.max() == 5  # 4 kept by each of the 5 folds
        union = int((kept > 0).sum())
        assert union > 4  # the folds did not all keep the same 4 (here 5 of 15)
        text = figure_text(tmp_path / "run" / "explain" / f"{stem}.png")
        title = " ".join(text["Title"].split())
        assert f"; {union} of 15 descriptors kept by any fold's selector (each fold keeps its " \
            f"own 4, importance 0 in a fold that dropped it; {15 - union} never kept, not " \
            "drawn)" in title  # fmt: skip
        assert "with an effect" not in title
        for count in kept[kept > 0]:
            assert f"{count}/5" in text["Description"]
