"""Interaction features, pairwise learning, stability selection and the paper's protocols."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from n2react.data import load_dataset
from n2react.errors import ConfigError
from n2react.figures import figure_text
from n2react.metrics import summary_keys
from n2react.plan import build_plan
from n2react.run import cross_validate, run


def test_interactions_are_built_inside_the_fold_with_readable_names(make_cfg) -> None:
    cfg = make_cfg("data=homonuclear_15", "features=interactions")
    ds = load_dataset(cfg.data)
    pipe = build_plan(cfg).make_pipeline().fit(ds.X, ds.y)
    names = list(pipe[:-1].get_feature_names_out(ds.feature_names))
    assert len(names) == 15 + 105
    assert "2_Q 3_EA" in names
    # the products match the authors' degree-2 spreadsheet
    deg2 = load_dataset(make_cfg("data=homonuclear_15_interactions").data)
    ours = pipe.named_steps["features"].transform(pipe.named_steps["impute"].transform(ds.X))
    np.testing.assert_allclose(ours, deg2.X[names].to_numpy(), rtol=1e-6, atol=1e-9)


def test_interactions_on_products_or_one_descriptor_are_refused(make_cfg, tmp_path: Path) -> None:
    # the authors' degree-2 table multiplied again: ~7,000 inputs, r 0.167, without a word
    with pytest.raises(
        ConfigError,
        match=r"^features=interactions: data=homonuclear_15_interactions already holds .*"
        r"data.holds_products=true.*features=raw",
    ):
        build_plan(make_cfg("data=homonuclear_15_interactions", "features=interactions"))
    assert build_plan(make_cfg("data=homonuclear_15_interactions", "tracking=none"))
    # one descriptor: no products to make, it ran as raw while logged as interactions
    ds = load_dataset(make_cfg("data=homonuclear_15").data)
    one = tmp_path / "one.csv"
    pd.DataFrame({"cluster": ds.clusters, "lg(k1)": ds.y, "2_Q": ds.X["2_Q"]}).to_csv(
        one, index=False
    )
    cfg = make_cfg(f"data.path={one}", "features=interactions", "tracking=none")
    with pytest.raises(ConfigError, match=r"^features=interactions: .*one.csv has 1 descriptor"):
        build_plan(cfg).validate(load_dataset(cfg.data))


def test_pairwise_nested_cv_gives_a_spread_per_cluster(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("pairwise=on", "model=ridge", "cv.outer_folds=4", "search=grid")
    res = cross_validate(build_plan(cfg), load_dataset(cfg.data), tmp_path)
    oof = res.oof_table()
    assert "y_std" in oof and (oof["y_std"] > 0).all() and len(oof) == 159
    assert all(f.model.named_steps["model"].base_.__class__.__name__ == "Ridge" for f in res.folds)
    # the search tuned the wrapped model's parameter
    assert all("model__base__alpha" in f.best_params for f in res.folds)


def test_rfe_vote_logs_selection_frequencies(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(
        "selector=rfe_vote", "selector.step.n_resamples=3", "model=ridge",
        "cv.outer_folds=3", "tracking=none", "final_model=false",
    )  # fmt: skip
    run(cfg, tmp_path)
    freq = pd.read_csv(tmp_path / "selection_frequency.csv", index_col=0)
    assert freq.shape == (24, 3) and ((freq >= 0) & (freq <= 1)).all().all()
    assert (tmp_path / "selection_frequency.png").stat().st_size > 10_000
    # titled like every figure of the run (model, data, protocol), the selector said once (it
    # read "Stability selection (RFE vote): ridge (rfe_vote selector) on ..."), with its size as
    # the other titles give it (it read "Stability selection (RFE vote): ..." whatever its
    # n_features_to_select); descriptors by the glossary
    text = figure_text(tmp_path / "selection_frequency.png")
    title = " ".join(text["Title"].split())
    assert title == (
        "Stability selection (rfe_vote selector n_features_to_select=8): ridge on homonuclear_24: "
        "KFold (known families), 3 folds"
    )
    parity = " ".join(figure_text(tmp_path / "parity.png")["Title"].split())
    # the others keep it, with its size
    assert parity.startswith("ridge (rfe_vote selector n_features_to_select=8) on homonuclear_24")
    assert "2_σave (avg. spin density)" in text["Description"]


def test_the_stability_selection_figure_gives_the_selectors_size(make_cfg, tmp_path) -> None:
    """The stability-selection figure was headed "Stability selection (RFE vote)" whatever the
    selector's n_features_to_select (4 and 12 read alike), while the run's other titles gave it;
    it gives it now in their words, and "searched" when a search tunes it per fold."""
    from n2react.figures import selection_frequency_plot

    def head(*overrides: str) -> str:
        plan = build_plan(make_cfg("selector=rfe_vote", "model=ridge", *overrides))
        png = selection_frequency_plot(
            pd.DataFrame({"fold_01": [0.5, 1.0]}, index=["2_Q", "3_EA"]),
            tmp_path / "selection_frequency.png",
            "ridge on homonuclear_24",
            plan.names.selector,
        )
        return " ".join(figure_text(png)["Title"].split())

    assert head("selector.step.n_features_to_select=4") == (
        "Stability selection (rfe_vote selector n_features_to_select=4): ridge on homonuclear_24"
    )
    assert head("search=random") == (
        "Stability selection (rfe_vote selector n_features_to_select searched): "
        "ridge on homonuclear_24"
    )
    assert build_plan(make_cfg("model=ridge")).names.selector == ""


def test_a_sweep_jobs_selection_figure_gives_the_selectors_size_once(
    make_cfg, tmp_path: Path
) -> None:
    """python -m train -m selector=rfe_vote selector.step.n_features_to_select=4,8 ...: a job's
    stability-selection figure read "Stability selection (rfe_vote selector
    n_features_to_select=4): ridge n_features_to_select=4 on ...", the size twice (the head's,
    and the job's label of swept values); the label now drops what the head says."""
    from n2react.jobs import JobInfo, run_name
    from n2react.titles import label_for_selection

    swept = ("selector.step.n_features_to_select=4",)
    cfg = make_cfg(
        "selector=rfe_vote", "selector.step.n_resamples=3", "model=ridge", *swept,
        "cv.outer_folds=2", "tracking=none", "final_model=false", "explain=false",
    )  # fmt: skip
    job = JobInfo(run_name("ridge", swept), sweep=str(tmp_path), job=0, overrides=swept)
    run(cfg, tmp_path, job_num=0, job=job)
    title = " ".join(figure_text(tmp_path / "selection_frequency.png")["Title"].split())
    assert title == (
        "Stability selection (rfe_vote selector n_features_to_select=4): ridge on homonuclear_24: "
        "KFold (known families), 2 folds"
    )
    parity = " ".join(figure_text(tmp_path / "parity.png")["Title"].split())
    assert parity.startswith("ridge n_features_to_select=4 on homonuclear_24")  # the label kept
    # a sweep over the selector: its name not twice either; other swept values stay
    head = "rfe_vote selector n_features_to_select=8"
    assert label_for_selection("ridge alpha=10 rfe_vote robust", head) == "ridge alpha=10 robust"
    assert label_for_selection("ridge alpha=10", "") == "ridge alpha=10"


