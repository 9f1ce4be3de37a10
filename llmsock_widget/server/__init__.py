"""The Tornado edge: the server thread and its loop, the guard (Host, Origin, token), limits,
the WebSocket and SSE handlers and the comm link.

``llmsock_widget.server.ServerThread`` and ``start_server`` keep the names the flat module had.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .thread import ServerThread, start_server

__all__ = ["ServerThread", "start_server"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import thread

        return getattr(thread, name)
    raise AttributeError(name)
