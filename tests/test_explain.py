"""n2react.descriptors and n2react.explain: the glossary, SHAP and permutation importance, and
every explanation file regenerated from a real finished run (directory and MLflow run id)
(the command line's refusals: tests/test_explain_cli.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from explain_helpers import SMALL
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from n2react.composition import feature_names as formula_names
from n2react.descriptors import PAPER_KEY_DESCRIPTORS, describe, glossary_markdown, label
from n2react.explain import Budget, explain_run, histories, log_learning_curves
from n2react.explain import importance as imp
from n2react.explain.groups import families, family_table, group_labels_of
from n2react.explain.source import load_run
from n2react.run import run

FILES = [
    "homonuclear-159-24features.xlsx",
    "homonuclear-159-15features.xlsx",
    "homonuclear-159-8features.xlsx",
]


@pytest.mark.parametrize("file", FILES)
def test_every_descriptor_of_the_data_files_has_a_glossary_entry(shared_data, file):
    cols = list(pd.read_excel(shared_data / file, nrows=1).columns[2:])
    for c in cols:
        d = describe(c)
        assert d is not None, c
        assert label(c).startswith(f"{c} (") and d.level in (1, 2, 3)
    assert all(describe(c) is not None for c in PAPER_KEY_DESCRIPTORS)


def test_labels_keep_unknown_names_and_the_glossary_renders():
    assert label("2_σave") == "2_σave (avg. spin density)"
    assert label("1_ΔQmax", unit=True).endswith("[e]")
    assert label("2_Q 3_EA") == "2_Q 3_EA" and describe("my_column") is None
    assert describe("0_n_Cl").name == "Cl atoms"
    assert all(describe(c) is not None for c in formula_names())
    md = glossary_markdown()
    assert md.count("\n| `") == 24 + len(formula_names()) and "| `3_ΔEHOMO` | 3 |" in md


def _toy(n: int = 120) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(n, 5)), columns=["a", "b", "c", "d", "e"])
    return X, 2.0 * X["a"].to_numpy() - X["b"].to_numpy() + 0.05 * rng.normal(size=n)


def test_permutation_shap_is_exact_for_a_linear_pipeline_and_sums_to_the_prediction():
    X, y = _toy()
    lin = make_pipeline(StandardScaler(), Ridge(alpha=1e-6)).fit(X, y)
    vals, kind = imp.shap_values(lin, X, Budget(max_rows=15, background=20))
    assert kind == "permutation" and vals.shape == (15, 5)
    # a linear model's SHAP value is w_j (x_j - mean of the background's x_j) for any permutation
    base = lin.predict(X) - vals.sum(axis=1).reindex(X.index).to_numpy()
    assert np.nanstd(base) < 1e-9  # same base value (mean background prediction) for every row
    svr = SVR().fit(X, y)
    vals, _ = imp.shap_values(svr, X, Budget(max_rows=15, background=20))
    f = svr.predict(X.loc[vals.index])
    assert np.ptp(f - vals.sum(axis=1).to_numpy()) < 1e-9  # efficiency: sums to f(x) - base
    assert vals.abs().mean().idxmax() == "a"


def test_fold_treeshap_over_a_subsample_of_trees_estimates_the_forest():
    from sklearn.ensemble import RandomForestRegressor

    X, y = _toy()
    rf = RandomForestRegressor(n_estimators=200, random_state=0).fit(X, y)
    full, kind = imp.shap_values(rf, X, Budget(max_rows=40))
    some, _ = imp.shap_values(rf, X, Budget(max_rows=40), trees=30)
    assert kind == "tree" and list(some.index) == list(full.index)
    # the subsample's SHAP values sum to the subsample's prediction (minus its mean), not the
    # forest's: it really walked 30 trees
    sub = imp._some_trees(rf, 30, 0, 0)
    assert len(sub.estimators_) == 30 and len(rf.estimators_) == 200
    f = sub.predict(X.loc[some.index].to_numpy())
    assert np.ptp(f - some.sum(axis=1).to_numpy()) < 1e-6
    assert np.ptp(rf.predict(X.loc[some.index].to_numpy()) - some.sum(axis=1).to_numpy()) > 1e-3
    # ... and estimate the forest's without bias: the same ranking, close mean |SHAP|
    assert list(imp.mean_abs(some).sort_values().index[-2:]) == ["b", "a"]
    np.testing.assert_allclose(
        imp.mean_abs(some)[["a", "b"]], imp.mean_abs(full)[["a", "b"]], rtol=0.1
    )


def test_permutation_importance_is_sklearns():
    from sklearn.inspection import permutation_importance

    X, y = _toy()
    model = make_pipeline(StandardScaler(), Ridge()).fit(X[:90], y[:90])
    ours = imp.permutation_importance_fold(model, X[90:], y[90:], n_repeats=30, seed=0)
    theirs = permutation_importance(
        model, X[90:], y[90:], scoring="neg_root_mean_squared_error", n_repeats=30, random_state=0
    ).importances_mean
    np.testing.assert_allclose(ours.to_numpy(), theirs, rtol=0.05, atol=1e-3)  # other shuffles


def test_permutation_importance_finds_the_informative_descriptor():
    X, y = _toy()
    model = make_pipeline(StandardScaler(), Ridge()).fit(X[:90], y[:90])
    pi = imp.permutation_importance_fold(model, X[90:], y[90:], n_repeats=10, seed=0)
    assert pi.idxmax() == "a" and pi["b"] > pi[["c", "d", "e"]].max()
    assert pi[["c", "d", "e"]].abs().max() < 0.05


def test_family_table_groups_by_metal_and_ligands():
    assert families(["Mo5S2C1¯", "Rh3¯"]) == ["Mo-C,S", "Rh"]
    assert list(group_labels_of(["FeMo2S", "x"], "metal")) == ["FeMo", "x"]
    oof = pd.DataFrame(
        {"cluster": ["Mo2S1¯", "Mo3S2¯", "Fe3C2¯"], "y_true": [0.0, 0.0, 1.0], "y_pred": [1, 2, 0]}
    )
    t = family_table(oof)
    assert list(t.index) == ["Mo-S", "Fe-C"]
    assert t.loc["Mo-S", "n"] == 2 and t.loc["Mo-S", "mae"] == 1.5 and t.loc["Fe-C", "bias"] == -1


def _expected_rows(run_dir: Path) -> dict[str, int]:
    data = load_run(run_dir)
    fams = set(families(data.dataset.clusters))
    p = data.dataset.X.shape[1]
    return {
        "shap_importance.csv": p,
        "permutation_importance.csv": p,
        "residuals_by_family.csv": len(fams),
        "parity_by_group.csv": data.dataset.n_rows,
        "shap_beeswarm.csv": SMALL.max_rows,
    }


def test_explain_run_regenerates_every_file_of_a_finished_run(make_cfg, tmp_path):
    cfg = make_cfg("model=extra_trees", "cv.outer_folds=3", "tracking=none", "explain=false")
    run(cfg, tmp_path / "run")
    paths = explain_run(tmp_path / "run", budget=SMALL)
    out = tmp_path / "run" / "explain"
    assert all(p.parent == out and p.stat().st_size > 0 for p in paths)
    names = {p.name for p in paths}
    for stem in ("shap_beeswarm", "shap_importance", "permutation_importance"):
        assert {f"{stem}.png", f"{stem}.csv"} <= names
    assert {"parity_by_group.png", "residuals_by_family.png"} <= names
    assert "learning_curves.png" not in names  # no Keras model
    for csv, n in _expected_rows(tmp_path / "run").items():
        assert len(pd.read_csv(out / csv)) == n, csv
    shap_t = pd.read_csv(out / "shap_importance.csv", index_col=0)
    assert {"final", "fold_mean", "fold_std", "fold_01", "fold_03"} <= set(shap_t.columns)
    assert (shap_t["final"] >= 0).all() and shap_t["final"].is_monotonic_decreasing
    perm = pd.read_csv(out / "permutation_importance.csv", index_col=0)
    assert perm[["fold_01", "fold_02", "fold_03"]].notna().all().all()
    parity = pd.read_csv(out / "parity_by_group.csv")
    assert parity["labelled"].sum() == 8 and set(parity["group"]) >= {"Mo", "Ta", "V", "Fe"}


def test_shap_importance_says_which_models_and_clusters_its_bars_and_dots_are(make_cfg, tmp_path):
    """The legend said "final model (all clusters)" and "fold mean ± sd over outer folds": not
    which clusters were explained, nor that the fold models' SHAP is on their training clusters
    (so no held-out cluster). It says both now; and a mean |SHAP| whisker stops at 0."""
    from n2react.explain.draw import _whiskers
    from n2react.figures import figure_text

    cfg = make_cfg("model=extra_trees", "model.estimator.n_estimators=40", "cv.outer_folds=3",
                   "tracking=none", "explain=false")  # fmt: skip
    run(cfg, tmp_path / "run")
    explain_run(tmp_path / "run", budget=SMALL)
    text = figure_text(tmp_path / "run" / "explain" / "shap_importance.png")["Description"]
    assert "final model, fitted on all 159 clusters (SHAP on 25 of them)" in text
    fold = "outer-fold models, mean ± sd (SHAP on 10 of its training clusters, over 30 of its"
    assert f"{fold} trees)" in text
    low, high = _whiskers(pd.Series([0.05, 0.3]), pd.Series([0.2, 0.1]), nonneg=True)
    assert np.allclose(low, [0.05, 0.1]) and np.allclose(high, [0.2, 0.1])
    low, _ = _whiskers(pd.Series([0.05, -0.1]), pd.Series([0.2, 0.1]), nonneg=False)
    assert np.allclose(low, [0.2, 0.1])  # a permutation importance may be negative


def test_descriptors_a_selector_dropped_are_not_drawn_as_rows_of_zeros(make_cfg, tmp_path):
    """selector=kbest (k=8): the beeswarm drew its top 15 of 24, seven of them rows of zeros in
    an arbitrary order (descriptors the final model never sees). Those are counted in the title
    and not drawn; the CSVs keep every descriptor."""
    from n2react.figures import figure_text

    cfg = make_cfg("model=ridge", "selector=kbest", "cv.outer_folds=3", "tracking=none",
                   "explain=false", "uncertainty.enabled=false")  # fmt: skip
    run(cfg, tmp_path / "run")
    explain_run(tmp_path / "run", budget=SMALL)
    out = tmp_path / "run" / "explain"
    title = figure_text(out / "shap_beeswarm.png")["Title"].replace("\n", " ")
    assert "all 8 descriptors with an effect (16 unused, importance 0, not drawn)" in title
    drawn = figure_text(out / "shap_beeswarm.png")["Description"]
    values = pd.read_csv(out / "shap_beeswarm.csv", index_col=0)
    assert values.shape[1] == 24 and (values.abs().max() > 0).sum() == 8
    for name in values.columns[values.abs().max() == 0]:
        assert f"{name} (" not in drawn  # its label ("3_μ (dipole moment)") is not on the axis
    assert len(pd.read_csv(out / "shap_importance.csv")) == 24


def test_redrawn_titles_count_repeats_as_the_run_did(make_cfg, tmp_path):
    """explain of a cv.repeats=2 run titled it '6 folds' where the run said '3 folds x 2
    repeats'."""
    from n2react.figures import figure_text

    cfg = make_cfg("model=ridge", "cv.outer_folds=3", "cv.repeats=2", "tracking=none",
                   "explain=false", "final_model=false", "uncertainty.enabled=false")  # fmt: skip
    run(cfg, tmp_path / "run")
    explain_run(tmp_path / "run", budget=SMALL)
    title = figure_text(tmp_path / "run" / "explain" / "permutation_importance.png")["Title"]
    assert "3 folds x 2 repeats" in title.replace("\n", " ") and "6 folds" not in title


