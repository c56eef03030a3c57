"""`python -m train [overrides]`: nested-CV training, configured by Hydra (see conf/)."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

log = logging.getLogger("n2react")
# A short random tag per process for the run directory (conf/config.yaml, hydra.run.dir).
OmegaConf.register_new_resolver("n2react_uid", lambda: secrets.token_hex(3), use_cache=True)
CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "conf")


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    """Compose the config, run the task, return the optimised metric (for sweepers)."""
    from n2react.errors import N2ReactError
    from n2react.run import run

    signal.signal(signal.SIGTERM, _terminate)
    try:
        hc = HydraConfig.get()
        job_num = OmegaConf.select(hc, "job.num") if hc.mode == RunMode.MULTIRUN else None
        metrics = run(cfg, hc.runtime.output_dir, job_num=job_num)
    except N2ReactError as exc:
        log.debug("error", exc_info=True)
        sys.stderr.write(f"n2react: error: {exc}\n")
        sys.exit(2)
    except KeyboardInterrupt as exc:
        sys.stderr.write(f"n2react: interrupted ({exc or 'Ctrl-C'}); the MLflow run is KILLED\n")
        sys.exit(130)
    return float(metrics[cfg.optimized_metric])


if __name__ == "__main__":
    from n2react.launchers import exit_with, plugin_problem

    if problem := plugin_problem(sys.argv[1:]):
        exit_with(problem)
    main()
