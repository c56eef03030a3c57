"""Cluster launchers ask for GPUs only for models that use them, and a missing backend is one
clear line (the real command, off a cluster)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from n2react.compose import compose_config

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def launcher_cfg(model: str, launcher: str):
    return compose_config(
        [f"model={model}", f"hydra/launcher={launcher}"], return_hydra_config=True
    )


def test_every_model_declares_its_gpus() -> None:
    for path in (CONF / "model").glob("*.yaml"):
        gpus = OmegaConf.load(path).get("gpus")
        assert gpus == (1 if path.stem == "keras_mlp" else 0), path.name


def test_slurm_asks_a_gpu_for_keras_only() -> None:
    keras = launcher_cfg("keras_mlp", "slurm")
    svr = launcher_cfg("svr", "slurm")
    assert OmegaConf.select(keras, "hydra.launcher.gpus_per_node") == 1
    assert OmegaConf.select(svr, "hydra.launcher.gpus_per_node") == 0


@pytest.mark.parametrize(("gpus"), [0, 1])
def test_ray_num_gpus_follows_the_model(gpus: int) -> None:
    # the Ray launcher plugin is an optional extra: check the YAML's interpolation itself
    launcher = OmegaConf.load(CONF / "hydra" / "launcher" / "ray_cluster.yaml")
    del launcher["defaults"]
    cfg = OmegaConf.create({"model": {"gpus": gpus}, "hydra": {"launcher": launcher}})
    assert cfg.hydra.launcher.ray.remote.num_gpus == gpus


def _train(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HYDRA_FULL_ERROR": "0", **(env or {})}
    model = [] if any(a.startswith("model=") for a in args) else ["model=ridge"]
    cmd = [sys.executable, "-m", "train", *model, "tracking=none", *args, "-m"]
    return subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=120)


def _one_error(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("n2react: error:")]
    assert len(lines) == 1, out.stderr[-2000:]
    return lines[0]


@pytest.mark.skipif(shutil.which("srun") is not None, reason="on a SLURM cluster")
def test_slurm_without_srun_is_one_line(tmp_path: Path) -> None:
    line = _one_error(_train(tmp_path, "hydra/launcher=slurm"))
    assert "hydra/launcher=slurm: srun" in line and "not found" in line


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None,
    reason="the Ray launcher plugin is installed",
)
def test_ray_without_its_plugin_is_one_line(tmp_path: Path) -> None:
    line = _one_error(_train(tmp_path, "hydra/launcher=ray_cluster"))
    assert "hydra/launcher=ray_cluster" in line and "not installed" in line


def test_backend_problem_names_a_missing_ray_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    from n2react import launchers

    launcher = {"_target_": "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"}
    launcher["ray"] = {"init": {"address": "auto"}}
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    problem = launchers.backend_problem(launcher)
    if importlib.util.find_spec("ray") is None:
        assert problem is not None and "ray is not installed" in problem
    else:
        if not launchers.RAY_CURRENT_CLUSTER.exists():
            assert problem is not None and "no running Ray cluster" in problem
    basic = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}
    assert launchers.backend_problem(basic) is None


@pytest.mark.slow
def test_ctrl_c_of_a_parallel_sweep_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    # Ctrl-C (SIGINT to the whole process group) of hydra/launcher=parallel: the launcher's own
    # wait in joblib raised KeyboardInterrupt through Hydra, a 40-line traceback; then it wrote
    # no leaderboard and did not say which jobs never ran (the basic launcher's line does)
    import signal
    import time

    import pandas as pd

    sweep = tmp_path / "multi"  # 2 jobs at a time: ridge (job 2) waits for a free worker
    cmd = [sys.executable, "-m", "train", "model=gbr,extra_trees,ridge", "cv.outer_folds=5",
           "tracking=none", "explain=false", "final_model=false", "progress=false",
           "hydra/launcher=parallel", f"hydra.sweep.dir={sweep}", "-m"]  # fmt: skip
    job = subprocess.Popen(
        cmd, cwd=tmp_path, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300
        while not list(sweep.glob("*/folds/fold_01/fold.json")):
            assert job.poll() is None and time.monotonic() < deadline, "no fold finished"
            time.sleep(0.05)
        os.killpg(job.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        _, err = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 130 and "Traceback" not in err, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("n2react: interrupted (SIGINT)")]
    assert any("the sweep stopped" in ln and "resume=" in ln for ln in lines), err[-3000:]
    assert (
        f"n2react: the sweep stopped before job 2 ran; {sweep / 'leaderboard.md'} lists it "
        "with its overrides"
    ) in err.splitlines(), err[-3000:]
    board = pd.read_csv(sweep / "leaderboard.csv")
    assert list(board["status"]) == ["unfinished", "unfinished", "not run"]
    assert board["overrides"].iloc[2].startswith("model=ridge")


def _fake_slurm(tmp: Path, sbatch: str | None) -> dict[str, str]:
    """A PATH with a stand-in ``srun`` (and ``sbatch`` printing ``sbatch`` to stderr, exit 1)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", "exit 1"), ("sbatch", sbatch)):
        if text is not None:
            (bin_dir / name).write_text(f"#!/bin/sh\n{text}\n")
            (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="the SLURM launcher plugin is not installed",
)
def test_slurm_with_srun_but_no_sbatch_is_one_line(tmp_path: Path) -> None:
    # srun there, sbatch not: submitit's FileNotFoundError: 'sbatch', a traceback
    if shutil.which("sbatch") is not None:
        pytest.skip("on a SLURM cluster")
    out = _train(tmp_path, "hydra/launcher=slurm", env=_fake_slurm(tmp_path, None))
    assert "hydra/launcher=slurm: sbatch not found" in _one_error(out)


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="the SLURM launcher plugin is not installed",
)
def test_a_submission_sbatch_refuses_is_one_line(tmp_path: Path) -> None:
    # sbatch refusing the array (a partition the cluster lacks): submitit's FailedJobError,
    # a 40-line traceback through Hydra, exit 1
    refuse = (
        'echo "sbatch: error: invalid partition specified: gpu" >&2\n'
        'echo "sbatch: error: Batch job submission failed: Invalid partition name specified" >&2'
        "\nexit 1"
    )
    env = _fake_slurm(tmp_path, refuse)
    out = _train(
        tmp_path, "seed=1,2", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", env=env
    )
    assert _one_error(out) == (
        "n2react: error: hydra/launcher=slurm: sbatch refused the jobs, none was submitted: "
        "invalid partition specified: gpu; Batch job submission failed: Invalid partition name "
        "specified"
    )


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="the SLURM launcher plugin is not installed",
)
@pytest.mark.parametrize(
    ("overrides", "gpus"),
    [
        # the yaml's ${model.gpus} read the default model (rfr, 0): the Keras job got no GPU
        (["model=ridge,keras_mlp"], 1),
        (["model=keras_mlp,ridge", "device=cpu"], 0),  # it hides the GPUs: none asked
        (["model=ridge,svr"], 0),
        (["model=ridge,keras_mlp", "hydra.launcher.gpus_per_node=2"], 2),  # as given
        (["model=ridge,keras_mlp", "hydra.launcher.gpus_per_node=0"], 0),
    ],
)
def test_the_slurm_array_asks_the_gpus_its_jobs_need(
    tmp_path: Path, overrides: list[str], gpus: int
) -> None:
    script = tmp_path / "sbatch_script.sh"
    keep = f'for a in "$@"; do [ -f "$a" ] && cp "$a" {script}; done\necho stop >&2\nexit 1'
    out = _train(tmp_path, *overrides, "hydra/launcher=slurm", env=_fake_slurm(tmp_path, keep))
    assert _one_error(out).endswith("none was submitted: stop")
    asked = [ln for ln in script.read_text().splitlines() if "gpu" in ln.lower()]
    # none asked: no line (`--gpus-per-node=0` is a GRES request a cluster without GRES refuses)
    assert asked == ([f"#SBATCH --gpus-per-node={gpus}"] if gpus else []), script.read_text()
    assert "#SBATCH --cpus-per-task=4" in script.read_text().splitlines()  # the rest as before


def test_every_launcher_extra_is_declared_and_the_readme_names_it() -> None:
    # the line a missing plugin gives (pip install -e ".[ray]") must name an extra that exists
    # and installs that plugin, and the README must say the same
    import tomllib

    from n2react.launchers import PLUGINS

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = extras["optional-dependencies"]
    readme = (ROOT / "README.md").read_text()
    for launcher, (package, extra) in PLUGINS.items():
        dist = package.split(".")[-1].replace("_", "-")  # hydra_ray_launcher: hydra-ray-launcher
        assert any(req.startswith(dist) for req in extras[extra]), (launcher, extras[extra])
        assert f"`hydra/launcher={launcher}`" in readme and f'pip install -e ".[{extra}]"' in readme
        assert (CONF / "hydra" / "launcher" / f"{launcher}.yaml").is_file()
    # the ray extra's pin, which the README warns of (it downgrades the main environment)
    assert "cloudpickle<3" in readme.replace("\n", " ")
