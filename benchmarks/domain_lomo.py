"""How many clusters of a held-out metal the applicability domain flags (leave-one-metal-out).

    python benchmarks/domain_lomo.py [data=homonuclear_15] [--tolerance 0.0]

For each metal (and for Rh + Co together, the two smallest families): fit
:class:`n2react.domain.ApplicabilityDomain` on the clusters of the other metals, assess the
held-out ones, and count them out of domain by each reason. Every held-out cluster has a new
element by construction, so the column that says how well the descriptors alone recognise a new
composition is "by descriptors" (out of range or far in kNN distance). The last row is the
control: a random 80/20 split over all metals, averaged over 20 seeds.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd


def main(argv: list[str] | None = None) -> int:
    from n2react.arguments import Parser, non_negative
    from n2react.compose import compose_config
    from n2react.composition import METALS, parse_formula
    from n2react.data import load_dataset
    from n2react.domain import ApplicabilityDomain

    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--tolerance",
        type=non_negative,  # a bad one was refused as domain.range_tolerance, a key not typed
        default=0.0,
        help="the domain's range_tolerance (default 0)",
    )
    ap.add_argument("overrides", nargs="*", help="train overrides (default data=homonuclear_15)")
    args = ap.parse_args(argv)
    tol = args.tolerance
    logging.basicConfig(level=logging.ERROR)
    cfg = compose_config(["data=homonuclear_15", *args.overrides])
    ds = load_dataset(cfg.data)
    metal = np.array([next(e for e in parse_formula(n)[0] if e in METALS) for n in ds.clusters])
    ad = ApplicabilityDomain(range_tolerance=tol)

    def row(label: str, test: np.ndarray) -> dict[str, object]:
        ad.fit(ds.X[~test], ds.clusters[~test])
        t = ad.assess(ds.X[test], ds.clusters[test])
        far = t["knn_distance"] > t["knn_threshold"]
        rng = t["n_outside_range"] > 0
        return {
            "held out": label,
            "n": len(t),
            "out of domain": int((~t["in_domain"]).sum()),
            "new element": int((t["new_elements"] != "").sum()),
            "out of range": int(rng.sum()),
            "kNN > threshold": int(far.sum()),
            "by descriptors": int((rng | far).sum()),
            "median kNN": round(float(t["knn_distance"].median()), 2),
            "threshold": round(ad.threshold_, 2),
        }

    rows = [row(m, metal == m) for m in pd.unique(metal)]
    rows.append(row("Rh+Co", np.isin(metal, ["Rh", "Co"])))
    rand = []
    gen = np.random.default_rng(0)
    for _ in range(20):
        test = np.zeros(len(metal), dtype=bool)
        test[gen.permutation(len(metal))[: len(metal) // 5]] = True
        rand.append(row("random 20 %", test))
    ctrl = pd.DataFrame(rand).drop(columns="held out").mean().round(2)
    rows.append({"held out": "random 20 % (mean of 20)", **ctrl.to_dict()})
    table = pd.DataFrame(rows)
    print(f"data={cfg.data.name}, k={ad.k}, quantile={ad.quantile}, range_tolerance={tol}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:g}"))
    return 0


if __name__ == "__main__":
    from n2react.errors import run_script

    raise SystemExit(run_script(main))
