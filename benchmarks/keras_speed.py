"""Per-model-epoch speed of KerasMLPRegressor.fit_predict_many against a plain Keras fit loop.

Runs, on the same K folds and hyperparameters:

(a) "seed-style": for each fold a fresh ``keras.Sequential`` trained with
    ``model.fit(X, y, validation_split=0.1, batch_size=64, callbacks=[EarlyStopping(...)])``;
    by default on the standardised target with the training rows shuffled first (so the
    validation rows are random, as in (b)); ``--raw-target`` fits raw lg(k1) in file order;
(b) ``KerasMLPRegressor.fit_predict_many`` over the K folds, full batch and batch_size=64.

Per-model-epoch time = wall time (compilation included) / epochs actually run over all models.
Validation loss = MSE on each fold's held-out rows in original lg(k1) units, averaged over folds.

    python benchmarks/keras_speed.py --data /path/homonuclear-159-24features.xlsx --folds 5
    KERAS_BACKEND=jax python benchmarks/keras_speed.py --data ...
    N2REACT_TF_JIT_COMPILE=1 python benchmarks/keras_speed.py ...   # XLA on TensorFlow

``--repeats 2`` also shows the warm (already compiled) time of (b); the ``ratio`` line uses the
first, cold run of (b) with full batch.  Both methods first get a tiny warm-up (process start-up
costs only; ``--no-warmup`` skips it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from n2react.arguments import Parser, at_least, positive
from n2react.quiet import quiet_frameworks

# TensorFlow's oneDNN/CUDA start-up lines, absl chatter and Keras' retracing warnings stay off the
# table, as in train (-v keeps them)
quiet_frameworks(sys.argv[1:])

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from n2react.models.keras_mlp import KerasMLPRegressor  # noqa: E402


def default_data() -> str:
    """The 24-descriptor file as `python -m train` finds it: ``$N2_DATA_DIR``, else the copy
    fetched once into the cache (a clear error when neither works)."""
    from n2react.compose import compose_config
    from n2react.data.files import locate

    d = compose_config(["data=homonuclear_24"]).data
    return str(locate(d.file, url=d.get("url"), sha256=d.get("sha256")))


def load(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Features (sentinel -999 -> column median) and target lg(k1)."""
    df = pd.read_excel(path)
    y = df.iloc[:, 1].to_numpy(dtype=np.float64)
    X = df.iloc[:, 2:].astype(float).replace(-999.0, np.nan)
    X = X.fillna(X.median())
    return X.to_numpy(dtype=np.float64), y


def make_folds(X: np.ndarray, y: np.ndarray, k: int) -> list[tuple[np.ndarray, ...]]:
    folds = []
    for tr, te in KFold(k, shuffle=True, random_state=42).split(X):
        scaler = StandardScaler().fit(X[tr])
        folds.append(
            (
                scaler.transform(X[tr]).astype(np.float32),
                y[tr],
                scaler.transform(X[te]).astype(np.float32),
                y[te],
            )
        )
    return folds


def seed_style(folds: list, args: argparse.Namespace) -> tuple[float, int, float]:
    """(a): plain Keras fit per fold; returns (wall seconds, total epochs, mean test MSE)."""
    import keras

    total_epochs, mses = 0, []
    t0 = time.perf_counter()
    for k, (X, y, Xt, yt) in enumerate(folds):
        keras.utils.set_random_seed(args.seed + k)
        mean, std = (0.0, 1.0) if args.raw_target else (float(y.mean()), float(y.std()))
        if not args.raw_target:  # random validation rows, as KerasMLPRegressor
            order = np.random.default_rng(args.seed + k).permutation(len(y))
            X, y = X[order], y[order]
        model = keras.Sequential([keras.Input(shape=(X.shape[1],))])
        for _ in range(args.layers):
            model.add(keras.layers.Dense(args.units, activation="relu"))
        model.add(keras.layers.Dense(1))
        model.compile(optimizer=keras.optimizers.Adam(args.lr), loss="mse")
        stop = keras.callbacks.EarlyStopping(patience=args.patience, restore_best_weights=True)
        hist = model.fit(
            X,
            (y - mean) / std,
            validation_split=0.1,
            batch_size=64,
            epochs=args.epochs,
            callbacks=[stop],
            verbose=0,
        )
        total_epochs += len(hist.history["loss"])
        pred = model.predict(Xt, verbose=0).reshape(-1) * std + mean
        mses.append(float(np.mean((pred - yt) ** 2)))
    return time.perf_counter() - t0, total_epochs, float(np.mean(mses))


