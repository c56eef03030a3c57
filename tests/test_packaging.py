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


def _shipped_packages() -> set[str]:
    """What setuptools' finder returns with the [tool.setuptools.packages.find] settings."""
    from setuptools import find_namespace_packages

    find = SETUPTOOLS["packages"]["find"]
    assert find["namespaces"] is True and find["where"] == ["src"]
    return set(
        find_namespace_packages(ROOT / "src", include=find["include"], exclude=find["exclude"])
    )


def test_every_package_and_config_group_under_src_is_found() -> None:
    shipped = _shipped_packages()
    code = {
        ".".join(p.parent.relative_to(ROOT / "src").parts)
        for p in (ROOT / "src").rglob("__init__.py")
    }
    groups = {
        ".".join(("n2react_conf", *p.parent.relative_to(ROOT / "conf").parts))
        for p in (ROOT / "conf").rglob("*.yaml")
    }  # each config group is a (namespace) package, or setuptools warns it is missing
    assert code | groups <= shipped, (code | groups) - shipped
    assert not any("__pycache__" in p for p in shipped)
    assert {"n2react_conf.hydra.launcher", "n2react_conf.model", "n2react.explain"} <= shipped


def test_every_config_file_ships_as_package_data() -> None:
    # src/n2react_conf is a link to the one conf/, so every package sits under src/ (an editable
    # install then puts src/ on sys.path, where Hydra finds the hydra_plugins namespace)
    link = ROOT / "src" / "n2react_conf"
    assert link.is_symlink() and link.resolve() == (ROOT / "conf").resolve()
    assert SETUPTOOLS["package-dir"] == {"": "src"}
    depths = {len(p.relative_to(ROOT / "conf").parts) for p in (ROOT / "conf").rglob("*.yaml")}
    # every YAML file sits in a found package, so the one glob "*.yaml" ships it
    assert depths and SETUPTOOLS["package-data"]["*"] == ["*.yaml"]


def test_checkout_uses_its_own_conf_and_license_matches() -> None:
    assert Path(train._config_path()) == ROOT / "conf"
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    # SPDX expression + license file (a TOML table and license classifiers make setuptools warn)
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    assert not any("License ::" in c for c in PYPROJECT["project"]["classifiers"])
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts == {
        "n2react-train": "train:main",
        "n2react-predict": "predict:main",
        "n2react": "n2react.cli:main",
    }