@pytest.mark.slow
def test_a_sweep_jobs_redrawn_titles_keep_its_swept_values(tmp_path):
    """The run's own figures of a sweep job say 'ridge alpha=0.1', but explain of its folder
    or MLflow run said 'ridge' for every job of the sweep."""
    from mlflow.tracking import MlflowClient

    from n2react.figures import figure_text

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    args = ["model=ridge", "model.estimator.alpha=0.1,10", "cv.outer_folds=3", "explain=false",
            "final_model=false", "uncertainty.enabled=false", "progress=false",
            f"hydra.sweep.dir={tmp_path / 'sweep'}", "-m"]  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "train", *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = MlflowClient(uri).search_runs(["1"])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    (job,) = [r for r in parents if r.data.tags.get("job") == "0"]
    for ref, out_dir in ((tmp_path / "sweep" / "0_ridge", None), (job.info.run_id, "mlflow")):
        paths = explain_run(ref, budget=SMALL, tracking_uri=uri,
                            out_dir=None if out_dir is None else tmp_path / out_dir)  # fmt: skip
        png = next(p for p in paths if p.name == "permutation_importance.png")
        assert "ridge alpha=0.1 on" in figure_text(png)["Title"].replace("\n", " "), ref


def test_a_slow_model_is_explained_on_a_smaller_budget(make_cfg, tmp_path, caplog):
    """An explanation estimated to outlast Budget.seconds (the model's predict timed on the run's
    clusters) runs on the first smaller budget that fits, the last when none does, and the log
    says so; one that fits keeps its budget."""
    from n2react.explain.cost import LADDER, predictions

    # 80 clusters x 2 (15 + 1) x 20 for the final model; per fold 20 such + 16 x (15 x 10 + 1)
    assert predictions(Budget(), 159, 15, [(143, 16)] * 10) == 51_200 + 10 * (12_800 + 2_416)
    run(make_cfg("model=svr", "cv.outer_folds=3", "tracking=none", "explain=false"),
        tmp_path / "run")  # fmt: skip
    with caplog.at_level("WARNING", logger="n2react"):
        explain_run(tmp_path / "run", budget=Budget(seconds=1e-6), out_dir=tmp_path / "slow")
    assert "predicts slowly" in caplog.text and "explain=false skips it" in caplog.text
    assert len(pd.read_csv(tmp_path / "slow" / "shap_beeswarm.csv")) == LADDER[-1]["max_rows"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="n2react"):
        explain_run(tmp_path / "run", budget=SMALL, out_dir=tmp_path / "fits")
    assert "predicts slowly" not in caplog.text
    assert len(pd.read_csv(tmp_path / "fits" / "shap_beeswarm.csv")) == SMALL.max_rows


