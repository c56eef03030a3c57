"""The Keras MLP inside the trainer: nested search, Hyperband, MLflow keras flavour, devices."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from n2react import device
from n2react.data import load_dataset
from n2react.errors import ConfigError
from n2react.run import run

FAST = (
    "model=keras_mlp",
    "model.estimator.max_epochs=60",
    "model.estimator.patience=10",
    "model.estimator.units=32",
    "cv.outer_folds=3",
    "cv.inner_folds=3",
    "explain=false",  # explanations of a Keras run: tests/test_explain.py, test_options.py
)


def test_nested_random_search_logs_trials_and_both_model_flavours(
    make_cfg, tmp_path: Path, n2react_runs
) -> None:
    cfg = make_cfg(*FAST, "search=random", "search.max_trials=3")
    metrics = run(cfg, tmp_path / "run")
    assert np.isfinite(metrics["mean_test_rmse"]) and metrics["mean_test_r"] > 0.3
    client = MlflowClient(cfg.tracking.uri)
    (parent,), children = n2react_runs(cfg.tracking.uri)
    assert len(children) == 3
    for c in children:
        assert {"best.model__units", "best.model__learning_rate"} <= set(c.data.params)
        trials = client.download_artifacts(c.info.run_id, "trials.csv")
        import pandas as pd

        table = pd.read_csv(trials)
        assert len(table) == 3 and {"model__units", "inner_rmse", "score"} <= set(table.columns)
    assert parent.data.tags["device"] == "cpu"
    # the Keras-flavour model takes raw descriptors and predicts like the scikit-learn pipeline
    mlflow.set_tracking_uri(cfg.tracking.uri)
    keras_model = mlflow.pyfunc.load_model(parent.data.tags["keras_model_uri"])
    sk_model = mlflow.pyfunc.load_model(parent.data.tags["model_uri"])
    assert keras_model.metadata.signature is not None
    X = load_dataset(cfg.data).X.dropna().head(20)
    a = np.asarray(keras_model.predict(X.to_numpy(dtype="float32"))).ravel()
    b = np.asarray(sk_model.predict(X)).ravel()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_a_run_without_tracking_records_its_device(make_cfg, tmp_path: Path, caplog) -> None:
    # with tracking=none the device was only in MLflow's tags: no run file nor log line said
    # whether device=auto had found a GPU
    import json

    cfg = make_cfg(
        "model=keras_mlp", "model.estimator.max_epochs=3", "cv.outer_folds=2", "explain=false",
        "final_model=false", "tracking=none", "device=auto",
    )  # fmt: skip
    with caplog.at_level("INFO", logger="n2react.run"):
        run(cfg, tmp_path / "run")
    made = json.loads((tmp_path / "run" / "run.json").read_text())
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    used = made["device"]
    assert used == "cpu" or used.startswith("gpu 0: "), made
    assert made["keras_backend"] == backend
    said = [r.getMessage() for r in caplog.records if r.name == "n2react.run"]
    assert f"keras_mlp runs on {used} (Keras backend {backend})" in said


def test_same_seed_same_metrics_on_cpu(make_cfg, tmp_path: Path) -> None:
    over = (*FAST, "tracking=none", "final_model=false")
    a = run(make_cfg(*over), tmp_path / "a")
    b = run(make_cfg(*over), tmp_path / "b")
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-6), k


def test_hyperband_sets_the_epoch_budget(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(
        *FAST,
        "search=hyperband",
        "search.oracle.max_epochs=3",
        "tracking=none",
        "final_model=false",
        "cv.outer_folds=2",
        "cv.inner_folds=2",
    )
    run(cfg, tmp_path)
    import pandas as pd

    trials = pd.read_csv(tmp_path / "folds" / "fold_01" / "trials.csv")
    # brackets of max_epochs 3, factor 3: three trials of 1 epoch, the best one again for 3,
    # and two of 3 epochs (never the model's own max_epochs=60)
    assert set(trials["tuner/epochs"]) == {1, 3} and len(trials) > 3


def test_hyperband_needs_an_epoch_model(make_cfg, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="search=hyperband: the model is not trained in epochs"):
        run(make_cfg("model=svr", "search=hyperband", "tracking=none"), tmp_path)


def test_bayesian_oracle_drives_a_scikit_learn_model(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(
        "model=svr", "search=bayesian", "search.max_trials=6", "cv.outer_folds=3",
        "tracking=none", "final_model=false",
    )  # fmt: skip
    metrics = run(cfg, tmp_path)
    assert metrics["mean_test_r"] > 0.4


def test_round_robin_gpu_assignment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [device.pick_gpu(k, 3) for k in range(5)] == [0, 1, 2, 0, 1]
    assert device.pick_gpu(None, 2) == 0
    # in a fresh interpreter (no backend yet) job 3 of a multirun on 2 GPUs takes GPU 1
    code = (
        "import os\n"
        "from n2react import device\n"
        "gpus = ['GPU 0: a', 'GPU 1: b']\n"
        "used = device.configure({'name': 'auto'}, True, job_num=3, gpus=gpus)\n"
        "print(used, os.environ['CUDA_VISIBLE_DEVICES'], os.environ['TF_FORCE_GPU_ALLOW_GROWTH'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["gpu", "1:", "GPU", "1:", "b", "1", "true"], out.stderr


def test_gpu_required_without_one_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="device=gpu: no GPU is visible"):
        device.configure({"name": "gpu"}, True, gpus=[])


def test_mixed_precision_on_the_cpu_says_it_is_not_applied(caplog) -> None:
    # device.mixed_precision=true on a machine without a GPU was dropped without a word
    with caplog.at_level("WARNING", logger="n2react.device"):
        assert device.configure({"name": "auto", "mixed_precision": True}, True, gpus=[]) == "cpu"
    said = [r.getMessage() for r in caplog.records if r.name == "n2react.device"]
    assert said == ["device.mixed_precision=true: not applied on the CPU (float32 is used)"]


def test_a_keras_backend_that_is_not_installed_is_one_line(tmp_path: Path) -> None:
    """KERAS_BACKEND=jax where jax is missing: training and loading a Keras model file each say
    so in one line (they were an ImportError traceback, and 'not a readable model file')."""
    import importlib.util

    from n2react import runstore
    from n2react.models.keras_mlp import KerasMLPRegressor

    missing = next((b for b in ("jax", "torch") if importlib.util.find_spec(b) is None), None)
    if missing is None:
        pytest.skip("jax and torch are both installed here")
    env = {**os.environ, "KERAS_BACKEND": missing, "HYDRA_FULL_ERROR": "0"}
    cmd = [sys.executable, "-m", "train", *FAST, "final_model=false", "progress=false"]
    out = subprocess.run(
        [*cmd, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("n2react: error:")]
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert errors == [errors[0]] and f"KERAS_BACKEND={missing}: Keras cannot start" in errors[0]
    # it said "install it" without what (jax: jax, or jax[cuda12] for a GPU)
    if missing == "jax":
        assert 'pip install "jax[cuda12]" for a GPU or "jax" for the CPU' in errors[0], errors[0]
        assert "or unset KERAS_BACKEND to run on TensorFlow" in errors[0], errors[0]
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    path = runstore.save_model(KerasMLPRegressor(max_epochs=2).fit(X, y), tmp_path / "m.skops")
    code = (
        "import sys\nfrom n2react.runstore import load_model_file\n"
        "try:\n    load_model_file(sys.argv[1])\nexcept Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env
    )
    assert out.stdout.startswith(f"ConfigError KERAS_BACKEND={missing}: Keras cannot"), out


def test_a_keras_run_stays_quiet_with_tf_cpp_min_log_level_2(tmp_path: Path) -> None:
    """TF_CPP_MIN_LOG_LEVEL=2, the usual way to hush TensorFlow, set by the user (and by
    conftest): a CPU-only run printed TensorFlow's "E0000 ... cuda_platform.cc:52] failed call to
    cuInit: ... UNKNOWN ERROR (303)" among its log lines; without -v it is hidden too."""
    cmd = [
        sys.executable, "-m", "train", *FAST, "cv.outer_folds=2", "model.estimator.max_epochs=5",
        "final_model=false", "uncertainty.enabled=false", "tracking=none", "progress=false",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    for chatter in ("cuInit", "E0000", "oneDNN", "absl"):
        assert chatter not in out.stderr + out.stdout, out.stderr[-2000:]


def _quiet_grid_sweep(tmp_path: Path, *extra: str) -> None:
    """``+sweep=grid`` of the Keras MLP into ``tmp_path/multi``: it succeeds, and TensorFlow's
    native start-up lines (oneDNN, CUDA, absl) stay hidden without -v."""
    cmd = [
        sys.executable, "-m", "train", *FAST, "+sweep=grid", "search=none", "final_model=false",
        "progress=false", *extra, f"hydra.sweep.dir={tmp_path / 'multi'}", "-m",
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    for chatter in ("absl::InitializeLog", "oneDNN custom operations", "cuda drivers"):
        assert chatter not in out.stderr + out.stdout, chatter


@pytest.mark.slow
def test_a_parallel_keras_sweep_names_what_still_varies_and_stays_quiet(
    tmp_path: Path, n2react_runs
) -> None:
    """``+sweep=grid`` with the depth fixed on the command line, two jobs at once in the joblib
    launcher's worker processes: the runs are named by the dropout (the one axis left; names cut
    after ``n_layers=1`` were the same for every job), and TensorFlow's start-up lines stay hidden
    in the workers too."""
    import pandas as pd

    _quiet_grid_sweep(
        tmp_path, "explain=false", "model.estimator.n_layers=1", "hydra/launcher=parallel"
    )
    parents, _ = n2react_runs(tmp_path)
    names = {r.info.run_name for r in parents}
    assert names == {"keras_mlp dropout=0", "keras_mlp dropout=0.2"}, names
    board = pd.read_csv(tmp_path / "multi" / "leaderboard.csv")
    assert set(board["name"]) == names


@pytest.mark.slow
def test_keras_sweep_runs_depth_by_dropout(tmp_path: Path, n2react_runs) -> None:
    _quiet_grid_sweep(tmp_path, "cv.outer_folds=2")
    parents, _ = n2react_runs(tmp_path)
    grid = {
        (r.data.params["model.estimator.n_layers"], r.data.params["model.estimator.dropout"])
        for r in parents
    }
    assert len(parents) == 6 and len(grid) == 6
    assert {r.data.params["scaler.name"] for r in parents} == {"standard"}


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        # learning_rate=10 scored RMSE ~1e3-1e12 with no word (the loss stayed finite)
        (("model.estimator.learning_rate=10",),
         "outer fold 1: the network's best validation loss (MSE "),
        ((), None),  # the default learning rate converges
    ],
)  # fmt: skip
def test_a_network_far_worse_than_the_mean_says_which_key_to_lower(
    make_cfg, tmp_path: Path, caplog, overrides: tuple[str, ...], said: str | None
) -> None:
    from n2react.plan import build_plan
    from n2react.run import cross_validate

    plan = build_plan(
        make_cfg(*FAST, "cv.outer_folds=2", "model.estimator.max_epochs=20", *overrides)
    )
    dataset = load_dataset(plan.data)
    with caplog.at_level("WARNING", logger="n2react.cv"):
        cross_validate(plan, dataset, tmp_path)
    lines = [r.getMessage() for r in caplog.records if "did not converge" in r.getMessage()]
    if said is None:
        assert lines == []
        return
    assert len(lines) == 1 and lines[0].startswith(said)  # once per run, naming the fold
    assert lines[0].endswith(
        "training did not converge; lower model.estimator.learning_rate (10 here); said for the "
        "first such outer fold only"
    )


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        # the final model (the one saved, that predict uses) was never checked
        (("final_model=true",), "final model (all 159 clusters): the network's best validation "),
        # nor the pair split's network
        (("pairwise=on", "cv.scheme=pair_split"), "pair split: the network's best validation "),
    ],
)  # fmt: skip
def test_the_final_model_and_the_pair_split_say_a_network_did_not_converge(
    make_cfg, tmp_path: Path, caplog, overrides: tuple[str, ...], said: str
) -> None:
    cfg = make_cfg(
        *FAST, "cv.outer_folds=2", "model.estimator.max_epochs=20", "tracking=none",
        "model.estimator.learning_rate=10", *overrides,
    )  # fmt: skip
    with caplog.at_level("WARNING", logger="n2react.cv"):
        run(cfg, tmp_path / "run")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(said)]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    assert lines[0].endswith(
        "training did not converge; lower model.estimator.learning_rate (10 here)"
    )
