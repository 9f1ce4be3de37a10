"""The import direction rule of STYLE.md, checked by parsing the package (nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "llmsock_widget"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE

PURE = ("errors", "events", "session", "snapshot", "protocol", "safehtml")
FORBIDDEN_IN_PURE = {"asyncio", "threading", "socket", "time", "tornado", "os", "random"}
ALLOWED_INTERNAL = {
    "errors": set(),
    "events": {"errors", "events"},
    "protocol": {"errors", "events"},
    "session": {"errors", "events", "session"},
    "snapshot": {"errors", "events", "session"},
    "safehtml": set(),
}


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


def _internal(names: set[str]) -> set[str]:
    """Return the first-level package modules among ``names`` (``llmsock_widget.x.y`` -> ``x``).

    The bare package is left out: importing any submodule runs its ``__init__`` anyway.
    """
    return {name.split(".")[1] for name in names if name.split(".")[0] == PACKAGE and "." in name}


def _external(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names if name.split(".")[0] != PACKAGE}


def _direct_internal(module: str) -> set[str]:
    """Return the package modules that ``module`` names in a ``from X import`` / ``import X`` target.

    ``from .events import UserMessage`` counts as ``events`` only: imported names
    that are not modules of the package are not counted.
    """
    path = ROOT / f"{module}.py"
    names = imports_of(path.read_text(encoding="utf-8"), f"{PACKAGE}.{module}")
    existing = {p.stem for p in ROOT.glob("*.py")} | {p.name for p in ROOT.iterdir() if p.is_dir()}
    return {m for m in _internal(names) if m in existing}


def _files_of(name: str) -> list[Path]:
    """Return the source files of module or package ``name`` that exist (none if it does not exist yet)."""
    single = ROOT / f"{name}.py"
    if single.exists():
        return [single]
    folder = ROOT / name
    return sorted(folder.rglob("*.py")) if folder.is_dir() else []


def _imports_of_file(path: Path) -> set[str]:
    source = path.read_text(encoding="utf-8")
    return imports_of(source, _module_name(path), is_package=path.name == "__init__.py")


ALL_FILES = sorted(ROOT.rglob("*.py"))


# -- the checker checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("from .errors import InvalidFrame", "llmsock_widget.protocol", {"llmsock_widget.errors"}),
        ("from . import server", "llmsock_widget.widget", {"llmsock_widget", "llmsock_widget.server"}),
        ("from ..hub import Hub", "llmsock_widget.stores.memory", {"llmsock_widget.hub"}),
        ("import llmsock_widget.server as s", "llmsock_widget.widget", {"llmsock_widget.server"}),
        ("def f():\n    import time\n", "llmsock_widget.session", {"time"}),
        ("from os.path import join", "llmsock_widget.session", {"os.path", "os.path.join"}),
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


# -- the rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize("module", PURE)
def test_pure_module_exists(module: str) -> None:
    """Each of the pure modules exists as a single file."""
    assert (ROOT / f"{module}.py").is_file()


@pytest.mark.parametrize("path", ALL_FILES, ids=[_module_name(p) for p in ALL_FILES])
def test_every_module_parses(path: Path) -> None:
    """Every module of the package is valid Python the checker can read."""
    _imports_of_file(path)


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_only_lower_layers(module: str) -> None:
    """errors imports nothing of ours; protocol/events only errors/events; session/snapshot also session."""
    extra = _direct_internal(module) - ALLOWED_INTERNAL[module]
    assert not extra, f"{module} imports {sorted(extra)}"


@pytest.mark.parametrize("module", PURE)
def test_pure_module_does_no_io(module: str) -> None:
    """No pure module imports asyncio, threading, socket, time, tornado, os, random, or dynamically."""
    names = _imports_of_file(ROOT / f"{module}.py")
    bad = (_external(names) & FORBIDDEN_IN_PURE) | {n for n in names if n == "?dynamic"}
    assert not bad, f"{module} imports {sorted(bad)}"


def test_hub_does_not_import_tornado() -> None:
    """hub (when it exists) does not import tornado: it is the coordinator, not the I/O layer."""
    for path in _files_of("hub"):
        assert "tornado" not in _external(_imports_of_file(path)), path.name


def test_widget_does_not_import_server() -> None:
    """widget (when it exists) knows constants only and never imports server."""
    for path in _files_of("widget"):
        assert "server" not in _internal(_imports_of_file(path)), path.name


# Every module of the package has a layer; a module imports only modules of lower layers.
# A new module fails test_every_module_has_a_layer until it is placed here (and in docs/architecture.md).
LAYERS = {
    "errors": 0,
    "codes": 0,
    "_version": 0,
    "durable": 0,
    "loopthread": 0,
    "guard": 0,
    "events": 1,
    "protocol": 2,
    "safehtml": 0,
    "session": 2,
    "fanout": 2,
    "snapshot": 3,
    "historyframes": 3,
    "client": 3,
    "stores": 4,
    "models": 4,
    "tools": 4,
    "notebookfile": 4,
    "live": 5,
    "turns": 6,
    "hub": 7,
    "handlers": 8,
    "server": 9,
    "commlink": 9,
    "kernel": 10,
    "answer": 10,
    "widget": 11,
    "extension": 12,
    "__main__": 12,
    "__init__": 13,
}


def _layer_modules() -> list[str]:
    names = {p.stem for p in ROOT.glob("*.py")} | {
        p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()
    }
    return sorted(names)


@pytest.mark.parametrize("module", _layer_modules())
def test_every_module_has_a_layer(module: str) -> None:
    """Each module of the package is placed in the layer table."""
    assert module in LAYERS, f"give {module} a layer in LAYERS"


@pytest.mark.parametrize("module", [m for m in _layer_modules() if m != "__init__"])
def test_imports_point_downward(module: str) -> None:
    """A module imports only modules of lower layers (the package __init__ imports lazily, at the top)."""
    paths = _files_of(module)
    found: set[str] = set()
    for path in paths:
        found |= _internal(_imports_of_file(path))
    upward = {m for m in found if m != module and m in LAYERS and LAYERS[m] >= LAYERS.get(module, -1)}
    assert not upward, f"{module} imports {sorted(upward)} from its own or a higher layer"
