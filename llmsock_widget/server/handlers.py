"""Thin Tornado handlers: authenticate, decode, hand commands to the hub, write what it publishes.

Handlers never await a turn, so pings, Stop and other frames are read while an
answer streams.  Every route checks Host, Origin and token in ``prepare``,
before a WebSocket is opened or a byte of the session is sent.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import struct
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Protocol, Sequence

import tornado.iostream
import tornado.web
import tornado.websocket

from ..core.events import ControlResult, ErrorReply, Event, ModelEnd, ModelError, Pong
from ..errors import ClientError, LlmsockError, wire_error
from ..runtime.hub import Hub
from ..wire import protocol

# The close codes of this edge (docs/protocol.md, section 12); the three ``as`` ones are re-exported:
# the server sends 1001 on stopping, Tornado itself sends 1000 and 1009.
from ..wire.codes import CLOSE_GOING_AWAY as CLOSE_GOING_AWAY
from ..wire.codes import CLOSE_NORMAL as CLOSE_NORMAL
from ..wire.codes import (
    CLOSE_SESSION_REFUSED,
    CLOSE_SLOW_CONSUMER,
    CLOSE_TOO_MANY_ATTEMPTS,
    CLOSE_UNAUTHORIZED,
    CLOSE_UNAVAILABLE,
    CLOSE_UNSUPPORTED,
)
from ..wire.codes import CLOSE_TOO_BIG as CLOSE_TOO_BIG
from .guard import FailureBudget, PendingConnections

log = logging.getLogger("llmsock")

SSE_MAX_QUEUED = 10_000  # events an SSE client may fall behind before its stream is ended

ERROR_CODES = ("forbidden", "unauthorized", "too_many_attempts", "too_many_connections", "too_many_messages")
"""The codes the edge sends on its own: HTTP refusals and the rate limit's error reply."""


@dataclass
class Stats:
    """Counters the server keeps (read them from any thread; they only grow)."""

    connections_total: int = 0
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    rejected: int = 0
    slow_consumers_dropped: int = 0
    rate_limited: int = 0  # client messages dropped by the rate limit
    over_capacity: int = 0  # connections refused because the server was full
    sse_open: int = 0  # SSE streams open now
    resumed: int = 0  # connections that asked to resume and were given the events they missed
    reloaded: int = 0  # connections that asked to resume and had to reload instead
    replayed_events: int = 0

    def count_resume(self, ready: Any) -> None:
        """Count the outcome of a connection's resume request (``ready.resumed`` is None without one)."""
        if ready.resumed is True:
            self.resumed += 1
            self.replayed_events += ready.replayed
        elif ready.resumed is False:
            self.reloaded += 1


@dataclass(frozen=True)
class Limits:
    """What one client may take of the server (docs/security.md, "Limits")."""

    max_connections: int = 100  # WebSockets, SSE streams and comm links at once
    messages_per_second: float = 20.0  # a client's frames, sustained ...
    message_burst: int = 40  # ... and in a burst


class RateLimiter:
    """A token bucket: ``allow()`` says whether one more message fits now."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.stamp = clock()
        self.warned_at = -1e9  # when the client was last told it is over the limit

    def allow(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def should_warn(self) -> bool:
        """Whether to send a ``too_many_messages`` error now (at most one a second, not one per drop)."""
        now = self.clock()
        if now - self.warned_at >= 1.0:
            self.warned_at = now
            return True
        return False


def too_many_messages_reply(limits: Limits, ts: int) -> ErrorReply:
    return ErrorReply(
        code="too_many_messages",
        message=(
            f"too many messages: at most {limits.messages_per_second:g} a second "
            f"(bursts of {limits.message_burst}); this one was dropped"
        ),
        ts=ts,
        recoverable=True,
    )


@dataclass
class ConnectionStats:
    """One connection's counters, sent back on ``get_status`` (protocol section 8)."""

    transport: str
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    resumed: bool | None = None  # None: it did not ask to resume
    replayed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "messagesIn": self.messages_in,
            "messagesOut": self.messages_out,
            "bytesIn": self.bytes_in,
            "bytesOut": self.bytes_out,
            "resumed": self.resumed,
            "replayed": self.replayed,
        }


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
    text: str,
    dialect: protocol.Dialect,
    limiter: RateLimiter,
    counters: ConnectionStats,
    deliver: Callable[[Event], None],
) -> None:
    """Rate-limit, decode and hand one client frame to the hub; every refusal goes back by ``deliver``.

    Shared by ``/ws`` and the chat views' comm links, so both treat a frame the same way.
    """
    hub = server.hub
    if not limiter.allow():
        server.stats.rate_limited += 1
        if limiter.should_warn():
            deliver(too_many_messages_reply(server.limits, hub.clock()))
        return
    try:
        command = protocol.decode(text, dialect)
    except ClientError as exc:
        deliver(ErrorReply(code=exc.code, message=exc.message, ts=hub.clock(), request_id=exc.request_id))
        return
    try:
        hub.handle(session_id, command, reply_with_stats(deliver, counters, server))
    except Exception as exc:  # a bug: tell the client, log the traceback, keep the connection
        log.exception("llmsock: handler failed")
        code, message, recoverable = wire_error(exc)
        deliver(ErrorReply(code=code, message=message, ts=hub.clock(), recoverable=recoverable))