def test_a_pairwise_runs_titles_name_the_wrapper_as_explain_does(make_cfg, tmp_path: Path) -> None:
    # model=keras_mlp pairwise=on: the run's parity plot said "keras_mlp on ..." while
    # n2react explain's figures of the same run said "keras_mlp (pairwise) on ..."
    from n2react.explain.runner import _title
    from n2react.explain.source import load_run_dir

    cfg = make_cfg(
        "pairwise=on", "model=ridge", "data=homonuclear_15", "cv.outer_folds=3", "tracking=none",
        "final_model=false", "explain=false", "uncertainty.enabled=false",
    )  # fmt: skip
    run(cfg, tmp_path)
    title = " ".join(figure_text(tmp_path / "parity.png")["Title"].split())
    assert title == "ridge (pairwise) on homonuclear_15: KFold (known families), 3 folds"
    assert title == _title(load_run_dir(tmp_path))


def test_pair_split_reproduces_the_leaky_protocol(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("pairwise=on", "model=ridge", "cv.scheme=pair_split", "tracking=none")
    m = run(cfg, tmp_path)
    assert m["test_pairs_with_both_clusters_seen"] > 0.99
    pairs = pd.read_csv(tmp_path / "test_pairs.csv")
    assert len(pairs) == round(0.2 * 159 * 158)
    # every metric a sweep may optimise is there: one test set, pooled = its scores
    assert summary_keys() <= set(m)
    assert m["pooled_test_rmse"] == pytest.approx(m["mean_test_rmse"])
    assert m["pooled_test_r"] == pytest.approx(m["mean_test_r"])


def test_pair_split_keeps_to_max_pairs_and_checks_its_settings(
    make_cfg, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The pair split ignored pairwise.wrapper.max_pairs (all 20,098 training pairs, however
    small it was asked to be) and skipped the checks a nested run makes (max_pairs=0 ran; a bad
    base setting was a traceback)."""
    base = ("pairwise=on", "model=ridge", "cv.scheme=pair_split", "tracking=none")
    with caplog.at_level("INFO", logger="n2react.pairsplit"):
        m = run(make_cfg(*base, "pairwise.wrapper.max_pairs=500"), tmp_path / "capped")
    assert "pair split: 500 training pairs, 5024 test pairs" in caplog.text
    assert len(pd.read_csv(tmp_path / "capped" / "test_pairs.csv")) == 5024
    assert np.isfinite(m["mean_test_rmse"])
    with pytest.raises(ConfigError, match="pairwise.wrapper.max_pairs"):
        run(make_cfg(*base, "pairwise.wrapper.max_pairs=0"), tmp_path / "zero")
    with pytest.raises(ConfigError, match="alpha"):
        run(make_cfg(*base, "model.estimator.alpha=-1"), tmp_path / "alpha")


def test_pair_split_needs_pairwise(make_cfg, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cv.scheme=pair_split: needs pairwise=on"):
        run(make_cfg("model=ridge", "cv.scheme=pair_split", "tracking=none"), tmp_path)


def test_pairwise_on_without_its_wrapper_is_refused(make_cfg) -> None:
    # it ran a plain model while logging pairwise.name=on
    with pytest.raises(ConfigError, match=r"^pairwise.wrapper=null: pairwise=on .*pairwise=off"):
        build_plan(make_cfg("pairwise=on", "pairwise.wrapper=null", "tracking=none"))
    with pytest.raises(ConfigError, match=r"^pairwise.wrapper: set with pairwise=off"):
        build_plan(
            make_cfg(
                "pairwise=off",
                "+pairwise.wrapper._target_=n2react.models.pairwise.PairwiseRegressor",
                "tracking=none",
            )
        )
    assert build_plan(make_cfg("pairwise=off", "tracking=none")).config["pairwise"]["name"] == "off"


def test_paper_experiments_compose(make_cfg) -> None:
    reg = make_cfg("experiment=paper_regular")
    assert reg.data.name == "authors_folds" and reg.search.name == "grid"
    assert set(k for k, v in reg.model.space.items() if v is not None) == {"n_estimators"}
    assert reg.uncertainty.validation == "crossfit"  # not 45 more grid searches
    pw = make_cfg("experiment=paper_pairwise")
    est = pw.model.estimator
    assert (est.n_layers, est.units, est.units_decrement, est.batch_size) == (3, 416, 32, 64)
    assert pw.pairwise.name == "on" and pw.features.name == "interactions"
    assert pw.final_model is False  # an experiment overrides the primary config


def test_the_pair_split_shows_a_clock_on_a_terminal(tmp_path: Path) -> None:
    """The pair split (4.4 min for the paper's network on 2 cores) printed nothing between its
    'pair split: 20098 training pairs' line and its result: a bar with its clock now."""
    import os
    import subprocess
    import sys

    pty = pytest.importorskip("pty")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, (src, os.environ.get("PYTHONPATH")))),
    }
    args = ("data=homonuclear_15", "model=ridge", "pairwise=on", "cv.scheme=pair_split")
    cmd = [sys.executable, "-m", "train", *args, "tracking=none", f"hydra.run.dir={tmp_path / 'r'}"]
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave
    )
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=300) == 0, out[-2000:]
    assert b"pair split (one fit)" in out


def test_pair_split_trains_on_every_pair_but_its_test_pairs(make_cfg) -> None:
    # the pair split's model is fitted on exactly the ordered pairs it does not test: the same
    # base fitted on all the other pairs predicts its test pairs alike (test pairs among the
    # training pairs, as well as pairs left out, would move them)
    from sklearn.base import clone

    from n2react.models.pairwise import pair_indices
    from n2react.pairsplit import pair_split

    plan = build_plan(make_cfg("pairwise=on", "model=ridge", "cv.scheme=pair_split",
                               "tracking=none"))  # fmt: skip
    dataset = load_dataset(plan.data)
    _, table = pair_split(dataset, plan)
    pipeline = plan.make_pipeline()
    Xt = np.asarray(pipeline[:-1].fit_transform(dataset.X, dataset.y), dtype=float)
    i, j = pair_indices(dataset.n_rows)
    names = pd.Series(dataset.clusters)
    tested = set(zip(table["cluster_i"], table["cluster_j"], strict=True))
    is_test = np.array([(a, b) in tested for a, b in zip(names[i], names[j], strict=True)])
    assert is_test.sum() == len(table)
    dX, dy = Xt[i] - Xt[j], dataset.y[i] - dataset.y[j]
    base = clone(pipeline.steps[-1][1].base).fit(dX[~is_test], dy[~is_test])
    lookup = dict(zip(zip(names[i], names[j], strict=True), base.predict(dX), strict=True))
    expected = [lookup[(a, b)] for a, b in zip(table["cluster_i"], table["cluster_j"], strict=True)]
    np.testing.assert_allclose(table["y_pred"], expected, rtol=1e-9, atol=1e-9)
