"""Predict lg(k1) of new clusters with a trained model.

The model comes from an MLflow run id (its final model, plus its outer-fold models for the
spread), a model URI (``runs:/...``, ``models:/...``), or a run directory / ``model.joblib`` of
``python -m train``. The spreadsheet needs the descriptor columns the model was trained on; an
``lg(k1)`` column is optional and, when present, the predictions are scored.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from n2react.backend import stderr_silenced
from n2react.composition import feature_names as formula_names
from n2react.composition import ligands_in
from n2react.cv import predict_mean_std
from n2react.data import TARGET_NAME, read_sheet, table_to_dataset, with_formula_features
from n2react.errors import DataError, N2ReactError
from n2react.metrics import regression_metrics
from n2react.plots import EXPERIMENTAL_ERROR

log = logging.getLogger(__name__)

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class LoadedModel:
    model: Any
    fold_models: list[Any]
    source: str


def _feature_names(model: Any) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise N2ReactError("the model does not record its descriptor names (not an n2react model?)")
    return [str(n) for n in names]


def load_model(ref: str, tracking_uri: str | None = None) -> LoadedModel:
    """Load the final model and, where available, the outer-fold models."""
    with stderr_silenced():  # unpickling a Keras model starts TensorFlow, which chatters
        return _load_model(ref, tracking_uri)


def _load_model(ref: str, tracking_uri: str | None) -> LoadedModel:
    path = Path(ref)
    if path.exists():
        run_dir = path if path.is_dir() else path.parent
        file = path / "model.joblib" if path.is_dir() else path
        if not file.exists():
            raise N2ReactError(
                f"{run_dir}: no model.joblib (was the run made with final_model=true?)"
            )
        folds = [joblib.load(p) for p in sorted(run_dir.glob("folds/fold_*/model.joblib"))]
        return LoadedModel(joblib.load(file), folds, str(file))
    import mlflow
    from mlflow.tracking import MlflowClient

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    try:
        if RUN_ID.match(ref):
            client = MlflowClient()
            run = client.get_run(ref)
            uri = run.data.tags.get("model_uri")
            if uri is None:
                raise N2ReactError(f"MLflow run {ref} has no final model (tag model_uri)")
            model = mlflow.sklearn.load_model(uri)
            folds = []
            for entry in client.list_artifacts(ref, "fold_models"):
                local = mlflow.artifacts.download_artifacts(run_id=ref, artifact_path=entry.path)
                folds += [joblib.load(p) for p in Path(local).glob("*.joblib")]
            return LoadedModel(model, folds, uri)
        return LoadedModel(mlflow.sklearn.load_model(ref), [], ref)
    except N2ReactError:
        raise
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise N2ReactError(f"cannot load model {ref}: {first[:300]}") from exc


def read_new_clusters(
    file: str | Path, expected: list[str], sheet: str | int = 0
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """(descriptors in the model's column order, cluster names, lg(k1) or None)."""
    p = Path(file)
    if not p.exists():
        raise DataError(f"{p}: file not found")
    df = read_sheet(p, sheet)
    name_col = df.columns[0]
    formula_cols, ligands = _formula_columns(expected, df.columns)
    from_file = [c for c in expected if c not in formula_cols]
    missing = [c for c in from_file if c not in df.columns]
    if missing:
        raise DataError(f"{p}: missing descriptor column(s): {', '.join(missing)}")
    extra = [c for c in df.columns[1:] if c not in expected and c != TARGET_NAME]
    if extra:
        log.warning("%s: ignoring column(s) the model was not trained on: %s", p, ", ".join(extra))
    has_target = TARGET_NAME in df.columns
    ds = table_to_dataset(
        df,
        name=p.stem,
        source=str(p),
        name_column=name_col,
        target_column=TARGET_NAME if has_target else None,
        feature_columns=from_file,
        has_target=has_target,
    )
    if formula_cols:
        ds = with_formula_features(ds, ligands)
    return ds.X[expected], ds.clusters, (ds.y if has_target else None)


def _formula_columns(expected: list[str], present: Any) -> tuple[list[str], list[str]]:
    """The model's formula-level columns the sheet lacks (computed from the cluster names), and
    the ligand elements they count."""
    ligands = ligands_in(expected)
    return [c for c in formula_names(ligands) if c in expected and c not in present], ligands


def predict_table(loaded: LoadedModel, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Mean prediction and its uncertainty: the pairwise spread over reference clusters, else the
    spread over the outer-fold models (NaN when neither exists)."""
    mean, std = predict_mean_std(loaded.model, X)
    if std is None:
        if loaded.fold_models:
            per_fold = np.stack([predict_mean_std(m, X)[0] for m in loaded.fold_models])
            std = per_fold.std(axis=0, ddof=1) if len(per_fold) > 1 else np.zeros(len(X))
        else:
            std = np.full(len(X), np.nan)
    return mean, std


def score(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """r, RMSE, MAE, R2 and how many predictions fall within the experimental error bar."""
    m = regression_metrics(y_true, y_pred)
    within = np.abs(np.asarray(y_pred) - np.asarray(y_true)) <= EXPERIMENTAL_ERROR
    m["within_error"] = float(within.sum())
    m["n"] = float(len(y_true))
    return m


def predict(
    ref: str,
    file: str | Path,
    output: str | Path,
    tracking_uri: str | None = None,
    sheet: str | int = 0,
) -> tuple[pd.DataFrame, dict[str, float] | None]:
    """Write a CSV (cluster, y_pred, y_std[, y_true, residual]); return it and the scores."""
    loaded = load_model(ref, tracking_uri)
    X, clusters, y = read_new_clusters(file, _feature_names(loaded.model), sheet)
    mean, std = predict_table(loaded, X)
    out = pd.DataFrame({"cluster": clusters, "y_pred": mean, "y_std": std})
    metrics = None
    if y is not None:
        out["y_true"] = y
        out["residual"] = mean - y
        metrics = score(y, mean)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(output, index=False)
    return out, metrics