class Connection(Protocol):
    """A client attached to a session: a WebSocket, or a view's comm link."""

    transport: str
    session_id: str | None

    def close(self, code: int = ..., reason: str = ...) -> None:
        """End the connection with a close code."""
        ...


class Guard:
    """Host, Origin and token checks shared by every route."""

    def __init__(
        self,
        *,
        token: str,
        allowed_origins: Iterable[str],
        allowed_hosts: Iterable[str],
        failures: FailureBudget | None = None,
    ) -> None:
        self.token = token.encode()
        self.allowed_origins = {o.lower().rstrip("/") for o in allowed_origins}
        self.extra_hosts = {h.lower() for h in allowed_hosts}
        self.port = 0
        self.failures = failures if failures is not None else FailureBudget(rate=1.0, burst=20)

    def allow_host(self, host: str) -> None:
        """Add one exact ``Host`` header value (``name:port``) to the allow-list."""
        self.extra_hosts.add(host.lower())

    def allow_origin(self, origin: str) -> None:
        """Add one exact origin (``scheme://host[:port]``) to the allow-list."""
        self.allowed_origins.add(origin.lower().rstrip("/"))

    def hosts(self) -> set[str]:
        """Return the Host header values accepted: loopback names with our port, plus extras."""
        loopback = {f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}"}
        return loopback | self.extra_hosts

    def check(self, request: Any, *, frame_auth: bool = False) -> tuple[int, str] | None:
        """Return ``(status, reason)`` if the request must be refused, else None.

        With ``frame_auth`` (a WebSocket upgrade) a request without a token passes: its
        token must then come as the first frame (:func:`auth_frame_token`).
        """
        host = request.headers.get("Host", "").lower()
        if host not in self.hosts():
            return 403, "host not allowed"
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower().rstrip("/") not in self.allowed_origins:
            return 403, "origin not allowed"
        if any("token" in name.lower() for name in request.query_arguments):
            return 401, "a token in the URL is refused; send it in a header or the first frame"
        if _offers_token_subprotocol(request):
            # Proxies log the subprotocols they forward (jupyter-server-proxy does at --debug).
            return 401, "a token in a subprotocol is refused; send it in a header or the first frame"
        presented = _presented_token(request)
        if presented is None:
            return None if frame_auth else (401, "token required")
        return self.check_token(presented)

    def check_token(self, presented: str) -> tuple[int, str] | None:
        """Return ``(status, reason)`` unless ``presented`` is the token and guessing is not cut off."""
        if self.failures.retry_after() > 0:
            # Refuse even the right token: a guesser must not learn which one it was.
            self.failures.refused += 1
            return 429, "too many wrong tokens; try again later"
        if not hmac.compare_digest(presented.encode(), self.token):
            self.failures.fail()
            return 401, "invalid token"
        return None


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


def _presented_token(request: Any) -> str | None:
    auth: str = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _offers_token_subprotocol(request: Any) -> bool:
    offered: str = request.headers.get("Sec-WebSocket-Protocol", "")
    return any(item.strip().startswith(protocol.SUBPROTOCOL_TOKEN_PREFIX) for item in offered.split(","))


