"""Ping every WebSocket of a server from one timer, and close the ones that stopped answering.

Tornado's own ``websocket_ping_interval`` runs a task per connection (a task, its coroutine
and a sleeping timer: about 1.2 KiB on every idle connection).  Here one timer sweeps all
the server's WebSockets each ``interval`` seconds instead, with the same rule: a connection
whose ping of the sweep before has had no pong is closed (1000, ``ping timed out``); any
other one is pinged.  So a client is pinged within ``interval`` of connecting, then every
``interval``, and has ``interval`` to answer each ping, as with Tornado's (whose timeout
llmsock sets equal to the interval).

A sweep goes through the connections in slices of :data:`SLICE`, one slice per loop turn,
so that ten thousand pings do not hold the loop (and the streams on it) in one go.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

log = logging.getLogger("llmsock")

SLICE = 256  # connections pinged in one turn of the loop


class Pinged(Protocol):
    """A connection the keepalive sweeps: it pings, or closes if its last ping went unanswered."""

    def keepalive(self) -> None: ...


class Keepalive:
    """Sweep ``members()`` every ``interval`` seconds on the running loop, from :meth:`start` on."""

    __slots__ = ("_interval", "_members", "_timer")

    def __init__(self, interval: float, members: Callable[[], Iterable[Pinged]]) -> None:
        if interval <= 0:
            raise ValueError("the keepalive interval must be > 0")
        self._interval = interval
        self._members = members
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Sweep ``interval`` seconds from now, then every ``interval`` (call on the loop)."""
        self.stop()
        self._timer = asyncio.get_running_loop().call_later(self._interval, self._sweep)

    def stop(self) -> None:
        """Sweep no more."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._interval, self._sweep)
        # The connections of now: one that opens during the sweep waits for the next one.
        pinged = list(self._members())
        self._slice(pinged, 0)

    def _slice(self, pinged: list[Pinged], start: int) -> None:
        end = start + SLICE
        for member in pinged[start:end]:
            try:
                member.keepalive()
            except Exception:  # one connection's failure must not spare the others their ping
                log.exception("llmsock: pinging a connection failed")
        if end < len(pinged) and self._timer is not None:
            asyncio.get_running_loop().call_soon(self._slice, pinged, end)
