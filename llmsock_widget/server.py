"""Thin Tornado handlers and the ServerThread that runs them on a background loop.

Thread rule (Tornado's): the server's loop lives on its own daemon thread;
the only door in from another thread is :meth:`ServerThread.call_soon`.
Handlers authenticate, decode, hand commands to the :class:`~llmsock_widget.hub.Hub`
and write what it publishes.  They never await a turn, so pings, Stop and other
frames are read while an answer streams.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.web
import tornado.websocket

from . import protocol
from .errors import ClientError, ServerStartError, wire_error
from .events import ErrorReply, Event, ModelEnd, ModelError, SessionEvent
from .hub import Hub
from .models import ChatModel, resolve_model
from .stores.base import SessionStore
from .stores.memory import MemoryStore

log = logging.getLogger("llmsock")

# Close codes (docs/protocol.md, "Close codes").
CLOSE_GOING_AWAY = 1001  # the server is stopping
CLOSE_UNSUPPORTED = 1003  # a binary frame
CLOSE_TOO_BIG = 1009  # a frame over max_message_size (sent by Tornado itself)
CLOSE_SLOW_CONSUMER = 4008  # the client did not read and its outbound queue overflowed
CLOSE_SESSION_REFUSED = 4400  # the session named in the URL is not a valid id


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


class _Guard:
    """Host, Origin and token checks shared by every route."""

    def __init__(self, *, token: str, allowed_origins: Iterable[str], allowed_hosts: Iterable[str]) -> None:
        self.token = token.encode()
        self.allowed_origins = {o.lower().rstrip("/") for o in allowed_origins}
        self.extra_hosts = {h.lower() for h in allowed_hosts}
        self.port = 0

    def hosts(self) -> set[str]:
        loopback = {f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}"}
        return loopback | self.extra_hosts

    def check(self, request: Any) -> tuple[int, str] | None:
        """Return ``(status, reason)`` if the request must be refused, else None."""
        host = request.headers.get("Host", "").lower()
        if host not in self.hosts():
            return 403, "host not allowed"
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower().rstrip("/") not in self.allowed_origins:
            return 403, "origin not allowed"
        if "token" in request.query_arguments:
            return 401, "a token in the URL is refused; send it in a header or subprotocol"
        presented = _presented_token(request)
        if presented is None:
            return 401, "token required"
        if not hmac.compare_digest(presented.encode(), self.token):
            return 401, "invalid token"
        return None


def _presented_token(request: Any) -> str | None:
    auth: str = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return str(auth[len("Bearer ") :].strip())
    offered: str = request.headers.get("Sec-WebSocket-Protocol", "")
    for item in offered.split(","):
        item = item.strip()
        if item.startswith(protocol.SUBPROTOCOL_TOKEN_PREFIX):
            return item[len(protocol.SUBPROTOCOL_TOKEN_PREFIX) :]
    return None


class _Guarded(tornado.web.RequestHandler):
    """Refuse the request before anything else unless host, origin and token are right."""

    server: ServerThread

    def initialize(self, server: ServerThread) -> None:
        self.server = server

    def prepare(self) -> None:
        refusal = self.server.guard.check(self.request)
        if refusal is not None:
            self.server.stats.rejected += 1
            status, reason = refusal
            self.set_status(status)
            self.set_header("Content-Type", "application/json")
            self.finish(
                json.dumps(
                    {"error": {"code": "unauthorized" if status == 401 else "forbidden", "message": reason}}
                )
            )

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
        self.finish(self.server.status())


class WebSocketHandler(tornado.websocket.WebSocketHandler, _Guarded):
    """``/ws``: one connection on one session, in one dialect."""

    def initialize(self, server: ServerThread) -> None:
        self.server = server
        self.dialect: protocol.Dialect = "envelope"
        self.dialect_fixed = False
        self.session_id: str | None = None
        self._detach: Callable[[], Any] | None = None
        self._outbox: deque[str] = deque()
        self._outbox_bytes = 0
        self._flushing = False
        self._closing = False

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
        try:
            key, detach, ready = await self.server.hub.attach(self.session_arg(), self._deliver)
        except ClientError as exc:
            self.close(CLOSE_SESSION_REFUSED, exc.message[:120])
            return
        if self._closing:  # the peer left while we were loading the session
            await detach()
            return
        self.session_id, self._detach = key, detach
        self._ready = ready
        self._send_event(ready)

    def on_message(self, message: str | bytes) -> None:
        stats = self.server.stats
        stats.messages_in += 1
        stats.bytes_in += len(message)
        if isinstance(message, bytes):
            self.close(CLOSE_UNSUPPORTED, "binary frames are not supported; send text")
            return
        try:
            if not self.dialect_fixed:
                self.dialect_fixed = True
                if protocol.detect_dialect(message) == "seed004":
                    self.dialect = "seed004"
                    self._send_event(self._ready)  # say hello again, in the dialect the client speaks
            command = protocol.decode(message, self.dialect)
        except ClientError as exc:
            self._send_event(ErrorReply(code=exc.code, message=exc.message, ts=self.server.hub.clock()))
            return
        if self.session_id is None:
            return
        try:
            self.server.hub.handle(self.session_id, command, self._send_event)
        except Exception as exc:  # a bug: tell the client, log the traceback, keep the connection
            log.exception("llmsock: handler failed")
            code, text, recoverable = wire_error(exc)
            self._send_event(
                ErrorReply(code=code, message=text, ts=self.server.hub.clock(), recoverable=recoverable)
            )

    def on_close(self) -> None:
        self._closing = True
        self.server.connections.discard(self)
        self._outbox.clear()
        if self._detach is not None:
            detach, self._detach = self._detach, None
            asyncio.get_running_loop().create_task(detach())

    # -- outbound ----------------------------------------------------------------

    def _deliver(self, event: SessionEvent) -> None:
        self._send_event(event)

    def _send_event(self, event: Event) -> None:
        frame = self.server.encode(event, self.dialect)
        if frame is not None:
            self._send(frame)

    def _send(self, frame: str) -> None:
        if self._closing:
            return
        self._outbox.append(frame)
        self._outbox_bytes += len(frame)
        if self._outbox_bytes > self.server.outbound_limit:
            # The client stopped reading: drop it rather than grow memory; it can reconnect.
            log.warning(
                "llmsock: closing a connection that stopped reading (%d bytes queued)", self._outbox_bytes
            )
            self._closing = True
            self._outbox.clear()
            self.server.stats.slow_consumers_dropped += 1
            self.close(CLOSE_SLOW_CONSUMER, "outbound queue overflow: the client is not reading")
            return
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        stats = self.server.stats
        try:
            while self._outbox and not self._closing:
                future = None
                while self._outbox:
                    frame = self._outbox.popleft()
                    self._outbox_bytes -= len(frame)
                    future = self.write_message(frame)
                    future.add_done_callback(_retrieve)
                    stats.messages_out += 1
                    stats.bytes_out += len(frame)
                if future is not None:
                    await future  # wait until the socket took the batch: this is the backpressure
        except tornado.websocket.WebSocketClosedError:
            pass
        except Exception:
            log.exception("llmsock: sending failed")
        finally:
            self._flushing = False


def _retrieve(future: Any) -> None:
    # Writes after the peer left fail; that is expected, so mark the error as seen.
    if not future.cancelled():
        future.exception()


class SseHandler(_Guarded):
    """``/sse``: GET follows a session's events; POST sends a prompt and streams its turn."""

    async def get(self) -> None:
        await self._stream(prompt=None)

    async def post(self) -> None:
        body = self.request.body.decode("utf-8", errors="strict") if self.request.body else ""
        try:
            command = protocol.decode(body, "envelope")
        except ClientError as exc:
            self.set_status(400)
            self.finish({"error": {"code": exc.code, "message": exc.message}})
            return
        await self._stream(prompt=command)

    async def _stream(self, prompt: protocol.Command | None) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self._outbox: asyncio.Queue[Event | None] = asyncio.Queue()
        message_id = f"sse-{secrets.token_urlsafe(9)}"
        if isinstance(prompt, protocol.SendPrompt):
            prompt = protocol.SendPrompt(text=prompt.text, message_id=message_id, options=prompt.options)
        deliver = self._outbox.put_nowait
        try:
            key, detach, ready = await self.server.hub.attach(self.session_arg(), deliver)
        except ClientError as exc:
            self.set_status(400)
            self.finish({"error": {"code": exc.code, "message": exc.message}})
            return
        try:
            deliver(ready)
            if prompt is not None:
                self.server.hub.handle(key, prompt, deliver)
            while True:
                event = await self._outbox.get()
                if event is None:  # the client went away
                    return
                self._write_event(event)
                await self.flush()
                if prompt is not None and _ends(event, message_id):
                    break
        except tornado.iostream.StreamClosedError:
            return
        finally:
            await detach()
        self.finish()

    def _write_event(self, event: Event) -> None:
        envelope = protocol.to_envelope(event)
        if envelope is not None:
            data = json.dumps(envelope["data"], ensure_ascii=False, separators=(",", ":"))
            self.write(f"event: {envelope['name']}\ndata: {data}\n\n")
            self.server.stats.messages_out += 1

    def on_connection_close(self) -> None:
        outbox = getattr(self, "_outbox", None)
        if outbox is not None:
            outbox.put_nowait(None)


