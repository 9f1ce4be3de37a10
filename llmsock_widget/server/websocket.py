"""``/ws``: one WebSocket on one session, in one dialect, with its outbox.

The handler never awaits a turn, so pings, Stop and other frames are read while an
answer streams.  A browser's token comes as the first frame (:func:`auth_frame_token`);
each later frame goes through the shared pipeline (:func:`~.connection.act_on_frame`).
What the hub publishes is queued in an outbox and leaves in one write per loop turn
(:func:`text_frames`); a client that stops reading is dropped past ``outbound_limit``.
Deltas of one message that wait in the outbox together leave as one merged delta
(:class:`DeltaRun`, docs/protocol.md section 5.1): a client that keeps up gets one frame per
delta, one that falls behind (or a model that sends a burst) gets fewer, longer frames.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import weakref
from dataclasses import replace
from typing import Any, Callable, Sequence

import tornado.iostream
import tornado.websocket

from ..core.events import ControlResult, Event, ModelDelta, model_delta
from ..errors import ClientError, LlmsockError
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
    SUBPROTOCOL_DIALECTS,
)
from ..wire.codes import CLOSE_TOO_BIG as CLOSE_TOO_BIG
from .connection import ServerContext, act_on_frame, close_reason
from .http import GuardedHandler
from .limits import ConnectionStats, RateLimiter, compression_of

log = logging.getLogger("llmsock")

SEED004_PATH = "/api/ws"  # where seed 004's client connects; the same handler as /ws


class WebSocketHandler(tornado.websocket.WebSocketHandler, GuardedHandler):
    """``/ws`` (and ``/api/ws``): one connection on one session, in one dialect."""

    transport = "websocket"
    frame_auth = True
    # llmsock's own attributes in slots: Tornado's handler already keeps about 30 in its __dict__,
    # past which a dict no longer shares its keys and takes about 1.3 KiB more per connection.
    __slots__ = (
        "_auth_timer",
        "_closing",
        "_created",
        "_detach",
        "_early",
        "_flusher",
        "_flushing",
        "_lone_frame",
        "_lone_message_id",
        "_lone_text",
        "_lone_turn_id",
        "_outbox",
        "_outbox_size",
        "_pinged",
        "authenticated",
        "connected_at",
        "counters",
        "dialect",
        "dialect_fixed",
        "limiter",
        "seed004",
        "server",
        "session_id",
        "tcp_stream",
    )

    def initialize(self, server: ServerContext) -> None:
        self.server = server
        self.authenticated = False  # GuardedHandler's, in slots here
        self.tcp_stream = None
        self.dialect: protocol.Dialect = "envelope"
        self.dialect_fixed = False
        self.session_id: str | None = None
        self._created = False
        self._detach: Callable[[], Any] | None = None
        # A list, not a deque: an empty deque keeps a 512-byte block; a cleared list keeps nothing.
        self._outbox: list[str | DeltaRun] = []
        self._outbox_size = 0
        # A delta waiting alone is queued as its frame; while that frame is the last item, these say
        # what a delta that continues it needs: the frame, and the lone delta's text and ids (strings:
        # the delta itself is not kept, so it is not an object alive until the flush).
        self._lone_frame: str | None = None
        self._lone_text = self._lone_message_id = ""
        self._lone_turn_id: str | None = None
        self._flushing = False
        self._flusher: tuple[Flusher, asyncio.AbstractEventLoop] | None = None  # found on the first flush
        self._closing = False
        self._pinged = False  # a keepalive ping is out, not yet answered (see keepalive)
        self._auth_timer: asyncio.TimerHandle | None = None
        self.connected_at = 0  # the hub's clock when the WebSocket opened (ms)
        self.seed004 = False  # whether the client is seed 004's (see open)
        self._early: list[protocol.ClientFrame] = []  # sent after the auth frame, before the attach
        self.counters = ConnectionStats(transport=self.transport)
        limits = server.limits
        self.limiter = RateLimiter(limits.messages_per_second, limits.message_burst)

    def check_origin(self, origin: str) -> bool:
        return True  # prepare() already did the exact-match check, before the upgrade

    def get_compression_options(self) -> dict[str, Any] | None:
        """Accept permessage-deflate if the server allows it (None: the extension is refused).

        A compressed frame inflates to at most ``max_message_size``; past it Tornado closes with 1009.
        """
        return compression_of(getattr(self.server, "compression", None)).options()

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        for name, dialect in SUBPROTOCOL_DIALECTS:  # the 0.1 name llmsock.seed004.v1 too, until 0.3
            if name in subprotocols:
                self.dialect, self.dialect_fixed = dialect, True
                return name
        return protocol.SUBPROTOCOL_AUTO if protocol.SUBPROTOCOL_AUTO in subprotocols else None

    async def open(self, *args: str, **kwargs: str) -> None:
        self.set_nodelay(True)  # a chat sends small frames; Nagle's delay would hold the first and last token
        self.connected_at = self.server.hub.clock()
        # Seed 004's client: on its path, or naming its conversation with ``convId``.
        self.seed004 = self.request.path == SEED004_PATH or "convId" in self.request.query_arguments
        if self.request.path == SEED004_PATH and self.selected_subprotocol is None:
            # Seed 004's page offers no subprotocol on its path: it speaks the typed dialect, so
            # its first frames (ready, replay) are typed too rather than waiting for a detection.
            self.dialect, self.dialect_fixed = "typed", True
        # The upgrade's headers, the request's and the response's, were read and sent (by the
        # guard, and by Tornado to accept) before open(); nothing reads them again, and an open
        # connection would keep them all: about 2 KiB from the Python client, more from a browser.
        self.request.headers.clear()
        self._headers.clear()
        self.server.stats.connections_total += 1
        self.server.connections.add(self)
        if not self._dialect_from_query():
            return
        if not self.authenticated:  # a browser: its token comes as the first frame
            loop = asyncio.get_running_loop()
            self._auth_timer = loop.call_later(self.server.handshake_timeout, self._auth_expired)
            return
        await self._attach()

    def _dialect_from_query(self) -> bool:
        """Fix the dialect ``?dialect=`` names unless a subprotocol did; False if it names none (closed)."""
        if self.selected_subprotocol in dict(SUBPROTOCOL_DIALECTS):
            return True
        try:
            dialect = self.dialect_arg()
        except ClientError as exc:
            self.close(CLOSE_SESSION_REFUSED, close_reason(exc.message))
            return False
        if dialect is not None:
            self.dialect, self.dialect_fixed = dialect, True
        return True

    def _auth_expired(self) -> None:
        if not self.authenticated and not self._closing:
            self.server.stats.rejected += 1
            self.close(CLOSE_UNAUTHORIZED, "no auth frame in time")

    def _authenticate(self, frame: protocol.ClientFrame) -> None:
        """Check the auth frame a browser sends first; attach to the session if its token is right."""
        token = auth_frame_token(frame)
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
                self.session_arg(),
                self._send_event,
                resume=resume,
                max_replay=max_replay,
                delta=self._send_delta,
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
        early, self._early = self._early, []
        for frame in early:
            self._act(key, frame)

    def on_message(self, message: str | bytes) -> None:
        stats = self.server.stats
        stats.messages_in += 1
        stats.bytes_in += len(message)
        self.counters.messages_in += 1
        self.counters.bytes_in += len(message)
        if isinstance(message, bytes):
            self.close(CLOSE_UNSUPPORTED, "binary frames are not supported; send text")
            return
        frame = protocol.ClientFrame(message)  # its JSON is parsed once, whoever asks for it
        if not self.authenticated:
            self._authenticate(frame)
            return
        if self.session_id is None:
            # Right after its auth frame a client may already send (seed 004's page asks for the
            # history at once): keep those frames until the session is attached, within the burst
            # the rate limit would allow anyway.
            if len(self._early) < self.server.limits.message_burst:
                self._early.append(frame)
            else:
                self.server.stats.rate_limited += 1
            return
        self._act(self.session_id, frame)

    def _act(self, session_id: str, frame: protocol.ClientFrame) -> None:
        """Act on one client frame of an attached connection (the first one may fix the dialect)."""
        if not self.dialect_fixed:
            self.dialect_fixed = True
            if protocol.detect_dialect(frame) == "typed":
                self.dialect = "typed"
                # Hello again, in the dialect the client speaks.
                self._send_event(self.server.hub.ready(session_id, created=self._created))
        act_on_frame(self.server, session_id, frame, self.dialect, self.limiter, self.counters, self._reply)

    def _reply(self, event: Event) -> None:
        """Send a reply to this connection, with the fields seed 004's client reads added.

        A ``get_status`` result says when this connection opened; a seed-004 client's
        ``get_history`` result also has the plain ``history`` its page shows (only its:
        for a long transcript that copy doubles the frame).
        """
        if isinstance(event, ControlResult) and event.ok:
            if event.action == "get_status":
                event = replace(event, data={**event.data, "connectedAt": self.connected_at})
            elif event.action == "get_history" and self.seed004 and self.dialect == "typed":
                event = replace(event, data={**event.data, "history": plain_history(event.data)})
        self._send_event(event)

    def keepalive(self) -> None:
        """The server's keepalive sweep: close if the last ping went unanswered, else ping."""
        if self._closing or self.ws_connection is None or self.ws_connection.is_closing():
            return
        if self._pinged:
            self.close(CLOSE_NORMAL, "ping timed out")
            return
        self._pinged = True
        try:
            self.ping(b"")
        except (tornado.websocket.WebSocketClosedError, tornado.iostream.StreamClosedError):
            pass  # the peer has just gone; on_close cleans up

    def on_pong(self, data: bytes) -> None:
        self._pinged = False

    def on_close(self) -> None:
        self._closing = True
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        self.server.connections.discard(self)
        self._clear()
        if self._detach is not None:
            detach, self._detach = self._detach, None
            asyncio.get_running_loop().create_task(detach())

    # -- outbound ----------------------------------------------------------------

    def _send_event(self, event: Event) -> None:
        if type(event) is ModelDelta:  # the hot path: a delta joins the one waiting before it
            if self._outbox and self._joined(event):
                self._queued(len(event.text))
                return
            frames = self.server.frames(event, self.dialect)
            if self._closing:
                return
            if len(frames) == 1:
                # Alone, a delta is queued as its shared frame: no object of its own (a client that
                # keeps up has every delta alone) until another one joins it.
                frame = self._lone_frame = frames[0]
                self._lone_text, self._lone_message_id = event.text, event.message_id
                self._lone_turn_id = event.turn_id
                self._outbox.append(frame)
                self._queued(len(frame))
            else:
                run = DeltaRun([event.text], event, frames)
                self._outbox.append(run)
                self._queued(run.size)
            return
        for frame in self.server.frames(event, self.dialect):  # never raises (protocol.frames)
            self._send(frame)

    def _send_delta(
        self, session_id: str, seq: int, ts: int, turn_id: str | None, message_id: str, text: str
    ) -> None:
        """:meth:`_send_event` of the ModelDelta of these fields: the hot path, with no event made
        while the delta joins the run the outbox ends with (DeltaRun.joins and .add, written out)."""
        outbox = self._outbox
        if outbox:
            tail = outbox[-1]
            if type(tail) is DeltaRun and message_id == tail.message_id and turn_id == tail.turn_id:
                tail.texts.append(text)
                tail.seq = seq
                tail.ts = ts
                size = len(text)
                tail.size += size
                self._queued(size)
                return
        self._send_event(model_delta(session_id, seq, ts, turn_id, message_id, text))

    def _joined(self, delta: ModelDelta) -> bool:
        """Add ``delta`` to the run of deltas the outbox ends with, if it continues it; say if it did."""
        tail = self._outbox[-1]
        if type(tail) is DeltaRun:
            if not tail.joins(delta):
                return False
            tail.add(delta)
            return True
        if (
            tail is not self._lone_frame
            or delta.message_id != self._lone_message_id
            or delta.turn_id != self._lone_turn_id
        ):
            return False
        # The delta waiting alone and this one make a run (the frame queued is not sent: the run's is).
        run = self._outbox[-1] = DeltaRun([self._lone_text, delta.text], delta, ())
        run.size = len(tail) + len(delta.text)
        self._lone_frame = None
        return True

    def _send(self, frame: str) -> None:
        if self._closing:
            return
        self._lone_frame = None  # the last item is no delta now
        self._outbox.append(frame)
        self._queued(len(frame))

    def _backlog(self) -> int:
        """Return the characters queued beyond the largest item.

        One item alone is never a backlog: a history reply, or an answer merged into one delta,
        is as large as the session it comes from, and a client that reads gets it whole. (Held
        to the limit, a session's history past it would drop its client at every reconnect.)
        """
        largest = max(item.size if isinstance(item, DeltaRun) else len(item) for item in self._outbox)
        return self._outbox_size - largest

    def _clear(self) -> None:
        """Forget everything queued."""
        self._outbox.clear()
        self._lone_frame = None

    def _queued(self, size: int) -> None:
        """Count ``size`` more characters in the outbox; drop a client that stopped reading, or flush."""
        if self._closing:
            return
        self._outbox_size += size
        if self._outbox_size > self.server.outbound_limit and self._backlog() > self.server.outbound_limit:
            # The client stopped reading: drop it rather than grow memory; it can reconnect.
            log.warning("llmsock: closing a connection that stopped reading (%d queued)", self._outbox_size)
            self._closing = True
            self._clear()
            self.server.stats.slow_consumers_dropped += 1
            self.close(CLOSE_SLOW_CONSUMER, "outbound queue overflow: the client is not reading")
            return
        if not self._flushing:
            # Flush once the events of this loop turn are queued, so they leave in one write.
            self._flushing = True
            flusher = self._flusher
            if flusher is None:  # a handler lives on one loop: look its flusher up once
                loop = asyncio.get_running_loop()
                flusher = self._flusher = (flusher_of(loop), loop)
            flusher[0].add(self, flusher[1])

    def _flush(self) -> None:
        """Hand everything queued to Tornado as one write: one send, no task, no future per frame."""
        if self._closing or not self._outbox:
            self._flushing = False
            return
        outbox = self._outbox
        if len(outbox) == 1:  # a paced stream: one delta a flush
            frames = _frames_of(outbox[0], self.dialect)
        else:
            frames = [frame for item in outbox for frame in _frames_of(item, self.dialect)]
        self._clear()
        self._outbox_size = 0
        connection = self.ws_connection
        stream = getattr(connection, "stream", None)
        if connection is None or stream is None or connection.is_closing():
            self._flushing = False  # the peer left; on_close cleans up
            return
        data = text_frames(frames, getattr(connection, "_compressor", None))
        # Counted before the write: the peer may read the frames (and ask for the counters, from
        # another thread) before this thread runs again.
        self._count_out(len(frames), len(frames[0]) if len(frames) == 1 else sum(map(len, frames)))
        try:
            future = write_now(stream, data)
        except tornado.iostream.StreamClosedError:
            self._flushing = False  # the peer left; on_close cleans up
            return
        except Exception:
            log.exception("llmsock: sending failed")
            self._flushing = False
            return
        if future is None or future.done():  # the socket took it all
            self._written(future)
        else:  # backpressure: what comes meanwhile waits in the outbox until the socket took this
            future.add_done_callback(self._written)

    def _count_out(self, frames: int, size: int) -> None:
        stats = self.server.stats
        stats.messages_out += frames
        stats.bytes_out += size
        self.counters.messages_out += frames
        self.counters.bytes_out += size

    def _written(self, future: Any) -> None:
        if future is not None and (future.cancelled() or future.exception() is not None):
            self._flushing = False  # the peer left (the error is marked seen)
        elif self._outbox and not self._closing:
            self._flush()
        else:
            self._flushing = False


