"""Do the intervals cover and do the trust signals rank errors, on held-out and on FeV clusters?

    python benchmarks/uncertainty.py [--protocols none,family,metal]
        [--difficulties none,knn_distance,knn_residual,spread,spread_knn] [--eval FILE]
        [overrides...]

For each outer-CV protocol (``cv.groups``; default data=homonuclear_15 model=extra_trees), the
outer CV runs once; for each ``uncertainty.difficulty`` the run's calibration is fitted on its
out-of-fold residuals exactly as ``python -m train`` does (:func:`n2react.uncertainty_report.
evaluate_run`), and the final model (refitted on all clusters) predicts the labelled ``--eval``
file (default: the 18 FeV clusters) through predict's own table. Printed per row:

* held out: the run's validation figures (each outer fold calibrated on the others' residuals,
  from refits that never saw it; ``uncertainty.validation=crossfit``: from the run's own fold
  models): coverage and mean width of the 90 % intervals, Spearman(expected_error, |error|), MAE
  of the clusters in_domain rejects vs passes;
* eval: the same on the eval file, plus Spearman(y_std, |error|) of the fold-model spread.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def main(argv: list[str] | None = None) -> int:
    from transfer import fev_file

    from n2react.arguments import Parser, comma_list
    from n2react.compose import compose_config
    from n2react.composition import DEFAULT_LIGANDS
    from n2react.cv import fit_model
    from n2react.data import load_dataset
    from n2react.difficulty import DIFFICULTIES
    from n2react.domain import ApplicabilityDomain
    from n2react.inference import LoadedModel, prediction_table, read_new_clusters
    from n2react.plan import build_plan
    from n2react.run import cross_validate, fold_procedure
    from n2react.search import TunedPipeline
    from n2react.uncertainty import UncertaintySpec
    from n2react.uncertainty_report import (
        descriptor_flag,
        evaluate_run,
        spearman,
        trust_metrics,
    )

    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--protocols",
        type=comma_list(),
        default="none,family,metal",
        help="comma list of cv.groups",
    )
    ap.add_argument(
        "--difficulties",
        type=comma_list(),
        default=",".join(DIFFICULTIES),
        help=f"comma list of {', '.join(DIFFICULTIES)}",
    )
    ap.add_argument("--eval", default=None, help="labelled file (default: $N2_DATA_DIR's FeV file)")
    ap.add_argument("overrides", nargs="*", help="train overrides, e.g. uncertainty.k=7")
    args = ap.parse_intermixed_args(argv)
    bad = [d for d in args.difficulties if d not in DIFFICULTIES]
    if bad:
        ap.error(f"unknown difficulty {', '.join(bad)}; expected {', '.join(DIFFICULTIES)}")
    protocols, difficulties, argv = args.protocols, args.difficulties, args.overrides
    eval_file = args.eval or str(fev_file())
    if not Path(eval_file).is_file():
        ap.error(f"--eval {eval_file}: no such file")
    logging.basicConfig(level=logging.ERROR)
    rows, heading = [], ""
    for groups in protocols:
        over = ["data=homonuclear_15", "model=extra_trees", *argv, f"cv.groups={groups}"]
        cfg = compose_config(over)
        plan = build_plan(cfg)
        ds = plan.attach_groups(load_dataset(plan.data, plan.group_column))
        coverage = (plan.uncertainty or UncertaintySpec()).coverage
        heading = title(cfg, ds.n_rows, coverage, eval_file)
        with tempfile.TemporaryDirectory() as tmp:
            result = cross_validate(plan, ds, Path(tmp))
            final = TunedPipeline(plan.make_pipeline, plan.search, plan.inner, tmp, "final")
            fit_model(final, ds.X, ds.y, ds.groups)
            spec0 = plan.uncertainty or UncertaintySpec()
            ligands = list(plan.data.get("formula_ligands") or DEFAULT_LIGANDS)
            domain = ApplicabilityDomain(ligands=ligands).fit(ds.X, ds.clusters)
            folds = [f.model for f in result.folds]
            X, clusters, y = read_new_clusters(eval_file, [str(c) for c in ds.X.columns])
            for kind in difficulties:
                spec = replace(spec0, difficulty=kind, expected_error="same", calibration_path=None)
                calib, held, _, _ = evaluate_run(
                    result, spec, ligands, Path(tmp), "", groups,
                    procedure=fold_procedure(plan, Path(tmp)),
                )  # fmt: skip
                loaded = LoadedModel(final.pipeline_, folds, "benchmark", domain, calib)
                table, _ = prediction_table(loaded, X, clusters, y, spec.coverage)
                ev = trust_metrics(
                    y, table["y_pred"], table["y_lower"], table["y_upper"],
                    table["expected_error"], table["in_domain"],
                    descriptor_flag(domain.assess(X, clusters)),
                )  # fmt: skip
                err = np.abs(table["y_pred"] - y)
                rows.append(
                    {
                        "cv.groups": groups,
                        "difficulty": kind,
                        "held-out MAE": result.summary()["pooled_test_mae"],
                        "cover": held["interval_coverage"],
                        "width": held["interval_width"],
                        "rho": held.get("uncertainty_spearman", np.nan),
                        "MAE flag/in": _ratio(held),
                        "eval MAE": float(err.mean()),
                        "eval cover": ev["interval_coverage"],
                        "eval width": ev["interval_width"],
                        "eval rho": ev["uncertainty_spearman"],
                        "eval MAE flag/in": _ratio(ev),
                        "eval rho(y_std)": spearman(table["y_std"], err),
                        "eval descriptor flag/in": _pair(
                            ev["descriptor_flag_mae_flagged"], ev["descriptor_flag_mae_in"]
                        ),
                    }
                )
    table = pd.DataFrame(rows)
    print(heading)
    # an undefined figure (rho of a constant expected error, the MAE of no flagged cluster)
    # prints '-', in the number columns and in the flag/in pairs alike (it printed NaN and nan)
    print(table.to_string(index=False, na_rep=UNDEFINED, float_format=_fig))
    return 0


def title(cfg: Any, n: int, coverage: float, eval_file: str) -> str:
    """The table's title: the interval level, the model run (as a run's titles name it,
    :func:`n2react.figures.model_title`, in words: ``extra trees``), the clusters and the eval
    file, e.g. ``90 % intervals, extra trees on the 159 clusters; eval = FeV.xlsx``."""
    from n2react.figures import model_title

    model = model_title(cfg).replace("_", " ")
    evaluated = Path(eval_file).name
    return f"{100 * coverage:g} % intervals, {model} on the {n} clusters; eval = {evaluated}"


#: how the table prints a figure that is undefined (NaN), as benchmarks/family_variance.py does
UNDEFINED = "-"


def _fig(v: float) -> str:
    from n2react.metrics import figure

    return figure(v, ".2f")  # UNDEFINED where v is NaN


def _pair(flagged: float, inside: float) -> str:
    return f"{_fig(flagged)}/{_fig(inside)}"


def _ratio(m: dict) -> str:
    """'MAE flagged / MAE in (n flagged)'."""
    f, i = m.get("domain_mae_flagged", np.nan), m.get("domain_mae_in", np.nan)
    return f"{_pair(f, i)} ({int(m['domain_n_flagged'])})"


if __name__ == "__main__":
    from n2react.errors import run_script

    raise SystemExit(run_script(main))
