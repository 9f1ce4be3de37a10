"""What one client may take of the server, and the counters that show what each one took.

The limits are the settings of docs/security.md ("Limits"); the rate limiter is the
token bucket every connection draws its frames from; the counters are what ``/status``
and ``get_status`` report.  No Tornado here: the comm link uses all of it too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from ..core.events import ErrorReply

SSE_MAX_QUEUED = 10_000  # events an SSE client may fall behind before its stream is ended


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

    __slots__ = ("burst", "clock", "rate", "stamp", "tokens", "warned_at")  # one per connection

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
    """Return the error a client is sent when the rate limit drops one of its frames."""
    return ErrorReply(
        code="too_many_messages",
        message=(
            f"too many messages: at most {limits.messages_per_second:g} a second "
            f"(bursts of {limits.message_burst}); this one was dropped"
        ),
        ts=ts,
        recoverable=True,
    )


@dataclass(slots=True)  # one per connection
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


# permessage-deflate (RFC 7692): zlib's level and memLevel for what the server compresses.  Level 1
# makes a delta frame 17 bytes where level 6 makes it 14, for 1-2 us less CPU per delta; memLevel 5
# keeps 58 KiB less per connection than 8 (docs/benchmarks.md, section 6).
DEFLATE_LEVEL = 1
DEFLATE_MEM_LEVEL = 5


@dataclass(frozen=True)
class Compression:
    """Whether the server accepts permessage-deflate, and with what zlib settings.

    What a compressed frame may inflate to is ``max_message_size``: Tornado inflates with that
    as its output limit and closes the connection with 1009 past it (docs/security.md).
    """

    enabled: bool = False
    level: int = DEFLATE_LEVEL  # zlib compression level, 0-9
    mem_level: int = DEFLATE_MEM_LEVEL  # zlib memLevel, 1-9

    def __post_init__(self) -> None:
        if not (0 <= self.level <= 9 and 1 <= self.mem_level <= 9):
            raise ValueError("the deflate level must be 0-9 and its mem_level 1-9")

    def options(self) -> dict[str, Any] | None:
        """Return Tornado's ``get_compression_options`` answer: None refuses the extension."""
        if not self.enabled:
            return None
        return {"compression_level": self.level, "mem_level": self.mem_level}


def compression_of(setting: Compression | bool | None) -> Compression:
    """Return the :class:`Compression` a ServerThread's ``compression`` option names."""
    if isinstance(setting, Compression):
        return setting
    return Compression(enabled=bool(setting))
