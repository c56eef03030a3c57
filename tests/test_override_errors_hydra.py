"""Overrides of Hydra's own config that Hydra took and then failed on, or reported in
several lines: a callback set to null (``hydra.callbacks.leaderboard=null``: a warning at every
event, the sweep unranked), a sweep over a key under ``hydra.`` (Hydra's 'Sweeping over Hydra's
configuration is not supported' and its hint). Each is one ``n2react: error:`` line, exit 2,
nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bad_input_helpers import _env
from test_override_errors import assert_only_line

QUICK = ("model=ridge", "cv.outer_folds=2", "tracking=none", "explain=false",
         "final_model=false", "progress=false")  # fmt: skip


def train(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    dirs = (f"hydra.run.dir={tmp / 'run'}", f"hydra.sweep.dir={tmp / 'multi'}")
    cmd = [sys.executable, "-m", "train", *args, *dirs]
    return subprocess.run(cmd, cwd=tmp, env=_env(), capture_output=True, text=True, timeout=300)


def assert_nothing_written(tmp: Path) -> None:
    assert not (tmp / "run").exists() and not (tmp / "multi").exists()
    assert not (tmp / "outputs").exists() and not (tmp / "multirun").exists()


def user_config(tmp: Path, params: str) -> tuple[str, ...]:
    """A user's experiment config that sets the sweeper's params (Hydra 1.3's basic sweeper reads
    them), as ``--config-dir`` arguments."""
    conf = tmp / "conf" / "experiment"
    conf.mkdir(parents=True)
    text = f"# @package _global_\nhydra:\n  sweeper:\n    params:\n      {params}\n"
    (conf / "mine.yaml").write_text(text)
    return ("--config-dir", str(tmp / "conf"), "experiment=mine")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("hydra.callbacks.leaderboard=null",), "null is not a callback (Hydra would call None"),
        (
            ("-m", "hydra.callbacks.leaderboard=null"),
            "null is not a callback (Hydra would call None",
        ),
        (("-m", "hydra.callbacks.backend_check=3"), "3 is not a callback (a callback is a mapping"),
    ],
    ids=["null", "-m null", "-m number"],
)
def test_a_callback_set_to_a_value_is_one_line(
    args: tuple[str, ...], expected: str, tmp_path: Path
) -> None:
    """hydra.callbacks.leaderboard=null composed: the run, or each job of the sweep, warned
    'Callback NoneType.on_job_end raised AttributeError' at every event and the sweep wrote no
    leaderboard (exit 0); =3 ended in Hydra's 'Top level config must be ...' lines, exit 1."""
    out = train(tmp_path, *args, *QUICK)
    key = args[-1].partition("=")[0]
    line = assert_only_line(out, f"{args[-1]}: {expected}", f'to remove the callback: "~{key}"')
    assert ("a sweep would go unranked" in line) == args[-1].endswith("null"), line
    assert_nothing_written(tmp_path)


def test_a_sweep_over_a_key_of_hydras_own_config_is_one_line(tmp_path: Path) -> None:
    """-m +hydra.sweeper.params.seed=1,2 where a config sets the params: Hydra's 'Sweeping over
    Hydra's configuration is not supported' and its HYDRA_FULL_ERROR hint, exit 1."""
    args = ("-m", *user_config(tmp_path, "model: ridge"), "+hydra.sweeper.params.seed=1,2")
    out = train(tmp_path, *args, *QUICK)
    expected = "+hydra.sweeper.params.seed=1,2: Hydra does not sweep its own config (hydra.*)"
    assert_only_line(out, expected, """quotes: "+hydra.sweeper.params.seed='1,2'\"""")
    assert_nothing_written(tmp_path)
