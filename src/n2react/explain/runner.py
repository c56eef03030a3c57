"""``explain_run``: every explanation figure and table of a finished run, without training
(the figures themselves are drawn by :mod:`n2react.explain.draw`)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd

from n2react.composition import DEFAULT_LIGANDS
from n2react.credentials import redact
from n2react.data import Dataset
from n2react.errors import DataError, first_line
from n2react.explain import draw, group_parity
from n2react.explain import importance as imp
from n2react.explain.cost import affordable
from n2react.explain.curves import curves_table, histories
from n2react.explain.groups import group_labels_of
from n2react.explain.source import RunData, load_run
from n2react.figures import data_title, model_title
from n2react.leaderboard import EXPLAIN_FAILED_FILE
from n2react.splitters import check_grouping, protocol_text

log = logging.getLogger(__name__)

#: Folder (inside the run directory) the files are written to by default.
OUT_DIR = "explain"
#: The files an explanation writes (PNG + CSV each; learning curves for Keras only).
FILES = [f"{stem}.{ext}" for stem in ("shap_beeswarm", "shap_importance",
         "permutation_importance", "parity_by_group", "residuals_by_family", "learning_curves")
         for ext in ("png", "csv")]  # fmt: skip


def _title(run: RunData) -> str:
    """Model, data and protocol, as the run's own plots name them."""
    cv = run.config.get("cv", {})
    protocol = protocol_text(
        str(cv.get("scheme", "nested")), cv.get("groups"), run.dataset.folds is not None
    )
    data = data_title(run.dataset.name, run.config.get("data"))
    model = run.label or model_title(run.config)  # a sweep's job: its swept values, as it ran
    return f"{model} on {data}: {protocol}" + _fold_count(run.oof)


def _fold_count(oof: pd.DataFrame) -> str:
    """``', 3 folds'``, with repeats ``', 3 folds x 2 repeats'`` (as the run's own titles)."""
    if "fold" not in oof:
        return ""
    n = oof["fold"].nunique()
    repeats = oof["repeat"].nunique() if "repeat" in oof else 1
    if repeats > 1:
        return f", {n // repeats} folds x {repeats} repeats"
    return f", {n} folds"


def _groups_spec(run: RunData, groups: Any) -> Any:
    if groups is not None:
        return groups
    spec = run.config.get("cv", {}).get("groups")
    return None if spec in (None, "none") else str(spec)


def fold_importances(
    run: RunData, budget: imp.Budget
) -> tuple[dict[int, pd.Series], dict[int, pd.Series], str | None]:
    """Per outer fold: mean |SHAP| of its model on (up to ``budget.fold_rows`` of) its training
    rows, and the permutation importance on its held-out rows; and the explainer used."""
    X = run.dataset.X
    fold_abs, perm, kind = {}, {}, None
    for k, model in run.fold_models.items():
        train, test = run.fold_rows(k)
        vals, kind = imp.shap_values(
            model, X.iloc[train], budget, salt=k, max_rows=budget.fold_rows, trees=budget.fold_trees
        )
        fold_abs[k] = imp.mean_abs(vals)
        perm[k] = imp.permutation_importance_fold(
            model,
            X.iloc[test],
            run.dataset.y[test],
            n_repeats=budget.n_repeats,
            seed=budget.seed + k,
        )
    return fold_abs, perm, kind


def _affordable(run: RunData, budget: imp.Budget) -> imp.Budget:
    """``budget``, or a smaller one when the run's model predicts too slowly for it."""
    model = run.final_model or next(iter(run.fold_models.values()), None)
    if model is None:
        return budget
    sizes = [tuple(len(r) for r in run.fold_rows(k)) for k in run.fold_models]
    n_final = len(run.dataset.X) if run.final_model is not None else 0
    return affordable(budget, model, run.dataset.X, n_final, sizes)


