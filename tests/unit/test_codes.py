"""Close codes have one home: the server, comm links, widget and client read the same constants."""

from __future__ import annotations

import ast
from pathlib import Path

from llmsock_widget.client import core as client_core
from llmsock_widget.server import commlink, websocket
from llmsock_widget.server import thread as server
from llmsock_widget.wire import codes

ROOT = Path(__file__).resolve().parents[2] / "llmsock_widget"
MODULES = sorted(ROOT.rglob("*.py"))


def _close_code_assignments(path: Path) -> list[str]:
    """Return the ``CLOSE_*`` names a module assigns a whole number to at its top level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in tree.body:
        if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Constant):
            continue
        if type(node.value.value) is int:  # CLOSE_TIMEOUT (seconds) is no close code
            names += [t.id for t in node.targets if isinstance(t, ast.Name) and t.id.startswith("CLOSE_")]
    return names


def test_close_codes_are_declared_only_in_codes() -> None:
    """No module but codes.py gives a close code its number, so server and client cannot disagree."""
    elsewhere = {
        str(path.relative_to(ROOT)): found
        for path in MODULES
        if path.name != "codes.py" and (found := _close_code_assignments(path))
    }
    assert not elsewhere, f"close codes declared outside codes.py: {elsewhere}"


def test_widget_names_its_close_codes() -> None:
    """The widget closes comm links with the named codes, not bare numbers."""
    source = (ROOT / "notebook" / "widget.py").read_text(encoding="utf-8")
    numbers = {node.value for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Constant)}
    declared = {value for name, value in vars(codes).items() if name.startswith("CLOSE_")}
    assert not numbers & declared


def test_every_edge_reads_the_same_constants() -> None:
    """The server, the comm link and the client see the very values of codes.py under the old names."""
    for module in (websocket, server, commlink, client_core):
        for name, value in vars(module).items():
            if name.startswith("CLOSE_") and isinstance(value, int):
                assert value == getattr(codes, name), f"{module.__name__}.{name}"
