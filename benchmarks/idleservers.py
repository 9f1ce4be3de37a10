"""Plain servers that hold idle WebSockets: the controls of the connections suite.

Each says hello (the frame llmsock's server sends a new session's first connection) as soon as
it accepts a connection, reads and drops whatever the client sends (an auth frame, or nothing:
llmsock's clients authenticate with a header, which these servers ignore), and otherwise leaves
the connection idle until it closes.  They are what a user might write with the ``websockets``
package (:class:`IdleWebsocketsServer`) or with Tornado alone (:class:`IdleTornadoServer`),
so the memory an idle connection takes in them stands beside llmsock's.
"""

from __future__ import annotations

import asyncio
import contextlib

import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.websocket
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from llmsock_widget.core.events import SessionReady
from llmsock_widget.runtime.hub import new_id, now_ms
from llmsock_widget.wire import protocol

from .common import BenchFailure, ControlServer


def hello_frame() -> str:
    """Return the hello of a new session (``ready``, as an envelope frame), as llmsock sends it."""
    ready = SessionReady(session_id=new_id(), seq=0, status="idle", ts=now_ms(), created=True)
    frame = protocol.encode(ready, "envelope")
    if frame is None:
        raise BenchFailure("SessionReady has no envelope frame")
    return frame


class IdleWebsocketsServer(ControlServer):
    """A ``websockets`` server (``websockets.asyncio.server.serve``, its defaults but compression)."""

    token = ""  # no authentication
    label = "the idle websockets server"

    def __init__(self, *, timeout: float = 10.0) -> None:
        super().__init__(timeout=timeout)
        self.hello = hello_frame()
        self._server: Server | None = None

    def held(self) -> int:
        """Return the connections open now (call it on the server's loop)."""
        return len(self._server.connections) if self._server is not None else 0

    async def _startup(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0, compression=None, backlog=128)
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), self.timeout)

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


class IdleTornadoServer(ControlServer):
    """A bare ``tornado.websocket.WebSocketHandler`` on an ``HTTPServer`` with Tornado's defaults."""

    token = ""  # no authentication
    label = "the idle Tornado server"

    def __init__(self, *, timeout: float = 10.0) -> None:
        super().__init__(timeout=timeout)
        self.hello = hello_frame()
        self.connections: set[_IdleHandler] = set()
        self._http: tornado.httpserver.HTTPServer | None = None

    def held(self) -> int:
        """Return the connections open now (call it on the server's loop)."""
        return len(self.connections)

    async def _startup(self) -> None:
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        app = tornado.web.Application([(r"/ws", _IdleHandler, {"server": self})])
        self._http = tornado.httpserver.HTTPServer(app)
        self._http.add_sockets(sockets)

    async def _shutdown(self) -> None:
        if self._http is not None:
            self._http.stop()
            for handler in list(self.connections):
                handler.close(1001, "server stopping")
            await asyncio.wait_for(self._http.close_all_connections(), self.timeout)
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
