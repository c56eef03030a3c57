"""The train task: data -> nested CV -> final model, with every step logged.

``run(cfg, run_dir)`` is what ``python -m train`` calls; it needs no Hydra runtime, so tests call
it directly with a composed config.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from n2react import device
from n2react.cv import CVResult, FoldResult, check_inner, fit_and_tune, nested_cv, outer_splits
from n2react.data import Dataset, load_dataset
from n2react.errors import ConfigError
from n2react.export import keras_model_of
from n2react.pairsplit import pair_split
from n2react.pipeline import build_pipeline, search_space
from n2react.plots import parity_plot, selection_frequency_plot
from n2react.report import FoldProgress, show, summary_table
from n2react.search import check_search, make_hyperparameters, search_size
from n2react.tracking import JobInfo, Tracker, flatten

log = logging.getLogger(__name__)


def _uses_accelerator(cfg: DictConfig) -> bool:
    target = str(cfg.model.estimator.get("_target_", ""))
    return "keras" in target.lower()


def validate(cfg: DictConfig, dataset: Dataset) -> None:
    """Everything that can be checked before any training starts."""
    summary_keys = {
        f"{s}_{part}_{m}"
        for s in ("mean", "std")
        for part in ("test", "train")
        for m in ("r", "rmse", "mae", "r2")
    }
    if cfg.optimized_metric not in summary_keys:
        raise ConfigError(
            f"optimized_metric={cfg.optimized_metric!r}: expected one of mean_test_rmse, "
            "mean_test_r, mean_test_mae, mean_test_r2 (or their std_/train_ forms)"
        )
    if _scheme(cfg) == "pair_split":
        return
    check_search(build_pipeline(cfg), cfg.search)
    space = search_space(cfg)
    if cfg.search.get("oracle") is not None and space:
        make_hyperparameters(space)
    check_inner(cfg, outer_splits(dataset, cfg.cv))


def _write_fold(fold: FoldResult, run_dir: Path) -> tuple[list[Path], Path | None]:
    """The fold's files: artifacts of its child run, and its fitted model (for the parent)."""
    d = run_dir / "folds" / f"fold_{fold.split.fold:02d}"
    d.mkdir(parents=True, exist_ok=True)
    model_file = None
    if fold.model is not None:  # the fold models give predict its spread over folds
        model_file = d / "model.joblib"
        joblib.dump(fold.model, model_file)
    (d / "selected_features.txt").write_text("\n".join(fold.selected_features) + "\n")
    paths = [d / "selected_features.txt"]
    if len(fold.trials):
        fold.trials.to_csv(d / "trials.csv", index=False)
        paths.append(d / "trials.csv")
    return paths, model_file


def _fold_logger(tracker: Tracker, run_dir: Path, progress: FoldProgress) -> Any:
    def on_fold_end(fold: FoldResult) -> None:
        artifacts, model_file = _write_fold(fold, run_dir)
        params: dict[str, Any] = {f"best.{k}": v for k, v in fold.best_params.items()}
        params["n_selected"] = len(fold.selected_features)
        params["selected_features"] = ", ".join(fold.selected_features)
        metrics = dict(fold.metrics)
        if np.isfinite(fold.inner_score):
            metrics["inner_score"] = fold.inner_score
        tracker.log_fold(
            fold.split.fold,
            metrics,
            params,
            {"repeat": str(fold.split.repeat)},
            artifacts,
        )
        if model_file is not None:
            tracker.log_artifact(model_file, f"fold_models/fold_{fold.split.fold:02d}")
        progress.fold_done()

    return on_fold_end


def _write_results(result: CVResult, summary: dict[str, float], run_dir: Path, title: str) -> list:
    folds = result.fold_table()
    oof = result.oof_table()
    train = result.train_table()
    paths = [run_dir / "folds.csv", run_dir / "oof_predictions.csv", run_dir / "summary.json"]
    folds.to_csv(paths[0], index=False)
    cols = ["cluster", "y_true", "y_pred", "fold"] + (["repeat"] if oof["repeat"].max() > 1 else [])
    cols += ["y_std"] if "y_std" in oof else []
    oof[cols].to_csv(paths[1], index=False)
    paths[2].write_text(json.dumps(summary, indent=2) + "\n")
    paths.append(parity_plot(oof, train, run_dir / "parity.png", title=title))
    freq = selection_frequencies(result)
    if freq is not None:
        freq.to_csv(run_dir / "selection_frequency.csv")
        paths.append(run_dir / "selection_frequency.csv")
        paths.append(selection_frequency_plot(freq, run_dir / "selection_frequency.png"))
    return paths


def selection_frequencies(result: CVResult) -> pd.DataFrame | None:
    """Descriptor x outer fold: how often the stability selector kept it (None: no such step)."""
    cols = {}
    for f in result.folds:
        select = f.model.named_steps.get("select") if f.model is not None else None
        freq = getattr(select, "selection_frequency_", None)
        if freq is None:
            return None
        before = f.model[: list(f.model.named_steps).index("select")]
        names = before.get_feature_names_out(result.dataset.feature_names)
        cols[f"fold_{f.split.fold:02d}"] = pd.Series(freq, index=[str(n) for n in names])
    return pd.DataFrame(cols) if cols else None


