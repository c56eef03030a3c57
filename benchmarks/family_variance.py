"""How much of lg(k1) is explained by a cluster's family alone (metal, ligand elements, charge).

    python benchmarks/family_variance.py [data=homonuclear_24]

Groups the clusters by family as read off their formulas (Mo-S anions, Ta-S neutrals, ...), and
prints each family's size, mean and spread of lg(k1) and the share of the variance the family
means explain (R², in-sample, all clusters). This is a description of the data, not a model
score.
"""

from __future__ import annotations

import logging

import pandas as pd


def family(name: str) -> str:
    """'Mo5S2C1¯' -> 'Mo-C,S (-1)': the family as CV and the plots name it, and the charge."""
    from n2react.composition import family_of, parse_formula

    return f"{family_of(name)} ({parse_formula(name)[1]:+d})"


def main(argv: list[str] | None = None) -> int:
    from n2react.arguments import Parser
    from n2react.compose import compose_config
    from n2react.data import load_dataset

    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("overrides", nargs="*", help="train overrides, e.g. data=homonuclear_15")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    cfg = compose_config(args.overrides)
    ds = load_dataset(cfg.data)
    df = pd.DataFrame({"cluster": ds.clusters, "y": ds.y})
    df["family"] = df["cluster"].map(family)
    means = df.groupby("family")["y"].transform("mean")
    r2 = 1 - ((df["y"] - means) ** 2).sum() / ((df["y"] - df["y"].mean()) ** 2).sum()
    table = df.groupby("family")["y"].agg(["count", "mean", "std"]).sort_values("count")
    print(table.round(2).to_string(na_rep="-"))  # one cluster: no sd (it printed NaN)
    print(f"\n{len(df)} clusters in {len(table)} families; family means explain R² = {r2:.3f}")
    return 0


if __name__ == "__main__":
    from n2react.errors import run_script

    raise SystemExit(run_script(main))
