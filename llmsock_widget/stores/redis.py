"""RedisStore: each session's snapshot in Redis, saved by an atomic compare-and-set on its revision.

Layout (``prefix`` is ``llmsock`` unless given)::

    <prefix>:{<key>}:snapshot          a hash: ``revision`` (decimal) and ``snapshot`` (snapshot.dumps)
    <prefix>:{<key>}:corrupt:<ms>      a snapshot of ours that could not be read, kept for inspection

The session key sits in a hash tag (``{...}``), so every key of a session lands in
one Redis Cluster slot.  ``save`` runs one Lua script: it writes the snapshot only
if the stored revision is below the new one (else :class:`StoreConflict`), and sets
or clears the key's time to live in the same step, so two servers on one Redis
never overwrite each other's newer transcript.  A save whose reply was lost and
that is sent again finds its own snapshot stored and counts as done.

The official ``redis`` package (``pip install 'llmsock[redis]'``) is imported when a
client is first needed, never by importing this module.  A client belongs to the
event loop that made it (``redis.asyncio``): each loop that uses the store gets its
own, closed by :meth:`RedisStore.aclose` or when that loop's tasks are cancelled at
its end (a ``ServerThread`` stopping, ``asyncio.run`` returning).

**Redis Cluster**: a ``redis+cluster://`` (or ``rediss+cluster://``) URL names any node of a
cluster; the client is then the ``redis`` package's ``RedisCluster``, which sends each command
to the node of its key's slot. Nothing else changes here: every command and script of this
store touches one session's keys, so one slot.

Errors never show the URL's password: a bad URL is a ``ValueError`` and an
unreachable Redis (refused, timed out, wrong password) a
:class:`~llmsock_widget.errors.StoreError`, both naming the URL as
``redis://:***@host:port/db``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, urlsplit

from ..core import snapshot
from ..core.session import InteractionState
from ..errors import CorruptSnapshot, StoreConflict, StoreError
from .base import SessionId, session_key

SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster")
DEFAULT_PREFIX = "llmsock"
DEFAULT_TIMEOUT = 5.0  # seconds to connect, and to wait for any one reply
CLIENT_NAME = "llmsock"
POOL_CONNECTIONS = 32  # connections a loop's client opens to Redis, at most (then commands wait)
# On a Redis Cluster: connections to each node, at most. Each session shared with other servers
# holds one while it waits for their events (an XREAD cannot span slots: see redisshare.py).
CLUSTER_NODE_CONNECTIONS = 1024
EXTRA_MISSING = "the Redis store needs the redis package: pip install 'llmsock[redis]'"

# Compare-and-set: KEYS[1] the snapshot hash; ARGV revision, snapshot text, time to live in ms (0: none).
# Returns {1} when stored, {0, stored revision} when the stored revision is not below ours.
_SAVE = """
local stored = redis.call('HGET', KEYS[1], 'revision')
if stored and tonumber(stored) >= tonumber(ARGV[1]) then
  if stored == ARGV[1] and redis.call('HGET', KEYS[1], 'snapshot') == ARGV[2] then
    return {1}
  end
  return {0, stored}
