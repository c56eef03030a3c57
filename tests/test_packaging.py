"""What a wheel holds: every package under src/, every config under conf/, the license.

CI (.ci/run) also builds the wheel, installs it into a fresh venv and trains from another folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import train

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def test_every_package_under_src_is_listed() -> None:
    found = {
        ".".join(p.parent.relative_to(ROOT / "src").parts)
        for p in (ROOT / "src").rglob("__init__.py")
    }
    assert found <= set(SETUPTOOLS["packages"]), "add to [tool.setuptools] packages"


def test_every_config_file_ships_as_package_data() -> None:
    # src/n2react_conf is a link to the one conf/, so every package sits under src/ (an editable
    # install then puts src/ on sys.path, where Hydra finds the hydra_plugins namespace)
    link = ROOT / "src" / "n2react_conf"
    assert link.is_symlink() and link.resolve() == (ROOT / "conf").resolve()
    assert SETUPTOOLS["package-dir"] == {"": "src"}
    depths = {len(p.relative_to(ROOT / "conf").parts) for p in (ROOT / "conf").rglob("*.yaml")}
    globs = SETUPTOOLS["package-data"]["n2react_conf"]
    assert all(f"{'*/' * (d - 1)}*.yaml" in globs for d in depths), (depths, globs)


def test_checkout_uses_its_own_conf_and_license_matches() -> None:
    assert Path(train._config_path()) == ROOT / "conf"
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert PYPROJECT["project"]["license"] == {"text": "MIT"}
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts == {"n2react-train": "train:main", "n2react-predict": "predict:main"}