def auth_frame_token(text: str | bytes) -> str | None:
    """Return the token of an auth frame ``{"type": "auth", "token": "..."}``, or None if it is not one."""
    if not isinstance(text, str):
        return None
    try:
        frame = protocol.parse_json(text)
    except ClientError:
        return None
    if not isinstance(frame, dict) or frame.get("type") != "auth":
        return None
    token = frame.get("token")
    return token if isinstance(token, str) and token else None


def close_reason(text: str) -> str:
    """Return ``text`` cut so its UTF-8 fits a close frame's reason (123 bytes)."""
    return text.encode("utf-8")[:120].decode("utf-8", errors="ignore")


def at_capacity(server: ServerContext) -> bool:
    """Whether the server holds its maximum of connections (counting it as a refusal if so)."""
    full = len(server.connections) + server.stats.sse_open >= server.limits.max_connections
    if full:
        server.stats.over_capacity += 1
    return full


class _Guarded(tornado.web.RequestHandler):
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
        self.authenticated = _presented_token(self.request) is not None
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

    def session_arg(self) -> str | None:
        """Return the ``session`` query value exactly as sent (None if absent or empty).

        Tornado's get_argument would strip control characters and turn a bad id
        into a different one; the hub must see what the client sent and refuse it.
        """
        values = self.request.query_arguments.get("session")
        if not values or not values[-1]:
            return None
        return values[-1].decode("utf-8", errors="replace")


class StatusHandler(_Guarded):
    """``GET /status``: the server's counters as JSON."""

    def get(self) -> None:
        self.send_json(200, self.server.status())


