"""Who a job is: its short run name, its sweep and job number, its full override list.

``python -m train`` builds a :class:`JobInfo` from Hydra's runtime config (``train.job_info``);
the sweep leaderboard names its rows with the same :func:`run_name`. Nothing here talks to a
tracking store.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from n2react.credentials import redact

TAG_SWEEP = "sweep"
TAG_JOB = "job"
#: The job's full Hydra override list (the run name keeps only what differs, shortened).
TAG_OVERRIDES = "overrides"
#: how much of the override list the tag keeps
MAX_OVERRIDES_TAG = 5000
TAG_COMMIT = "git_commit"
#: Set by the container image (Dockerfile build arg) or CI: recorded on every run as git_commit.
ENV_COMMIT = "N2REACT_GIT_COMMIT"

#: Overrides that change no result (or name the store itself): left out of run names.
#: ``explain=false`` skips figures only (README: use it in sweeps), not a figure of the run.
NAME_EXCLUDE = (
    "tracking", "hydra", "progress", "final_model", "device", "sweep", "resume", "explain",
)  # fmt: skip
#: Config groups: their choice reads on its own in a name (``robust``, not ``scaler=robust``).
GROUPS = ("scaler", "selector", "search", "data", "features", "pairwise", "cv", "experiment")
#: Keys whose last part would name them ambiguously (``eval.path`` read ``path=``, as data.path;
#: ``uncertainty.enabled`` read ``enabled=``).
SHORT_KEYS = {"eval.path": "eval", "uncertainty.enabled": "uncertainty"}
#: The runs table of the MLflow UI (3.17, default column width) shows about 26 characters of a
#: name; longer names are cut there (and at this length here).
MAX_NAME_LEN = 30


def _short_value(value: str) -> str:
    """``10.0`` -> ``10``, a path -> its file name without suffix; anything else unchanged."""
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None and number.is_integer() and "e" not in value.lower():
        return str(int(number))
    if "/" in value:
        return PurePath(value).stem
    return value


def run_name(model: str, overrides: Sequence[str] = (), groups: Iterable[str] = GROUPS) -> str:
    """A short run name from what differs, the model first, then hyperparameters as
    ``key=value`` (key shortened to its last part), then group choices by their value alone:
    ``svr C=10 robust kbest``; a group set to ``none`` is left out (``svr C=10 robust``). Just
    the model by default; cut to :data:`MAX_NAME_LEN` characters (the full override list is the
    ``overrides`` tag)."""
    group_set = set(groups)
    values, choices = [], []
    for ov in overrides:
        key, sep, value = ov.partition("=")
        key = key.lstrip("+~")
        if not sep or key == "model" or key.split(".")[0].split("/")[0] in NAME_EXCLUDE:
            continue
        if key.startswith("model.space."):  # model.space.n_layers=null: fixed for the search
            continue
        if key in group_set:
            if value != "none":  # the jobs with a selector say so; the others are without one
                choices.append(value)
        else:
            short = SHORT_KEYS.get(key, key.rsplit(".", 1)[-1])
            values.append(f"{short}={_short_value(value)}")
    name = " ".join([model, *values, *choices])
    return name if len(name) <= MAX_NAME_LEN else name[: MAX_NAME_LEN - 1] + "…"


def sweep_axes(
    params: Mapping[str, Any] | None,
    model_axes: Mapping[str, Any] | None,
    command_line: Iterable[str],
) -> list[str]:
    """A sweep's override strings in the order the sweeper reads them, a key's last one winning:
    ``hydra.sweeper.params``, the model's ``sweep:`` axes (``+sweep=grid``), the command line."""
    out = [f"{k}={v}" for axes in (params, model_axes) if axes for k, v in axes.items()]
    return out + [str(o) for o in command_line]


