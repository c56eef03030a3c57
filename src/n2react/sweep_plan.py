"""The jobs a sweep planned, read back from its ``multirun.yaml``: so that its leaderboard can
list the jobs that never ran (a sweep stopped by Ctrl-C or a crash) by their overrides.

Known for Hydra's grid sweeper and n2react's (:class:`ModelGridSweeper`, which adds the model's
own ``sweep:`` axes): the cartesian product of ``hydra.sweeper.params`` and the command line, in
the order the sweeper numbers the jobs. Any other sweeper (its jobs chosen as it goes): unknown.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

MULTIRUN_FILE = "multirun.yaml"
#: what a sweep's leaderboard ranks every job by: one value for the whole sweep
RANKED_BY = "optimized_metric"


def planned_jobs(sweep_dir: Path) -> dict[int, list[str]]:
    """job number -> its overrides, for every job the sweep in ``sweep_dir`` planned; empty when
    that cannot be known (no multirun.yaml, another sweeper, a sweep it cannot expand)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.utils import get_class

    from hydra_plugins.n2react_sweeper.model_grid_sweeper import ModelGridSweeper

    saved = sweep_dir / MULTIRUN_FILE
    try:
        config = OmegaConf.load(saved)
        sweeper = get_class(str(OmegaConf.select(config, "hydra.sweeper._target_")))
        if not issubclass(sweeper, BasicSweeper):
            return {}
        params = OmegaConf.select(config, "hydra.sweeper.params")
        given = OmegaConf.to_container(params) if params else {}
        axes = {str(k): str(v) for k, v in given.items()}  # type: ignore[union-attr]
        command_line = [str(o) for o in OmegaConf.select(config, "hydra.overrides.task") or []]
        if issubclass(sweeper, ModelGridSweeper):
            axes = ModelGridSweeper.grid_params(axes, config, command_line)
        parsed = OverridesParser.create().parse_overrides(
            [f"{k}={v}" for k, v in axes.items()] + command_line
        )
        (jobs,) = BasicSweeper.split_arguments(parsed, None)
    except Exception as exc:  # e.g. a glob over a config group: needs the sweep's config loader
        log.debug("the planned jobs of %s are unknown (%s)", sweep_dir, exc)
        return {}
    return dict(enumerate(jobs))


def swept_ranking_problem(config: DictConfig) -> str | None:
    """Why a sweep cannot be ranked: it varies :data:`RANKED_BY` (``optimized_metric=a,b``),
    whereas its leaderboard ranks all jobs by one metric, and that key changes nothing a job
    trains (only the figure it hands the sweeper); None when it does not."""
    from n2react.jobs import only_swept, sweep_axes

    params = OmegaConf.select(config, "hydra.sweeper.params")
    given = OmegaConf.to_container(params) if params else None
    command_line = [str(o) for o in OmegaConf.select(config, "hydra.overrides.task") or []]
    axes = sweep_axes(given, None, command_line)  # type: ignore[arg-type]
    try:
        swept = only_swept([f"{RANKED_BY}="], axes)
    except Exception as exc:  # the sweep itself will say what is wrong with its overrides
        log.debug("cannot tell whether the sweep varies %s (%s)", RANKED_BY, exc)
        return None
    if not swept:
        return None
    *_, value = (a.split("=", 1)[1] for a in axes if a.split("=", 1)[0].lstrip("+~") == RANKED_BY)
    return (
        f"{RANKED_BY}={value}: a sweep's jobs are ranked together by one metric, and this key "
        "changes nothing a job trains (only the figure it returns to the sweeper): give one "
        "value; the leaderboard lists mean_test_r, mean_test_rmse and mean_test_mae of every job"
    )