def run(
    cfg: DictConfig, run_dir: str | Path, job_num: int | None = None, job: JobInfo | None = None
) -> dict[str, float]:
    """Nested CV of the configured pipeline; returns the parent-run metrics (mean/std ...).

    ``job_num`` is the job's number in a multirun (it picks the GPU when several are visible);
    ``job`` names the MLflow run and tags it with its sweep and job (default: the model's name).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    accel = _uses_accelerator(cfg)
    used_device = device.configure(cfg.device, uses_accelerator=accel, job_num=job_num)
    if accel and used_device != "cpu" and not device.backend_devices():
        if cfg.device.name == "gpu":
            raise ConfigError("device=gpu: a GPU is visible but the Keras backend cannot use it")
        log.warning("a GPU is visible but the Keras backend cannot use it: running on the CPU")
        used_device = "cpu"
    dataset = load_dataset(cfg.data)
    validate(cfg, dataset)
    log.info(
        "%s: %d clusters x %d descriptors from %s",
        dataset.name,
        dataset.n_rows,
        dataset.X.shape[1],
        dataset.source,
    )
    resolved = OmegaConf.to_container(cfg, resolve=True)
    config_path = run_dir / "config_resolved.yaml"
    config_path.write_text(OmegaConf.to_yaml(OmegaConf.create(resolved)))

    tracker = Tracker(cfg.tracking, job or JobInfo(str(cfg.model.name)))
    params = flatten(resolved)  # type: ignore[arg-type]
    params.update({"data.n_rows": dataset.n_rows, "data.n_features": dataset.X.shape[1]})
    tags = {
        "model": str(cfg.model.name),
        "dataset": str(dataset.name),
        "device": used_device,
        "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow") if accel else "none",
        "run_dir": str(run_dir.resolve()),
    }
    status = "FAILED"
    try:
        tracker.start(params, tags)  # inside: a failure while logging params still ends FAILED
        tracker.log_artifact(config_path)
        if _scheme(cfg) == "pair_split":
            summary = _run_pair_split(cfg, dataset, tracker, run_dir)
        else:
            summary = _run_nested(cfg, dataset, tracker, run_dir)
        status = "FINISHED"
        return summary
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except Exception as exc:
        tracker.set_tags({"error": f"{type(exc).__name__}: {exc}"[:5000]})
        raise
    finally:
        tracker.finish(status)


def _run_nested(cfg: DictConfig, dataset: Dataset, tracker: Tracker, run_dir: Path) -> dict:
    """The nested CV, its outputs, and the final model refitted on all clusters."""
    splits = outer_splits(dataset, cfg.cv)
    n_trials = search_size(search_space(cfg), cfg.search)
    progress = FoldProgress(len(splits), n_trials, enabled=bool(cfg.get("progress", True)))
    with progress.running():
        result = nested_cv(
            dataset,
            cfg,
            workdir=run_dir,
            on_fold_end=_fold_logger(tracker, run_dir, progress),
            on_trial_end=progress.trial_done,
            splits=splits,
        )
        summary = result.summary()
        tracker.log_metrics(summary)
        title = f"{cfg.model.name} on {dataset.name}: nested {len(splits)}-fold CV"
        for p in _write_results(result, summary, run_dir, title):
            tracker.log_artifact(p)
        if cfg.get("final_model", True):
            progress.start_final()
            final, search = fit_and_tune(
                cfg,
                dataset.X,
                dataset.y,
                directory=run_dir / "search",
                project_name="final",
                on_trial_end=progress.trial_done,
            )
            joblib.dump(final, run_dir / "model.joblib")
            (run_dir / "final_params.json").write_text(
                json.dumps(search.best_params, indent=2, default=str) + "\n"
            )
            tracker.log_artifact(run_dir / "final_params.json")
            if cfg.tracking.get("log_model", True):
                tracker.log_sklearn_model(final, dataset.X)
                net = keras_model_of(final, dataset.X)
                if net is not None:
                    tracker.log_keras_model(net, dataset.X)
    show(summary_table(result.fold_table(), summary, title))
    log.info(
        "mean test r %.3f ± %.3f, RMSE %.3f ± %.3f (outputs in %s)",
        summary["mean_test_r"],
        summary["std_test_r"],
        summary["mean_test_rmse"],
        summary["std_test_rmse"],
        run_dir,
    )
    return summary


def _run_pair_split(cfg: DictConfig, dataset: Dataset, tracker: Tracker, run_dir: Path) -> dict:
    """The paper's pair-level random split (reproduction only; see n2react.pairsplit)."""
    summary, pairs = pair_split(dataset, cfg)
    tracker.set_tags({"cv.scheme": "pair_split"})
    tracker.log_metrics(summary)
    pairs.to_csv(run_dir / "test_pairs.csv", index=False)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    title = f"{cfg.model.name} on {dataset.name}: random 80/20 split of PAIRS (paper protocol)"
    plot = parity_plot(
        pairs.rename(columns={"cluster_i": "cluster"}),
        None,
        run_dir / "parity.png",
        title=title,
        quantity="lg(k1)_i - lg(k1)_j",
    )
    for p in (run_dir / "test_pairs.csv", run_dir / "summary.json", plot):
        tracker.log_artifact(p)
    log.info(
        "pair split: test r %.3f, RMSE %.3f on %d held-out pairs (%.0f%% with both clusters seen)",
        summary["mean_test_r"],
        summary["mean_test_rmse"],
        len(pairs),
        100 * summary["test_pairs_with_both_clusters_seen"],
    )
    return summary


def _scheme(cfg: DictConfig) -> str:
    scheme = str(cfg.cv.get("scheme", "nested"))
    if scheme not in ("nested", "pair_split"):
        raise ConfigError(f"cv.scheme={scheme!r}: expected nested or pair_split")
    return scheme