def only_swept(overrides: Sequence[str], axes: Sequence[str]) -> list[str]:
    """The job's ``overrides`` whose key the sweep varies: ``axes`` holds the sweep's override
    strings in the order of :func:`sweep_axes` (``seed=1,2``, ``scaler=standard,robust``); a
    key varies when its last one has sweep syntax (``model.estimator.n_layers=1`` on the command
    line fixes what ``+sweep=grid`` would sweep)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    last = {
        ov.get_key_element().lstrip("+~"): ov.is_sweep_override()
        for ov in OverridesParser.create().parse_overrides(list(axes))
    }
    return [o for o in overrides if last.get(o.split("=", 1)[0].lstrip("+~"), False)]


@dataclass(frozen=True)
class JobInfo:
    """Who this job is: its run name, in a multirun the sweep (its directory) and the job number,
    and the job's full override list. ``python -m train`` builds it from Hydra's runtime config;
    tests by hand."""

    name: str
    sweep: str | None = None
    job: int | None = None
    overrides: tuple[str, ...] = field(default=())

    @classmethod
    def from_overrides(
        cls,
        model: str,
        overrides: Sequence[str],
        sweep: str | None = None,
        job: int | None = None,
        shown: Sequence[str] | None = None,
    ) -> JobInfo:
        """Named by ``shown`` (default: all ``overrides``), tagged with all of them."""
        name = run_name(model, overrides if shown is None else shown)
        return cls(name, sweep, job, tuple(overrides))

    def tags(self) -> dict[str, str]:
        out = {}
        if self.sweep is not None:
            out[TAG_SWEEP] = self.sweep
        if self.job is not None:
            out[TAG_JOB] = str(self.job)
        if self.overrides:
            out[TAG_OVERRIDES] = redact(" ".join(self.overrides))[:MAX_OVERRIDES_TAG]
        commit = os.environ.get(ENV_COMMIT)
        if commit:
            out[TAG_COMMIT] = commit
        return out


#: what stands for a run's overrides where they are not known (an MLflow run without its tag)
UNKNOWN_OVERRIDES = "<its overrides>"


def without_resume(overrides: Iterable[str]) -> list[str]:
    """``overrides`` less any ``resume=`` (a command that continues a run names its own)."""
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "resume"]


def run_overrides(folder: Path) -> list[str] | None:
    """The overrides the run in ``folder`` was started with: its ``.hydra/overrides.yaml``
    (a ``resume=`` leaves it as the start wrote it). None when it has none, or it is unreadable."""
    import yaml
    from omegaconf import ListConfig, OmegaConf

    file = folder / ".hydra" / "overrides.yaml"
    if not file.is_file():
        return None
    try:
        loaded = OmegaConf.load(file)
    except (OSError, yaml.YAMLError):
        return None
    return [str(o) for o in loaded] if isinstance(loaded, ListConfig) else None


def tagged_overrides(tags: Mapping[str, str]) -> list[str] | None:
    """The overrides an MLflow run was tagged with (:data:`TAG_OVERRIDES`, joined by spaces):
    a word without ``=`` (nor a leading ``~``) goes on the value before it, which held a
    space. None without the tag, or where it cannot give them back (a password shown as
    ``***``, the tag cut at its length)."""
    text = tags.get(TAG_OVERRIDES)
    if not text or ":***@" in text or len(text) >= MAX_OVERRIDES_TAG:
        return None
    out: list[str] = []
    for word in text.split(" "):
        if out and "=" not in word and not word.startswith("~"):
            out[-1] += f" {word}"
        else:
            out.append(word)
    return out


def resume_command(overrides: Sequence[str] | None, resume: str) -> str:
    """The command that continues a stopped run: ``python -m train <its overrides>
    resume=<resume>`` (each override quoted for a shell, an earlier ``resume=`` dropped);
    :data:`UNKNOWN_OVERRIDES` where ``overrides`` is None."""
    if overrides is None:
        return f"python -m train {UNKNOWN_OVERRIDES} resume={shlex.quote(resume)}"
    words = [*without_resume(overrides), f"resume={resume}"]
    return "python -m train " + " ".join(shlex.quote(o) for o in words)


def start_folder(folder: Path) -> Path | None:
    """The folder the run in ``folder`` was started in (``hydra.runtime.cwd`` of its
    ``.hydra/hydra.yaml``, which a ``resume=`` leaves as the start wrote it); None when it has
    none, or it is unreadable."""
    import yaml
    from omegaconf import OmegaConf

    file = folder / ".hydra" / "hydra.yaml"
    if not file.is_file():
        return None
    try:
        cwd = OmegaConf.select(OmegaConf.load(file), "hydra.runtime.cwd", default=None)
    except (OSError, yaml.YAMLError, ValueError):
        return None
    return Path(str(cwd)) if cwd else None


def relative_paths(overrides: Iterable[str], start: Path) -> list[str]:
    """The ``overrides`` whose value is a relative path of a file or folder that exists in
    ``start`` (``data.path=mydata.xlsx``, ``eval.path=../x.xlsx``): the run read them relative
    to the folder it was started in. A value that happens to name something there without
    being a path (``model=ridge`` beside a folder ``ridge``) counts too: it only costs a ``cd``."""
    out = []
    for o in overrides:
        value = o.partition("=")[2]
        if value and not Path(value).expanduser().is_absolute() and (start / value).exists():
            out.append(o)
    return out


def continue_command(folder: Path) -> str:
    """The command that continues the stopped run in ``folder``, to be pasted into a shell in
    any folder: its own overrides (:func:`run_overrides`) plus ``resume=<folder, absolute>``,
    after ``cd <the folder it was started in> && `` when an override's value is a relative
    path there (:func:`relative_paths`) and the working folder is another one. Such a value
    cannot be made absolute instead: ``resume`` refuses a config that differs from the run's."""
    overrides = run_overrides(folder)
    command = resume_command(overrides, os.path.abspath(folder))
    start = start_folder(folder)
    if start is None or not overrides or Path.cwd().resolve() == start.resolve():
        return command
    if relative_paths(without_resume(overrides), start):
        return f"cd {shlex.quote(str(start))} && {command}"
    return command