def fused(folds: list, args: argparse.Namespace, batch_size: int | None) -> tuple:
    """(b): KerasMLPRegressor.fit_predict_many; returns (wall s, total epochs, mean test MSE)."""
    est = KerasMLPRegressor(
        n_layers=args.layers,
        units=args.units,
        learning_rate=args.lr,
        batch_size=batch_size,
        max_epochs=args.epochs,
        patience=args.patience,
        validation_fraction=0.1,
        random_state=args.seed,
    )
    Xs, ys, Xts, yts = zip(*folds, strict=True)
    t0 = time.perf_counter()
    if args.fit_many:
        ests = est.fit_many(list(Xs), list(ys))
        preds = [e.predict(Xt) for e, Xt in zip(ests, Xts, strict=True)]
        wall = time.perf_counter() - t0
        epochs = sum(e.n_epochs_ for e in ests)
    else:
        preds, infos = est.fit_predict_many(list(Xs), list(ys), list(Xts), return_info=True)
        wall = time.perf_counter() - t0
        epochs = sum(info["n_epochs"] for info in infos)
    mse = float(np.mean([np.mean((p - yt) ** 2) for p, yt in zip(preds, yts, strict=True)]))
    return wall, epochs, mse


def warmup(folds: list) -> None:
    """One-off process start-up costs (TF runtime, first trace) of both methods, on a tiny
    architecture that is not reused: per-architecture tracing/compilation stays in the timings."""
    import keras

    X, y = folds[0][0], folds[0][1]
    model = keras.Sequential([keras.Input(shape=(X.shape[1],)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, y, validation_split=0.1, batch_size=64, epochs=2, verbose=0)
    model.predict(X, verbose=0)
    for bs in (None, 8):
        KerasMLPRegressor(n_layers=1, units=3, max_epochs=2, batch_size=bs).fit_predict_many(
            [X], [y], [X]
        )


def main() -> None:
    parser = Parser(
        description=__doc__.split("\n\n")[0] + " (a): a Keras fit() per fold; (b): the fused "
        "loop, full batch and batch 64."
    )
    parser.add_argument(
        "--data", default=None, help="homonuclear-159-24features.xlsx (default: as train finds it)"
    )
    parser.add_argument("--folds", type=at_least(2), default=5, help="K folds, one model each (5)")
    parser.add_argument("--epochs", type=at_least(1), default=300, help="max epochs (300)")
    parser.add_argument(
        "--patience", type=at_least(1), default=20, help="early-stopping patience (20)"
    )
    parser.add_argument("--layers", type=at_least(1), default=3, help="hidden layers (3)")
    parser.add_argument(
        "--units", type=at_least(1), default=288, help="units per hidden layer (288)"
    )
    parser.add_argument("--lr", type=positive, default=1e-3, help="Adam learning rate (1e-3)")
    parser.add_argument("--seed", type=at_least(0), default=0, help="seed of folds and weights (0)")
    parser.add_argument(
        "--repeats", type=at_least(1), default=1, help="fused runs (first one compiles)"
    )
    parser.add_argument(
        "--fit-many",
        action="store_true",
        help="time fit_many + predict instead of fit_predict_many",
    )
    parser.add_argument(
        "--skip-seed-style", action="store_true", help="time (b) only, without the fit() loop (a)"
    )
    parser.add_argument("--no-warmup", action="store_true", help="skip the start-up warm-up")
    parser.add_argument(
        "--raw-target",
        action="store_true",
        help="(a) on raw lg(k1) with Keras' last-rows validation_split (default: standardised "
        "target and shuffled rows, the same statistical procedure as (b))",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="keep TensorFlow's and Keras' own messages"
    )
    args = parser.parse_args()
    from n2react.device import configure

    # as train's device=auto: a visible GPU, else the CPU with CUDA hidden (no cuInit error line)
    configure({"name": "auto"}, uses_accelerator=True)
    import keras

    if args.data is not None and not os.path.isfile(args.data):
        parser.error(f"--data {args.data}: no such file")
    X, y = load(args.data or default_data())
    folds = make_folds(X, y, args.folds)
    print(
        f"backend={keras.backend.backend()} rows={len(y)} features={X.shape[1]} "
        f"folds={args.folds} arch={args.layers}x{args.units} lr={args.lr} "
        f"patience={args.patience} max_epochs={args.epochs} "
        f"N2REACT_TF_JIT_COMPILE={os.environ.get('N2REACT_TF_JIT_COMPILE', '(default)')}"
    )
    if not args.no_warmup:
        warmup(folds)
    rows = []
    if not args.skip_seed_style:
        rows.append(("(a) keras fit, batch 64", *seed_style(folds, args)))
    for bs in (None, 64):
        for rep in range(args.repeats):
            label = f"(b) fused, batch {bs or 'full'}" + (
                f" #{rep + 1}" if args.repeats > 1 else ""
            )
            rows.append((label, *fused(folds, args, bs)))

    print(f"{'method':32s} {'wall s':>8s} {'epochs':>7s} {'ms/model-epoch':>15s} {'val MSE':>8s}")
    for label, wall, epochs, mse in rows:
        print(f"{label:32s} {wall:8.2f} {epochs:7d} {1000 * wall / epochs:15.2f} {mse:8.4f}")
    if not args.skip_seed_style:
        per_a = rows[0][1] / rows[0][2]
        per_b = rows[1][1] / rows[1][2]
        if args.repeats > 1:
            print(f"ratio (warm, compiled): {per_a / (rows[2][1] / rows[2][2]):.1f}")
        print(f"ratio: {per_a / per_b:.1f}")


if __name__ == "__main__":
    from n2react.errors import run_script

    raise SystemExit(run_script(main))
