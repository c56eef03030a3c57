"""Show the chemistry of a finished run: descriptor importance (SHAP, out-of-fold permutation),
errors by group and family, Keras learning curves; all read from what the run left on disk or in
MLflow, without training.

    from n2react.explain import explain_run
    explain_run("outputs/2025-01-01/12-00-00_rfr")     # -> [PNG, CSV, ...] in <run>/explain/

    python -m n2react.explain RUN [--tracking-uri URI] [--out DIR]
"""

from n2react.explain.curves import (
    curves_table,
    histories,
    history_of,
    log_learning_curves,
    loss_curves,
)
from n2react.explain.importance import Budget
from n2react.explain.runner import clear_explain_failure, explain, explain_run
from n2react.explain.source import RunData, load_run

__all__ = [
    "Budget",
    "RunData",
    "clear_explain_failure",
    "curves_table",
    "explain",
    "explain_run",
    "histories",
    "history_of",
    "load_run",
    "log_learning_curves",
    "loss_curves",
]
