"""The Client: one llmsock session over websockets' asyncio API, reconnected and resumed by itself.

The :class:`~.core.Cursor` decides what each frame means; :mod:`.transport` opens
connections; this module runs them: it reads frames into the cursor, hands the
app what comes out, sends what the app asks, and reconnects after an unclean
close.  The token goes into the ``Authorization`` header only: never into the
URL, a log line, an event or ``repr``.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import secrets
import time
import warnings
import weakref
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Callable

from . import EXTRA_MISSING

try:
    from websockets.asyncio.client import ClientConnection
    from websockets.exceptions import ConnectionClosed
    from websockets.protocol import State
except ImportError as exc:  # an install without the client extra
    raise ImportError(EXTRA_MISSING) from exc

from ..aio import within
from ..wire.protocol import Dialect
from .answers import Answer, AnswerCollector
from .core import (
    SUBPROTOCOLS,
    Backoff,
    ClientClosed,
    ClientFailure,
    ClientStats,
    ConnectFailed,
    ConnectionLost,
    Cursor,
    Message,
    RequestFailed,
    approval_frame,
    control_frame,
    ping_frame,
    prompt_frame,
    pseudo,
    ready_of,
    should_reconnect,
)
from .stream import EventStream, collect
from .transport import Retry, close_of, decode, open_connection, refused

log = logging.getLogger("llmsock.client")


class Client:
    """A client of one llmsock session that reconnects and resumes by itself.

    Use ``async with Client(url, token=...) as c:`` or ``await c.connect()`` /
    ``await c.close()``.  Call :meth:`events` before :meth:`connect` to see the
    first ready announcement too.

    Args:
        url: the server's WebSocket URL (``ws://127.0.0.1:<port>/ws``), without a token.
        token: the server's token; sent as ``Authorization: Bearer``, nowhere else.
        session: the session to join; None makes a new one (kept across reconnects).
        dialect: ``envelope`` or ``typed``: the frames :meth:`events` yields.
        backoff: the reconnect schedule.
        heartbeat: seconds between WebSocket pings, and to wait for each pong (0: none).
        open_timeout: seconds to open a connection and receive its ready announcement.
        request_timeout: seconds to wait for a connection to send on, and for a reply.
        rng: the jitter source (``random.random`` by default), for tests.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str,
        session: str | None = None,
        dialect: Dialect = "envelope",
        backoff: Backoff = Backoff(),
        heartbeat: float = 20.0,
        open_timeout: float = 10.0,
        request_timeout: float = 30.0,
        rng: Callable[[], float] | None = None,
    ) -> None:
        if dialect == "seed004":  # type: ignore[comparison-overlap]
            warnings.warn(
                "the dialect 'seed004' is called 'typed' now; the old name goes in 0.3",
                DeprecationWarning,
                stacklevel=2,
            )
            dialect = "typed"
        if dialect not in SUBPROTOCOLS:
            raise ValueError(f"dialect must be 'envelope' or 'typed', not {dialect!r}")
        if not token:
            raise ValueError("a token is required")
        self._cursor = Cursor(dialect=dialect, session=session)
        self._url = url
        self._cursor.url(url)  # check the URL now (scheme, no token in it)
        self._token = token
        self.dialect: Dialect = dialect
        self.backoff = backoff
        self.heartbeat = heartbeat
        self.open_timeout = open_timeout
        self.request_timeout = request_timeout
        self._rng = rng if rng is not None else _random.random
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._streams: weakref.WeakSet[EventStream] = weakref.WeakSet()
        self._pending: dict[str, tuple[asyncio.Future[dict[str, Any]], ClientConnection | None]] = {}
        self._closing = False
        self._finished = False
        self._error: ClientFailure | None = None
        self._stats = dict.fromkeys(
            ("messages_in", "messages_out", "bytes_in", "bytes_out", "reconnects", "attempts"), 0
        )
        self._stats.update(replayed=0, reloads=0)
        self._connected_at: float | None = None  # time.time() of the last ready
        self._last_message_at: float | None = None  # time.time() of the last frame in or out
        self._ping_seconds = 0.0  # the round trips of ping(), summed
        self._pings = 0

    def __repr__(self) -> str:  # never the token
        state = (
            "open" if self.connected else "failed" if self._error else "closed" if self._finished else "new"
        )
        return f"<llmsock Client {state} url={self._url!r} session={self.session!r}>"

    # -- public ------------------------------------------------------------------------

    @property
    def session(self) -> str | None:
        """The session id (known once the first ready arrived)."""
        return self._cursor.session

    @property
    def epoch(self) -> str:
        """The server run this client is on (from the last ready)."""
        return self._cursor.epoch

    @property
    def last_sequence(self) -> int | None:
        """The sequence of the last session event handed to the app."""
        return self._cursor.last

    @property
    def connected(self) -> bool:
        """Whether a connection is open now."""
        return self._connected.is_set() and not self._finished

    @property
    def stats(self) -> dict[str, int]:
        """Return the counters, as a new dict.

        ``messages_in/out`` and ``bytes_in/out`` (UTF-8) count frames; ``reconnects`` the
        connections reopened, ``attempts`` the tries; ``replayed`` sums ``ready.replayed``;
        ``reloads`` counts ``client.reloaded``; ``duplicates`` the session events dropped
        because the app had them already.
        """
        return {**self._stats, "duplicates": self._cursor.duplicates}

    def connection_stats(self) -> ClientStats:
        """Return the connection statistics (seed 004's ``getStats()``), as a frozen copy."""
        heartbeat = self._ws.latency if self._ws is not None and self.connected else 0.0
        return ClientStats(
            connected_at=_utc(self._connected_at),
            messages_sent=self._stats["messages_out"],
            messages_received=self._stats["messages_in"],
            last_message_at=_utc(self._last_message_at),
            reconnect_count=self._stats["reconnects"],
            average_latency=self._ping_seconds / self._pings if self._pings else None,
            pings=self._pings,
            heartbeat_latency=heartbeat or None,  # websockets says 0.0 before its first pong
        )

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the first connection and wait for its ready announcement.

        Raises:
            HandshakeRefused: the server refused the token, host or origin.
            SessionRefused: the server refused the session (4400).
            ConnectFailed: the server could not be reached or did not answer in time.
        """
        if self._finished or self._closing:
            raise self._error or ClientClosed("the client is closed; make a new one")
        if self._runner is not None:
            return
        try:
            ws, ready = await self._open()
        except Retry as exc:
            raise ConnectFailed(f"cannot connect to {self._url}: {exc.detail}") from None
        await self._attach(ws, ready, reconnect=False)
        self._runner = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Close the connection cleanly and end every event stream; calling it again does nothing."""
        self._closing = True
        ws, runner = self._ws, self._runner
        if ws is not None:
            await ws.close(1000, "client closing")
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        self._finish(None)

    def events(self) -> EventStream:
        """Return a stream of what the app should see, from now on.

        Session events come in ``sequence`` order, each once, none missing across
        reconnects; replies as they arrive; and pseudo-events ``client.reconnecting``
        (attempt, delay, code, reason), ``client.reconnected`` (resumed, replayed) and
        ``client.reloaded`` (history, sequence: the server could not resume, so the
        app should redraw from the history; live events after it follow).
        """
        stream = EventStream()
        if self._finished:
            stream.end(self._error)
        else:
            self._streams.add(stream)
        return stream

    async def send_prompt(
        self, text: str, *, message_id: str | None = None, replaces: str | None = None, **options: Any
    ) -> str:
        """Send a prompt; return its message id.

        ``replaces``: the id of an earlier user message this prompt takes the place of (an edit,
        or a regenerate with the same text): that message and all after it leave the transcript.
        ``options``: temperature, maxTokens (or max_tokens), system (the turn's system prompt),
        model (the name of a model set up in the server), tools (True, False or names), retries,
        model_timeout (sent as the option ``timeout``: seconds the model waits for the provider).

        Raises:
            ValueError: an empty prompt.
            ConnectionLost: no connection within ``request_timeout``, or it dropped while sending.
        """
        if not text.strip():
            raise ValueError("a prompt needs a non-whitespace character")
        if "max_tokens" in options:
            options["maxTokens"] = options.pop("max_tokens")
        if "model_timeout" in options:
            options["timeout"] = options.pop("model_timeout")
        message_id = message_id or _new_id("m")
        await self._send(prompt_frame(text, message_id, options, replaces))
        return message_id

    async def control(self, action: str) -> dict[str, Any]:
        """Send a control command; return its result ``{"action", "ok", "message", "data"}``.

        Raises:
            ValueError: not a control action.
            RequestFailed: the server answered with an error reply (``code`` says which).
            ConnectionLost: the connection dropped before the reply.
            TimeoutError: no reply within ``request_timeout``.
        """
        request_id = _new_id("c")
        return await self._request(request_id, control_frame(action, request_id))

    async def abort(self) -> dict[str, Any]:
        """Abort the session's running turn; return the control result."""
        return await self.control("abort")

    async def approve(self, call_id: str, approved: bool = True) -> dict[str, Any]:
        """Answer tool call ``call_id``, which waits for approval: run it (``approved``) or not.

        Returns the result ``{"action": "approval", "ok", "message", "data"}``: ``ok`` is False
        when that call was not waiting (already answered, timed out, or unknown).

        Raises:
            RequestFailed: the server refused the message (an older server: ``unknown_type``).
            ConnectionLost: the connection dropped before the reply.
            TimeoutError: no reply within ``request_timeout``.
        """
        request_id = _new_id("a")
        return await self._request(request_id, approval_frame(call_id, approved, request_id))

    async def ping(self) -> float:
        """Send an application-level ping; return the round trip in seconds."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        request_id = _new_id("p")
        await self._request(request_id, ping_frame(request_id))
        round_trip = loop.time() - start
        self._ping_seconds += round_trip
        self._pings += 1
        return round_trip

    async def ask(
        self, text: str, *, timeout: float | None = None, replaces: str | None = None, **options: Any
    ) -> Answer:
        """Send a prompt and collect its answer until the turn's end or error.

        ``replaces`` and ``options`` are those of :meth:`send_prompt`.

        Raises:
            TimeoutError: no end within ``timeout`` seconds (the turn goes on).
            ClientClosed: the client was closed first.
            ConnectionLost: the connection could not be used to send the prompt.
        """
        stream = self.events()
        try:
            message_id = await self.send_prompt(text, replaces=replaces, **options)
            collector = AnswerCollector(message_id, dialect=self.dialect, session=self.session or "")
            return await within(collect(stream, collector), timeout)
        finally:
            stream.close()

    # -- connections ---------------------------------------------------------------------

    async def _open(self) -> tuple[ClientConnection, Message]:
        ws, message, text = await open_connection(
            self._cursor.url(self._url),
            token=self._token,
            dialect=self.dialect,
            open_timeout=self.open_timeout,
            heartbeat=self.heartbeat,
        )
        self._count_in(text)
        return ws, message

    async def _attach(self, ws: ClientConnection, message: Message, *, reconnect: bool) -> None:
        ready = ready_of(message, self.dialect)
        assert ready is not None  # _open checked it
        step = self._cursor.on_ready(message, ready, reconnect=reconnect, history_id=_new_id("h"))
        self._ws = ws
        for frame in step.send:
            try:
                await ws.send(frame)
                self._count_out(frame)
            except ConnectionClosed:
                break  # the read loop sees the close and reconnects
        if reconnect:
            self._stats["reconnects"] += 1
            self._stats["replayed"] += ready.replayed
            log.info("llmsock: reconnected to session %s (resumed: %s)", ready.session, ready.resumed)
        self._connected_at = time.time()
        self._deliver(step.deliver)
        self._connected.set()

    async def _run(self) -> None:
        """Read frames until the app closes; reconnect after an unclean close."""
        try:
            while True:
                ws = self._ws
                assert ws is not None
                code, reason = await self._read(ws)
                self._dropped(ws)
                if self._closing:
                    return
                if not should_reconnect(code):
                    raise refused(code, reason)
                await self._reconnect(code, reason)
        except ClientFailure as exc:
            log.warning("llmsock: client stopped: %s", exc.message)
            self._finish(exc)
        except Exception:
            log.exception("llmsock: client failed")
            self._finish(ConnectionLost("the client failed (see the log)"))

    async def _read(self, ws: ClientConnection) -> tuple[int, str]:
        while True:
            try:
                text = await ws.recv()
            except ConnectionClosed as exc:
                return close_of(exc)
            message = decode(text)
            if message is None:
                log.warning("llmsock: ignoring a frame that is not a JSON object")
                continue
            self._count_in(text)
            step = self._cursor.on_message(message)
            self._deliver(step.deliver)
            if step.reply is not None and step.reply.request_id is not None:
                self._resolve(step.reply.request_id, step.reply.kind, step.reply.body)

    async def _reconnect(self, code: int, reason: str) -> None:
        failures = 0
        while True:
            if self.backoff.gave_up(failures):
                raise ConnectionLost(f"gave up reconnecting after {failures} attempts (last: {reason})")
            delay = self.backoff.delay(failures, self._rng)
            self._deliver(
                [pseudo("client.reconnecting", attempt=failures + 1, delay=delay, code=code, reason=reason)]
            )
            await asyncio.sleep(delay)
            self._stats["attempts"] += 1
            try:
                ws, ready = await self._open()
            except Retry as exc:
                failures += 1
                code, reason = exc.code or 1006, exc.detail
                continue
            await self._attach(ws, ready, reconnect=True)
            return

    def _dropped(self, ws: ClientConnection) -> None:
        """Forget a closed connection; fail the requests whose replies it took with it."""
        self._connected.clear()
        for request_id, (future, sent_on) in list(self._pending.items()):
            if sent_on is ws and not future.done():
                future.set_exception(ConnectionLost("the connection dropped before the reply"))
                del self._pending[request_id]

    def _finish(self, error: ClientFailure | None) -> None:
        if self._finished:
            return
        self._finished = True
        self._error = error
        for stream in list(self._streams):
            stream.end(error)
        for future, _ in self._pending.values():
            if not future.done():
                future.set_exception(error or ClientClosed("the client is closed"))
        self._pending.clear()
        self._connected.set()  # wake senders, so they see the end

    # -- sending -------------------------------------------------------------------------

    async def _send(self, frame: str, on_sent: Callable[[ClientConnection], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        stale: ClientConnection | None = None
        while True:
            ws = await self._link(stale, deadline)
            if ws.state is not State.OPEN:  # closing: not written; wait for the next connection
                stale = ws
                continue
            try:
                await ws.send(frame)
            except ConnectionClosed:
                # The frame may or may not have left: resending could run a prompt twice.
                raise ConnectionLost("the connection dropped while sending; the frame may be lost") from None
            self._count_out(frame)
            if on_sent is not None:
                on_sent(ws)
            return

    async def _link(self, stale: ClientConnection | None, deadline: float) -> ClientConnection:
        """Return the open connection (not ``stale``), waiting for a reconnect until ``deadline``."""
        loop = asyncio.get_running_loop()
        while True:
            if self._finished or self._closing:
                raise self._error or ClientClosed("the client is closed")
            ws = self._ws
            if ws is None:
                raise ClientClosed("the client is not connected: call connect() first")
            if ws is not stale and self._connected.is_set():
                return ws
            if ws is stale:
                self._connected.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ConnectionLost(f"not connected within {self.request_timeout} s")
            try:
                await within(self._connected.wait(), remaining)
            except asyncio.TimeoutError:
                continue

    async def _request(self, request_id: str, frame: str) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (future, None)

        def sent(ws: ClientConnection) -> None:
            if request_id in self._pending:
                self._pending[request_id] = (future, ws)

        try:
            await self._send(frame, sent)
            return await within(asyncio.shield(future), self.request_timeout)
        finally:
            self._pending.pop(request_id, None)

    def _resolve(self, request_id: str, kind: str, body: dict[str, Any]) -> None:
        entry = self._pending.pop(request_id, None)
        if entry is None or entry[0].done():
            return
        if kind == "error":
            code = str(body.get("code") or "error")
            entry[0].set_exception(RequestFailed(str(body.get("message") or code), code=code))
        else:
            entry[0].set_result(body)

    # -- bookkeeping ---------------------------------------------------------------------

    def _deliver(self, messages: list[Message]) -> None:
        for message in messages:
            if message.get("name") == "client.reloaded":
                self._stats["reloads"] += 1
            for stream in list(self._streams):
                stream.put(message)

    def _count_in(self, text: str | bytes) -> None:
        self._last_message_at = time.time()
        self._stats["messages_in"] += 1
        self._stats["bytes_in"] += len(text.encode("utf-8") if isinstance(text, str) else text)

    def _count_out(self, frame: str) -> None:
        self._last_message_at = time.time()
        self._stats["messages_out"] += 1
        self._stats["bytes_out"] += len(frame.encode("utf-8"))


def _utc(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_urlsafe(12)}"
