"""How stable is the descriptor importance ranking over the outer folds, and does it agree with
the paper's four key descriptors (1_ΔQmax, 2_σave, 2_ndave, 3_ΔEHOMO)?

    python benchmarks/importance_stability.py                       # extra trees, 10 folds
    python benchmarks/importance_stability.py model=svr seed=1      # any train overrides
    python benchmarks/importance_stability.py --run outputs/...     # a finished run directory

Runs the nested CV of `python -m train` (no MLflow, no final refit) or reads a run directory,
then, per outer-fold model: the mean |SHAP| on (up to --rows of) its training clusters and the
permutation importance on its held-out clusters (RMSE increase). Prints, for both, each
descriptor's mean rank ± sd over the folds (1 = most important), the mean Kendall tau between
the folds' rankings, and where the paper's four descriptors land.
"""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
import time
from pathlib import Path

from n2react.arguments import Parser, at_least

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
#: what this benchmark does with a run, said of one not finished yet
VERB = "measure its importance stability"


def _compose(overrides: list[str]):  # noqa: ANN202 - a DictConfig
    from n2react.compose import compose_config

    quiet = {"tracking.enabled": False, "progress": False, "final_model": False}
    return compose_config(overrides, quiet)


def _tau(table) -> tuple[float, float]:  # noqa: ANN001
    from scipy.stats import kendalltau

    from n2react.explain.importance import fold_columns

    cols = fold_columns(table)
    taus = [kendalltau(table[a], table[b]).statistic for a, b in itertools.combinations(cols, 2)]
    return float(sum(taus) / len(taus)), float(min(taus))


def report(name: str, table, top: int) -> None:  # noqa: ANN001
    from n2react.descriptors import PAPER_KEY_DESCRIPTORS
    from n2react.explain.runner import ranking_stability

    ranks = ranking_stability(table)
    mean_tau, min_tau = _tau(table)
    from n2react.explain.importance import fold_columns

    n_folds = len(fold_columns(table))
    print(f"\n### {name}: mean rank ± sd over {n_folds} outer folds (1 = most important)\n")
    print("| rank | descriptor | mean rank | sd | paper's key four |")
    print("| --- | --- | --- | --- | --- |")
    for i, (desc, r) in enumerate(ranks.iterrows(), start=1):
        if i <= top or desc in PAPER_KEY_DESCRIPTORS:
            key = "yes" if desc in PAPER_KEY_DESCRIPTORS else ""
            print(f"| {i} | {desc} | {r.mean_rank:.1f} | {r.sd_rank:.1f} | {key} |")
    overlap = [d for d in ranks.index[:4] if d in PAPER_KEY_DESCRIPTORS]
    print(
        f"\nKendall tau between the folds' rankings: mean {mean_tau:.2f} (lowest pair "
        f"{min_tau:.2f}); top 4 here vs the paper's four: {len(overlap)} shared "
        f"({', '.join(overlap) or 'none'})"
    )


def main(argv: list[str] | None = None) -> int:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default=None, help="a finished run directory (skips training)")
    ap.add_argument(
        "--rows", type=at_least(1), default=60, help="training rows explained per fold model (60)"
    )
    ap.add_argument(
        "--top", type=at_least(0), default=8, help="descriptors listed besides the paper's (8)"
    )
    ap.add_argument("overrides", nargs="*", help="train overrides (default model=extra_trees)")
    args = ap.parse_args(argv)
    if args.run is not None and args.overrides:  # they were ignored: the run's own settings hold
        ap.error(f"--run reads a finished run; train overrides ({' '.join(args.overrides)}) "
                 "apply only when it trains")  # fmt: skip
    logging.basicConfig(level=logging.ERROR, format="%(message)s")

    from n2react.explain import Budget, load_run
    from n2react.explain.importance import permutation_table, shap_importance_table
    from n2react.explain.runner import fold_importances
    from n2react.run import run

    t0 = time.perf_counter()
    run_dir = args.run
    if run_dir is None:
        overrides = args.overrides or ["model=extra_trees"]
        run_dir = Path(tempfile.mkdtemp(prefix="n2react-importance-")) / "run"
        run(_compose(overrides), run_dir)
        print(f"nested CV of: {' '.join(overrides)} ({time.perf_counter() - t0:.0f} s)")
    data = load_run(run_dir, verb=VERB)  # a run not finished: what waits for it
    t1 = time.perf_counter()
    budget = Budget(fold_rows=args.rows, fold_trees=None, n_repeats=10)
    fold_abs, perm, kind = fold_importances(data, budget)
    names = data.dataset.feature_names
    print(f"{data.source}: {len(fold_abs)} fold models, {kind} SHAP "
          f"({time.perf_counter() - t1:.0f} s)")  # fmt: skip
    report(f"SHAP (mean |SHAP| on {args.rows} training clusters per fold)",
           shap_importance_table(None, fold_abs, names), args.top)  # fmt: skip
    report("permutation importance on the outer test folds",
           permutation_table(perm, names), args.top)  # fmt: skip
    return 0


if __name__ == "__main__":
    from n2react.errors import run_script

    raise SystemExit(run_script(main))