def importance_files(
    run: RunData, out: Path, budget: imp.Budget, title: str | None = None
) -> list[Path]:
    """SHAP (final model: beeswarm + bar with the fold spread) and out-of-fold permutation
    importance, as PNG + CSV (the plots leave out descriptors constant over the clusters)."""
    X, names, title = run.dataset.X, run.dataset.feature_names, title or _title(run)
    constant = [c for c in X.columns if X[c].nunique(dropna=True) <= 1]
    paths: list[Path] = []
    final_abs, kind = None, None
    if run.final_model is not None:
        vals, kind = imp.shap_values(run.final_model, X, budget)
        vals.index = run.dataset.clusters[X.index.get_indexer(vals.index)].astype(str)
        Xn = X.set_axis(run.dataset.clusters.astype(str), axis=0)
        paths += draw.beeswarm(
            vals,
            Xn,
            out / "shap_beeswarm.png",
            f"SHAP, final model ({kind} explainer, {len(vals)} of {len(X)} clusters): {title}",
            leave_out=constant,
        )
        final_abs = imp.mean_abs(vals)
    fold_abs, perm, fold_kind = fold_importances(run, budget)
    kind = kind or fold_kind
    selected = imp.kept_by_folds(run.fold_models, names)  # each fold's selector its own
    if final_abs is not None or fold_abs:
        table = imp.shap_importance_table(final_abs, fold_abs, names)
        table.attrs["explainer"] = kind
        has_final = final_abs is not None
        n_final = len(vals) if has_final else 0
        paths += draw.importance_bars(
            table,
            out / "shap_importance.png",
            value="final" if has_final else "fold_mean",
            err="fold_std",
            marker="fold_mean" if has_final and fold_abs else None,
            xlabel="mean |SHAP value| (lg(k1) units)",
            title=f"SHAP importance ({kind} explainer): {title}",
            leave_out=constant,
            legend=_shap_legend(run, budget, n_final, fold_kind),
            selected=selected,
        )
    if perm:
        ptable = imp.permutation_table(perm, names)
        paths += draw.importance_bars(
            ptable,
            out / "permutation_importance.png",
            value="mean",
            err="std",
            xlabel="increase of held-out RMSE of lg(k1) when shuffled (mean ± sd over outer folds)",
            title=f"Permutation importance on the outer test folds: {title}",
            leave_out=constant,
            selected=selected,
        )
    return paths


def _shap_legend(
    run: RunData, budget: imp.Budget, n_final: int, fold_kind: str | None
) -> dict[str, str]:
    """What the SHAP importance bars and dots are: which model, explained on which clusters
    (the outer-fold models on their own training clusters, never their held-out ones)."""
    n = len(run.dataset.X)
    out = {"final": f"final model, fitted on all {n} clusters (SHAP on {n_final} of them)"}
    if run.fold_models:
        train = min(len(run.fold_rows(k)[0]) for k in run.fold_models)
        rows = train if budget.fold_rows is None else min(budget.fold_rows, train)
        some = imp.trees_walked(next(iter(run.fold_models.values())), budget.fold_trees)
        trees = f", over {some} of its trees" if fold_kind == "tree" and some else ""
        where = f"SHAP on {rows} of its training clusters{trees}"
        out["fold_mean"] = f"outer-fold models, mean ± sd ({where})"
    return out


def _check_writable(out: Path) -> None:
    """Refuse, before any work, an output folder that cannot be made: a file, or a path under
    a file or an unwritable folder."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: a file, not a folder; --out names the folder explain writes to")
    first = next(p for p in [out, *out.absolute().parents] if p.exists())
    if not first.is_dir():
        raise DataError(f"{out}: cannot create the folder ({first} is a file)")
    if not os.access(first, os.W_OK | os.X_OK):
        raise DataError(f"{out}: cannot create or write the folder ({first} is not writable)")


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` (or ``path`` itself) that does not exist yet: removing
    it removes exactly what creating ``path`` made. None when ``path`` exists."""
    path = path.absolute()
    return next((p for p in [*reversed(path.parents), path] if not p.exists()), None)


def explain_run(
    run_dir: str | Path,
    *,
    dataset: Dataset | None = None,
    groups: Any = None,
    budget: imp.Budget | None = None,
    out_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    trust_pickle: bool = False,
    force: bool = False,
) -> list[Path]:
    """Regenerate every explanation of a finished run (a run directory or an MLflow parent run
    id); returns the files written (PNG + CSV pairs).

    ``dataset``: the run's data set when the caller has it (else reloaded from the run's config);
    ``groups``: parity colouring (see :func:`n2react.explain.groups.group_labels_of`; default the
    run's ``cv.groups`` when set, else the metal); ``out_dir``: default ``<run_dir>/explain`` (an
    MLflow run: ``explain-<run id>/``). Files written: shap_beeswarm, shap_importance,
    permutation_importance, parity_by_group, residuals_by_family, learning_curves (Keras only).
    ``trust_pickle``: load an older run's pickled models (loading a pickle runs code). An
    ``out_dir`` of the user's that holds files of those names is refused unless ``force`` (the
    default folder is the run's own explanations, redrawn; drawn there, they clear the run's
    ``explain_failed.json``).
    """
    t0 = time.perf_counter()
    budget = budget or imp.Budget()
    is_dir = Path(run_dir).exists()
    default_out = Path(run_dir) / OUT_DIR if is_dir else Path(f"explain-{run_dir}")
    out = Path(out_dir) if out_dir is not None else default_out
    own = out.resolve() == default_out.resolve()
    if out_dir is not None:  # the default, <run>/explain, waits for the run to be found
        _check_writable(out)
    mine = [] if own else [n for n in FILES if (out / n).exists()]
    if mine and not force:
        raise DataError(
            f"{out}: already holds {', '.join(mine[:3])}{' ...' if len(mine) > 3 else ''}, which "
            "explain would replace; choose another --out, or pass --force to replace them"
        )
    # what this call makes (the folder and any above it, the MLflow run's downloads) goes again
    # when it is refused
    made = _first_missing(out / "artifacts")
    try:
        run = load_run(
            run_dir,
            tracking_uri=tracking_uri,
            download_to=out / "artifacts",
            dataset=dataset,
            trust_pickle=trust_pickle,
        )
        paths = explain(run, out, budget=budget, groups=groups)
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise
    if own and Path(run_dir).is_dir():  # the run's own figures drawn now: its failure is old
        failed = _failure_note(Path(run_dir) / EXPLAIN_FAILED_FILE)
        noted = (failed.get("tracking_uri"), failed.get("mlflow_run_id"))  # its MLflow run's too
        clear_explain_failure(Path(run_dir), tuple(map(str, noted)) if all(noted) else None)
    elif not is_dir:  # an MLflow run explained: the explain_error of its training is old
        from n2react.tracking import default_uri

        _clear_explain_error(tracking_uri or default_uri(), str(run_dir))
    log.info("explained %s in %.1f s: %d files in %s", run.source, time.perf_counter() - t0,
             len(paths), out)  # fmt: skip
    return paths