def test_a_pairwise_networks_learning_curve_marks_its_restored_epoch():
    # the epoch whose weights the network behind a pairwise wrapper kept was not read: its
    # curve's `restored` column was all False (the plot guessed the lowest validation loss)
    from n2react.explain.curves import curves_table, history_of
    from n2react.models.keras_mlp import KerasMLPRegressor
    from n2react.models.pairwise import PairwiseRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    y = X @ np.array([1.0, -0.5, 0.2])
    base = KerasMLPRegressor(max_epochs=4, units=8, random_state=0)
    model = make_pipeline(StandardScaler(), PairwiseRegressor(base=base, random_state=0))
    history = history_of(model.fit(X, y))
    net = model[-1].base_
    assert history["loss"] == [float(v) for v in net.history_["loss"]]
    assert history["best_epoch"] == [float(net.best_epoch_)]
    table = curves_table({"final": history})
    assert table.loc[table["restored"], "epoch"].tolist() == [net.best_epoch_]
    assert history_of(make_pipeline(StandardScaler(), Ridge()).fit(X, y)) is None


@pytest.mark.slow
def test_keras_learning_curves_and_explaining_an_mlflow_run_id(
    make_cfg, tmp_path, n2react_runs, monkeypatch
):
    from mlflow.tracking import MlflowClient

    cfg = make_cfg(
        "model=keras_mlp", "cv.outer_folds=3", "model.estimator.max_epochs=30",
        "model.estimator.patience=5", "model.estimator.units=16",
    )  # fmt: skip
    run(cfg, tmp_path / "run")
    parents, children = n2react_runs(tmp_path)
    parent = parents[0].info.run_id
    data = load_run(tmp_path / "run")
    hists = histories(data.final_model, data.fold_models)
    assert set(hists) == {"final", 1, 2, 3}
    client = MlflowClient(cfg.tracking.uri)
    # the run itself logged the curves as step metrics (parent: final model; child: its fold)
    steps = [m.step for m in client.get_metric_history(parent, "val_loss")]
    assert steps == list(range(1, len(hists["final"]["val_loss"]) + 1))
    child = next(c for c in children if c.data.tags["fold"] == "2").info.run_id
    assert len(client.get_metric_history(child, "loss")) == len(hists[2]["loss"])
    logged = {a.path for a in client.list_artifacts(parent, "explain")}
    for name in ("shap_importance", "shap_beeswarm", "permutation_importance",
                 "parity_by_group", "residuals_by_family", "learning_curves"):  # fmt: skip
        assert {f"explain/{name}.png", f"explain/{name}.csv"} <= logged, name
    # logging them again (e.g. from a notebook): the same values, given the store and a run
    other = client.create_run(parents[0].info.experiment_id).info.run_id
    n = log_learning_curves(cfg.tracking.uri, other, {"final": hists["final"]})
    assert n == len(hists["final"]["loss"]) + len(hists["final"]["val_loss"])
    client.delete_run(other)

    monkeypatch.chdir(tmp_path)  # the default output folder of an MLflow run is ./explain-<id>
    paths = explain_run(parent, budget=SMALL, tracking_uri=cfg.tracking.uri)
    out = tmp_path / f"explain-{parent}"
    curves = pd.read_csv(out / "learning_curves.csv")
    assert len(curves) == sum(len(h["loss"]) for h in hists.values())
    assert set(curves["model"]) == {"final", "fold_01", "fold_02", "fold_03"}
    # the dot on each curve is the epoch whose weights the network kept
    restored = curves[curves["restored"]].set_index("model")["epoch"]
    assert restored["final"] == data.final_model.steps[-1][1].best_epoch_
    assert restored["fold_02"] == data.fold_models[2].steps[-1][1].best_epoch_
    assert {p.name for p in paths} >= {"learning_curves.png", "shap_importance.png"}
    shap_t = pd.read_csv(out / "shap_importance.csv", index_col=0)
    assert len(shap_t) == 24 and shap_t["final"].notna().all()


