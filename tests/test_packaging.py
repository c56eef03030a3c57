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
        "n2react-train": "train:cli",
        "n2react-predict": "predict:main",
        "n2react": "n2react.cli:main",
    }


#: Modules n2react imports that come with a declared dependency's own requirements (checked
#: below against the installed metadata), or from an optional backend.
THROUGH = {
    "PIL": "matplotlib",
    "joblib": "scikit-learn",
    "yaml": "omegaconf",
    "sqlalchemy": "mlflow",
    "submitit": "hydra-submitit-launcher",  # the [slurm] extra's launcher
}
OPTIONAL_BACKENDS = {"jax"}  # KERAS_BACKEND=jax (the container image installs it)


def _name(requirement: str) -> str:
    import re

    return re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_module_the_package_imports_is_a_declared_dependency() -> None:
    """skops (the model files) came only through mlflow, whose 3.1 does not require it."""
    import ast
    import importlib.metadata as md
    import sys

    project = PYPROJECT["project"]
    declared = {_name(d) for d in project["dependencies"]}
    declared |= {_name(d) for deps in project["optional-dependencies"].values() for d in deps}
    ours = {"n2react", "n2react_conf", "hydra_plugins", "train", "predict", "__future__"}
    imported: set[str] = set()
    for path in (ROOT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third = imported - set(sys.stdlib_module_names) - ours - OPTIONAL_BACKENDS
    dists = md.packages_distributions()
    undeclared = []
    for module in sorted(third):
        names = {_name(d) for d in dists.get(module, [module])}
        if names & declared:
            continue
        via = THROUGH.get(module)
        required = {_name(r) for r in md.requires(via) or []} if via in declared else set()
        if not names & required:
            undeclared.append(module)
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_the_version_is_pyprojects_installed_or_not(tmp_path: Path) -> None:
    """n2react.__version__ was a second copy of pyproject's version, written by hand (a version
    bumped in pyproject.toml alone left it behind); it is read from the installed package's
    metadata, else (a checkout that is not installed) from the checkout's pyproject.toml."""
    import importlib.metadata
    import shutil
    import subprocess
    import sys

    import n2react

    try:
        installed = importlib.metadata.version("n2react")
    except importlib.metadata.PackageNotFoundError:
        installed = PYPROJECT["project"]["version"]
    assert n2react.__version__ == installed
    # a checkout whose pyproject says 9.9.9, not installed (-S: no site-packages, no metadata)
    pkg = tmp_path / "src" / "n2react"
    pkg.mkdir(parents=True)
    for name in ("__init__.py", "errors.py", "credentials.py"):
        shutil.copy(ROOT / "src" / "n2react" / name, pkg / name)
    text = (ROOT / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(text.replace('version = "', 'version = "9.9.', 1))
    code = f"import sys; sys.path.insert(0, {str(tmp_path / 'src')!r}); import n2react; "
    code += "print(n2react.__file__, n2react.__version__)"
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    version = "9.9." + PYPROJECT["project"]["version"]
    assert out.stdout.split() == [str(pkg / "__init__.py"), version]
