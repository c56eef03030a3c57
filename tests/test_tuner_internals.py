"""The keras-tuner internals n2react relies on are all there, in the version pyproject pins."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib

from n2react import tuner_internals as kti
from n2react.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_every_internal_is_there() -> None:
    kti.check()  # on failure: "keras-tuner X has no <internal>, which n2react relies on"


def test_pyproject_pins_the_supported_range() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"keras-tuner{kti.SUPPORTED}" in deps


def test_a_moved_internal_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    base = kti.keras_tuner().engine.base_tuner.BaseTuner
    monkeypatch.delattr(base, "_try_run_and_update_trial")
    with pytest.raises(ConfigError, match=r"has no BaseTuner\._try_run_and_update_trial.*1\.4\.7"):
        kti.check()


def test_hyperband_trial_count_is_what_the_oracle_runs(tmp_path: Path) -> None:
    kt = kti.keras_tuner()
    hp = kt.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    oracle = kt.oracles.HyperbandOracle(
        objective=kt.Objective("score", "min"), max_epochs=9, hyperparameters=hp, seed=0
    )
    oracle._set_project_dir(str(tmp_path), "hb")
    expected = kti.hyperband_trials(oracle)
    ran = 0
    while True:
        trial = oracle.create_trial("t")
        if trial.status != "RUNNING":
            break
        oracle.update_trial(trial.trial_id, {"score": trial.hyperparameters.get("x")})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        ran += 1
    assert ran == expected > 1
