"""The flat module paths of 0.x before the folders, kept importable for one release.

``import llmsock_widget.kernel`` still works and gives the very module that now lives at
``llmsock_widget.notebook.kernel``, with a DeprecationWarning naming the new path.
One table instead of twenty one-line re-export files, so the package folder shows only
the layers.  ``llmsock_widget.server`` needs no entry: it is a package now and keeps
``ServerThread`` and ``start_server``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Sequence

PACKAGE = __name__.rpartition(".")[0]

MOVED = {
    "events": "core.events",
    "session": "core.session",
    "snapshot": "core.snapshot",
    "protocol": "wire.protocol",
    "codes": "wire.codes",
    "safehtml": "wire.safehtml",
    "fanout": "runtime.fanout",
    "live": "runtime.live",
    "turns": "runtime.turns",
    "hub": "runtime.hub",
    "loopthread": "server.loopthread",
    "guard": "server.guard",
    "handlers": "server.websocket",
    "historyframes": "server.historyframes",
    "commlink": "server.commlink",
    "durable": "stores.durable",
    "kernel": "notebook.kernel",
    "widget": "notebook.widget",
    "extension": "notebook.extension",
    "answer": "notebook.answer",
    "notebookfile": "notebook.notebookfile",
}
REMOVED_IN = "0.3"


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answer an old path with the module at its new path (the same object, not a copy)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, leaf = fullname.rpartition(".")
        if package != PACKAGE or leaf not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = f"{PACKAGE}.{MOVED[spec.name.rpartition('.')[2]]}"
        warnings.warn(
            f"{spec.name} moved to {new}; the old path goes in {REMOVED_IN}",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was loaded at its new path."""


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
