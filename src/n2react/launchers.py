"""Check that a cluster launcher's backend is there before a sweep starts.

Off a SLURM cluster submitit fails deep inside Hydra with a traceback (`Could not detect "srun"`,
or `No such file or directory: 'sbatch'` where srun is there but sbatch is not);
an unreachable Ray cluster fails inside ``ray.init``. :class:`BackendCheck` (a Hydra callback,
``hydra.callbacks.backend_check`` in ``conf/config.yaml``) checks first and ends the sweep with one
line and exit status 2.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

#: Where ``ray.init(address="auto")`` looks for the address of a cluster started on this machine.
RAY_CURRENT_CLUSTER = Path("/tmp/ray/ray_current_cluster")


#: Our launcher configs and the Hydra plugin (package, extra) each needs.
PLUGINS = {
    "ray_cluster": ("hydra_plugins.hydra_ray_launcher", "ray"),
    "slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
}


def plugin_problem(argv: list[str]) -> str | None:
    """Why a ``hydra/launcher=...`` override on the command line cannot compose (its Hydra
    plugin is not installed); None when it can. Hydra itself would say only "Could not load"."""
    for arg in argv:
        key, _, value = arg.lstrip("+~").partition("=")
        if key != "hydra/launcher" or value not in PLUGINS:
            continue
        package, extra = PLUGINS[value]
        try:
            found = importlib.util.find_spec(package) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return (
                f"hydra/launcher={value}: its Hydra plugin ({package.split('.')[-1]}) is not "
                f'installed (pip install -e ".[{extra}]")'
            )
    return None


def backend_problem(launcher: DictConfig | dict[str, Any]) -> str | None:
    """Why the launcher's backend cannot run here (None = it can, or it is not a cluster one)."""
    target = str(OmegaConf.select(OmegaConf.create(launcher), "_target_", default="") or "")
    if "submitit" in target.lower() and "slurm" in target.lower():
        # submitit needs both: srun to start, sbatch to submit (without it: a traceback)
        missing = [cmd for cmd in ("srun", "sbatch") if shutil.which(cmd) is None]
        if missing:
            return (
                f"hydra/launcher=slurm: {' and '.join(missing)} not found (not on a SLURM login "
                "node?); run the sweep on the cluster, or use hydra/launcher=parallel here"
            )
    if "ray" in target.lower():
        if importlib.util.find_spec("ray") is None:
            return 'hydra/launcher=ray_cluster: ray is not installed (pip install -e ".[ray]")'
        address = OmegaConf.select(OmegaConf.create(launcher), "ray.init.address", default=None)
        local = os.environ.get("RAY_ADDRESS") or RAY_CURRENT_CLUSTER.exists()
        if address == "auto" and not local:
            return (
                "hydra.launcher.ray.init.address=auto: no running Ray cluster found "
                "(start one with `ray start --head`, or give its address)"
            )
    return None


def exit_with(message: str) -> None:
    """End the process the way the CLI ends on bad input: one line, exit status 2."""
    sys.stderr.write(f"n2react: error: {message}\n")
    sys.stderr.flush()
    sys.exit(2)


class BackendCheck(Callback):
    """Hydra callback: before a multirun, refuse a cluster launcher whose backend is missing."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        problem = backend_problem(config.hydra.launcher)
        if problem:
            exit_with(problem)
