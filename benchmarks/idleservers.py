"""Plain servers that hold idle WebSockets: the controls of the connections suite.

Each says hello (the frame llmsock's server sends a new session's first connection) as soon as
it accepts a connection, reads and drops whatever the client sends (an auth frame, or nothing:
llmsock's clients authenticate with a header, which these servers ignore), and otherwise leaves
the connection idle until it closes.  They are what a user might write with the ``websockets``
package (:class:`IdleWebsocketsServer`) or with Tornado alone (:class:`IdleTornadoServer`),
so the memory an idle connection takes in them stands beside llmsock's.
"""

from __future__ import annotations

import contextlib

import tornado.websocket
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from llmsock_widget.core.events import SessionReady
from llmsock_widget.runtime.hub import new_id, now_ms
from llmsock_widget.wire import protocol

from .common import BenchFailure, TornadoControl, WebsocketsControl


def hello_frame() -> str:
    """Return the hello of a new session (``ready``, as an envelope frame), as llmsock sends it."""
    ready = SessionReady(session_id=new_id(), seq=0, status="idle", ts=now_ms(), created=True)
    frame = protocol.encode(ready, "envelope")
    if frame is None:
        raise BenchFailure("SessionReady has no envelope frame")
    return frame


class IdleWebsocketsServer(WebsocketsControl):
    """A ``websockets`` server (``websockets.asyncio.server.serve``, its defaults but compression)."""

    token = ""  # no authentication
    label = "the idle websockets server"
    hello = hello_frame()

    async def _handle(self, ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(self.hello)
            async for _ in ws:  # an auth frame, or anything else: read and dropped
                pass


class _IdleHandler(tornado.websocket.WebSocketHandler):
    """Say hello on open; read and drop every frame."""

    def initialize(self, server: IdleTornadoServer) -> None:
        self.server = server

    def open(self, *args: str, **kwargs: str) -> None:
        self.set_nodelay(True)  # as the llmsock server does
        self.server.connections.add(self)
        self.write_message(self.server.hello)

    def on_message(self, message: str | bytes) -> None:
        pass

    def on_close(self) -> None:
        self.server.connections.discard(self)


class IdleTornadoServer(TornadoControl):
    """A bare ``tornado.websocket.WebSocketHandler`` on an ``HTTPServer`` with Tornado's defaults."""

    token = ""  # no authentication
    label = "the idle Tornado server"
    handler = _IdleHandler
    hello = hello_frame()