class WebSocketHandler(tornado.websocket.WebSocketHandler, _Guarded):
    """``/ws``: one connection on one session, in one dialect."""

    transport = "websocket"
    frame_auth = True

    def initialize(self, server: ServerContext) -> None:
        self.server = server
        self.dialect: protocol.Dialect = "envelope"
        self.dialect_fixed = False
        self.session_id: str | None = None
        self._created = False
        self._detach: Callable[[], Any] | None = None
        self._outbox: deque[str] = deque()
        self._outbox_size = 0
        self._flushing = False
        self._closing = False
        self._auth_timer: asyncio.TimerHandle | None = None
        self.counters = ConnectionStats(transport=self.transport)
        limits = server.limits
        self.limiter = RateLimiter(limits.messages_per_second, limits.message_burst)

    def check_origin(self, origin: str) -> bool:
        return True  # prepare() already did the exact-match check, before the upgrade

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        for name, dialect in (
            (protocol.SUBPROTOCOL_SEED004, "seed004"),
            (protocol.SUBPROTOCOL_ENVELOPE, "envelope"),
        ):
            if name in subprotocols:
                self.dialect, self.dialect_fixed = dialect, True  # type: ignore[assignment]
                return name
        return protocol.SUBPROTOCOL_AUTO if protocol.SUBPROTOCOL_AUTO in subprotocols else None

    async def open(self, *args: str, **kwargs: str) -> None:
        self.set_nodelay(True)  # a chat sends small frames; Nagle's delay would hold the first and last token
        self.server.stats.connections_total += 1
        self.server.connections.add(self)
        if not self.authenticated:  # a browser: its token comes as the first frame
            loop = asyncio.get_running_loop()
            self._auth_timer = loop.call_later(self.server.handshake_timeout, self._auth_expired)
            return
        await self._attach()

    def _auth_expired(self) -> None:
        if not self.authenticated and not self._closing:
            self.server.stats.rejected += 1
            self.close(CLOSE_UNAUTHORIZED, "no auth frame in time")

    def _authenticate(self, message: str | bytes) -> None:
        """Check the auth frame a browser sends first; attach to the session if its token is right."""
        token = auth_frame_token(message)
        if token is None:
            refusal: tuple[int, str] | None = (401, "the first frame must be an auth frame")
        else:
            refusal = self.server.guard.check_token(token)
        if refusal is not None:
            self.server.stats.rejected += 1
            code = CLOSE_TOO_MANY_ATTEMPTS if refusal[0] == 429 else CLOSE_UNAUTHORIZED
            self.close(code, refusal[1])
            return
        self.authenticated = True
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        if self.tcp_stream is not None:
            self.server.pending.authenticated(self.tcp_stream)
        asyncio.get_running_loop().create_task(self._attach())

    async def _attach(self) -> None:
        """Attach to the session the URL names (a new one if none) and start delivering its events."""
        try:
            resume = self.resume_arg()
            # A replay goes into the outbox at once: only what it can surely hold (half of it).
            max_replay = self.server.outbound_limit // 2
            key, detach, ready = await self.server.hub.attach(
                self.session_arg(), self._send_event, resume=resume, max_replay=max_replay
            )
        except ClientError as exc:
            self.close(CLOSE_SESSION_REFUSED, close_reason(exc.message))
            return
        except LlmsockError as exc:  # the store could not give us the session: say why, keep the server up
            log.warning("llmsock: cannot open session: %s", exc)
            self.close(CLOSE_UNAVAILABLE, close_reason(f"{exc.code}: {exc.message}"))
            return
        self.server.stats.count_resume(ready)
        self.counters.resumed, self.counters.replayed = ready.resumed, ready.replayed
        if self._closing:  # the peer left while we were loading the session
            await detach()
            return
        self.session_id, self._detach, self._created = key, detach, ready.created

    def on_message(self, message: str | bytes) -> None:
        stats = self.server.stats
        stats.messages_in += 1
        stats.bytes_in += len(message)
        self.counters.messages_in += 1
        self.counters.bytes_in += len(message)
        if isinstance(message, bytes):
            self.close(CLOSE_UNSUPPORTED, "binary frames are not supported; send text")
            return
        if not self.authenticated:
            self._authenticate(message)
            return
        if self.session_id is None:
            return
        if not self.dialect_fixed:
            self.dialect_fixed = True
            if protocol.detect_dialect(message) == "seed004":
                self.dialect = "seed004"
                # Hello again, in the dialect the client speaks.
                self._send_event(self.server.hub.ready(self.session_id, created=self._created))
        act_on_frame(
            self.server, self.session_id, message, self.dialect, self.limiter, self.counters, self._send_event
        )

    def on_close(self) -> None:
        self._closing = True
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        self.server.connections.discard(self)
        self._outbox.clear()
        if self._detach is not None:
            detach, self._detach = self._detach, None
            asyncio.get_running_loop().create_task(detach())

    # -- outbound ----------------------------------------------------------------

    def _send_event(self, event: Event) -> None:
        for frame in self.server.frames(event, self.dialect):  # never raises (protocol.frames)
            self._send(frame)

    def _send(self, frame: str) -> None:
        if self._closing:
            return
        self._outbox.append(frame)
        self._outbox_size += len(frame)
        if self._outbox_size > self.server.outbound_limit:
            # The client stopped reading: drop it rather than grow memory; it can reconnect.
            log.warning("llmsock: closing a connection that stopped reading (%d queued)", self._outbox_size)
            self._closing = True
            self._outbox.clear()
            self.server.stats.slow_consumers_dropped += 1
            self.close(CLOSE_SLOW_CONSUMER, "outbound queue overflow: the client is not reading")
            return
        if not self._flushing:
            # Flush once the events of this loop turn are queued, so they leave in one write.
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Hand everything queued to Tornado as one write: one send, no task, no future per frame."""
        if self._closing or not self._outbox:
            self._flushing = False
            return
        frames = list(self._outbox)
        self._outbox.clear()
        size, self._outbox_size = self._outbox_size, 0
        connection = self.ws_connection
        stream = getattr(connection, "stream", None)
        try:
            if connection is None or stream is None or connection.is_closing():
                raise tornado.iostream.StreamClosedError()
            future = stream.write(text_frames(frames))
        except tornado.iostream.StreamClosedError:
            self._flushing = False  # the peer left; on_close cleans up
            return
        except Exception:
            log.exception("llmsock: sending failed")
            self._flushing = False
            return
        stats = self.server.stats
        stats.messages_out += len(frames)
        stats.bytes_out += size
        self.counters.messages_out += len(frames)
        self.counters.bytes_out += size
        if future.done():  # the socket took it all
            self._written(future)
        else:  # backpressure: what comes meanwhile waits in the outbox until the socket took this
            future.add_done_callback(self._written)

    def _written(self, future: Any) -> None:
        if future.cancelled() or future.exception() is not None:  # the peer left (error marked seen)
            self._flushing = False
        elif self._outbox and not self._closing:
            self._flush()
        else:
            self._flushing = False


def text_frames(frames: Sequence[str]) -> bytes:
    """Return ``frames`` as WebSocket text frames back to back (RFC 6455 5.2: FIN, opcode 1, unmasked).

    This is what ``write_message`` writes for each of them when, as here, no compression was
    negotiated (``get_compression_options`` returns None).
    """
    parts: list[bytes] = []
    for frame in frames:
        data = frame.encode("utf-8", "replace")  # a lone surrogate must not lose the whole batch
        size = len(data)
        if size < 126:
            parts.append(bytes((0x81, size)))
        elif size <= 0xFFFF:
            parts.append(struct.pack("!BBH", 0x81, 126, size))
        else:
            parts.append(struct.pack("!BBQ", 0x81, 127, size))
        parts.append(data)
    return b"".join(parts)


class SseHandler(_Guarded):
    """``/sse``: GET follows a session's events; POST sends a prompt (or command) and streams its turn."""

    async def get(self) -> None:
        await self._stream(command=None)

    async def post(self) -> None:
        try:
            body = self.request.body.decode("utf-8")
            command = protocol.decode(body, "envelope")
        except UnicodeDecodeError:
            self.send_json(400, {"error": {"code": "invalid_message", "message": "the body is not UTF-8"}})
            return
        except ClientError as exc:
            self.send_json(400, {"error": {"code": exc.code, "message": exc.message}})
            return
        await self._stream(command=command)

    async def _stream(self, command: protocol.Command | None) -> None:
        self._outbox: asyncio.Queue[Event | None] = asyncio.Queue()
        message_id = f"sse-{secrets.token_urlsafe(9)}"
        if isinstance(command, protocol.SendPrompt):
            command = protocol.SendPrompt(text=command.text, message_id=message_id, options=command.options)
        try:
            key, detach, _ready = await self.server.hub.attach(self.session_arg(), self._deliver)
        except LlmsockError as exc:
            status = 400 if isinstance(exc, ClientError) else 503
            self.send_json(status, {"error": {"code": exc.code, "message": exc.message}})
            return
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.server.stats.sse_open += 1
        try:
            if command is not None:
                self.server.hub.handle(key, command, self._deliver)
            while True:
                event = await self._outbox.get()
                if event is None:  # the client went away, or fell too far behind
                    return
                self._write_event(event)
                await self.flush()
                if command is not None and _ends(event, message_id):
                    break
        except tornado.iostream.StreamClosedError:
            return
        finally:
            self.server.stats.sse_open -= 1
            await detach()
        self.finish()

    def _deliver(self, event: Event) -> None:
        if getattr(self, "_dropped", False):
            return
        if self._outbox.qsize() >= SSE_MAX_QUEUED:
            # The client stopped reading: close its connection, which also ends the pending write.
            log.warning("llmsock: ending an SSE stream whose client stopped reading")
            self._dropped = True
            self.server.stats.slow_consumers_dropped += 1
            self._outbox.put_nowait(None)
            if self.request.connection is not None:
                self.request.connection.close()  # type: ignore[attr-defined]
            return
        self._outbox.put_nowait(event)

    def _write_event(self, event: Event) -> None:
        message = protocol.sse_message(event)  # never raises: an unencodable event becomes an error
        if message is not None:
            self.write(message)
            self.server.stats.messages_out += 1

    def on_connection_close(self) -> None:
        outbox = getattr(self, "_outbox", None)
        if outbox is not None:
            outbox.put_nowait(None)


def _ends(event: Event, message_id: str) -> bool:
    """Whether ``event`` ends what a POST to /sse asked for."""
    if isinstance(event, (ModelEnd, ModelError)):
        return event.message_id == message_id
    return isinstance(event, (ErrorReply, ControlResult, Pong))
