"""Waiting with a time limit without losing a cancellation: :func:`within`.

Stop cancels the task that streams an answer, and that task waits with time limits (connecting
to a provider, sending to it, a tool's time, a user's approval). ``asyncio.wait_for`` before
Python 3.12 returns the awaited result, and drops the cancellation, when the task is cancelled
in the loop step in which that result lands (CPython gh-86296): a Stop sent at that moment was
lost and the answer went on waiting. :func:`within` waits inside ``asyncio.timeout`` (3.11+),
which runs the awaitable in the caller's task and keeps every cancellation; on 3.10 it waits
with ``asyncio.wait``, which does not swallow one either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["within"]

T = TypeVar("T")

_timeout = getattr(asyncio, "timeout", None)  # Python 3.11+


async def within(awaitable: Awaitable[T], timeout: float | None) -> T:
    """Return what ``awaitable`` gives, raising ``TimeoutError`` if that takes over ``timeout`` s.

    ``None`` waits without a limit. Cancelling the caller cancels the wait, always (unlike
    ``asyncio.wait_for`` before Python 3.12); on a timeout the awaitable is cancelled.
    """
    if timeout is None:
        return await awaitable
    if _timeout is not None:
        async with _timeout(timeout):
            return await awaitable
    task = asyncio.ensure_future(awaitable)  # Python 3.10
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        raise asyncio.TimeoutError()
    return task.result()
