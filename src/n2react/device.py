"""Device placement (conf/device): auto, cpu or gpu, decided before any framework import."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from n2react.errors import ConfigError

log = logging.getLogger(__name__)


def visible_gpus() -> list[str]:
    """GPUs this process may use, by ``nvidia-smi -L`` and CUDA_VISIBLE_DEVICES."""
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is not None and mask.strip() in ("", "-1"):
        return []
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    gpus = [line for line in out.stdout.splitlines() if line.startswith("GPU ")]
    if mask is not None:
        wanted = {m.strip() for m in mask.split(",")}
        gpus = [g for i, g in enumerate(gpus) if str(i) in wanted or any(w in g for w in wanted)]
    return gpus


def configure(cfg: Mapping[str, Any], uses_accelerator: bool = False) -> str:
    """Apply the device choice to the environment and return the device actually used.

    Must run before TensorFlow or JAX is imported. scikit-learn models always run on the CPU.
    """
    name = str(cfg.get("name", "auto"))
    if name not in ("auto", "cpu", "gpu"):
        raise ConfigError(f"device.name={name!r}: expected auto, cpu or gpu")
    gpus = [] if name == "cpu" else visible_gpus()
    if name == "gpu" and not gpus:
        raise ConfigError(
            "device=gpu: no GPU is visible to this process (nvidia-smi lists none or "
            "CUDA_VISIBLE_DEVICES hides them); use device=auto or device=cpu"
        )
    if name == "cpu" or not gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = (
            "-1" if name == "cpu" else os.environ.get("CUDA_VISIBLE_DEVICES", "") or "-1"
        )
        return "cpu"
    if not uses_accelerator:
        log.info("a GPU is visible but this model runs on the CPU")
        return "cpu"
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if cfg.get("mixed_precision"):
        import keras

        keras.mixed_precision.set_global_policy("mixed_float16")
    return f"gpu ({gpus[0]})"