end
redis.call('HSET', KEYS[1], 'revision', ARGV[1], 'snapshot', ARGV[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
end
return {1}
"""

# Move a snapshot that could not be read aside, unless another writer replaced it meanwhile.
_SET_ASIDE = """
if (redis.call('HGET', KEYS[1], 'revision') or '') ~= ARGV[1] then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1
"""

_PREFIX_REFUSED = set("{}*?[]\\ \t\r\n")


class RedisStore:
    """An asynchronous :class:`~llmsock_widget.stores.base.SessionStore` keeping snapshots in Redis.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]``, or ``rediss://`` for TLS;
            ``redis+cluster://`` or ``rediss+cluster://`` for any node of a Redis Cluster (db 0).
        prefix: the namespace of every key (no ``{}``, glob characters or blanks).
        ttl: seconds each session's snapshot lives after its last save; None keeps it.
        timeout: seconds to connect, and to wait for each reply.

    Raises:
        ValueError: the URL is not a Redis URL (the message shows it without its password),
            or ``prefix``/``ttl``/``timeout`` is not allowed.
        ImportError: the ``redis`` package is not installed (the message says how to get it).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        ttl: float | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.shown_url = shown_url(url)
        check_url(url)
        if not _installed("redis"):  # found, not imported: that waits for a client
            raise ImportError(EXTRA_MISSING, name="redis")
        if not prefix or _PREFIX_REFUSED & set(prefix):
            raise ValueError(f"Redis key prefix {prefix!r} must be non-empty, without {{}}, *?[]\\ or blanks")
        if ttl is not None and not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds or None, not {ttl!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self._url = url
        scheme, _, rest = url.partition("://")
        self.cluster = scheme.lower().endswith("+cluster")
        # What the redis package parses: the scheme without "+cluster".
        self._client_url = f"{scheme[: -len('+cluster')]}://{rest}" if self.cluster else url
        self.prefix = prefix
        self.ttl = ttl
        self.timeout = timeout
        self._lock = threading.Lock()
        self._clients: dict[asyncio.AbstractEventLoop, _Client] = {}

    def __repr__(self) -> str:  # never the password
        return f"RedisStore({self.shown_url!r}, prefix={self.prefix!r}, ttl={self.ttl!r})"

    def key_of(self, session_id: SessionId) -> str:
        """Return the Redis key of ``session_id``'s snapshot: ``<prefix>:{<key>}:snapshot``."""
        return self._name(session_key(session_id))

    async def load(self, session_id: SessionId) -> InteractionState | None:
        """Return the stored state of ``session_id``, or None if Redis has none.

        Raises:
            CorruptSnapshot: the stored snapshot could not be decoded; it is moved aside to
                ``<prefix>:{<key>}:corrupt:<ms>`` (``moved_to``), so the session can start again.
            SnapshotVersionError: a newer llmsock wrote it; it stays, and is never overwritten.
            StoreError: Redis cannot be reached, or the key holds something else.
        """
        key = session_key(session_id)
        name = self._name(key)
        client = self._client()
        async with self._errors("load", key):
            revision, data = await client.redis.hmget(name, ["revision", "snapshot"])
        if revision is None and data is None:
            return None
        try:
            stored = _revision(revision)
            state = snapshot.loads(data if data is not None else b"")
        except CorruptSnapshot as exc:
            raise await self._set_aside(client, key, revision, exc) from None
        # The hash's revision is the one the compare-and-set uses: the state says the same.
        return state if state.revision == stored else replace(state, revision=stored)

    async def save(self, session_id: SessionId, state: InteractionState) -> bool:
        """Store ``state`` unless Redis holds a revision as new or newer; return True.

        Raises:
            StoreConflict: the stored revision is not below ``state.revision``.
            StoreError: Redis cannot be reached, or the key holds something else.
        """
        key = session_key(session_id)
        client = self._client()
        ttl_ms = 0 if self.ttl is None else max(1, round(self.ttl * 1000))
        data = snapshot.dumps(state)
        async with self._errors("save", key):
            answer = await client.save(keys=[self._name(key)], args=[state.revision, data, ttl_ms])
        if int(answer[0]) != 1:
            stored = int(answer[1])
            raise StoreConflict(f"session {key}: revision {state.revision} is not newer than stored {stored}")
        return True

    def sharing(self, *, lease: float | None = None) -> Any:
        """Return a :class:`~.redisshare.RedisSharing` on this Redis: sessions shared live with the
        other servers that use it (the ``runtime.sharing`` port). ``lease``: seconds (default 5)."""
        from .redisshare import LEASE, RedisSharing

        return RedisSharing(self, lease=LEASE if lease is None else lease)

    async def revision(self, session_id: SessionId) -> int:
        """Return the stored revision of ``session_id`` (0: none), without reading its snapshot."""
        key = session_key(session_id)
        client = self._client()
        async with self._errors("load", key):
            raw = await client.redis.hget(self._name(key), "revision")
        return int(raw) if raw is not None and raw.isdigit() else 0

    async def delete(self, session_id: SessionId) -> bool:
        """Forget ``session_id``; return whether Redis had its snapshot."""
        key = session_key(session_id)
        client = self._client()
        async with self._errors("delete", key):
            removed = await client.redis.delete(self._name(key))
        return bool(removed)

    async def keys(self) -> list[str]:
        """Return the ids of the sessions stored under this prefix, sorted (plain ids only).

        The other stores' ``keys()``, asynchronous here (callers ``resolve`` it, as a load or save).

        Walks the keyspace with ``SCAN``, so it never blocks Redis; ``userId~sessionId``
        keys are left out, as :meth:`JsonFileStore.keys` leaves them out.
        """
        client = self._client()
        head, tail = f"{self.prefix}:{{", "}:snapshot"
        found: set[str] = set()
        async with self._errors("list", "*"):
            async for raw in client.redis.scan_iter(match=f"{head}*{tail}", count=500):
                name = raw.decode("utf-8", "replace")
                inner = name[len(head) : -len(tail)]
                if _is_plain_id(inner):
                    found.add(inner)
        return sorted(found)

    def ping_sync(self) -> None:
        """Check, from any thread but a running loop's, that Redis answers; raise StoreError if not.

        Uses a short-lived synchronous connection, so a kernel's cell can ask before the store
        is handed to a server.
        """
        import redis
        from redis.retry import Retry

        client: Any = None
        try:  # a cluster client reaches the cluster's nodes as it is made
            if self.cluster:
                client = redis.RedisCluster.from_url(self._client_url, **self._options(Retry, retries=0))
            else:
                client = redis.Redis.from_url(self._client_url, **self._options(Retry, retries=0))
            client.ping()
        except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
            raise self._unavailable(exc) from None
        finally:
            if client is not None:
                client.close()

    async def aclose(self) -> None:
        """Close the client of the running loop (others close with their loops)."""
        with self._lock:
            entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            entry.keeper.cancel()
            await asyncio.gather(entry.keeper, return_exceptions=True)

    # -- internals ------------------------------------------------------------------

    def _name(self, key: str) -> str:
        return f"{self.prefix}:{{{key}}}:snapshot"

    def _client(self) -> _Client:
        """Return the running loop's client, made on first use (``redis`` is imported here)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._clients.get(loop)
            if entry is None:
                import redis.asyncio
                from redis.asyncio.retry import Retry

                # A loop closed without cancelling its tasks never ran its keeper: forget it here.
                for closed in [other for other in self._clients if other.is_closed()]:
                    del self._clients[closed]
                client = self._new_client(redis.asyncio, Retry)
                keeper = loop.create_task(self._close_at_end(loop, client), name="llmsock-redis-store")
                entry = self._clients[loop] = _Client(client, client.register_script(_SAVE), keeper)
            return entry

    def _new_client(self, module: Any, retry: Any) -> Any:
        if self.cluster:
            return module.RedisCluster.from_url(
                self._client_url, max_connections=CLUSTER_NODE_CONNECTIONS, **self._options(retry, retries=2)
            )
        # A pool that makes a command wait for a free connection (at most ``timeout``), not fail
        # at once: a busy server (hundreds of shared sessions saving together) queues its
        # commands instead of losing saves.
        pool = module.BlockingConnectionPool.from_url(
            self._client_url,
            max_connections=POOL_CONNECTIONS,
            timeout=self.timeout,
            **self._options(retry, retries=2),
        )
        return module.Redis.from_pool(pool)  # owns it: closing the client closes it

    async def _close_at_end(self, loop: asyncio.AbstractEventLoop, client: Any) -> None:
        """Wait until cancelled (the loop's end, or ``aclose``), then forget and close ``client``."""
        try:
            await loop.create_future()
        finally:
            with self._lock:
                entry = self._clients.get(loop)
                if entry is not None and entry.redis is client:
                    del self._clients[loop]
            await client.aclose()

    def _options(self, retry: Any, *, retries: int) -> dict[str, Any]:
        from redis.backoff import ExponentialBackoff, NoBackoff

        backoff = ExponentialBackoff(cap=0.5, base=0.05) if retries else NoBackoff()
        return {
            "client_name": CLIENT_NAME,  # what CLIENT LIST shows for our connections
            "socket_connect_timeout": self.timeout,
            "socket_timeout": self.timeout,
            "retry": retry(backoff, retries),
        }

    async def _set_aside(
        self, client: _Client, key: str, revision: bytes | None, exc: CorruptSnapshot
    ) -> CorruptSnapshot:
        aside = f"{self.prefix}:{{{key}}}:corrupt:{int(time.time() * 1000)}"
        async with self._errors("load", key):
            moved = await client.redis.eval(
                _SET_ASIDE, 2, self._name(key), aside, revision if revision is not None else b""
            )
        if not moved:  # another writer replaced it meanwhile: leave theirs alone
            return CorruptSnapshot(f"session {key}: {exc.message}")
        return CorruptSnapshot(f"session {key}: {exc.message}; moved aside to {aside}", moved_to=aside)

    @contextlib.asynccontextmanager
    async def _errors(self, action: str, key: str) -> AsyncIterator[None]:
        """Turn the redis package's errors into StoreError (never showing the password)."""
        import redis
        from redis.exceptions import RedisClusterException

        try:
            yield
        except (redis.RedisError, RedisClusterException, OSError, asyncio.TimeoutError) as exc:
            raise self._unavailable(exc, action, key) from None

    def _unavailable(self, exc: BaseException, action: str = "reach", key: str = "*") -> StoreError:
        """Return the StoreError for a failure of Redis: the URL without its password, and why."""
        import redis

        if isinstance(exc, redis.AuthenticationError) or _says_auth(exc):
            why = "authentication failed (check the user and password of the URL)"
        elif isinstance(exc, (redis.TimeoutError, asyncio.TimeoutError, TimeoutError)):
            why = f"no answer within {self.timeout:g} s"
        elif isinstance(exc, (redis.ConnectionError, OSError)):
            why = self._connection_reason(exc)
        elif isinstance(exc, redis.exceptions.MovedError) and not self.cluster:
            why = "it is a node of a Redis Cluster (it answered MOVED); use a redis+cluster:// URL"
        elif isinstance(exc, redis.exceptions.RedisClusterException):  # the cluster client's own
            text = self._scrub(str(exc))
            if "cluster mode is not enabled" in text.lower():
                why = "it is not a Redis Cluster; use a redis:// URL"
            elif "refused" in text.lower() or "error 111 " in text.lower():
                why = "connection refused"
            else:
                why = f"Redis Cluster: {text[:160]}"
        else:  # a reply of Redis: WRONGTYPE, OOM, READONLY, NOPERM...
            reason = self._scrub(str(exc))[:160]
            return StoreError(f"Redis at {self.shown_url} could not {action} session {key}: {reason}")
        return StoreError(f"Redis at {self.shown_url} is unavailable: {why}")

    def _connection_reason(self, exc: BaseException) -> str:
        for cause in (exc, exc.__cause__, exc.__context__):
            if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
                return "connection refused"
        return f"cannot connect ({self._scrub(str(exc))[:120]})"

    def _scrub(self, text: str) -> str:
        password = _password(self._url)
        return text.replace(password, "***") if password else text


@dataclass(slots=True)
class _Client:
    """One loop's client, its compare-and-set script, and the task that closes it with the loop."""

    redis: Any
    save: Any
    keeper: asyncio.Task[None]


def check_url(url: str) -> None:
    """Raise ValueError unless ``url`` is ``redis://`` or ``rediss://`` with a host, port and db."""
    shown = shown_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"not a Redis URL: {shown}; use redis://[:password@]host:port/db") from None
    if parts.scheme not in SCHEMES:
        raise ValueError(
            f"not a Redis URL: {shown}; use redis:// or rediss:// (TLS), redis+cluster:// for a cluster"
        )
    if not parts.hostname:
        raise ValueError(f"no host in the Redis URL {shown}; use redis://[:password@]host:port/db")
    if port == 0:
        raise ValueError(f"port 0 in the Redis URL {shown}")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise ValueError(f"the database of the Redis URL {shown} must be a number (/0, /1, ...)")
    if db and int(db) != 0 and parts.scheme.endswith("+cluster"):
        raise ValueError(f"a Redis Cluster has only database 0, not /{db} (in {shown})")


def shown_url(url: str) -> str:
    """Return ``url`` as it may be shown: the password as ``***``, without a query or fragment."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _clip(scheme.split("@")[-1])  # not a URL: whatever precedes an @ may be a secret
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, path = rest[:end], rest[end:]
    userinfo, at, host = netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}{':***' if colon else ''}@{host}"
    path = path.split("?", 1)[0].split("#", 1)[0]
    return _clip(f"{scheme}://{netloc}{path}")


def _clip(text: str) -> str:
    return text if len(text) <= 100 else text[:97] + "..."


def _password(url: str) -> str:
    try:
        password = urlsplit(url).password
    except ValueError:
        return ""
    return unquote(password) if password else ""


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except ImportError:
        return False


def _revision(raw: bytes | None) -> int:
    if raw is None or not raw.isdigit():
        raise CorruptSnapshot("the stored revision is not a number")
    return int(raw)


def _is_plain_id(text: str) -> bool:
    try:
        return session_key(text) == text
    except Exception:
        return False


def _says_auth(exc: BaseException) -> bool:
    text = str(exc)
    lower = text.lower()
    return text.startswith(("WRONGPASS", "NOAUTH")) or "invalid password" in lower or "password pair" in lower
