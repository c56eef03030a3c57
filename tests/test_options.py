"""Every documented option runs end to end WITH explanations on, so a new feature cannot break an
old one silently (``cv.repeats=2`` once crashed in the parity plot after every fold had trained).

Each case combines several options (small folds, fast models); ``test_every_option_has_a_case``
fails when an option file or a ``cv`` choice is added without a case here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, data_dir

from n2react.run import run

CONF = ROOT / "conf"
SMALL = ("cv.outer_folds=3", "cv.inner_folds=2", "tracking=none", "explain=true")
FEV = data_dir() / "heteronuclear-FeV-18-15features.xlsx"
KERAS = "model=keras_mlp model.estimator.max_epochs=20 model.estimator.patience=5 "

#: name -> overrides; together they use every option of the groups in COVERED and every cv choice
#: ({fev}: the 18 labelled mixed-metal clusters, scored as new compositions).
CASES: dict[str, str] = {
    "repeats_kbest_ridge": "model=ridge cv.repeats=2 selector=kbest scaler=minmax search=grid "
    "model.space.alpha.max=10 selector.space=null",
    "metal_rfe_svr": "model=svr cv.groups=metal selector=rfe scaler=robust search=random "
    "search.max_trials=2 selector.step.estimator.n_estimators=10 selector.space=null",
    "family_rfe_vote_ridge_trees_eval": "data=homonuclear_15 model=ridge_trees "
    "model.estimator.n_estimators=20 cv.groups=family selector=rfe_vote "
    "selector.step.n_resamples=3 selector.step.estimator.n_estimators=10 eval.path={fev} "
    "data.formula=true",
    "column_extra_trees": "data=homonuclear_15 model=extra_trees model.estimator.n_estimators=20 "
    "cv.groups=column:batch scaler=none search=bayesian search.max_trials=2 "
    "model.space.min_samples_leaf=null",
    "pairwise_gbr_repeats": "data=homonuclear_8 model=gbr model.estimator.n_estimators=20 "
    "pairwise=on pairwise.wrapper.max_pairs=400 cv.repeats=2 cv.groups=family",
    "pair_split": "data=homonuclear_15_interactions model=ridge pairwise=on cv.scheme=pair_split",
    "authors_folds_rfr": "data=authors_folds model=rfr model.estimator.n_estimators=10",
    "interactions_ensemble": "features=interactions data=homonuclear_8 model=ensemble "
    "model.estimator.estimators.0.1.n_estimators=10 model.estimator.estimators.1.1.n_estimators=10",
    "anchored_ensemble": "data=homonuclear_8 model=anchored_ensemble model.space=null "
    "model.estimator.estimators.0.1.n_estimators=10 "
    "model.estimator.estimators.1.1.base.n_estimators=10 "
    "+model.estimator.estimators.1.1.max_pairs=400",
    "keras_hyperband": KERAS + "model.estimator.units=16 search=hyperband "
    "search.oracle.max_epochs=6 search.oracle.factor=3 data=homonuclear_8",
}
SLOW = {"keras_hyperband", "pairwise_gbr_repeats", "family_rfe_vote_ridge_trees_eval"}
#: option groups whose every option file needs a case (device and tracking: environment choices)
COVERED = ("model", "selector", "pairwise", "scaler", "search", "features", "data")
CV_CHOICES = {
    "cv.groups": {"none", "metal", "family", "column"},
    "cv.scheme": {"nested", "pair_split"},
    "cv.repeats": {"1", "2"},
}


def _choices(overrides: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for o in overrides.split():
        key, _, value = o.partition("=")
        out.setdefault(key, set()).add(value.split(":")[0])
    return out


def test_every_option_has_a_case() -> None:
    used: dict[str, set[str]] = {}
    for overrides in CASES.values():
        for k, v in _choices(overrides).items():
            used.setdefault(k, set()).update(v)
    for group in COVERED:
        options = {p.stem for p in (CONF / group).glob("*.yaml")}
        defaults = {"selector": "none", "pairwise": "off", "scaler": "standard", "search": "none",
                    "features": "raw", "data": "homonuclear_24", "model": "rfr"}  # fmt: skip
        missing = options - used.get(group, set()) - {defaults[group]}
        assert not missing, f"no end-to-end case uses {group}={', '.join(sorted(missing))}"
    for key, values in CV_CHOICES.items():
        implicit = {"cv.groups": "none", "cv.scheme": "nested", "cv.repeats": "1"}[key]
        assert values <= used.get(key, set()) | {implicit}, key
    assert "eval.path" in used


def _batches(tmp_path: Path) -> Path:
    df = pd.read_excel(data_dir() / "homonuclear-159-15features.xlsx")
    df.insert(1, "batch", np.where(df["Clusters"].str.startswith(("Mo", "Fe")), "a", "b"))
    df.loc[df["Clusters"].str.startswith("V"), "batch"] = "c"
    path = tmp_path / "batches.xlsx"
    df.to_excel(path, index=False)
    return path


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CASES],
)
def test_option_runs_to_the_end_with_explanations(make_cfg, tmp_path: Path, name: str) -> None:
    overrides = CASES[name].format(fev=FEV).split()
    if "cv.groups=column:batch" in overrides:
        overrides.append(f"data.path={_batches(tmp_path)}")
    metrics = run(make_cfg(*overrides, *SMALL), tmp_path / "run")
    d = tmp_path / "run"
    summary = json.loads((d / "summary.json").read_text())
    assert np.isfinite(metrics["mean_test_rmse"]) and summary["mean_test_rmse"] > 0
    if "cv.scheme=pair_split" in overrides:
        assert (d / "test_pairs.csv").is_file() and (d / "parity.png").is_file()
        return
    for f in ("parity_by_group.png", "residuals_by_family.png", "shap_importance.png"):
        assert (d / "explain" / f).stat().st_size > 0, f
    oof = pd.read_csv(d / "oof_predictions.csv")
    repeats = 2 if "cv.repeats=2" in overrides else 1
    assert len(oof) == repeats * oof["cluster"].nunique()
    parity = pd.read_csv(d / "explain" / "parity_by_group.csv")
    assert len(parity) == oof["cluster"].nunique()  # one point per cluster, repeats averaged
    if any(o.startswith("eval.path=") for o in overrides):
        assert np.isfinite(metrics["transfer_mae"])
        assert (d / "transfer" / "transfer_predictions.csv").is_file()
    if name in ("repeats_kbest_ridge", "column_extra_trees"):  # explained again from disk
        from n2react.explain import explain_run

        files = explain_run(d, out_dir=tmp_path / "again")
        assert (tmp_path / "again" / "parity_by_group.png") in files
