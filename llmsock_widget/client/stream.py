"""EventStream: what :meth:`Client.events` returns, one queue per reader."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from .answers import Answer, AnswerCollector
from .core import ClientClosed, Message


class EventStream:
    """An async iterator over the messages the app should see, from when it was made.

    It ends when the client is closed, and raises the client's error if it failed.
    The client holds it weakly, so a stream the app drops stops collecting.
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Message | BaseException | None] = asyncio.Queue()
        self._ended = False

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        if self._ended and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop collecting; the iterator ends after what it holds."""
        self.end(None)

    def put(self, message: Message) -> None:
        """Add a message (the client calls this)."""
        if not self._ended:
            self._queue.put_nowait(message)

    def end(self, error: BaseException | None) -> None:
        """End the stream after what it holds; with ``error``, raise it there."""
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(error)


async def collect(stream: EventStream, collector: AnswerCollector) -> Answer:
    """Feed ``stream`` to ``collector`` until it gives the Answer.

    Raises:
        ClientClosed: the stream ended first.
    """
    async for message in stream:
        answer = collector.feed(message)
        if answer is not None:
            return answer
    raise ClientClosed("the client closed before the answer ended")
