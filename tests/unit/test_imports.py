"""The import direction rule of STYLE.md, checked by parsing the package (nothing is imported)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "llmsock_widget"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE

FORBIDDEN_IN_PURE = {"asyncio", "threading", "socket", "time", "tornado", "os", "random"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Return the absolute dotted names that ``source`` (the text of ``module``) imports, anywhere in it."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts)
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target == "__future__":
                continue
            found.add(target)
            # ``from pkg import name`` may import the submodule ``pkg.name``.
            found.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call):
            # A dynamic import would slip past the rule; record its literal target if any.
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("__import__", "import_module"):
                arg = node.args[0] if node.args else None
                literal = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                found.add(arg.value if literal else "?dynamic")  # type: ignore[union-attr]
    return found


def _module_names() -> set[str]:
    return {_module_name(path) for path in ROOT.rglob("*.py")}


def _internal(names: set[str], modules: set[str]) -> set[str]:
    """Return the package modules among ``names``: ``from .core import session`` is ``core.session``.

    A name that is not a module (an imported class) counts as the module it comes from.
    """
    found: set[str] = set()
    for name in names:
        if name.split(".")[0] != PACKAGE:
            continue
        while name not in modules and "." in name:
            name = name.rpartition(".")[0]
        found.add(name)
    return found


def _external(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names if name.split(".")[0] != PACKAGE}


def _home(module: str) -> str:
    """Return the folder (or top-level module) that ``module`` belongs to: ``core.session`` -> ``core``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports_of_file(path: Path) -> set[str]:
    source = path.read_text(encoding="utf-8")
    return imports_of(source, _module_name(path), is_package=path.name == "__init__.py")


ALL_FILES = sorted(ROOT.rglob("*.py"))


# -- the checker checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("from ..errors import InvalidFrame", "llmsock_widget.wire.protocol", {"llmsock_widget.errors"}),
        ("from ..core import session", "llmsock_widget.wire.protocol", {"llmsock_widget.core.session"}),
        ("from ..runtime.hub import Hub", "llmsock_widget.stores.memory", {"llmsock_widget.runtime.hub"}),
        ("import llmsock_widget.server as s", "llmsock_widget.notebook.widget", {"llmsock_widget.server"}),
        ("def f():\n    import time\n", "llmsock_widget.core.session", {"time"}),
        ("from os.path import join", "llmsock_widget.core.session", {"os.path", "os.path.join"}),
        ("import importlib\nimportlib.import_module('tornado')", "x.y", {"importlib", "tornado"}),
        ("from __future__ import annotations", "llmsock_widget.errors", set()),
    ],
    ids=[
        "relative",
        "relative package",
        "two levels up",
        "absolute",
        "nested",
        "from-import",
        "dynamic",
        "future",
    ],
)
def test_import_finder(source: str, module: str, expected: set[str]) -> None:
    """imports_of finds relative, absolute, nested and dynamic imports with their absolute names."""
    found = imports_of(source, module)
    assert expected <= found
    if not expected:
        assert not found


def test_internal_names_resolve_to_modules() -> None:
    """An imported class counts as its module; a module imported from its folder counts as itself."""
    modules = {f"{PACKAGE}.core", f"{PACKAGE}.core.session", f"{PACKAGE}.wire.protocol"}
    names = {f"{PACKAGE}.core", f"{PACKAGE}.core.session", f"{PACKAGE}.wire.protocol.SendPrompt", "tornado"}
    assert _internal(names, modules) == modules


# -- the rules: folders ------------------------------------------------------------------------

# What each folder (or top-level module) may import of ours, besides itself.  The folder tree is
# the layer diagram: core <- wire <- stores, models, tools, client <- runtime <- server <- notebook;
# context (summaries of live objects) stands beside core on errors alone, under tools (a tool's
# live result is summarized for the model) and runtime.
_BASE = {"errors", "_version"}
_PORTS = _BASE | {"core", "wire", "aio"}  # aio: waiting with a time limit (the I/O layers)
_BELOW_RUNTIME = _PORTS | {"stores", "models", "tools", "context"}
_BELOW_SERVER = _BELOW_RUNTIME | {"runtime"}
_BELOW_NOTEBOOK = _BELOW_SERVER | {"server", "client"}
MAY_IMPORT = {
    "errors": set(),
    "_version": set(),
    "aio": set(),
    "_moved": set(),  # it names the new paths as strings, imported on demand
    "core": _BASE,
    "context": _BASE,
    "wire": _BASE | {"core"},
    "stores": _PORTS,
    "models": _PORTS,
    "tools": _PORTS | {"context"},
    "client": _PORTS,
    "runtime": _BELOW_RUNTIME,
    "server": _BELOW_SERVER,
    "notebook": _BELOW_NOTEBOOK,
    "cli": _BELOW_NOTEBOOK | {"notebook"},
    "__main__": {"cli"},
    "__init__": _BELOW_NOTEBOOK | {"notebook", "_moved"},  # lazily, inside functions
}
PURE_FOLDERS = ("core", "wire")


