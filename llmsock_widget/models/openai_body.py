"""Reading a streamed chat-completion body for :class:`~.openai_compat.OpenAICompatModel`.

:func:`pump` runs in a task of its own: it reads the HTTP body (:func:`body_blocks`), turns it
into model chunks (:class:`~.openai_sse.EventReader`, :class:`~.openai_chunks.ChunkReader`)
and puts them in a queue, a batch of at most :data:`YIELD_EVERY` at a time, yielding the event
loop every :data:`YIELD_EVERY` chunks or :data:`YIELD_AFTER` seconds (:class:`Turn`), so a fast
stream never holds the server's other sessions up.  The model takes from the queue everything
that arrived together and passes the text of it on as one chunk (:func:`merged`).  A paused
answer stops reading after :data:`QUEUED_BATCHES` batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import openai

from ..aio import within
from .base import ReasoningChunk, TextChunk
from .openai_chunks import ChunkReader
from .openai_sse import EventReader

QUEUED_BATCHES = 64  # batches read ahead, at most: a paused answer stops reading the body there
DONE = object()  # the body is read to its end (or its [DONE], error or bad chunk)


@dataclass(frozen=True, slots=True)
class Failed:
    """Reading the body failed: the consumer raises ``error`` where it reads."""

    error: BaseException


async def pump(
    blocks: AsyncGenerator[bytes, None], events: EventReader, reader: ChunkReader, queue: Any, http: Any
) -> None:
    """Read the body into ``queue``: lists of its model chunks, then ``[DONE]`` or ``[Failed]``."""
    turn = Turn()
    try:
        async for block in blocks:
            payloads = events.feed(block)
            for start in range(0, len(payloads), YIELD_EVERY):
                part = payloads[start : start + YIELD_EVERY]
                batch: list[Any] = []
                for data in part:
                    batch += reader.feed(data)
                if batch:
                    if queue.full():
                        await queue.put(batch)  # the consumer is paused: stop reading here
                    else:
                        queue.put_nowait(batch)
                if turn.over(len(part)):
                    await asyncio.sleep(0)  # a fast stream must not keep other sessions waiting
            if events.end is not None:
                break
        if events.end is not None and events.end.kind == "done" and http.http_version == "HTTP/1.1":
            await drain(blocks)  # the body's last bytes: then the connection can be reused
        last: Any = DONE
    except Exception as exc:  # the consumer raises it, where the stream's errors are mapped
        last = Failed(exc)
    await queue.put([last])


async def stop(pump: asyncio.Future[None]) -> None:
    """End the body's reader (the answer ended, failed, or was stopped) and wait for it."""
    pump.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pump


def merged(batch: list[Any]) -> list[Any]:
    """Return ``batch`` with each run of text chunks joined into one (and of reasoning chunks)."""
    out: list[Any] = []
    run: list[Any] = []  # a run of chunks of one kind, text or reasoning

    def close_run() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            out.append(type(run[0])(text="".join(chunk.text for chunk in run)))
        run.clear()

    for item in batch:
        kind = type(item)
        if kind is TextChunk or kind is ReasoningChunk:
            if run and type(run[0]) is not kind:
                close_run()
            run.append(item)
        else:
            close_run()
            out.append(item)
    close_run()
    return out


YIELD_EVERY = 64  # chunks, at most, between two yields of the event loop during a fast stream
YIELD_AFTER = 0.001  # seconds, at most, between two yields: one session never holds the loop longer
DRAIN_TIMEOUT = 0.1  # seconds to read the body's end after [DONE], so the connection is kept


class Turn:
    """Say when a stream has had the event loop long enough: every few chunks or milliseconds.

    A turn starts at its first chunk, so the wait for the provider's first bytes (or for its
    next ones after a yield) does not count as work.
    """

    __slots__ = ("chunks", "due")

    def __init__(self) -> None:
        self.chunks = 0
        self.due = 0.0

    def over(self, chunks: int = 1) -> bool:
        """Count ``chunks``; return whether to yield the loop now (and start a new turn if so)."""
        now = time.monotonic()
        if self.chunks == 0:
            self.due = now + YIELD_AFTER
        self.chunks += chunks
        if self.chunks < YIELD_EVERY and now < self.due:
            return False
        self.chunks = 0
        return True


async def body_blocks(http: Any) -> AsyncGenerator[bytes, None]:
    """Yield an HTTP response's body as it arrives; a failed read raises the ``openai`` client's error.

    The errors the client's own stream raises mid-stream: a timeout is ``APITimeoutError``, any
    other transport failure ``APIConnectionError`` (any httpx flavour: matched by class name).
    """
    try:
        # Without a content encoding the body's bytes are the raw ones: skip the decoder's work.
        blocks = http.aiter_bytes() if http.headers.get("content-encoding") else http.aiter_raw()
        async for block in blocks:
            yield block
    except Exception as exc:
        names = {cls.__name__ for cls in type(exc).__mro__}
        if "TimeoutException" in names:
            raise openai.APITimeoutError(request=http.request) from exc
        if names & {"RequestError", "SSLError", "EndOfStream"}:
            raise openai.APIConnectionError(request=http.request) from exc
        raise


async def drain(blocks: AsyncIterator[bytes]) -> None:
    """Read what is left of a body for a moment; one that does not end soon is closed instead."""

    async def read_all() -> None:
        async for _ in blocks:
            pass

    with contextlib.suppress(Exception):
        await within(read_all(), DRAIN_TIMEOUT)
