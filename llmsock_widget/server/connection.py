"""The one pipeline every connection shares: a client frame in, a command to the hub, replies out.

A WebSocket (:mod:`.websocket`), an SSE stream (:mod:`.sse`) and a view's comm link
(:mod:`.commlink`) reach the server only through :class:`ServerContext`, so none of
them depends on the ServerThread; WebSocket and comm link hand each client frame to
:func:`act_on_frame`, so both rate-limit, decode and refuse it the same way.  No Tornado here.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Callable, Protocol

from ..core.events import ControlResult, ErrorReply, Event
from ..errors import ClientError, wire_error
from ..runtime.hub import Hub
from ..wire import protocol
from .guard import Guard, PendingConnections
from .limits import ConnectionStats, Limits, RateLimiter, Stats, too_many_messages_reply

log = logging.getLogger("llmsock")

ERROR_CODES = ("forbidden", "unauthorized", "too_many_attempts", "too_many_connections", "too_many_messages")
"""The codes the edge sends on its own: HTTP refusals and the rate limit's error reply."""


class Connection(Protocol):
    """A client attached to a session: a WebSocket, or a view's comm link."""

    transport: str
    session_id: str | None

    def close(self, code: int = ..., reason: str = ...) -> None:
        """End the connection with a close code."""
        ...


class ServerContext(Protocol):
    """What the handlers need of the server that runs them (the ServerThread provides it)."""

    guard: Guard
    stats: Stats
    hub: Hub
    connections: set[Connection]
    outbound_limit: int
    limits: Limits
    handshake_timeout: float
    pending: PendingConnections[Any]

    def frames(self, event: Event, dialect: protocol.Dialect) -> tuple[str, ...]:
        """Return ``event``'s frames in ``dialect``; never raise."""
        ...

    def status(self) -> dict[str, Any]:
        """Return the server's counters."""
        ...


def reply_with_stats(
    reply: Callable[[Event], None], connection: ConnectionStats, server: ServerContext
) -> Callable[[Event], None]:
    """Wrap ``reply`` so a ``get_status`` result also carries this connection's and the server's counters."""

    def send(event: Event) -> None:
        if isinstance(event, ControlResult) and event.action == "get_status" and event.ok:
            data = {**event.data, "connection": connection.as_dict(), "server": server.status()}
            event = replace(event, data=data)
        reply(event)

    return send


def act_on_frame(
    server: ServerContext,
    session_id: str,
    frame: str | protocol.ClientFrame,
    dialect: protocol.Dialect,
    limiter: RateLimiter,
    counters: ConnectionStats,
    deliver: Callable[[Event], None],
) -> None:
    """Rate-limit, decode and hand one client frame to the hub; every refusal goes back by ``deliver``.

    Shared by ``/ws`` and the chat views' comm links, so both treat a frame the same way.
    ``frame`` is the text, or the ClientFrame the caller already asked about (so it is parsed once).
    """
    hub = server.hub
    if not limiter.allow():
        server.stats.rate_limited += 1
        if limiter.should_warn():
            deliver(too_many_messages_reply(server.limits, hub.clock()))
        return
    frame = frame if isinstance(frame, protocol.ClientFrame) else protocol.ClientFrame(frame)
    try:
        command = protocol.decode(frame, dialect)
    except ClientError as exc:
        refused = frame.message_type()  # a refused prompt ends its turn; seed 004's codes depend on it
        deliver(
            ErrorReply(
                code=exc.code, message=exc.message, ts=hub.clock(), request_id=exc.request_id, refused=refused
            )
        )
        return
    try:
        hub.handle(session_id, command, reply_with_stats(deliver, counters, server))
    except Exception as exc:  # a bug: tell the client, log the traceback, keep the connection
        log.exception("llmsock: handler failed")
        code, message, recoverable = wire_error(exc)
        deliver(ErrorReply(code=code, message=message, ts=hub.clock(), recoverable=recoverable))


def close_reason(text: str) -> str:
    """Return ``text`` cut so its UTF-8 fits a close frame's reason (123 bytes)."""
    return text.encode("utf-8")[:120].decode("utf-8", errors="ignore")


def at_capacity(server: ServerContext) -> bool:
    """Whether the server holds its maximum of connections (counting it as a refusal if so)."""
    full = len(server.connections) + server.stats.sse_open >= server.limits.max_connections
    if full:
        server.stats.over_capacity += 1
    return full
