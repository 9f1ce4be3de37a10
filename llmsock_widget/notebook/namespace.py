"""The user's namespace as llmsock reads it: a copy taken from any thread, and the names a user means.

Both ``@name`` mentions (:mod:`.mentions`) and the model's kernel tools (:mod:`.kerneltools`)
read it from another thread than the one running cells, so they copy it first, and both show the
same names: not ``_``-names, not modules, not IPython's own (``In``, ``exit``...) while they keep
the value IPython gave them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython"})
"""IPython's own names, hidden even where IPython's record of them (``user_ns_hidden``) is missing."""

_COPY_TRIES = 5


def copy_of(mapping: Any) -> dict[str, Any]:
    """Return a shallow copy of ``mapping``'s string keys (a dict a cell may be changing), or {}."""
    if not isinstance(mapping, dict):
        return {}
    for _ in range(_COPY_TRIES):
        try:
            return {key: value for key, value in list(mapping.items()) if isinstance(key, str)}
        except RuntimeError:  # "changed size during iteration": read it again
            continue
    return {}


def is_user_variable(name: str, value: Any, hidden: Mapping[str, Any]) -> bool:
    """Return whether ``name`` is a variable the user made, as ``%who`` shows them.

    ``hidden`` is IPython's ``user_ns_hidden``: a name there is IPython's own while it keeps that
    value; a user who gave it another value made it theirs.
    """
    if name.startswith("_") or not name.isidentifier() or isinstance(value, ModuleType):
        return False
    if name in hidden:
        return hidden[name] is not value
    return name not in IPYTHON_NAMES