def sweep_job(folder: Path) -> JobInfo | None:
    """The identity the job in ``folder`` had in its sweep (its MLflow run name, sweep, number
    and overrides), read back from its ``.hydra/`` and the sweep's ``multirun.yaml``: a job run
    again alone by ``resume=<its folder>`` is named and tagged as in the sweep. None when the
    folder is no sweep job's."""
    from omegaconf import OmegaConf

    hydra_dir = folder / ".hydra"
    multirun = folder.parent / "multirun.yaml"
    if not (hydra_dir / "hydra.yaml").is_file() or not multirun.is_file():
        return None
    hydra = OmegaConf.load(hydra_dir / "hydra.yaml").hydra
    num = OmegaConf.select(hydra, "job.num")
    if num is None or str(OmegaConf.select(hydra, "mode")) != "MULTIRUN":
        return None
    overrides = run_overrides(folder) or []
    config_file = hydra_dir / "config.yaml"
    config = OmegaConf.load(config_file) if config_file.is_file() else OmegaConf.create()
    sweep = OmegaConf.load(multirun)
    params, model_axes = (
        OmegaConf.to_container(axes) if axes else None
        for axes in (OmegaConf.select(sweep, "hydra.sweeper.params"),
                     OmegaConf.select(config, "model.sweep"))
    )  # fmt: skip
    command_line = [str(o) for o in OmegaConf.select(sweep, "hydra.overrides.task") or []]
    try:
        shown = only_swept(overrides, sweep_axes(params, model_axes, command_line))  # type: ignore[arg-type]
    except Exception:  # an unusual sweeper: named by all its overrides, as the job was
        shown = overrides
    model = str(OmegaConf.select(config, "model.name") or "?")
    return JobInfo.from_overrides(model, overrides, _sweep_tag(hydra), int(num), shown)


def _sweep_tag(hydra: Any) -> str:
    """The ``sweep`` tag the sweep's jobs got (``str(hydra.sweep.dir)`` as they resolved it):
    its folder as given, else (a name made of the time, ``multirun/${now:...}``) the folder the
    jobs ran in, relative to where the sweep was started when it was given relative."""
    from omegaconf import OmegaConf

    given = str(OmegaConf.to_container(hydra.sweep, resolve=False)["dir"])  # type: ignore[index]
    if "${" not in given:
        return given
    sweep_dir = Path(str(hydra.runtime.output_dir)).parent
    if Path(given).is_absolute():
        return str(sweep_dir)
    return os.path.relpath(sweep_dir, str(hydra.runtime.cwd))