def _failure_note(note: Path) -> dict[str, Any]:
    """What explain_failed.json says (an unreadable or hand-edited one: nothing)."""
    try:
        failed = json.loads(note.read_text())
    except (OSError, ValueError):
        return {}
    return failed if isinstance(failed, dict) else {}


def clear_explain_failure(run_dir: Path, mlflow_run: tuple[str, str] | None) -> None:
    """The run's own explanations drawn now (by ``python -m n2react.explain RUN``, or by the
    train task, ``resume=`` included): the failure an earlier explain left goes, its
    ``explain_failed.json`` and the ``explain_error`` tag on ``mlflow_run`` (store URI, run id;
    None: no store is asked)."""
    (run_dir / EXPLAIN_FAILED_FILE).unlink(missing_ok=True)
    if mlflow_run is not None:
        _clear_explain_error(*mlflow_run)


def _clear_explain_error(uri: str, run_id: str) -> None:
    """Remove the ``explain_error`` tag the train task left on MLflow run ``run_id``, so that it
    no longer looks failed; a store that cannot be reached now is one warning (the files are
    drawn all the same)."""
    from n2react.store_uri import unreadable
    from n2react.tracking import TAG_EXPLAIN_ERROR

    why = unreadable(uri)
    if why is None:
        try:
            from n2react.mlflow_runs import RunReader

            if RunReader(uri).delete_tag(run_id, TAG_EXPLAIN_ERROR):
                log.info("MLflow run %s: its %s tag removed", run_id, TAG_EXPLAIN_ERROR)
            return
        except Exception as exc:  # the store's own error, whatever its kind
            why = first_line(exc)
    log.warning("MLflow run %s keeps its %s tag: %s", run_id, TAG_EXPLAIN_ERROR, redact(why))


def explain(
    run: RunData,
    out: Path,
    *,
    budget: imp.Budget | None = None,
    groups: Any = None,
    title: str | None = None,
) -> list[Path]:
    """Every explanation of ``run`` (already in memory: the train task passes its own models)
    into ``out``; see :func:`explain_run`. ``title``: what the figures say they show (default:
    model, data and protocol from the run's config; the train task adds a sweep's values)."""
    budget = _affordable(run, budget or imp.Budget())
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{out}: cannot create the folder ({exc.strerror})") from exc
    title = title or _title(run)
    paths = importance_files(run, out, budget, title)
    # one label per cluster: with cv.repeats > 1 a cluster is held out once per repeat
    clusters = pd.unique(run.oof["cluster"].astype(str))
    ligands = list(run.config.get("data", {}).get("formula_ligands") or DEFAULT_LIGANDS)
    labels = group_labels_of(clusters, _groups_spec(run, groups), run.dataset, ligands)
    grouped = check_grouping(run.config.get("cv", {}).get("groups")) is not None
    paths += group_parity.parity(
        run.oof,
        labels,
        out / "parity_by_group.png",
        f"Held-out clusters: {title}",
        grouped=grouped,
    )
    paths += draw.residuals_by_family(
        run.oof,
        out / "residuals_by_family.png",
        f"Out-of-fold residuals by family: {title}",
        ligands,
    )
    hists = histories(run.final_model, run.fold_models)
    if hists:
        paths += draw.learning_curves(
            curves_table(hists), out / "learning_curves.png", f"Keras learning curves: {title}"
        )
    return paths


def ranking_stability(table: pd.DataFrame) -> pd.DataFrame:
    """Per descriptor of an importance table (``fold_NN`` columns): mean rank and its sd over
    folds (1 = most important), sorted by mean rank."""
    ranks = imp.fold_ranks(table)
    out = pd.DataFrame({"mean_rank": ranks.mean(axis=1), "sd_rank": ranks.std(axis=1, ddof=1)})
    return out.sort_values("mean_rank")
