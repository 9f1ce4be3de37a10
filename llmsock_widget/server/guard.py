"""What the network edge decides before a request reaches a session.  Pure.

A custom token must be as hard to guess as the one the server makes itself;
wrong tokens draw from a small budget, and once it is spent every request that
presents a token is refused for a while (so a guesser learns nothing, not even
from the right token); a connection that has not yet been authenticated counts
against a cap of its own.  :class:`Guard` checks Host, Origin and token on every
request.  The Tornado side (:mod:`.http`, :mod:`.websocket`, :mod:`.thread`) only asks
these objects and acts on the answer.
"""

from __future__ import annotations

import hmac
import math
import re
import time
from typing import Any, Callable, Generic, Iterable, TypeVar

from ..wire import protocol

T = TypeVar("T")

__all__ = [
    "MIN_TOKEN_CHARS",
    "FailureBudget",
    "Guard",
    "PendingConnections",
    "check_token",
    "presented_token",
]

MIN_TOKEN_CHARS = 32  # 32 characters of even a hex alphabet are 128 bits
MIN_DISTINCT_CHARS = 8  # refuses "aaaa…" and "0123012301…": too few symbols to be random
_TOKEN_RE = re.compile(r"[A-Za-z0-9._~-]+")  # fits a Bearer header and a WebSocket subprotocol


def check_token(token: str) -> str:
    """Return ``token`` if it is strong enough to guard the server.

    Raises:
        ValueError: the token is shorter than :data:`MIN_TOKEN_CHARS`, has fewer than
            :data:`MIN_DISTINCT_CHARS` different characters, or holds a character other
            than ``A-Z a-z 0-9 - . _ ~``.  The message never repeats the token.
    """
    if not isinstance(token, str) or _TOKEN_RE.fullmatch(token) is None:
        raise ValueError(
            "the token may hold only A-Z a-z 0-9 - . _ ~ (it travels in a header and a "
            "WebSocket subprotocol); leave token unset to get a strong one"
        )
    if len(token) < MIN_TOKEN_CHARS or len(set(token)) < MIN_DISTINCT_CHARS:
        raise ValueError(
            f"the token is too weak: use at least {MIN_TOKEN_CHARS} random characters "
            "(e.g. secrets.token_urlsafe(32)), or leave token unset to get one"
        )
    return token


class FailureBudget:
    """A token bucket of failed authentications, shared by every peer of one server.

    Every peer of a loopback server has the same address, so the budget is global:
    ``burst`` wrong tokens at once, then ``rate`` a second.  While it is empty,
    :meth:`retry_after` is positive and the edge refuses every token it is shown.
    """

    def __init__(self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError("auth_failures_per_second must be > 0 and auth_failure_burst >= 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.stamp = clock()
        self.failures = 0  # wrong tokens seen, in all
        self.refused = 0  # requests refused because the budget was spent

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def retry_after(self) -> float:
        """Return the seconds until a token may be tried again (0.0: it may now)."""
        self._refill()
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    def fail(self) -> None:
        """Spend one failure (a wrong token was presented)."""
        self._refill()
        self.failures += 1
        self.tokens = max(0.0, self.tokens - 1.0)

    def retry_after_header(self) -> str:
        """Return :meth:`retry_after` as a ``Retry-After`` value (whole seconds, at least 1)."""
        return str(max(1, math.ceil(self.retry_after())))


class PendingConnections(Generic[T]):
    """Connections accepted but not yet authenticated, oldest first, at most ``cap`` of them.

    An idle socket that never sends a request holds a file descriptor until the
    handshake timeout; past the cap the oldest such socket is given up, so a flood of
    idlers cannot exhaust descriptors or lock out a client that authenticates promptly.
    """

    def __init__(self, cap: int, *, is_closed: Callable[[T], bool]) -> None:
        if cap < 1:
            raise ValueError("max_pending_connections must be >= 1")
        self.cap = cap
        self.is_closed = is_closed
        self._items: dict[T, None] = {}  # insertion-ordered: the oldest first
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> list[T]:
        """Track a newly accepted ``item``; return the oldest pending ones to close now."""
        if len(self._items) >= self.cap:  # forget those that closed by themselves first
            self._items = {i: None for i in self._items if not self.is_closed(i)}
        self._items[item] = None
        oldest: list[T] = []
        while len(self._items) > self.cap:
            old = next(iter(self._items))
            del self._items[old]
            oldest.append(old)
        self.evicted += len(oldest)
        return oldest

    def authenticated(self, item: T) -> None:
        """Stop counting ``item``: it presented the right token."""
        self._items.pop(item, None)


class Guard:
    """Host, Origin and token checks shared by every route."""

    def __init__(
        self,
        *,
        token: str,
        allowed_origins: Iterable[str],
        allowed_hosts: Iterable[str],
        failures: FailureBudget | None = None,
    ) -> None:
        self.token = token.encode()
        self.allowed_origins = {o.lower().rstrip("/") for o in allowed_origins}
        self.extra_hosts = {h.lower() for h in allowed_hosts}
        self.port = 0
        self.failures = failures if failures is not None else FailureBudget(rate=1.0, burst=20)

    def allow_host(self, host: str) -> None:
        """Add one exact ``Host`` header value (``name:port``) to the allow-list."""
        self.extra_hosts.add(host.lower())

    def allow_origin(self, origin: str) -> None:
        """Add one exact origin (``scheme://host[:port]``) to the allow-list."""
        self.allowed_origins.add(origin.lower().rstrip("/"))

    def hosts(self) -> set[str]:
        """Return the Host header values accepted: loopback names with our port, plus extras."""
        loopback = {f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}"}
        return loopback | self.extra_hosts

    def check(self, request: Any, *, frame_auth: bool = False) -> tuple[int, str] | None:
        """Return ``(status, reason)`` if the request must be refused, else None.

        With ``frame_auth`` (a WebSocket upgrade) a request without a token passes: its
        token must then come as the first frame (``websocket.auth_frame_token``).
        """
        host = request.headers.get("Host", "").lower()
        if host not in self.hosts():
            return 403, "host not allowed"
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower().rstrip("/") not in self.allowed_origins:
            return 403, "origin not allowed"
        if any("token" in name.lower() for name in request.query_arguments):
            return 401, "a token in the URL is refused; send it in a header or the first frame"
        if _offers_token_subprotocol(request):
            # Proxies log the subprotocols they forward (jupyter-server-proxy does at --debug).
            return 401, "a token in a subprotocol is refused; send it in a header or the first frame"
        presented = presented_token(request)
        if presented is None:
            return None if frame_auth else (401, "token required")
        return self.check_token(presented)

    def check_token(self, presented: str) -> tuple[int, str] | None:
        """Return ``(status, reason)`` unless ``presented`` is the token and guessing is not cut off."""
        if self.failures.retry_after() > 0:
            # Refuse even the right token: a guesser must not learn which one it was.
            self.failures.refused += 1
            return 429, "too many wrong tokens; try again later"
        if not hmac.compare_digest(presented.encode(), self.token):
            self.failures.fail()
            return 401, "invalid token"
        return None


def presented_token(request: Any) -> str | None:
    """Return the token of the request's ``Authorization: Bearer`` header, or None."""
    auth: str = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _offers_token_subprotocol(request: Any) -> bool:
    offered: str = request.headers.get("Sec-WebSocket-Protocol", "")
    return any(item.strip().startswith(protocol.SUBPROTOCOL_TOKEN_PREFIX) for item in offered.split(","))
