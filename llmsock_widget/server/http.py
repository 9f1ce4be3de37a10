"""The Tornado base of every route: refuse a request before anything else, then ``GET /status``.

Every route checks Host, Origin and token in ``prepare`` (through the :class:`~.guard.Guard`),
and the server's capacity, before a WebSocket is opened or a byte of the session is sent.
"""

from __future__ import annotations

import json
from typing import Any

import tornado.web

from ..wire import protocol
from .connection import ServerContext, at_capacity
from .guard import presented_token


class GuardedHandler(tornado.web.RequestHandler):
    """Refuse the request before anything else unless host, origin and token are right."""

    server: ServerContext

    def initialize(self, server: ServerContext) -> None:
        self.server = server

    frame_auth = False  # whether the token may come as the first frame instead (WebSocket)
    authenticated = False
    tcp_stream: Any = None

    def prepare(self) -> None:
        # Kept now: once a WebSocket is upgraded the request no longer names its stream.
        self.tcp_stream = getattr(self.request.connection, "stream", None)
        refusal = self.server.guard.check(self.request, frame_auth=self.frame_auth)
        if refusal is not None:
            self.server.stats.rejected += 1
            status, reason = refusal
            code = {401: "unauthorized", 429: "too_many_attempts"}.get(status, "forbidden")
            if status == 429:
                self.set_header("Retry-After", self.server.guard.failures.retry_after_header())
            self.send_json(status, {"error": {"code": code, "message": reason}})
            return
        self.authenticated = presented_token(self.request) is not None
        if self.authenticated and self.tcp_stream is not None:  # no longer one of the idle unknowns
            self.server.pending.authenticated(self.tcp_stream)
        if self.request.path != "/status" and at_capacity(self.server):
            limit = self.server.limits.max_connections
            message = f"the server holds its maximum of {limit} connections; try again later"
            self.set_header("Retry-After", "5")
            self.send_json(503, {"error": {"code": "too_many_connections", "message": message}})

    def send_json(self, status: int, body: dict[str, Any]) -> None:
        """Finish the request with a JSON body."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def resume_arg(self) -> tuple[str, int] | None:
        """Return the ``resume=<epoch>:<seq>`` query value, or None.

        Raises:
            InvalidFrame: a malformed value.
        """
        values = self.request.query_arguments.get("resume")
        if not values or not values[-1]:
            return None
        return protocol.parse_resume(values[-1].decode("utf-8", errors="replace"))

    def dialect_arg(self) -> protocol.Dialect | None:
        """Return the dialect the ``dialect`` query parameter names (None if absent or empty).

        Raises:
            InvalidFrame: no dialect has that name.
        """
        values = self.request.query_arguments.get(protocol.DIALECT_PARAMETER)
        if not values or not values[-1]:
            return None
        return protocol.parse_dialect(values[-1].decode("utf-8", errors="replace"))

    def session_arg(self) -> str | None:
        """Return the ``session`` query value exactly as sent, else ``convId``'s (None if neither).

        ``convId`` is how seed 004's client names its conversation on every connect; it
        names the session only when ``session`` is absent or empty, under the same rules.
        Tornado's get_argument would strip control characters and turn a bad id
        into a different one; the hub must see what the client sent and refuse it.
        """
        for name in ("session", "convId"):
            values = self.request.query_arguments.get(name)
            if values and values[-1]:
                return values[-1].decode("utf-8", errors="replace")
        return None


class StatusHandler(GuardedHandler):
    """``GET /status``: the server's counters as JSON."""

    def get(self) -> None:
        self.send_json(200, self.server.status())