class Flusher:
    """Flush, once per loop turn, every connection that queued frames in the turn before.

    One callback for all of them rather than one per connection: with many sessions streaming
    at a pace, each connection queues one frame per wake-up, and a callback of its own (an
    asyncio ``Handle`` for every delta) cost as much as the rest of the outbox.
    """

    __slots__ = ("_waiting",)  # not the loop: the loop is the key this flusher is kept under

    def __init__(self) -> None:
        self._waiting: list[WebSocketHandler] = []

    def add(self, handler: WebSocketHandler, loop: asyncio.AbstractEventLoop) -> None:
        """Flush ``handler`` in ``loop``'s next turn, after the others queued before it."""
        if not self._waiting:
            loop.call_soon(self._run)
        self._waiting.append(handler)

    def _run(self) -> None:
        waiting, self._waiting = self._waiting, []  # one that queues again now waits for the next turn
        for handler in waiting:
            try:
                handler._flush()
            except Exception:  # one connection's failure must not hold the others' frames
                log.exception("llmsock: flushing a connection failed")


_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Flusher] = weakref.WeakKeyDictionary()


def flusher_of(loop: asyncio.AbstractEventLoop) -> Flusher:
    """Return the loop's :class:`Flusher` (each server thread has a loop of its own)."""
    flusher = _flushers.get(loop)
    if flusher is None:
        flusher = _flushers[loop] = Flusher()
    return flusher


