"""Which n2react made a run: run.json and the n2react.version tag, the fold models' version, and
resume= of a run another (or an unrecorded) version started, refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from resume_helpers import QUICK

from n2react.errors import ConfigError, N2ReactError
from n2react.run import run


def test_a_run_records_the_version_that_made_it(make_cfg, tmp_path: Path, n2react_runs) -> None:
    """No run folder or MLflow run said which n2react made it: run.json in the folder and the
    parent run's tag n2react.version record it (resume tells a key added on its command line
    from one an older n2react did not write by them)."""
    import n2react

    run(make_cfg(*QUICK), tmp_path / "run")
    made = json.loads((tmp_path / "run" / "run.json").read_text())
    # and the device it started on (a scikit-learn model: the CPU, no Keras backend)
    assert made == {
        "n2react_version": n2react.__version__,
        "device": "cpu",
        "keras_backend": "none",
    }
    (parent,), _ = n2react_runs(tmp_path)
    assert parent.data.tags["n2react.version"] == n2react.__version__


def test_keys_a_run_lacks_are_refused_by_who_started_it(make_cfg, tmp_path: Path) -> None:
    """A run whose config_resolved.yaml lacks keys set here was refused with a line naming two
    causes (an older n2react started it, or they were added on the resuming command line),
    which check_same_config could not tell apart. run.json tells: started by this version, the
    keys can only come from the command line; by another or an unrecorded one (a run from
    before versions were recorded), that version's run cannot be resumed by this one."""
    from omegaconf import OmegaConf

    import n2react

    old = tmp_path / "old"
    run(make_cfg(*QUICK, "tracking=none"), old)
    (old / "summary.json").unlink()  # as if killed in its last outer fold
    # started by this version: +key=value on the resuming command line is named, to be dropped
    with pytest.raises(ConfigError) as err:
        run(make_cfg(*QUICK, "tracking=none", "+extra=1", f"resume={old}"), tmp_path / "a")
    assert str(err.value) == (
        f"resume: extra is set here but not in the config of the run in {old} "
        f"(config_resolved.yaml), which this n2react ({n2react.__version__}) started, so it was "
        "added on the resuming command line: drop it"
    )
    saved = OmegaConf.load(old / "config_resolved.yaml")
    del saved.search["kind"], saved.cv["seed"]  # keys an older version did not write
    OmegaConf.save(saved, old / "config_resolved.yaml")
    (old / "run.json").write_text('{"n2react_version": "0.0.9"}\n')
    with pytest.raises(ConfigError) as err:
        run(make_cfg(*QUICK, "tracking=none", f"resume={old}"), tmp_path / "x")
    assert str(err.value) == (
        f"resume: the run in {old} was started by n2react 0.0.9, whose config "
        "(config_resolved.yaml) lacks cv.seed, search.kind; n2react "
        f"{n2react.__version__} cannot resume it: start the run again"
    )
    (old / "run.json").unlink()  # a run from before versions were recorded
    with pytest.raises(ConfigError, match=r"started by an earlier version of n2react, whose co"):
        run(make_cfg(*QUICK, "tracking=none", f"resume={old}"), tmp_path / "y")
    # a key it lacks and one it sets otherwise: the differences are named, as before
    with pytest.raises(ConfigError, match=r"config differs .* cv\.outer_folds \(3 there, 4 here"):
        run(make_cfg(*QUICK, "tracking=none", "cv.outer_folds=4", f"resume={old}"), tmp_path / "z")


def test_a_run_another_version_started_is_not_resumed(make_cfg, tmp_path: Path) -> None:
    """resume= of a run another n2react started, with the same config, continued it: its
    finished folds (fitted by that version) and the rest (by this one) mixed in one run. It is
    refused with one line naming both versions; so is a run without run.json (started before
    versions were recorded, by an earlier n2react: this one writes it), and a run.json that
    names no version says what to do. The run's files are left as they were."""
    import n2react
    from n2react import runstore

    run_dir = tmp_path / "run"
    run(make_cfg(*QUICK, "tracking=none"), run_dir)
    (run_dir / "summary.json").unlink()  # as if killed in its last outer fold
    ours = n2react.__version__
    (run_dir / "run.json").write_text('{"n2react_version": "0.0.9"}\n')
    with pytest.raises(ConfigError) as err:
        run(make_cfg(*QUICK, "tracking=none", f"resume={run_dir}"), tmp_path / "a")
    assert str(err.value) == (
        f"resume: the run in {run_dir} was started by n2react 0.0.9, which fitted its finished "
        f"folds; this is n2react {ours}, which would fit the rest: start the run again, or "
        "resume it with n2react 0.0.9"
    )
    (run_dir / "run.json").unlink()  # a run from before versions were recorded
    with pytest.raises(ConfigError, match=r"started by an earlier version of n2react \(no run"):
        run(make_cfg(*QUICK, "tracking=none", f"resume={run_dir}"), tmp_path / "b")
    assert not (run_dir / "run.json").exists()  # it still says nothing of what started it
    for corrupt in ('{"n2react_ver', "{}", '["0.1.0"]'):
        (run_dir / "run.json").write_text(corrupt)
        with pytest.raises(N2ReactError) as err:
            run(make_cfg(*QUICK, "tracking=none", f"resume={run_dir}"), tmp_path / "c")
        line = str(err.value)
        assert line.startswith(f"{run_dir / 'run.json'}: not the JSON object n2react writes (")
        assert line.endswith(
            "so the n2react version that started the run is unknown: restore the file (it reads "
            '{"n2react_version": "<version>"}), or start the run again'
        )
        assert "\n" not in line
    runstore.write_made_by(run_dir)  # this version: it resumes
    assert run(make_cfg(*QUICK, "tracking=none", f"resume={run_dir}"), tmp_path / "d")


def test_fold_models_record_their_version(make_cfg, tmp_path: Path) -> None:
    """The final model recorded the n2react version that saved it, the fold models (which
    predict loads beside it) did not; they record it the same way."""
    import n2react
    from n2react import runstore

    run(make_cfg(*QUICK, "tracking=none"), tmp_path / "run")
    files = runstore.fold_model_paths(tmp_path / "run")
    assert sorted(files) == [1, 2, 3]
    for file in files.values():
        assert runstore.saved_by(runstore.load_model_file(file)) == n2react.__version__
