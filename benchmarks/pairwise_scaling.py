"""How pairwise learning scales with the number of training clusters.

Prints, for n training clusters (sampled from the 159), the pair count n(n-1), the time to build
all pair differences, and the time to fit + predict a pairwise model (Ridge, and the Keras MLP
with the fused engine, full batch) with 16 held-out clusters predicted against all references.

    python benchmarks/pairwise_scaling.py [--data PATH] [--epochs 200]
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from n2react.arguments import Parser, at_least  # noqa: E402
from n2react.models.keras_mlp import KerasMLPRegressor  # noqa: E402
from n2react.models.pairwise import PairwiseRegressor, make_pairs  # noqa: E402


def default_data() -> str:
    """The 24-descriptor file as `python -m train` finds it: ``$N2_DATA_DIR``, else the copy
    fetched once into the cache (a clear error when neither works)."""
    from n2react.compose import compose_config
    from n2react.data.files import locate

    d = compose_config(["data=homonuclear_24"]).data
    return str(locate(d.file, url=d.get("url"), sha256=d.get("sha256")))


def main() -> None:
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", default=None, help="homonuclear-159-24features.xlsx (default: as train finds it)"
    )
    parser.add_argument(
        "--epochs", type=at_least(1), default=200, help="the MLP's max epochs (200)"
    )
    args = parser.parse_args()
    if args.data is not None and not os.path.isfile(args.data):
        parser.error(f"--data {args.data}: no such file")
    df = pd.read_excel(args.data or default_data())
    y = df.iloc[:, 1].to_numpy(float)
    X = df.iloc[:, 2:].astype(float).replace(-999.0, np.nan)
    X = StandardScaler().fit_transform(X.fillna(X.median()))
    rng = np.random.default_rng(0)
    print(f"{'n':>4} {'pairs':>7} {'build s':>8} {'ridge s':>8} {'mlp s':>8} {'mlp epochs':>10}")
    for n in (40, 80, 120, 143):
        idx = rng.permutation(len(y))
        tr, te = idx[:n], idx[n : n + 16]
        t0 = time.perf_counter()
        dX, _ = make_pairs(X[tr], y[tr])
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        PairwiseRegressor(Ridge()).fit(X[tr], y[tr]).predict(X[te])
        ridge = time.perf_counter() - t0
        mlp = KerasMLPRegressor(units=64, max_epochs=args.epochs, patience=20, random_state=0)
        t0 = time.perf_counter()
        model = PairwiseRegressor(mlp, random_state=0).fit(X[tr], y[tr])
        model.predict(X[te])
        fused = time.perf_counter() - t0
        epochs = model.base_.n_epochs_
        print(f"{n:>4} {len(dX):>7} {build:>8.4f} {ridge:>8.3f} {fused:>8.2f} {epochs:>10}")


if __name__ == "__main__":
    from n2react.errors import run_script

    raise SystemExit(run_script(main))