def write_now(stream: tornado.iostream.BaseIOStream, data: bytes) -> Any:
    """Write ``data``: return None if the socket took it all at once, else ``stream.write``'s future.

    When nothing waits in the stream's buffer, the bytes go straight to the socket: a paced
    stream's frame then costs one ``send``, without the future, its callback and the buffer
    bookkeeping of ``IOStream.write``.  What the socket does not take (or an error) goes through
    ``stream.write``, which buffers it, waits for the socket, or closes the stream, as usual.
    """
    if type(stream) is tornado.iostream.IOStream and not stream.writing() and not stream.closed():
        try:
            sent = stream.socket.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            return stream.write(data)  # Tornado closes the stream and says why
        if sent == len(data):
            return None
        data = data[sent:]
    return stream.write(data)


class DeltaRun:
    """Deltas of one message waiting together in an outbox, to leave as one delta.

    It keeps the deltas' texts and the last delta's fields: a run leaves as one delta with the
    run's text and the last delta's sequence, time and ids (``joined_deltas``), encoded for this
    connection alone.  A run of one, made only when its delta has several frames (a delta
    alone is queued as its frame), leaves as those frames, which every connection shares.
    """

    __slots__ = ("frames", "message_id", "seq", "session_id", "size", "texts", "ts", "turn_id")

    def __init__(self, texts: list[str], last: ModelDelta, frames: tuple[str, ...]) -> None:
        self.texts = texts
        self.session_id = last.session_id
        self.seq = last.seq
        self.ts = last.ts
        self.turn_id = last.turn_id
        self.message_id = last.message_id
        self.frames = frames  # the frames of a run of one
        self.size = sum(map(len, frames))

    def joins(self, delta: ModelDelta) -> bool:
        """Whether ``delta`` continues this run: the same message of the same turn."""
        return delta.message_id == self.message_id and delta.turn_id == self.turn_id

    def add(self, delta: ModelDelta) -> None:
        """Append ``delta`` to the run."""
        self.texts.append(delta.text)
        self.seq = delta.seq
        self.ts = delta.ts
        self.size += len(delta.text)

    def joined(self) -> ModelDelta:
        """Return the run as one delta (as :func:`~llmsock_widget.core.events.joined_deltas` does)."""
        text = "".join(self.texts)
        return model_delta(self.session_id, self.seq, self.ts, self.turn_id, self.message_id, text)