def _homes() -> list[str]:
    return sorted({_home(module) for module in _module_names()})


@pytest.mark.parametrize("path", ALL_FILES, ids=[_module_name(p) for p in ALL_FILES])
def test_every_module_parses(path: Path) -> None:
    """Every module of the package is valid Python the checker can read."""
    _imports_of_file(path)


@pytest.mark.parametrize("home", _homes())
def test_every_folder_has_a_rule(home: str) -> None:
    """Each folder and top-level module is placed in MAY_IMPORT (and in docs/architecture.md)."""
    assert home in MAY_IMPORT, f"say what {home} may import in MAY_IMPORT"


@pytest.mark.parametrize("path", ALL_FILES, ids=[_module_name(p) for p in ALL_FILES])
def test_imports_point_downward(path: Path) -> None:
    """A module imports only its own folder and the folders below it."""
    modules = _module_names()
    home = _home(_module_name(path))
    used = {_home(m) for m in _internal(_imports_of_file(path), modules)} - {home, "__init__"}
    upward = used - MAY_IMPORT.get(home, set())
    assert not upward, f"{_module_name(path)} imports {sorted(upward)}, above or beside {home}"


@pytest.mark.parametrize("path", [p for p in ALL_FILES if _home(_module_name(p)) in PURE_FOLDERS])
def test_pure_folders_do_no_io(path: Path) -> None:
    """Nothing in core/ or wire/ imports asyncio, threading, socket, time, tornado, os, random, dynamic."""
    names = _imports_of_file(path)
    bad = (_external(names) & FORBIDDEN_IN_PURE) | {n for n in names if n == "?dynamic"}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def _graph() -> dict[str, set[str]]:
    modules = _module_names()
    graph: dict[str, set[str]] = {}
    for path in ALL_FILES:
        module = _module_name(path)
        # Importing a submodule runs its package's __init__ first; that edge is not a choice.
        parents = {module.rsplit(".", n)[0] for n in range(1, module.count(".") + 1)}
        graph[module] = _internal(_imports_of_file(path), modules) - parents - {module}
    return graph


def test_no_import_cycles() -> None:
    """The modules' imports form no cycle, inside a folder as well as across folders."""
    graph = _graph()
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            cycle = [*trail[trail.index(module) :], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        if module != PACKAGE:  # the package __init__ imports lazily, inside functions
            visit(module, [])


# -- the rules: what importing a module really loads (a fresh interpreter each) -----------------

LIGHT = {"tornado", "IPython", "ipywidgets", "anywidget", "ipykernel", "comm", "nbformat", "openai", "mcp"}
TRANSITIVE = {
    PACKAGE: LIGHT,
    f"{PACKAGE}.core.session": LIGHT | {"asyncio", "websockets"},
    f"{PACKAGE}.core.snapshot": LIGHT | {"asyncio", "websockets"},
    f"{PACKAGE}.wire.protocol": LIGHT | {"asyncio", "websockets"},
    f"{PACKAGE}.runtime.hub": LIGHT,
    f"{PACKAGE}.client": LIGHT,
    f"{PACKAGE}.stores": LIGHT,
    f"{PACKAGE}.server.commlink": LIGHT,  # a comm link needs the pipeline, not Tornado
    f"{PACKAGE}.server.thread": LIGHT - {"tornado"},
    # Data frames are recognised by their type's module, never imported.
    f"{PACKAGE}.context": LIGHT | {"asyncio", "websockets", "pandas", "numpy", "polars"},
}


@pytest.mark.parametrize("module", sorted(TRANSITIVE))
def test_importing_loads_nothing_heavier(module: str) -> None:
    """Importing each layer pulls in none of the frameworks above it (checked in a fresh interpreter)."""
    code = f"import sys, json, {module}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert module.split(".")[0] in loaded
    assert not loaded & TRANSITIVE[module], f"import {module} loads {sorted(loaded & TRANSITIVE[module])}"
