"""Grouped CV: no group on both sides of any split, outer or inner (search, early stopping,
pairwise references), for every model family; group labels; pooled and per-group scores."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, data_dir
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

from n2react.data import load_dataset
from n2react.errors import ConfigError, DataError
from n2react.plan import build_plan
from n2react.run import cross_validate, run
from n2react.runstore import UNCERTAINTY_FILE
from n2react.splitters import KFoldSplitter, family_of, group_labels, held_out_text, metal_of
from n2react.uncertainty import load_calibration

_COUNTER = itertools.count()
FITS: dict[int, set[int]] = {}
PREDICTED: dict[int, set[int]] = defaultdict(set)


class RowSpy(TransformerMixin, BaseEstimator):
    """First pipeline step: records the rows each fitted copy was fitted on and then applied to
    (dataset row indices, since X is the dataset's DataFrame)."""

    def fit(self, X, y=None):
        self.key_ = next(_COUNTER)
        FITS[self.key_] = {int(i) for i in X.index}
        return self

    def transform(self, X):
        PREDICTED[self.key_].update(int(i) for i in X.index)
        return X


MODELS = {
    "ridge": ("model=ridge", "search=random", "search.max_trials=2"),
    "extra_trees": (
        "model=extra_trees",
        "model.estimator.n_estimators=20",
        "search=random",
        "search.max_trials=2",
    ),
    "keras_mlp": (
        "model=keras_mlp",
        "model.estimator.max_epochs=15",
        "search=random",
        "search.max_trials=2",
    ),
    "pairwise_keras": (
        "model=keras_mlp",
        "pairwise=on",
        "pairwise.wrapper.max_pairs=600",
        "model.estimator.max_epochs=5",
        "model.estimator.units=16",
        "search=random",
        "search.max_trials=1",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", list(MODELS))
def test_no_group_on_both_sides_of_any_split(family: str, make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("data=homonuclear_15", "cv.groups=metal", "cv.inner_folds=3", *MODELS[family])
    plan = build_plan(cfg)
    real = plan.make_pipeline
    plan = replace(plan, make_pipeline=lambda: Pipeline([("spy", RowSpy())] + real().steps))
    ds = plan.attach_groups(load_dataset(plan.data))
    FITS.clear()
    PREDICTED.clear()
    res = cross_validate(plan, ds, tmp_path)
    groups = ds.groups
    assert len(res.folds) == 6  # one fold per metal
    checked = 0
    for key, fit_rows in FITS.items():
        held = PREDICTED[key] - fit_rows
        if held:  # a fitted copy that predicted rows it did not see: an outer or inner split
            assert not set(groups[list(held)]) & set(groups[list(fit_rows)]), family
            checked += 1
    assert checked > len(res.folds)  # the outer folds and the inner search's folds
    for f in res.folds:  # the model's own carve-outs hold out whole groups too
        model = f.model.named_steps["model"]
        train_groups = groups[f.split.train]
        if family == "keras_mlp":
            val = np.zeros(len(train_groups), bool)
            val[model.validation_indices_] = True
            assert not set(train_groups[val]) & set(train_groups[~val])
        if family == "pairwise_keras":  # references are the training clusters only
            assert len(model.X_ref_) == len(f.split.train)
            assert set(groups[f.split.test]).isdisjoint(train_groups)


def test_group_labels_from_names() -> None:
    assert metal_of("Mo5S2C1¯") == "Mo" and family_of("Mo5S2C1¯") == "Mo-C,S"
    assert family_of("Rh3¯") == "Rh" and metal_of("FeMo2S") == "FeMo"
    labels = group_labels("family", ["Ta3S1C", "V5N5¯"], source="x.xlsx")
    assert list(labels) == ["Ta-C,S", "V-N"]
    # plots label any file: a name that is not a formula keeps its name instead of failing
    assert list(group_labels("family", ["Mo2S", "sample-7"], strict=False)) == ["Mo-S", "sample-7"]
    with pytest.raises(DataError, match=r"x.xlsx: row 3 \(cluster Mo3S4C1-1-M2\)"):
        group_labels("metal", ["Mo2S", "Mo3S4C1-1-M2"], source="x.xlsx")


@pytest.mark.parametrize("grouping", ["family", "metal"])
def test_a_name_that_is_not_a_formula_is_named_at_its_sheet_row_as_written(
    grouping: str, make_cfg, tmp_path: Path
) -> None:
    """cv.groups=family|metal on a file with a blank row above a cluster whose name is not a
    formula: the error named the row counted without the blank row (12) and the name in its
    standardised spelling (sample 7¯); it names the sheet's row 13 and the name as written."""
    df = pd.read_excel(data_dir() / "homonuclear-159-15features.xlsx")
    df.loc[10, "Clusters"] = "sample 7\u02c9"  # sheet row 12, 13 below the blank row
    blank = pd.DataFrame([[None] * df.shape[1]], columns=df.columns)
    pd.concat([df.iloc[:5], blank, df.iloc[5:]], ignore_index=True).to_excel(
        tmp_path / "odd.xlsx", index=False
    )
    cfg = make_cfg(
        "data=homonuclear_15", f"data.path={tmp_path / 'odd.xlsx'}", "model=ridge",
        f"cv.groups={grouping}", "explain=false", "tracking=none",
    )  # fmt: skip
    with pytest.raises(DataError) as err:
        run(cfg, tmp_path / "run")
    assert str(err.value).startswith(
        f"{tmp_path / 'odd.xlsx'}: row 13 (cluster sample 7\u02c9): cv.groups={grouping} reads"
    )
    assert "'sample 7\u02c9' is not a formula" in str(err.value) and "\u00af'" not in str(err.value)


def test_grouped_folds_keep_groups_whole_and_balanced() -> None:
    groups = np.array(["a"] * 25 + ["b"] * 17 + ["c"] * 10 + ["d"] * 3 + ["e"] * 1 + ["f"] * 1)
    splits = KFoldSplitter(3, seed=1).split(len(groups), groups)
    assert len(splits) == 3
    for s in splits:
        assert not set(groups[s.train]) & set(groups[s.test])
    assert sorted(len(s.test) for s in splits) == [15, 17, 25]
    logo = KFoldSplitter(10).split(len(groups), groups)  # more folds than groups: one per group
    assert [set(groups[s.test]) for s in logo] == [{g} for g in "abcdef"]


@pytest.mark.parametrize(
    "splitter, grouped",
    [
        (KFoldSplitter(4, seed=0), False),
        (KFoldSplitter(3, repeats=2, seed=0), False),
        (KFoldSplitter(3, seed=1), True),  # balanced folds of whole groups
        (KFoldSplitter(3, repeats=2, seed=1), True),
        (KFoldSplitter(10), True),  # leave one group out
    ],
    ids=["kfold", "kfold_repeats", "group_folds", "group_folds_repeats", "leave_one_group_out"],
)
def test_every_split_partitions_the_rows_and_keeps_groups_apart(
    splitter: KFoldSplitter, grouped: bool
) -> None:
    # every split's training and test rows are disjoint and together all the rows (a fit
    # spy sees only what the splitter says, so it cannot tell a test row put into training);
    # each repeat tests every row once; grouped, no group is on both sides
    groups = np.array(["a"] * 25 + ["b"] * 17 + ["c"] * 10 + ["d"] * 3 + ["e"] * 1 + ["f"] * 1)
    rows = np.arange(len(groups))
    splits = splitter.split(len(groups), groups if grouped else None)
    for s in splits:
        assert not set(s.train.tolist()) & set(s.test.tolist()), s.fold
        assert np.array_equal(np.sort(np.concatenate([s.train, s.test])), rows), s.fold
        if grouped:
            assert not set(groups[s.train]) & set(groups[s.test]), s.fold
    for r in {s.repeat for s in splits}:
        tested = np.concatenate([s.test for s in splits if s.repeat == r])
        assert np.array_equal(np.sort(tested), rows)


def test_grouped_run_logs_pooled_and_per_group_scores(
    make_cfg, tmp_path: Path, n2react_runs
) -> None:
    cfg = make_cfg("data=homonuclear_15", "model=ridge", "cv.groups=metal", "explain=false")
    assert cfg.cv.outer_folds == 10
    m = run(cfg, tmp_path)
    # one fold per metal were run, and that is what the run says (it logged the setting, 10)
    (parent,), children = n2react_runs(tmp_path)
    assert parent.data.params["cv.outer_folds"] == "6" and len(children) == 6
    assert "6 outer folds" in parent.data.tags["mlflow.note.content"]
    assert {"pooled_test_r", "pooled_test_rmse", "pooled_test_mae", "pooled_test_within"} <= set(m)
    oof = pd.read_csv(tmp_path / "oof_predictions.csv")
    assert set(oof["group"]) == {"Mo", "Ta", "V", "Fe", "Rh", "Co"}
    assert m["pooled_test_within"] == int((abs(oof["y_pred"] - oof["y_true"]) <= np.log10(3)).sum())
    per_group = pd.read_csv(tmp_path / "group_scores.csv")
    assert list(per_group["group"]) == ["Mo", "Ta", "V", "Fe", "Rh", "Co"]
    assert per_group["n"].sum() == 159
    # its intervals were calibrated on held-out metals: predict warns of no new metal then
    assert load_calibration(tmp_path / UNCERTAINTY_FILE).held_out == "metal"


def test_what_the_outer_folds_hold_out_is_recorded_by_its_grouping() -> None:
    # the calibration's held_out: predict's new-metal warning reads "metal" (cv.groups=metal)
    assert held_out_text("nested", "metal") == "metal"
    assert held_out_text("nested", "column:batch") == "column:batch"
    assert held_out_text("nested", None) == held_out_text("nested", "none") == "clusters"
    assert held_out_text("nested", None, fixed_folds=True) == "folds"
    assert held_out_text("pair_split", None) == "pairs"


def test_one_family_labeller_for_folds_terminal_csvs_and_plots(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("data=homonuclear_15", "model=ridge", "cv.groups=family", "tracking=none")
    run(cfg, tmp_path)
    oof = pd.read_csv(tmp_path / "oof_predictions.csv")
    families = set(oof["group"])
    assert {"Mo-C,S", "Mo-S", "Rh"} <= families and not any("bare" in f for f in families)
    assert set(pd.read_csv(tmp_path / "group_scores.csv")["group"]) == families
    explained = tmp_path / "explain"
    assert set(pd.read_csv(explained / "parity_by_group.csv")["group"]) == families
    assert set(pd.read_csv(explained / "residuals_by_family.csv")["family"]) == families


def test_one_group_is_refused_with_one_line(tmp_path: Path) -> None:
    df = pd.read_excel(data_dir() / "homonuclear-159-15features.xlsx")
    only_mo = df[df["Clusters"].str.startswith("Mo")]
    only_mo.to_excel(tmp_path / "mo.xlsx", index=False)
    out = subprocess.run(
        [sys.executable, "-m", "train", f"data.path={tmp_path / 'mo.xlsx'}", "data=homonuclear_15"]
        + ["cv.groups=metal", "tracking=none", "progress=false", f"hydra.run.dir={tmp_path}/r"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=300,
    )
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("n2react: error:")]
    assert len(errors) == 1 and "1 group (Mo)" in errors[0] and "at least 2" in errors[0]
    assert "Traceback" not in out.stderr


def test_grouping_the_authors_fixed_folds_is_refused_by_the_config(
    make_cfg, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The authors' fold files keep their own folds: cv.groups with them is refused once, when
    the config is read (it was checked twice per run, after the ten files had been read), so the
    refusal comes even where the files are not at hand."""
    monkeypatch.setenv("N2_DATA_DIR", str(tmp_path))  # no fold files here, nor in the cache
    with pytest.raises(ConfigError, match=r"cv.groups=family: data=authors_folds has its own"):
        build_plan(make_cfg("data=authors_folds", "cv.groups=family", "tracking=none"))
    assert build_plan(make_cfg("data=authors_folds", "tracking=none")).groups is None


def test_groups_from_a_spreadsheet_column(make_cfg, tmp_path: Path) -> None:
    df = pd.read_excel(data_dir() / "homonuclear-159-15features.xlsx")
    df.insert(1, "batch", np.where(df["Clusters"].str.startswith("Mo"), "Mo-lab", "other-lab"))
    df.to_excel(tmp_path / "batches.xlsx", index=False)
    cfg = make_cfg(
        "data=homonuclear_15", f"data.path={tmp_path / 'batches.xlsx'}", "model=ridge",
        "cv.groups=column:batch", "explain=false", "final_model=false", "tracking=none",
    )  # fmt: skip
    m = run(cfg, tmp_path / "run")
    oof = pd.read_csv(tmp_path / "run" / "oof_predictions.csv")
    assert set(oof["group"]) == {"Mo-lab", "other-lab"} and oof["fold"].nunique() == 2
    assert all(oof.groupby("fold")["group"].nunique() == 1)  # each fold holds one whole group
    assert "batch" not in pd.read_csv(tmp_path / "run" / "folds.csv")["selected_features"][0]
    assert np.isfinite(m["pooled_test_rmse"])
    missing = make_cfg("data=homonuclear_15", "cv.groups=column:nope", "tracking=none")
    with pytest.raises(DataError, match="group column 'nope'"):
        run(missing, tmp_path / "run2")


def test_jobs_started_together_get_their_own_run_directories(tmp_path: Path) -> None:
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "train", "model=ridge", "--cfg", "hydra", "--resolve"]
    dirs = set()
    for _ in range(2):
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env)
        line = next(ln for ln in out.stdout.splitlines() if ln.strip().startswith("dir: outputs/"))
        dirs.add(line.strip())
    assert len(dirs) == 2, dirs  # same second, same model: the random tag tells them apart