def _frames_of(item: str | DeltaRun, dialect: protocol.Dialect) -> Sequence[str]:
    """Return the frames an outbox item leaves as."""
    if type(item) is str:
        return (item,)
    assert isinstance(item, DeltaRun)
    if len(item.texts) == 1:
        return item.frames
    return protocol.frames(item.joined(), dialect)


def text_frames(frames: Sequence[str], compressor: Any = None) -> bytes:
    """Return ``frames`` as WebSocket text frames back to back (RFC 6455 5.2: FIN, opcode 1, unmasked).

    This is what ``write_message`` writes for each of them.  With permessage-deflate negotiated,
    ``compressor`` is the connection's own (Tornado's, so every message it sends, ours and its
    own, shares one deflate context in the order they leave) and each frame is compressed, RSV1 set.
    """
    head = 0xC1 if compressor is not None else 0x81
    if len(frames) == 1 and compressor is None:  # a paced stream's one frame: no list, no join
        data = frames[0].encode("utf-8", "replace")
        return _frame_head(head, len(data)) + data
    parts: list[bytes] = []
    for frame in frames:
        data = frame.encode("utf-8", "replace")  # a lone surrogate must not lose the whole batch
        if compressor is not None:
            data = compressor.compress(data)
        parts.append(_frame_head(head, len(data)))
        parts.append(data)
    return b"".join(parts)


def _frame_head(head: int, size: int) -> bytes:
    """Return a frame's header: its first byte ``head``, then the payload length ``size``."""
    if size < 126:
        return bytes((head, size))
    if size <= 0xFFFF:
        return struct.pack("!BBH", head, 126, size)
    return struct.pack("!BBQ", head, 127, size)


def plain_history(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Return a ``get_history`` result's transcript as seed 004's ``[{"role", "content"}]``."""
    messages = data.get("messages")
    if not isinstance(messages, list):
        return []
    return [{"role": m.get("role"), "content": m.get("text", "")} for m in messages if isinstance(m, dict)]


def auth_frame_token(frame: protocol.ClientFrame) -> str | None:
    """Return the token of an auth frame ``{"type": "auth", "token": "..."}``, or None if it is not one."""
    try:
        value = frame.json()
    except ClientError:
        return None
    if not isinstance(value, dict) or value.get("type") != "auth":
        return None
    token = value.get("token")
    return token if isinstance(token, str) and token else None
