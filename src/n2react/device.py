"""Device placement (conf/device): auto, cpu or gpu, decided before TensorFlow or JAX start.

scikit-learn models always run on the CPU. For the Keras MLP, ``auto`` takes a GPU when one is
visible, ``gpu`` insists on one (a clear error otherwise), and in a multirun each job takes the
GPU ``job number % visible GPUs``, so parallel jobs spread over the GPUs instead of piling on one.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from n2react.errors import ConfigError

log = logging.getLogger(__name__)


def visible_gpus() -> list[str]:
    """GPUs this process may use, from ``nvidia-smi -L`` filtered by CUDA_VISIBLE_DEVICES."""
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
    gpus = [line.strip() for line in out.stdout.splitlines() if line.startswith("GPU ")]
    if mask is not None:
        wanted = [m.strip() for m in mask.split(",")]
        gpus = [g for i, g in enumerate(gpus) if str(i) in wanted or any(w in g for w in wanted)]
    return gpus


def pick_gpu(job_num: int | None, n_gpus: int) -> int:
    """Round robin: job k of a multirun gets GPU k % n_gpus (job None = a single run: GPU 0)."""
    return 0 if job_num is None or n_gpus == 0 else int(job_num) % n_gpus


def _backend_started() -> bool:
    return any(m in sys.modules for m in ("tensorflow", "jax"))


def configure(
    cfg: Mapping[str, Any],
    uses_accelerator: bool = False,
    job_num: int | None = None,
    gpus: Sequence[str] | None = None,
) -> str:
    """Apply the device choice to this process and return the device used, in words.

    Call it before the deep-learning backend is imported: the GPU choice is made by setting
    CUDA_VISIBLE_DEVICES (plus memory growth, and optionally mixed precision).
    """
    name = str(cfg.get("name", "auto"))
    if name not in ("auto", "cpu", "gpu"):
        raise ConfigError(f"device.name={name!r}: expected auto, cpu or gpu")
    gpus = list(visible_gpus() if gpus is None else gpus) if name != "cpu" else []
    if name == "gpu" and not gpus:
        raise ConfigError(
            "device=gpu: no GPU is visible to this process (nvidia-smi lists none or "
            "CUDA_VISIBLE_DEVICES hides them); use device=auto or device=cpu"
        )
    if not gpus or not uses_accelerator:
        if gpus:
            log.info("a GPU is visible but this model runs on the CPU")
        if cfg.get("mixed_precision") and uses_accelerator:
            log.warning("device.mixed_precision=true: not applied on the CPU (float32 is used)")
        elif not _backend_started():
            os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
        return "cpu"
    index = pick_gpu(job_num, len(gpus))
    if _backend_started():
        log.warning("the backend was already started: device placement left to it")
    else:
        mask = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = [m.strip() for m in mask.split(",")] if mask else [str(i) for i in range(len(gpus))]
        os.environ["CUDA_VISIBLE_DEVICES"] = ids[index]
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if cfg.get("mixed_precision"):
        from n2react.backend import import_quietly

        import_quietly("keras").mixed_precision.set_global_policy("mixed_float16")
    return f"gpu {index}: {gpus[index]}"


def backend_devices() -> list[str]:
    """The accelerators the Keras backend itself sees (after import)."""
    from n2react.backend import import_quietly

    keras = import_quietly("keras")
    backend = keras.backend.backend()
    if backend == "jax":
        jax = import_quietly("jax")
        return [str(d) for d in jax.devices() if d.platform != "cpu"]
    if backend == "tensorflow":
        tf = import_quietly("tensorflow")
        return [d.name for d in tf.config.list_physical_devices("GPU")]
    return []


def place(
    cfg: Mapping[str, Any], uses_accelerator: bool = False, job_num: int | None = None
) -> str:
    """:func:`configure`, then check that the Keras backend really sees the chosen GPU: with
    ``device=gpu`` a backend that cannot use it is an error, with ``auto`` a fallback to the CPU."""
    used = configure(cfg, uses_accelerator=uses_accelerator, job_num=job_num)
    if uses_accelerator:
        from n2react.backend import keras_module

        keras_module()  # KERAS_BACKEND=jax without jax: one line now, not a traceback later
    if uses_accelerator and used != "cpu" and not backend_devices():
        if str(cfg.get("name", "auto")) == "gpu":
            raise ConfigError("device=gpu: a GPU is visible but the Keras backend cannot use it")
        log.warning("a GPU is visible but the Keras backend cannot use it: running on the CPU")
        return "cpu"
    return used
