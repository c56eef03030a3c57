"""How far do intervals calibrated on the Fe-V clusters reach? The preset's 90 % intervals on
held-out homonuclear clusters.

    python benchmarks/calibration_reach.py            # ~40 s on 2 cores

`experiment=new_compositions` calibrates its intervals on the final model's errors on the 18
labelled Fe-V clusters (`uncertainty.calibration_path`). Their coverage is cross-fitted on those
clusters (`calibration_set_coverage`), so it is promised for clusters whose errors are like the
Fe-V ones. This script measures what they give on clusters unlike those: it runs the preset
under family-grouped and leave-one-metal-out CV, applies the saved Fe-V calibration (exactly as
`python -m predict` does) to each held-out cluster's out-of-fold prediction, and prints the share
of held-out clusters inside, pooled, per metal and by `in_domain` (as flagged under the run's
protocol), beside the run's own Fe-V cross-fitted figures. It also prints the run's own
validation of its trust signals on the held-out clusters (as the run logs them, each fold
calibrated on refits that never saw it: ``uncertainty.validation=nested``):
the MAE of flagged over passed clusters and Spearman(expected_error, |error|), with the
project's 95 % bootstrap intervals over the held-out groups. No figure here chose anything.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from n2react.arguments import Parser, comma_list

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = {"family": "held-out families", "metal": "held-out metals"}


def reach(protocol: str, out: Path) -> dict[str, object]:
    """Run the preset under ``protocol``; the Fe-V-calibrated intervals on its held-out rows."""
    from n2react.data import load_dataset
    from n2react.plan import build_plan
    from n2react.runstore import UNCERTAINTY_FILE
    from n2react.uncertainty import load_calibration

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from transfer import _compose, run_logged

    cfg = _compose(["experiment=new_compositions", f"cv.groups={protocol}"])
    metrics = run_logged(cfg, out)
    calib = load_calibration(out / UNCERTAINTY_FILE)
    plan = build_plan(cfg)
    ds = load_dataset(plan.data, plan.group_column)
    crossfit = pd.read_csv(out / "uncertainty" / "oof_uncertainty.csv")
    oof = pd.read_csv(out / "oof_predictions.csv")
    oof = oof.merge(crossfit[["cluster", "in_domain"]], on="cluster", validate="one_to_one")
    X = ds.X.set_index(pd.Index(ds.clusters)).loc[oof["cluster"]].reset_index(drop=True)
    iv = calib.predict(X, oof["y_pred"].to_numpy(float))  # difficulty none: no spread needed
    y = oof["y_true"].to_numpy(float)
    inside = (y >= iv["y_lower"].to_numpy()) & (y <= iv["y_upper"].to_numpy())
    err = np.abs(oof["y_pred"].to_numpy(float) - y)
    metal = oof["cluster"].str.extract(r"^([A-Z][a-z]?)")[0]
    return {
        "signals": signals(crossfit),
        "protocol": PROTOCOLS[protocol],
        "coverage": inside.mean(),
        "width": float((iv["y_upper"] - iv["y_lower"]).mean()),
        "mae": err.mean(),
        "by_metal": pd.Series(inside).groupby(metal.to_numpy()).mean().round(2).to_dict(),
        "by_domain": {
            ("in domain" if k else "flagged"): (round(float(v.mean()), 2), int(len(v)))
            for k, v in pd.Series(inside).groupby(oof["in_domain"].astype(bool))
        },
        "fev_coverage": metrics["calibration_set_coverage"],
        "fev_width": metrics["calibration_set_width"],
    }


def signals(table: pd.DataFrame) -> dict[str, tuple[float, float, float]]:
    """Flagged / passed MAE and Spearman(expected_error, |error|) of the cross-fitted held-out
    clusters, each with its bootstrap interval over the held-out groups."""
    from scipy.stats import spearmanr

    from n2react.bootstrap import interval, unit_weights

    err = (table["y_pred"] - table["y_true"]).abs().to_numpy(float)
    flagged = ~table["in_domain"].astype(bool).to_numpy()
    ee = table["expected_error"].to_numpy(float)

    def stats(i: np.ndarray) -> tuple[float, float]:
        f = flagged[i]
        ratio = err[i][f].mean() / err[i][~f].mean() if f.any() and (~f).any() else np.nan
        return float(ratio), float(spearmanr(ee[i], err[i])[0])

    rows = np.arange(len(table))
    draws = np.array(
        [stats(np.repeat(rows, w.astype(int))) for w in unit_weights(table["group"].astype(str))]
    )
    point = stats(rows)
    out = {}
    for k, name in enumerate(("flagged / passed MAE", "Spearman")):
        ok = draws[:, k][np.isfinite(draws[:, k])]
        lo, hi = interval(ok) if len(ok) > 0.5 * len(draws) else (np.nan, np.nan)
        out[name] = (point[k], lo, hi)
    out["n flagged"] = (float(flagged.sum()), np.nan, np.nan)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--protocols",
        type=comma_list(),
        default="family,metal",
        help="cv.groups to run, comma-separated (family,metal)",
    )
    args = ap.parse_args(argv)
    if bad := [p for p in args.protocols if p not in PROTOCOLS]:  # refused after a run started
        ap.error(f"unknown protocol(s) {', '.join(bad)}; expected {', '.join(PROTOCOLS)}")
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        for protocol in args.protocols:
            r = reach(protocol, Path(tmp) / protocol)
            print(
                f"{r['protocol']}: Fe-V-calibrated 90 % intervals (width {r['width']:.2f}) cover "
                f"{r['coverage']:.2f} of the held-out clusters (MAE {r['mae']:.2f}); on the Fe-V "
                f"clusters, cross-fitted: {r['fev_coverage']:.2f} at width {r['fev_width']:.2f}"
            )
            print(f"  by metal: {r['by_metal']}")
            print(f"  by in_domain (coverage, n): {r['by_domain']}")
            parts = []
            for k, (value, lo, hi) in r["signals"].items():
                ci = f" [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else ""
                parts.append(f"{k} {value:.0f}" if k == "n flagged" else f"{k} {value:.2f}{ci}")
            sig = ", ".join(parts)
            print(f"  the run's trust signals on its held-out clusters: {sig}")
    return 0


if __name__ == "__main__":
    from n2react.errors import run_script

    raise SystemExit(run_script(main))
