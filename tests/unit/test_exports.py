"""The package's public names are the ones docs/configuration.md promises, and each one resolves."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import llmsock_widget
from llmsock_widget import _moved

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _documented() -> set[str]:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("### 4.0 The Python API", 1)[1].split("\n### ", 1)[0]
    return set(re.findall(r"^\| `([A-Za-z_]+)` \|", section, re.M))


def test_all_is_what_the_docs_promise() -> None:
    """__all__ and the table of public names in docs/configuration.md list the same names."""
    assert set(llmsock_widget.__all__) == _documented()


@pytest.mark.parametrize("name", sorted(llmsock_widget.__all__))
def test_every_public_name_resolves(name: str) -> None:
    """Each name of __all__ can be imported from the package."""
    assert getattr(llmsock_widget, name) is not None


@pytest.mark.parametrize("package", ["stores", "models", "tools", "client"])
def test_every_port_name_resolves(package: str) -> None:
    """Each name of a port package's __all__ exists in it."""
    module = importlib.import_module(f"llmsock_widget.{package}")
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_old_flat_path_is_the_moved_module(old: str) -> None:
    """An import of a 0.1 flat path gives the module at its new path, with a DeprecationWarning naming it."""
    new = f"llmsock_widget.{_moved.MOVED[old]}"
    code = (
        "import importlib, warnings\n"
        "warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        f"    old = importlib.import_module('llmsock_widget.{old}')\n"
        f"new = importlib.import_module('{new}')\n"
        "assert old is new, (old, new)\n"
        "print([str(w.message) for w in caught if w.category is DeprecationWarning])\n"
    )
    # A fresh interpreter: the finder answers only the first import of a path.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"moved to {new}" in out


def test_old_server_path_keeps_its_names() -> None:
    """llmsock_widget.server, now a folder, still gives ServerThread and start_server."""
    from llmsock_widget.server import ServerThread, start_server
    from llmsock_widget.server.thread import ServerThread as Moved

    assert ServerThread is Moved and callable(start_server)


def test_unknown_old_path_still_fails() -> None:
    """A path that never existed is not answered by the moved-paths table."""
    with warnings.catch_warnings(), pytest.raises(ModuleNotFoundError):
        importlib.import_module("llmsock_widget.no_such_module")
