"""The floor: a bare Tornado WebSocket server that sends the frames the full stack would send.

For any text frame it receives, :class:`BareServer` writes N delta frames and an ``end`` frame,
encoded beforehand by :func:`llmsock_widget.wire.protocol.encode` from the same tokens, with ids and
sequence numbers of the same length, so the bytes on the wire have the same size.  It yields to
its loop every 64 frames, as the unpaced builtin model does.  It writes (``mode``)

* ``frame``: each frame with one ``write_message`` call (Tornado's API, one system call per frame);
* ``batched``: the 64 frames that one loop turn produces as one ``IOStream.write``;
* ``merged``: the 64 deltas of one loop turn as one delta frame (their text, the last one's
  sequence), as llmsock's outbox sends deltas that wait together (docs/protocol.md, section
  5.1), one ``IOStream.write`` per loop turn: what the wire allows a server that does no work
  per delta.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Coroutine, Literal

import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.web
import tornado.websocket

from llmsock_widget.core.events import Event, ModelDelta, ModelEnd, SessionReady, joined_deltas
from llmsock_widget.models import BuiltinModel
from llmsock_widget.models.base import ModelRequest, TextChunk
from llmsock_widget.runtime.hub import new_id, now_ms
from llmsock_widget.server.websocket import text_frames
from llmsock_widget.wire import protocol

from .common import BenchFailure, TornadoControl

FIRST_DELTA_SEQUENCE = 4
"""The first delta's sequence in a new session: the full stack sends the user message, the
status and the start (sequences 1 to 3) before it, and the bare frames number theirs alike."""

YIELD_EVERY = 64
"""The bare handler yields to its loop this often, as the builtin model does when unpaced."""

Mode = Literal["frame", "batched", "merged"]


@dataclass(frozen=True)
class Frames:
    """Pre-encoded envelope frames: the hello, one per delta, the merged deltas, and the final ``end``."""

    ready: str
    deltas: tuple[str, ...]
    end: str
    merged: tuple[str, ...] = ()  # one delta frame per YIELD_EVERY deltas (the last may be shorter)


def _encode(event: Event) -> str:
    frame = protocol.encode(event, "envelope")
    if frame is None:
        raise BenchFailure(f"{type(event).__name__} has no envelope frame")
    return frame


def build_frames(tokens: Sequence[str]) -> Frames:
    """Return the frames the full stack sends for ``tokens``, with ids and seqs of the same size."""
    session_id, turn_id, message_id, ts = new_id(), new_id("t-"), new_id("m-"), now_ms()
    first = FIRST_DELTA_SEQUENCE
    events = [
        ModelDelta(
            session_id=session_id, seq=first + i, ts=ts, turn_id=turn_id, text=token, message_id=message_id
        )
        for i, token in enumerate(tokens)
    ]
    deltas = tuple(_encode(event) for event in events)
    merged = tuple(
        _encode(joined_deltas(events[start : start + YIELD_EVERY]))
        for start in range(0, len(events), YIELD_EVERY)
    )
    end = ModelEnd(
        session_id=session_id,
        seq=first + len(tokens) + 1,
        ts=ts,
        turn_id=turn_id,
        finish_reason="stop",
        text="".join(tokens),
        message_id=message_id,
        usage={"inputTokens": 2, "outputTokens": len(tokens)},
    )
    ready = SessionReady(session_id=session_id, seq=0, status="idle", ts=ts, created=True)
    return Frames(ready=_encode(ready), deltas=deltas, end=_encode(end), merged=merged)


async def reply_tokens(prompt: str) -> list[str]:
    """Return the text tokens the builtin model streams for ``prompt`` as a session's first turn."""
    request = ModelRequest(messages=({"role": "user", "content": prompt},))
    model = BuiltinModel(tokens_per_second=None)
    return [chunk.text async for chunk in model.stream(request) if isinstance(chunk, TextChunk)]


class _BareHandler(tornado.websocket.WebSocketHandler):
    """Say hello on open; answer any text frame with all the delta frames, then ``end``."""

    def initialize(self, server: BareServer) -> None:
        self.server = server

    def open(self, *args: str, **kwargs: str) -> None:
        self.set_nodelay(True)  # as the llmsock server does, so both pay the same per-frame send
        self.server.connections.add(self)
        self.write_message(self.server.frames.ready)

    async def on_message(self, message: str | bytes) -> None:
        frames = self.server.frames
        try:
            if self.server.mode == "batched":
                await self._send_batched(frames.deltas, YIELD_EVERY)
            elif self.server.mode == "merged":
                await self._send_batched(frames.merged, 1)
            else:
                for index, frame in enumerate(frames.deltas, 1):
                    self.write_message(frame)
                    if index % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
            await self.write_message(frames.end)
        except (tornado.websocket.WebSocketClosedError, tornado.iostream.StreamClosedError):
            pass

    async def _send_batched(self, frames: Sequence[str], per_turn: int) -> None:
        """Write ``per_turn`` frames at a time in one ``IOStream.write``, yielding between writes."""
        stream = getattr(self.ws_connection, "stream", None)
        if stream is None:
            raise tornado.websocket.WebSocketClosedError()
        future = None
        for start in range(0, len(frames), per_turn):
            future = stream.write(text_frames(frames[start : start + per_turn]))
            await asyncio.sleep(0)
        if future is not None:
            await future

    def on_close(self) -> None:
        self.server.connections.discard(self)


class BareServer(TornadoControl):
    """A bare Tornado WebSocket server on its own daemon thread and loop, on 127.0.0.1:0."""

    label = "the bare server"
    handler = _BareHandler

    def __init__(self, frames: Frames, *, mode: Mode = "frame", timeout: float = 10.0) -> None:
        super().__init__(timeout=timeout)
        self.frames = frames
        self.mode = mode

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def submit(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]:
        """Run a coroutine on the server's loop; return a concurrent.futures.Future."""
        if self.loop is None:
            raise RuntimeError("the bare server is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)
