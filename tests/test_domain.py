"""Applicability domain on the real 15-descriptor file: held-out metals, random splits, edges."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from n2react.composition import METALS, parse_formula
from n2react.data import Dataset, load_dataset
from n2react.domain import COLUMNS, ApplicabilityDomain, cluster_elements
from n2react.errors import ConfigError, DataError


@pytest.fixture
def ds(make_cfg: Callable) -> Dataset:
    return load_dataset(make_cfg("data=homonuclear_15").data)


def metals(ds: Dataset) -> np.ndarray:
    return np.array([next(e for e in parse_formula(n)[0] if e in METALS) for n in ds.clusters])


@pytest.mark.parametrize("held_out", [("Rh", "Co"), ("V",)])
def test_held_out_metal_is_outside_for_its_new_element(ds: Dataset, held_out: tuple) -> None:
    test = np.isin(metals(ds), held_out)
    ad = ApplicabilityDomain().fit(ds.X[~test], ds.clusters[~test])
    table = ad.assess(ds.X[test], ds.clusters[test])
    assert list(table.columns) == COLUMNS
    assert list(table["cluster"]) == list(ds.clusters[test])
    assert not table["in_domain"].any()
    assert table["reasons"].str.contains("new metal").all()  # "new metal Rh", not "element(s)"
    for name, new in zip(table["cluster"], table["new_elements"]):
        metal = next(e for e in parse_formula(name)[0] if e in METALS)
        assert metal in new.split(", ")
    # the nearest training clusters are real training clusters, three of them
    train = set(ds.clusters[~test])
    for near in table["nearest_training"]:
        assert len(near.split(", ")) == 3 and set(near.split(", ")) <= train


def test_random_split_of_the_same_metals_is_mostly_inside(ds: Dataset) -> None:
    rng = np.random.default_rng(7)
    test = np.zeros(ds.n_rows, dtype=bool)
    test[rng.permutation(ds.n_rows)[: ds.n_rows // 5]] = True
    ad = ApplicabilityDomain().fit(ds.X[~test], ds.clusters[~test])
    table = ad.assess(ds.X[test], ds.clusters[test])
    assert table["in_domain"].mean() >= 0.7
    assert (table["new_elements"] == "").all()  # every metal of the test part is in training
    # an in-domain row has no out-of-domain reason; an out-of-domain one has at least one
    inside = table[table["in_domain"]]
    assert (inside["n_outside_range"] == 0).all()
    assert (inside["knn_distance"] <= inside["knn_threshold"]).all()
    assert (table.loc[~table["in_domain"], "reasons"] != "").all()


def test_training_clusters_calibrate_the_threshold(ds: Dataset) -> None:
    ad = ApplicabilityDomain(k=5, quantile=0.9).fit(ds.X, ds.clusters)
    assert np.mean(ad.knn_train_ <= ad.threshold_) == pytest.approx(0.9, abs=0.01)
    # the training clusters themselves are in range and name themselves as nearest
    table = ad.assess(ds.X, ds.clusters)
    assert (table["n_outside_range"] == 0).all()
    assert (table["nearest_training"].str.split(", ").str[0] == table["cluster"]).all()
    # with itself among its neighbours a training cluster is nearer than in the calibration, so
    # at most the calibration's share (1 - quantile) of them is out of domain
    assert (table["knn_distance"] <= ad.knn_train_).all()
    assert table["in_domain"].mean() >= 0.9


def test_a_cluster_inside_every_range_but_far_from_all_is_outside(ds: Dataset) -> None:
    # each descriptor at the training minimum or maximum in turn: every one inside its range,
    # the combination far from every training cluster
    ad = ApplicabilityDomain().fit(ds.X, ds.clusters)
    corner = np.where(np.arange(len(ad.columns_)) % 2 == 0, ad.min_, ad.max_)
    X = pd.DataFrame([corner], columns=ad.columns_)
    (row,) = ad.assess(X, ds.clusters[:1]).to_dict("records")
    assert row["n_outside_range"] == 0 and row["new_elements"] == ""
    assert row["knn_distance"] > row["knn_threshold"]
    assert not row["in_domain"] and "far from training clusters" in row["reasons"]


def test_a_descriptor_far_beyond_the_range_is_named(ds: Dataset) -> None:
    ad = ApplicabilityDomain().fit(ds.X, ds.clusters)
    row = ds.X.iloc[[0]].copy()
    sd = ds.X["3_EA"].std(ddof=0)
    row["3_EA"] = ds.X["3_EA"].max() + 3 * sd
    row["2_Q"] = ds.X["2_Q"].min() - 0.5 * ds.X["2_Q"].std(ddof=0)
    t = ad.assess(row, [ds.clusters[0]]).iloc[0]
    assert not t["in_domain"]
    assert t["n_outside_range"] == 2
    reasons = t["reasons"]
    assert "3_EA" in reasons and "above training range by 3.0 sd" in reasons
    assert "2_Q" in reasons and "below training range by 0.5 sd" in reasons
    assert reasons.index("3_EA") < reasons.index("2_Q")  # the farthest first
    # a tolerance above the excursion keeps 2_Q in range
    t2 = ApplicabilityDomain(range_tolerance=1.0).fit(ds.X, ds.clusters).assess(row, ["x"])
    assert t2["n_outside_range"].iloc[0] == 1 and "2_Q" not in t2["reasons"].iloc[0]


def test_missing_cells_are_filled_and_reported(ds: Dataset) -> None:
    ad = ApplicabilityDomain().fit(ds.X, ds.clusters)
    row = ds.X.iloc[[3]].copy()
    row["3_IE"] = np.nan
    t = ad.assess(row, [ds.clusters[3]]).iloc[0]
    assert "missing 3_IE" in t["reasons"] and "training median" in t["reasons"]
    assert t["in_domain"]  # a filled cell is never out of range
    assert np.isfinite(t["knn_distance"])


def test_summary_counts_match_the_table(ds: Dataset) -> None:
    test = np.isin(metals(ds), ["Rh", "Co"])
    ad = ApplicabilityDomain().fit(ds.X[~test], ds.clusters[~test])
    table = ad.assess(ds.X[test], ds.clusters[test])
    far = int((table["knn_distance"] > table["knn_threshold"]).sum())
    rng = int((table["n_outside_range"] > 0).sum())
    line = ad.summary(table)
    assert line.startswith("7 of 7 clusters outside the training domain (new element: 7")
    assert f"kNN distance: {far}" in line and f"descriptor range: {rng}" in line
    inside = ad.assess(ds.X[~test].iloc[:5], ds.clusters[~test][:5])
    assert ad.summary(inside) == "0 of 5 clusters outside the training domain"


def test_pickle_round_trip(ds: Dataset) -> None:
    ad = ApplicabilityDomain(k=3).fit(ds.X.iloc[:100], ds.clusters[:100])
    back = pickle.loads(pickle.dumps(ad))
    a = ad.assess(ds.X.iloc[100:], ds.clusters[100:])
    pd.testing.assert_frame_equal(a, back.assess(ds.X.iloc[100:], ds.clusters[100:]))
    assert back.get_params()["k"] == 3


def test_missing_column_is_one_data_error(ds: Dataset) -> None:
    ad = ApplicabilityDomain().fit(ds.X, ds.clusters)
    with pytest.raises(DataError, match="3_EA"):
        ad.assess(ds.X.drop(columns="3_EA"), ds.clusters)
    # extra or reordered columns are fine
    extra = ds.X[ds.X.columns[::-1]].assign(other=1.0)
    pd.testing.assert_frame_equal(ad.assess(extra, ds.clusters), ad.assess(ds.X, ds.clusters))


def test_bad_settings_and_tiny_training_sets(ds: Dataset) -> None:
    with pytest.raises(ConfigError, match="quantile"):
        ApplicabilityDomain(quantile=1.5).fit(ds.X, ds.clusters)
    with pytest.raises(ConfigError, match="k must"):
        ApplicabilityDomain(k=0).fit(ds.X, ds.clusters)
    # NaN passed `< 0` (benchmarks/domain_lomo.py --tolerance nan printed a table)
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ConfigError, match="range_tolerance must be a finite number >= 0"):
            ApplicabilityDomain(range_tolerance=bad).fit(ds.X, ds.clusters)
    with pytest.raises(DataError, match="at least 2"):
        ApplicabilityDomain().fit(ds.X.iloc[:1], ds.clusters[:1])
    # k larger than the training set is capped; a constant column does not divide by zero
    X = ds.X.iloc[:4].assign(const=2.0)
    t = ApplicabilityDomain(k=10).fit(X, ds.clusters[:4]).assess(X, ds.clusters[:4])
    assert np.isfinite(t["knn_distance"]).all()


def test_structure_labels_and_unparsable_names() -> None:
    assert cluster_elements("Mo3S4C1-1-M2") == {"Mo", "S", "C"}
    assert cluster_elements("Mo5S2C1\u00af") == {"Mo", "S", "C"}
    assert cluster_elements("Cluster A") is None
    assert cluster_elements("Xx3") is None
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    ad = ApplicabilityDomain(k=2).fit(X, ["Mo3S4-1-M2", "sample 7", "Mo4S4-2", "Mo2"])
    assert ad.elements_ == {"Mo", "S"}
    t = ad.assess(X.iloc[:2], ["Nb3S4-1", "new one"])
    assert list(t["new_elements"]) == ["Nb", ""]
    assert "elements not checked" in t["reasons"].iloc[1]
    # no training name is a formula: the element check is off instead of flagging everything
    off = ApplicabilityDomain(k=2).fit(X, ["a", "b", "c", "d"])
    assert off.elements_ is None
    assert off.assess(X.iloc[:1], ["Nb3"])["new_elements"].iloc[0] == ""


def test_domain_plot_writes_a_png(ds: Dataset, tmp_path) -> None:
    from n2react.figures import domain_plot

    test = np.isin(metals(ds), ["Rh", "Co"]) | (np.arange(ds.n_rows) % 5 == 0)
    ad = ApplicabilityDomain().fit(ds.X[~test], ds.clusters[~test])
    out = domain_plot(ad.assess(ds.X[test], ds.clusters[test]), tmp_path / "d" / "domain.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_is_metal_names_ligand_elements_and_metals_by_the_periodic_table() -> None:
    """The new-element warning called every new element a metal (Se, P, O too)."""
    from n2react.composition import METALS
    from n2react.domain import is_metal

    assert all(is_metal(m) for m in METALS)
    assert all(is_metal(m) for m in ("Ga", "Sn", "Ce", "Na", "Bi"))  # metals the formula lacks
    assert not any(is_metal(e) for e in ("H", "C", "N", "O", "S", "Se", "P", "Si", "Te", "Cl"))
    assert not is_metal("Cp")  # a ligand symbol that is no element


def test_a_new_element_reason_names_a_metal_or_a_ligand_element(ds: Dataset) -> None:
    """domain_reasons said 'new element(s) Ni, Se' for a new metal and a new ligand element
    alike, as the new-element warning no longer did; the descriptor notes leave both parts out."""
    from n2react.domain import new_element_reasons
    from n2react.inference import trust_flags

    assert new_element_reasons(["Se", "Ni", "P"]) == ["new metal Ni", "new ligand elements P, Se"]
    assert new_element_reasons(["Ni", "Cr"]) == ["new metals Cr, Ni"] and not new_element_reasons(
        []
    )
    ad = ApplicabilityDomain().fit(ds.X, ds.clusters)
    dom = ad.assess(ds.X.iloc[:2], np.array(["Ni2VSe2¯", ds.clusters[1]]))
    assert dom["new_elements"].tolist() == ["Ni, Se", ""]  # the column (and flags) as before
    assert dom["reasons"].iat[0].startswith("new metal Ni; new ligand element Se")
    band = pd.DataFrame({"flagged": [False, False], "expected_error": [0.3, 0.3]})
    inside, reasons, notes, _ = trust_flags(dom, band, 1.0, 0.9)
    assert inside.tolist() == [False, True]
    assert reasons == ["new metal Ni; new ligand element Se", ""]
    assert not any("new " in n for n in notes)