def test_cluster_explanations_share_the_cpus_and_say_how_long_is_left(monkeypatch, caplog):
    """predict --explain on a pairwise extra-trees model ran for minutes without a word (each
    cluster costs 2 (p + 1) x 20 predictions, each through every reference cluster): the
    predictions are now split over threads, with the same values to the bit, and a count says
    how long the rest will take."""
    import logging

    from sklearn.ensemble import ExtraTreesRegressor

    from n2react.domain import ApplicabilityDomain
    from n2react.explain import clusters as cl
    from n2react.models.pairwise import PairwiseRegressor

    X, y = _toy(40)
    base = ExtraTreesRegressor(n_estimators=10, random_state=0)
    model = make_pipeline(StandardScaler(), PairwiseRegressor(base=base, random_state=0))
    model.fit(X, y)
    domain = ApplicabilityDomain().fit(X, [f"Mo{i}" for i in range(len(X))])
    rows = X.iloc[:12]
    names = list(X.columns)
    a = np.repeat(rows.to_numpy(), 100, axis=0)  # 1200 rows: one chunk of 400 per thread
    counted: list[int] = []
    one = imp._predict(model, a, names)
    assert np.array_equal(imp._predict(model, a, names, workers=3, done=counted.append), one)
    assert sorted(counted) == [400, 400, 400]  # each chunk counted as it is done
    assert cl._workers(model) >= 1 and cl._workers(make_pipeline(Ridge()).fit(X, y)) == 1

    monkeypatch.setattr(cl, "_workers", lambda model: 1)
    alone = cl.explain_clusters(model, domain, rows, rows.index.to_numpy())
    monkeypatch.setattr(cl, "_workers", lambda model: 3)
    monkeypatch.setattr(cl, "TELL_AFTER_S", 0.0)  # as if slow: the count is logged
    with caplog.at_level(logging.INFO, logger="n2react.explain.clusters"):
        shared = cl.explain_clusters(model, domain, rows, rows.index.to_numpy())
    pd.testing.assert_frame_equal(shared, alone)
    told = [
        r.getMessage() for r in caplog.records if "SHAP values of 12 clusters" in r.getMessage()
    ]
    assert told and all("% done, about " in m and m.endswith(" s left") for m in told), told
    np.testing.assert_allclose(shared.filter(like="shap ").sum(axis=1) + shared["base"],
                               model.predict(rows), atol=1e-9)  # fmt: skip
