"""The ServerThread: the llmsock server on a background daemon thread with its own event loop.

Thread rule (Tornado's): the server's loop lives on its own thread; the only
doors in from another thread are :meth:`ServerThread.call_soon` and
:meth:`ServerThread.submit`.  The routes are :mod:`.websocket`, :mod:`.sse` and
:mod:`.http` (``/status``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from typing import Any, Callable, Iterable, Iterator

import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.web

from ..aio import within
from ..core.events import ErrorReply, Event, ModelDelta
from ..errors import ServerStartError
from ..models import ChatModel, resolve_model
from ..runtime.fanout import ObservedFanout
from ..runtime.hub import Hub
from ..runtime.sharing import Alone
from ..stores.base import SessionStore, resolve
from ..stores.memory import MemoryStore
from ..tools import ToolRegistry, default_registry
from ..wire import protocol
from ..wire.codes import (
    CLOSE_GOING_AWAY,
    CLOSE_SESSION_REFUSED,
    CLOSE_SLOW_CONSUMER,
    CLOSE_TOO_BIG,
    CLOSE_TOO_MANY_ATTEMPTS,
    CLOSE_UNAUTHORIZED,
    CLOSE_UNAVAILABLE,
    CLOSE_UNSUPPORTED,
)
from .accept import Acceptor
from .connection import Connection
from .guard import FailureBudget, Guard, PendingConnections, check_token
from .historyframes import HistoryFrames, is_history
from .http import StatusHandler
from .keepalive import Keepalive
from .limits import Compression, Limits, Stats, compression_of
from .listeners import Listeners, ServerEvent, SessionInfo
from .loopthread import LoopThread
from .sessionsapi import SessionsApi
from .sse import SseHandler
from .websocket import WebSocketHandler

log = logging.getLogger("llmsock")

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_SESSION_REFUSED",
    "CLOSE_SLOW_CONSUMER",
    "CLOSE_TOO_BIG",
    "CLOSE_TOO_MANY_ATTEMPTS",
    "CLOSE_UNAUTHORIZED",
    "CLOSE_UNAVAILABLE",
    "CLOSE_UNSUPPORTED",
    "ServerEvent",
    "ServerThread",
    "SessionInfo",
    "start_server",
]


class ServerThread(SessionsApi, LoopThread):
    """The llmsock server on a background daemon thread with its own event loop."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        model: ChatModel | str | None = None,
        model_options: dict[str, Any] | None = None,
        store: SessionStore | None = None,
        allowed_origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] = (),
        max_message_size: int = 1 << 20,
        outbound_limit: int = 8 << 20,
        ping_interval: float = 20.0,
        max_queue: int = 8,
        tools: ToolRegistry | Iterable[Callable[..., Any]] | None = None,
        max_tool_steps: int = 8,
        tool_timeout: float = 30.0,
        approval_timeout: float = 120.0,
        start_timeout: float = 10.0,
        max_connections: int = 100,
        messages_per_second: float = 20.0,
        message_burst: int = 40,
        handshake_timeout: float = 10.0,
        pause_timeout: float | None = 600.0,
        lease: float | None = None,
        auth_failure_burst: int = 20,
        auth_failures_per_second: float = 1.0,
        max_pending_connections: int = 128,
        compression: Compression | bool = False,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.port = 0
        self.token = check_token(token) if token else secrets.token_urlsafe(32)
        self.model = resolve_model(model, **(model_options or {}))
        self.store: SessionStore = store if store is not None else MemoryStore()
        self.guard = Guard(
            token=self.token,
            allowed_origins=allowed_origins,
            allowed_hosts=allowed_hosts,
            failures=FailureBudget(rate=auth_failures_per_second, burst=auth_failure_burst),
        )
        self.max_message_size = max_message_size
        self.compression = compression_of(compression)  # permessage-deflate (docs/configuration.md)
        self.outbound_limit = outbound_limit
        self.ping_interval = ping_interval
        self.start_timeout = start_timeout
        if (
            max_connections < 1
            or not messages_per_second > 0
            or message_burst < 1
            or not handshake_timeout > 0
        ):
            raise ValueError(
                "max_connections, messages_per_second, message_burst and handshake_timeout must be > 0"
            )
        self.limits = Limits(
            max_connections=max_connections,
            messages_per_second=messages_per_second,
            message_burst=message_burst,
        )
        self.handshake_timeout = handshake_timeout
        self.tools = _registry(tools)
        self.listeners = Listeners()  # ServerThread.on: called on their own thread, never on the loop
        self._announced = False  # "started" was told, so "stopped" will be
        self._fanout = ObservedFanout(self._attached)  # a subscriber is a client on a session
        self.hub = Hub(
            store=self.store,
            model=self.model,
            fanout=self._fanout,
            max_queue=max_queue,
            tools=self.tools,
            max_steps=max_tool_steps,
            tool_timeout=tool_timeout,
            approval_timeout=approval_timeout,
            pause_timeout=pause_timeout,
        )
        self.lease = lease
        self._share_by(self.store)
        self._models_lock = threading.Lock()
        self._models = dict(self.hub.models)  # what the hub will hold once it has taken every set_model
        self.stats = Stats()
        self.connections: set[Connection] = set()
        super().__init__()  # loop, _ready, _error
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._http: tornado.httpserver.HTTPServer | None = None
        self._acceptor: Acceptor | None = None
        self._keepalive: Keepalive | None = None
        self.pending: PendingConnections[tornado.iostream.IOStream] = PendingConnections(
            max_pending_connections, is_closed=lambda stream: stream.closed()
        )
        self._encoded_event: object = None  # the last event frames() encoded, and its frames by dialect
        self._encoded_frames: dict[str, tuple[str, ...]] = {}
        self._history_frames = HistoryFrames()

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
        if self._announced:
            self._announced = False
            self.listeners.emit(ServerEvent(kind="stopped"))
        self.listeners.drain(timeout)  # every listener has run when stop() returns

    def tool(self, fn: Any = None, **options: Any) -> Any:
        """Register a Python function as a tool the model may call (a decorator, or a plain call).

        ``@server.tool`` or ``@server.tool(name=..., description=..., timeout=...)``; the
        schema comes from the signature, type hints and docstring (see :mod:`.tools`).
        """
        return self.tools.register(fn, **options)

    def add_mcp(
        self,
        name: str,
        command: str | list[str] | None = None,
        *,
        url: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        timeout: float = 30.0,
        approval: bool | Iterable[str] = False,
    ) -> list[str]:
        """Start MCP server ``name`` (``command``: stdio; ``url``: streamable HTTP); register its tools.

        Returns the tools' names (``<name>__<tool>``).  Adding ``name`` again replaces it.
        ``approval``: True, each call of its tools waits for the user's approval; a list of the
        server's own tool names, calls of those.  Safe
        from any thread but the server's own; the server must be running, and the MCP session
        lives on its loop until :meth:`remove_mcp` or :meth:`stop` (see :mod:`..tools.mcp`).
        """
        from ..tools.mcp import McpTransport, check_server_name

        check_server_name(name)
        transport = McpTransport.of(command=command, url=url, env=env, cwd=cwd)
        adding = self._mcp().add(name, transport, timeout=timeout, approval=approval)
        names: list[str] = self._mcp_on_loop(adding, timeout + 10)
        return names

    def remove_mcp(self, name: str, timeout: float = 30.0) -> list[str]:
        """Close MCP server ``name`` and unregister its tools; return their names ([] if none)."""
        if not self.running:  # stopping closed every MCP server
            return []
        names: list[str] = self._mcp_on_loop(self._mcp().remove(name), timeout)
        return names

    def mcp_servers(self) -> dict[str, dict[str, Any]]:
        """Return each MCP server added: its command or URL, whether it runs, and its tools' names."""
        servers = self.__dict__.get("_mcp_servers")
        return {} if servers is None else servers.listing()

    def _mcp(self) -> Any:
        """Return this server's McpServers (made on first use: nothing imports ``mcp`` before)."""
        from ..tools.mcp import McpServers

        with self._lock:
            servers = self.__dict__.get("_mcp_servers")
            if servers is None:
                servers = self.__dict__["_mcp_servers"] = McpServers(self.tools)
        return servers

    def _mcp_on_loop(self, coro: Any, timeout: float) -> Any:
        """Run ``coro`` on the server's loop and return its result (a running server only)."""
        if self.loop is None or not self.running:
            coro.close()
            raise RuntimeError("the llmsock server is not running: start it first")
        return self.submit(coro).result(timeout)

    def set_model(self, model: ChatModel | str, **options: Any) -> None:
        """Set ``model`` up and use it for turns that start from now on; safe from any thread.

        ``model`` is a ChatModel or a spec (``"builtin"``, ``"openai:<name>"``) with ``options``
        (e.g. ``base_url``, ``api_key``) as in :func:`~llmsock_widget.models.resolve_model`.
        It joins the models set up under its ``name`` (replacing one of that name), which a
        prompt may choose (``options.model``); it answers the prompts that choose none.
        """
        resolved = resolve_model(model, **options)
        with self._models_lock:  # two threads setting models: the hub takes them in this order
            self.model = resolved
            self._models = {**self._models, resolved.name: resolved}
            if self.loop is None:
                self.hub.model = resolved
            else:
                self.call_soon(setattr, self.hub, "model", resolved)

    def models(self) -> list[str]:
        """Return the names of the models set up: the default first, then the others as set up."""
        with self._models_lock:
            default = self.model.name
            return [default, *(name for name in self._models if name != default)]

    def set_store(self, store: SessionStore, timeout: float = 30.0) -> int:
        """Save sessions in ``store`` from now on; safe from any thread (not the server's own).

        The sessions the old store holds (those it can list) are copied over, and open
        sessions are saved to the new store at once.  Returns how many sessions the new store got.
        """
        old, self.store = self.store, store
        if self.loop is None:
            self.hub.store = store
            self._share_by(store)
            return 0
        return int(self.submit(self._move_store(old, store)).result(timeout))

    def _share_by(self, store: SessionStore) -> None:
        """Share sessions opened from now on as ``store`` can (RedisStore: live, across servers)."""
        sharing = getattr(store, "sharing", None)
        self.hub.sharing = sharing(lease=self.lease) if callable(sharing) else Alone(self.hub.epoch)

    async def _move_store(self, old: SessionStore, new: SessionStore) -> int:
        self.hub.store = new
        self._share_by(new)
        copied = 0
        keys = getattr(old, "keys", None)  # a list, or (RedisStore) an awaitable of one
        for key in (await resolve(keys())) if callable(keys) else ():
            if key in self.hub.sessions:
                continue  # saved below, from its live state
            try:
                state = await resolve(old.load(key))
                there = await resolve(new.load(key)) if state is not None else None
                # A copy the new store already has stays unless the old store's is newer: the
                # turns a chat had since it was last in this store are not left behind.
                if state is not None and (there is None or there.revision < state.revision):
                    await resolve(new.save(key, state))
                    copied += 1
            except Exception as exc:  # one session that cannot move must not stop the others
                log.warning("llmsock: could not copy session %s to the new store: %s", key, exc)
        return copied + await self.hub.save_all()  # open sessions go over from their live state

    async def save_all(self) -> int:
        """Save every open session now (on the server's loop); return how many."""
        return await self.hub.save_all()

    def allow_origin(self, origin: str) -> None:
        """Allow browser pages from ``origin`` (exact ``scheme://host[:port]``); safe from any thread."""
        if self.loop is None:
            self.guard.allow_origin(origin)
        else:
            self.call_soon(self.guard.allow_origin, origin)

    def allow_host(self, host: str) -> None:
        """Accept requests whose ``Host`` is exactly ``host`` (``name:port``); safe from any thread.

        A request through jupyter-server-proxy carries the Jupyter page's host, not ours.
        """
        if self.loop is None:
            self.guard.allow_host(host)
        else:
            self.call_soon(self.guard.allow_host, host)

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
            "models": self.models(),
            "sessions": len(self.hub.sessions),
            "connections": len(self.connections),
            "connectionsTotal": s.connections_total,
            "messagesIn": s.messages_in,
            "messagesOut": s.messages_out,
            "bytesIn": s.bytes_in,
            "bytesOut": s.bytes_out,
            "rejected": s.rejected,
            "slowConsumersDropped": s.slow_consumers_dropped,
            "rateLimited": s.rate_limited,
            "overCapacity": s.over_capacity,
            "pendingEvicted": self.pending.evicted,
            "authFailures": self.guard.failures.failures,
            "authThrottled": self.guard.failures.refused,
            "resumed": s.resumed,
            "reloaded": s.reloaded,
            "replayedEvents": s.replayed_events,
            "transports": self._transports(),
            "turns": self.hub.turns_run,
        }

    def _transports(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for conn in list(self.connections):
            counts[conn.transport] = counts.get(conn.transport, 0) + 1
        return counts

    def frames(self, event: Event, dialect: protocol.Dialect) -> tuple[str, ...]:
        """Return ``event``'s frames in ``dialect``, encoding each event once per dialect.

        An event goes to all its subscribers before the next one is published, so
        remembering the last event's frames is enough to encode once for all of them.
        Never raises, like :func:`protocol.frames`.
        """
        cached = self._encoded_frames
        if self._encoded_event is not event:
            cached.clear()  # one dict for every event: no new one per delta
            self._encoded_event = event
            if type(event) is ErrorReply:  # a reply is made for one client: this is its one encoding
                self._refused(event)
        frames = cached.get(dialect)
        if frames is None:
            # A delta (most events) is never a history: straight to the encoder.
            is_delta = type(event) is ModelDelta
            frames = protocol.frames(event, dialect) if is_delta else self._encode(event, dialect)
            if self._encoded_event is event:  # not if encoding it made this encode another event
                cached[dialect] = frames
        return frames

    def _encode(self, event: Event, dialect: protocol.Dialect) -> tuple[str, ...]:
        if is_history(event):  # a transcript is encoded once, not once per get_history
            try:
                return self._history_frames.frames(event, dialect)
            except Exception:  # the plain encoder is total: it says what could not be sent
                log.exception("llmsock: could not encode a history from its cache")
        return protocol.frames(event, dialect)

    # -- thread ----------------------------------------------------------------------

    def _url_host(self) -> str:
        if self.host in ("", "0.0.0.0", "::"):
            return "127.0.0.1"
        return f"[{self.host}]" if ":" in self.host else self.host

    def _app(self) -> tornado.web.Application:
        args = {"server": self}
        return tornado.web.Application(
            [
                (r"/(?:api/)?ws", WebSocketHandler, args),  # /api/ws: where seed 004's page connects
                (r"/sse", SseHandler, args),
                (r"/status", StatusHandler, args),
            ],
            websocket_max_message_size=self.max_message_size,
            # No websocket_ping_interval: one Keepalive pings every WebSocket (see _startup).
            log_function=_log_request,
        )

    async def _startup(self) -> None:
        sockets = tornado.netutil.bind_sockets(self.requested_port, self.host)
        self.port = sockets[0].getsockname()[1]
        self.guard.port = self.port
        # idle_connection_timeout also bounds how long a client may take to send its request
        # headers: a connection that never completes its handshake is closed after it.
        self._http = tornado.httpserver.HTTPServer(
            self._app(), max_body_size=self.max_message_size, idle_connection_timeout=self.handshake_timeout
        )
        self._acceptor = Acceptor(self._http, self.pending)
        self._acceptor.listen(sockets)
        if self.ping_interval:
            self._keepalive = Keepalive(self.ping_interval, self._websockets)
            self._keepalive.start()
        # Told from the loop before it serves anyone, so "started" comes before any client's event.
        self._announced = True
        self.listeners.emit(ServerEvent(kind="started", message=f"listening on {self.url}"))

    def _websockets(self) -> Iterator[WebSocketHandler]:
        """The open WebSockets (the keepalive takes them into a list of its own at once)."""
        return (conn for conn in self.connections if isinstance(conn, WebSocketHandler))

    async def _shutdown(self) -> None:
        if self._keepalive is not None:
            self._keepalive.stop()
        if self._acceptor is not None:
            self._acceptor.close()
        if self._http is not None:
            self._http.stop()
        for conn in list(self.connections):
            conn.close(CLOSE_GOING_AWAY, "server stopping")
        await self.hub.close()
        for model in self.hub.models.values():
            aclose = getattr(model, "aclose", None)
            if aclose is not None:  # e.g. the OpenAI client's connection pool on this loop
                try:
                    await aclose()
                except Exception:
                    log.warning("llmsock: closing the model %s failed", model.name, exc_info=True)
        if self._http is not None:
            await within(self._http.close_all_connections(), 5)
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._fanout.all_left()  # the clients whose detach was cut short are told gone too


def _log_request(handler: tornado.web.RequestHandler) -> None:
    # Our own access log: path only, never the query (a misplaced token must not reach a log).
    status = handler.get_status()
    if status >= 400:
        log.info("llmsock: %s %s -> %d", handler.request.method, handler.request.path, status)


def _registry(tools: ToolRegistry | Iterable[Callable[..., Any]] | None) -> ToolRegistry:
    """Return the built-in tools plus ``tools`` (functions), or ``tools`` itself (a registry)."""
    if isinstance(tools, ToolRegistry):
        return tools
    registry = default_registry()
    for fn in tools or ():
        registry.register(fn)
    return registry


def start_server(**options: Any) -> ServerThread:
    """Start an llmsock server on a background thread and return it (see :class:`ServerThread`)."""
    return ServerThread(**options).start()
