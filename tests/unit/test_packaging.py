"""The wheel as installed: one version, typed, no benchmarks, every module importable without extras."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from llmsock_widget import __version__
from tests.conftest import TIMEOUT

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

# Packages a plain ``pip install llmsock`` does not bring (extras, dev and test tools).
OPTIONAL = (
    "websockets",
    "psutil",
    "openai",
    "orjson",
    "playwright",
    "pytest",
    "hypothesis",
    "jupyter_server_proxy",
    "redis",
)

# Modules whose whole purpose is an extra: they may fail to import without it, and only with
# an ImportError that names the extra or the package it brings.
EXTRA_ONLY = {
    "llmsock_widget.client.chat": ("client", "websockets"),
    "llmsock_widget.client.connection": ("client", "websockets"),
    "llmsock_widget.client.transport": ("client", "websockets"),
    "llmsock_widget.models.openai_body": ("openai", "openai"),
    "llmsock_widget.models.openai_compat": ("openai", "openai"),
    "llmsock_widget.models.openai_errors": ("openai", "openai"),
    "llmsock_widget.models.openai_transport": ("openai", "openai"),
}

# The public doors to an extra: used without it, each says which extra to install.
DOORS = {
    "llmsock_widget.Client": ("import llmsock_widget\nllmsock_widget.Client", "client"),
    "llmsock_widget.client.Client": ("from llmsock_widget.client import Client", "client"),
    "resolve_model('openai:...')": (
        "from llmsock_widget.models import resolve_model\nresolve_model('openai:gpt-4o-mini')",
        "openai",
    ),
    "RedisStore": ("from llmsock_widget.stores import RedisStore\nRedisStore('redis://h:1/0')", "redis"),
}

# Run in a child: optional packages cannot be imported (as if never installed); each module is
# imported and each door tried from a clean slate of our own modules (a submodule left behind by
# a parent that failed would hide the parent's failure), and the outcomes are printed as JSON.
CHILD = """
import importlib, json, sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in OPTIONAL:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

def forget_ours():
    for name in [n for n in sys.modules if n.partition(".")[0] in PACKAGES]:
        del sys.modules[name]

sys.meta_path.insert(0, Missing())
outcome = {}
for module in MODULES:
    forget_ours()
    try:
        importlib.import_module(module)
        outcome[module] = None
    except BaseException as exc:
        outcome[module] = f"{type(exc).__name__}: {exc}"
for name, code in DOORS.items():
    forget_ours()
    try:
        exec(code, {})
        outcome[name] = None
    except BaseException as exc:
        outcome[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(outcome))
"""


def wheel_packages() -> list[str]:
    """Return the packages pyproject.toml puts in the wheel."""
    packages: list[str] = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return packages


def wheel_modules() -> list[str]:
    """Return the dotted name of every Python module the wheel ships."""
    modules = []
    for package in wheel_packages():
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules.append(".".join(parts))
    return modules


@cache
def plain_install() -> dict[str, Any]:
    """Import every wheel module and try every door in a Python where the optional packages are missing."""
    script = f"OPTIONAL = {OPTIONAL!r}\nPACKAGES = {tuple(wheel_packages())!r}\n"
    script += f"MODULES = {wheel_modules()!r}\n"
    script += f"DOORS = { ({name: code for name, (code, _) in DOORS.items()})!r}\n" + CHILD
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 6,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcome: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return outcome


@pytest.mark.parametrize("module", [m for m in wheel_modules() if m not in EXTRA_ONLY])
def test_every_wheel_module_imports_without_the_extras(module: str) -> None:
    """Each module the wheel ships imports on a plain install (no websockets, psutil, openai, ...)."""
    assert plain_install()[module] is None, f"{module} fails on a plain install: {plain_install()[module]}"


@pytest.mark.parametrize("module", sorted(EXTRA_ONLY))
def test_a_module_of_an_extra_says_what_is_missing(module: str) -> None:
    """A module that exists for an extra fails without it only with an ImportError naming what to install."""
    extra, package = EXTRA_ONLY[module]
    error = plain_install()[module]
    assert error is not None, f"{module} imports without {package}: take it off EXTRA_ONLY"
    assert error.split(":")[0] in ("ImportError", "ModuleNotFoundError"), error
    assert f"llmsock[{extra}]" in error or f"'{package}'" in error, error


@pytest.mark.parametrize("door", sorted(DOORS))
def test_the_public_doors_to_an_extra_name_it(door: str) -> None:
    """Asking for the client or an OpenAI model without its extra says ``pip install 'llmsock[...]'``."""
    extra = DOORS[door][1]
    error = plain_install()[door]
    assert error is not None and f"pip install 'llmsock[{extra}]'" in error, error


@pytest.mark.parametrize("module", sorted(EXTRA_ONLY))
def test_extra_only_modules_name_real_extras(module: str) -> None:
    """Each extra named above exists in pyproject.toml and brings the package its modules need."""
    extra, package = EXTRA_ONLY[module]
    requirements = PYPROJECT["project"]["optional-dependencies"][extra]
    assert any(req.replace("-", "_").startswith(package) for req in requirements), requirements


def test_the_version_is_written_once_for_python() -> None:
    """pyproject.toml reads the version from llmsock_widget/_version.py; the package exports the same."""
    from llmsock_widget import _version

    assert "version" not in PYPROJECT["project"]
    assert "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "llmsock_widget/_version.py"
    assert __version__ == _version.__version__


@pytest.mark.parametrize(
    "manifest",
    ["js/package.json", "js/labextension/package.json", "llmsock_widget/labextension/package.json"],
)
def test_the_front_ends_carry_the_python_version(manifest: str) -> None:
    """The widget's and the notebook plugin's package.json (source and built) say the Python version."""
    version = json.loads((ROOT / manifest).read_text(encoding="utf-8"))["version"]
    assert version == __version__, f"{manifest} says {version}, llmsock_widget says {__version__}"


def test_the_wheel_is_typed() -> None:
    """The package ships the PEP 561 marker, so type checkers use its annotations."""
    assert "llmsock_widget" in wheel_packages()
    assert (ROOT / "llmsock_widget" / "py.typed").is_file()


def test_the_benchmarks_stay_out_of_the_wheel() -> None:
    """The benchmarks live at the repository root (python -m benchmarks), not in any wheel package."""
    assert (ROOT / "benchmarks" / "__main__.py").is_file()
    assert "benchmarks" not in wheel_packages()
    assert not [m for m in wheel_modules() if ".bench" in m or m.startswith("benchmarks")]
