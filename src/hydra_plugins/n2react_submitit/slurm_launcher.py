"""``hydra/launcher=slurm``: submitit's SLURM launcher, with a refused submission as one line.

Off a cluster, :class:`n2react.launchers.BackendCheck` ends the sweep before this runs (no
``srun``/``sbatch``). On one, ``sbatch`` can still refuse the job array: a partition, account,
QOS, time limit or GPU request the cluster does not have (the README's
``hydra.launcher.partition=gpu`` is an example, not every cluster's name). submitit raises its
``FailedJobError`` with sbatch's message from deep inside Hydra, a 40-line traceback; here the
sweep ends with sbatch's own message in one line and exit status 2, having submitted nothing.
It also asks each job's GPUs from the jobs themselves (see ``SlurmLauncher._gpus_per_node``),
and a CPU-only array asks none: no ``--gpus-per-node`` line rather than ``--gpus-per-node=0``.

The plugin is an optional extra (``pip install -e ".[slurm]"``): without it this module defines
no launcher, and ``python -m train`` says how to install it
(:func:`n2react.launchers.plugin_problem`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from omegaconf import OmegaConf

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
        SlurmLauncher as _SubmititSlurm,
    )
except ImportError:  # the [slurm] extra is not installed
    _SubmititSlurm = None


def refusal_line(message: str) -> str:
    """sbatch's message (often several lines) as the one error line a refused sweep ends with."""
    lines = (line.strip() for line in str(message).splitlines())
    said = "; ".join(re.sub(r"^sbatch:\s*(error:\s*)?", "", line) for line in lines if line)
    return (
        "hydra/launcher=slurm: sbatch refused the jobs, none was submitted: "
        f"{said or '(no message)'}"
    )


#: the launcher key a command line may set itself (then it is left as given)
GPUS_KEY = "hydra.launcher.gpus_per_node"

if _SubmititSlurm is not None:

    class SlurmLauncher(_SubmititSlurm):  # type: ignore[misc, valid-type]
        """submitit's SLURM launcher; a submission sbatch refuses ends the sweep in one line."""

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
            from submitit.core.utils import FailedJobError

            from n2react.launchers import exit_with

            # none asked: no --gpus-per-node line at all (submitit leaves out a None), since
            # `#SBATCH --gpus-per-node=0` is a GPU request a cluster without GRES may refuse
            self.params["gpus_per_node"] = self._gpus_per_node(job_overrides) or None
            try:
                return super().launch(job_overrides, initial_job_idx)
            except FailedJobError as exc:
                exit_with(refusal_line(str(exc)))

        def _gpus_per_node(self, job_overrides: Sequence[Sequence[str]]) -> Any:
            """The GPUs each job of the array asks for: the yaml's ``${model.gpus}`` resolves
            against the sweep's base config (the default model), not each job's, so
            ``model=ridge,keras_mlp`` asked none and the Keras job ran on the CPU. One array
            takes one setting: the most any job needs (its ``model.gpus``, 0 with
            ``device=cpu``). A ``hydra.launcher.gpus_per_node`` given on the command line wins."""
            assert self.config is not None and self.hydra_context is not None
            given = self.config.hydra.overrides.hydra
            if any(str(o).split("=", 1)[0].lstrip("+~") == GPUS_KEY for o in given):
                return self.params.get("gpus_per_node")
            loader = self.hydra_context.config_loader
            needs = []
            for overrides in job_overrides:
                job = loader.load_sweep_config(self.config, list(overrides))
                cpu = str(OmegaConf.select(job, "device.name", default="auto")) == "cpu"
                needs.append(0 if cpu else int(OmegaConf.select(job, "model.gpus", default=0)))
            return max(needs, default=0)
