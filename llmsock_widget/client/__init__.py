"""A Python client for llmsock: one session over WebSocket, reconnected and resumed by itself.

::

    async with Client("ws://127.0.0.1:8765/ws", token=token) as client:
        answer = await client.ask("Hello")

``core`` and ``answers`` are pure (backoff, close policy, the cursor over a
session's sequence, answer collection); ``transport`` opens one connection with
websockets' asyncio API, ``connection`` runs the Client on top of it, ``stream``
is the app's event iterator; ``chat`` is the terminal chat of ``python -m
llmsock_widget chat``.  Nothing here imports the server, so the client runs in
any process that has ``websockets`` (the ``client`` extra).  Without it the pure
parts still import; :class:`Client` and the modules that open connections raise
an ImportError that names the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .answers import Answer, AnswerCollector
from .core import (
    Backoff,
    ClientClosed,
    ClientFailure,
    ClientStats,
    ConnectFailed,
    ConnectionLost,
    HandshakeRefused,
    RequestFailed,
    SessionRefused,
)
from .stream import EventStream

if TYPE_CHECKING:
    from .connection import Client

EXTRA_MISSING = "the llmsock client needs the websockets package: pip install 'llmsock[client]'"

__all__ = [
    "Answer",
    "AnswerCollector",
    "Backoff",
    "Client",
    "ClientClosed",
    "ClientFailure",
    "ClientStats",
    "ConnectFailed",
    "ConnectionLost",
    "EventStream",
    "HandshakeRefused",
    "RequestFailed",
    "SessionRefused",
]


def __getattr__(name: str) -> Any:
    """Import :class:`Client` on first use, so the pure parts import without websockets."""
    if name == "Client":
        from .connection import Client

        return Client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