def _ends(event: Event, message_id: str) -> bool:
    if isinstance(event, (ModelEnd, ModelError)):
        return event.message_id == message_id
    return isinstance(event, ErrorReply)


class ServerThread:
    """The llmsock server on a background daemon thread with its own event loop."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        model: ChatModel | str | None = None,
        store: SessionStore | None = None,
        allowed_origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] = (),
        max_message_size: int = 1 << 20,
        outbound_limit: int = 8 << 20,
        ping_interval: float = 20.0,
        max_queue: int = 8,
        start_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.port = 0
        self.token = token or secrets.token_urlsafe(32)
        self.model = resolve_model(model)
        self.store: SessionStore = store if store is not None else MemoryStore()
        self.guard = _Guard(token=self.token, allowed_origins=allowed_origins, allowed_hosts=allowed_hosts)
        self.max_message_size = max_message_size
        self.outbound_limit = outbound_limit
        self.ping_interval = ping_interval
        self.start_timeout = start_timeout
        self.hub = Hub(store=self.store, model=self.model, max_queue=max_queue)
        self.stats = Stats()
        self.connections: set[WebSocketHandler] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._http: tornado.httpserver.HTTPServer | None = None
        self._encoded: tuple[object, dict[str, str | None]] = (None, {})

    def __repr__(self) -> str:  # never show the token
        state = "running" if self.running else "stopped"
        return f"<llmsock server {state} url={self.url!r} model={self.model.name!r}>"

    # -- public ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return (
            self._thread is not None and self._thread.is_alive() and self._ready.is_set() and not self._error
        )

    @property
    def url(self) -> str:
        return f"ws://{self._url_host()}:{self.port}/ws"

    @property
    def sse_url(self) -> str:
        return f"http://{self._url_host()}:{self.port}/sse"

    def start(self) -> ServerThread:
        """Start listening; return when ready.  Raise ServerStartError if it cannot."""
        with self._lock:
            if self._thread is not None:
                return self
            self._ready.clear()
            self._error = None
            self._thread = threading.Thread(target=self._run, name="llmsock-server", daemon=True)
            self._thread.start()
        if not self._ready.wait(self.start_timeout):
            self.stop()
            raise ServerStartError("the server did not start in time")
        if self._error is not None:
            error = self._error
            self._thread.join(self.start_timeout)
            self._thread = None
            raise ServerStartError(f"cannot listen on {self.host}:{self.requested_port}: {error}") from error
        log.info("llmsock: listening on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and free its port; calling it again does nothing."""
        with self._lock:
            thread, loop = self._thread, self.loop
            if thread is None:
                return
            self._thread = None
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("llmsock: server thread did not stop within %s s", timeout)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the server's loop (the one thread-safe door in)."""
        if self.loop is None:
            raise RuntimeError("the server is not running")
        self.loop.call_soon_threadsafe(fn, *args)

    def submit(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop; return a concurrent.futures.Future."""
        if self.loop is None:
            raise RuntimeError("the server is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def status(self) -> dict[str, Any]:
        """Return the server's counters and sessions (no secrets)."""
        s = self.stats
        return {
            "url": self.url,
            "model": self.model.name,
            "sessions": len(self.hub.sessions),
            "connections": len(self.connections),
            "connectionsTotal": s.connections_total,
            "messagesIn": s.messages_in,
            "messagesOut": s.messages_out,
            "bytesIn": s.bytes_in,
            "bytesOut": s.bytes_out,
            "rejected": s.rejected,
            "slowConsumersDropped": s.slow_consumers_dropped,
            "turns": self.hub.turns_run,
        }

    def encode(self, event: Event, dialect: protocol.Dialect) -> str | None:
        """Return ``event``'s frame in ``dialect``, encoding each event once per dialect."""
        last, frames = self._encoded
        if last is not event:
            frames = {}
            self._encoded = (event, frames)
        if dialect not in frames:
            frames[dialect] = protocol.encode(event, dialect)
        return frames[dialect]

    # -- thread ----------------------------------------------------------------------

    def _url_host(self) -> str:
        if self.host in ("", "0.0.0.0", "::"):
            return "127.0.0.1"
        return f"[{self.host}]" if ":" in self.host else self.host

    def _app(self) -> tornado.web.Application:
        args = {"server": self}
        return tornado.web.Application(
            [
                (r"/ws", WebSocketHandler, args),
                (r"/sse", SseHandler, args),
                (r"/status", StatusHandler, args),
            ],
            websocket_max_message_size=self.max_message_size,
            websocket_ping_interval=self.ping_interval or None,
            log_function=_log_request,
        )

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # report to start(), which re-raises it in the caller's thread
            self._error = exc
            self.loop = None
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
        finally:
            self.loop = None
            loop.close()

    async def _startup(self) -> None:
        sockets = tornado.netutil.bind_sockets(self.requested_port, self.host)
        self.port = sockets[0].getsockname()[1]
        self.guard.port = self.port
        self._http = tornado.httpserver.HTTPServer(self._app(), max_body_size=self.max_message_size)
        self._http.add_sockets(sockets)

    async def _shutdown(self) -> None:
        if self._http is not None:
            self._http.stop()
        for conn in list(self.connections):
            conn.close(CLOSE_GOING_AWAY, "server stopping")
        await self.hub.close()
        if self._http is not None:
            await asyncio.wait_for(self._http.close_all_connections(), 5)
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def _log_request(handler: tornado.web.RequestHandler) -> None:
    # Our own access log: path only, never the query (a misplaced token must not reach a log).
    status = handler.get_status()
    if status >= 400:
        log.info("llmsock: %s %s -> %d", handler.request.method, handler.request.path, status)


def start_server(**options: Any) -> ServerThread:
    """Start an llmsock server on a background thread and return it (see :class:`ServerThread`)."""
    return ServerThread(**options).start()
