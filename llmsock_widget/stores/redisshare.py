"""RedisSharing: one session open on several servers, its events and commands passed through Redis.

The sharing port is ``runtime.sharing``; this module implements it on the Redis that keeps the
snapshots (:class:`~.redis.RedisStore`). Per session, in one Redis Cluster slot::

    <prefix>:{<key>}:events     a Stream of the session's events; entry id ``0-<seq>``
    <prefix>:{<key>}:commands   a Stream of the commands handed to the session's runner
    <prefix>:{<key>}:replies    a Stream of the runner's replies to commands of other servers
    <prefix>:{<key>}:lease      the id of the server that runs the session now (SET NX PX)
    <prefix>:{<key>}:done       the id of the last command the runner acted on
    <prefix>:{<key>}:epoch      the name of this series of events (resume works within it)
    <prefix>:{<key>}:queued     the prompts the runner took that wait for their turn (a hash)

**One runner.** A server that hands over a command (a prompt, Stop, an approval...) adds it
to the commands stream; whoever holds the lease acts on the commands after ``done``, in
stream order, and moves ``done`` on. If nobody holds it, the server whose command it is
takes it. The runner renews the lease while it has work and gives it back (a script that
refuses while commands wait) when it has none.

**One series of events.** Only the runner adds events, each with the entry id ``0-<seq>``,
through a script that checks the lease and that the stream's last entry is the previous
seq: a runner that lost its lease, or two writers, can never add a gap or a duplicate
(Redis refuses ids that do not grow). Every server with the session open reads the events
stream and applies the others' events to its copy of the state: one ``XREAD BLOCK`` per
server reads every stream of every session it shares (:meth:`RedisSharing._read`). On a
Redis Cluster an ``XREAD`` cannot span slots, so each session has a reader of its own there
(one blocking connection per shared session, to the node of its slot).

**Redis away.** Events wait on the runner and are sent, in order, when Redis answers again.
A command (a prompt, Stop...) that cannot reach Redis within the store's timeout is refused with
a ``sharing_unavailable`` error reply, on any server: its user is told it was not sent, never
left waiting in silence. A server whose reads have failed for that long tells the views of the
sessions it follows (those another server runs) the same way, once: they show no new events
until Redis answers, and then get every event they missed, in order.

**Failover.** A runner that dies stops renewing; its lease expires. A server whose copy
shows a turn open (or commands or queued prompts waiting) and finds no lease takes it,
reads the events to the end, has the hub close the cut turn as aborted, and takes the
prompts the dead runner had queued (each is in ``queued`` from the moment the runner took
it until its turn starts or it is refused); the chat goes on from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import OrderedDict
from typing import Any, Callable

from ..aio import within
from ..core import valuecodec
from ..core.commands import Notice, SendPrompt
from ..core.events import ErrorReply, SessionEvent, UserMessage
from ..errors import StoreError

log = logging.getLogger("llmsock")

LEASE = 5.0  # seconds a runner's lease lasts unless renewed (renewed every third of it)
EVENTS_KEPT = 100_000  # about how many events a session's stream keeps (MAXLEN ~)
COMMANDS_KEPT = 1_000  # likewise for its commands and replies
BATCH = 512  # events added to the stream in one script call, at most
REMEMBERED = 4096  # events before our copy's seq read on joining, for clients that resume (a replay log)
QUEUED_FOR = 600.0  # seconds a queued prompt is taken over by the next runner; older ones are dropped
ROUTES_KEPT = 4_096  # commands of this server whose reply may still come
CLOSING_TRIES = 3  # tries of a job that Redis refuses while the server stops
RETRY_AFTER = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)  # seconds before reading again after Redis failed

# Add events. KEYS: events, lease. ARGV: server id, lease ms, cap, first seq, whether an empty
# stream may start here (1/0), then one payload per event. Returns 1 when added, 0 when another
# server holds the lease, {-1, last id or '0-0'} when the stream does not end at the seq before
# the first one (another writer was here, or Redis lost events). A lease that is gone (a Redis
# that restarted without its data) is taken again.
_EMIT = """
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return 0 end
if not holder then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) end
local first = tonumber(ARGV[4])
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if top and top[1] ~= '0-' .. (first - 1) then return {-1, top[1]} end
if not top and ARGV[5] ~= '1' then return {-1, '0-0'} end
for i = 6, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '0-' .. (first + i - 6), 'e', ARGV[i])
end
return 1
"""

# Give the lease back unless commands wait. KEYS: lease, done, commands. ARGV: server id.
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 1 end
local top = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)[1]
if top and top[1] ~= (redis.call('GET', KEYS[2]) or '') then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

# Renew the lease (and note the last command acted on). KEYS: lease, done. ARGV: id, ms, done.
# A lease that is gone (Redis restarted without its data) is taken again.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3]) end
return 1
"""


class RedisSharing:
    """Share sessions with the other servers on ``store``'s Redis (the ``runtime.sharing`` port).

    Args:
        store: the :class:`~.redis.RedisStore` whose Redis, prefix and timeouts are used.
        lease: seconds a runner's lease lasts unless renewed; a dead runner's sessions are
            taken over within about this long.
    """

    def __init__(self, store: Any, *, lease: float = LEASE) -> None:
        if not lease > 0:
            raise ValueError(f"lease must be a positive number of seconds, not {lease!r}")
        self.store = store
        self.lease = lease
        self.server_id = secrets.token_hex(8)  # this server, as the others see it
        self._links: set[_Link] = set()
        self._closing: set[asyncio.Task[None]] = set()  # links that left, handing on their last events
        self._closed = False
        self._reader: asyncio.Task[None] | None = None  # the one reader (not on a cluster)
        # The reader's own stream: a join adds to it, so a blocked XREAD returns and reads the new
        # session's streams too.
        self._wake_key = f"{store.prefix}:server:{self.server_id}:wake"
        self._wake_id = "0-0"

    def __repr__(self) -> str:
        return f"RedisSharing({self.store!r}, lease={self.lease!r})"

    async def join(self, session_id: str, member: Any, fanout: Any) -> _Link:
        """Tie ``session_id`` to the other servers' copies; return its link (see runtime.sharing)."""
        link = _Link(self, session_id, member, fanout)
        await link.open()
        self._links.add(link)
        loop = asyncio.get_running_loop()
        if self.store.cluster:  # its streams are in its own slot: read alone
            link.reader = loop.create_task(self._read(link), name=f"llmsock-share-read-{session_id}")
        elif self._reader is None:
            self._reader = loop.create_task(self._read(), name="llmsock-share-read")
        else:
            await self._wake()
        return link

    async def aclose(self) -> None:
        """Send what is still to be sent, give back every lease, stop reading."""
        self._closed = True
        links, self._links = list(self._links), set()
        await asyncio.gather(*(link.close() for link in links), *self._closing, return_exceptions=True)
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _wake(self) -> None:
        """Make the reader's blocked XREAD return, so it reads the streams of every open session."""
        redis = self.store._client().redis
        async with self.store._errors("share", "*"):
            await redis.xadd(self._wake_key, {"w": "1"}, maxlen=1)
            await redis.pexpire(self._wake_key, 60_000)

    async def _read(self, alone: _Link | None = None) -> None:
        """Follow every shared session with one blocking ``XREAD``: others' events, commands to act
        on, replies to ours; then let each session keep its lease (one Redis connection in all).

        ``alone``: follow that session only (on a Redis Cluster, where each session has a reader).
        """
        failures = 0
        failing_since: float | None = None  # since when reading fails (monotonic s)
        told = False  # the views this reader feeds were told that it cannot read
        block = max(1, min(round(self.lease * 1000) // 3, int(self.store.timeout * 1000) // 2))
        # Checked as well as cancelled: a cancel may be lost under a blocking read (see aio.py).
        while not self._closed and not (alone is not None and alone.closed):
            try:
                redis = self.store._client().redis
                links = list(self._links) if alone is None else [alone]
                streams: dict[str, str] = {self._wake_key: self._wake_id} if alone is None else {}
                owner: dict[str, _Link] = {}
                for link in links:
                    for name, last in link.cursors().items():
                        streams[name] = last
                        owner[name] = link
                answer = await redis.xread(streams, block=block, count=BATCH)
                commands: set[_Link] = set()
                for stream, entries in answer or ():
                    name = _id(stream)
                    if name == self._wake_key:
                        self._wake_id = _id(entries[-1][0])
                    elif name in owner and not owner[name].closed:
                        if owner[name].take(name, entries):
                            commands.add(owner[name])
                for link in links:
                    if not link.closed and not self._closed:
                        await link.keep_up(redis, link in commands)
                failures, failing_since, told = 0, None, False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                now = time.monotonic()
                failing_since = now if failing_since is None else failing_since
                if not told and now - failing_since >= self.store.timeout:
                    told = True
                    said = self.store._unavailable(exc, "read", "*").message
                    for link in list(self._links) if alone is None else [alone]:
                        link.cut_off(said)
                wait = RETRY_AFTER[min(failures, len(RETRY_AFTER) - 1)]
                failures += 1
                log.warning(
                    "llmsock: reading shared sessions from Redis failed (%s); again in %g s", exc, wait
                )
                await asyncio.sleep(wait)

    def left(self, link: _Link) -> None:
        """``link``'s session left memory: close it (after ``aclose``, it only stops reading)."""
        self._links.discard(link)
        if self._closed:
            link.stop()
            return
        task = asyncio.get_running_loop().create_task(link.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


class _Link:
    """One session's tie to the other servers (``runtime.sharing.Link``)."""

    def __init__(self, sharing: RedisSharing, key: str, member: Any, fanout: Any) -> None:
        self._sharing = sharing
        self._store = sharing.store
        self._key = key
        self._member = member
        self._fanout = fanout
        self._me = sharing.server_id
        self._lease_ms = max(1, round(sharing.lease * 1000))
        base = f"{self._store.prefix}:{{{key}}}:"
        self._events, self._commands, self._replies = base + "events", base + "commands", base + "replies"
        self._lease_key, self._done_key, self._epoch_key = base + "lease", base + "done", base + "epoch"
        self._queued_key = base + "queued"
        self.epoch = ""
        self.runs_here = False
        self._done = ""  # the last command acted on, as this server knows it
        # The last entry read of each stream (open() starts the commands and replies at their end).
        self._ids = {self._events: "0-0", self._commands: "0-0", self._replies: "0-0"}
        self._routes: OrderedDict[str, Callable[[Any], None]] = OrderedDict()
        self._outbox: list[str] = []  # payloads of events emitted here, not yet in the stream
        self._first_seq = 0  # the seq of the first of them
        self._flushed = 0  # the seq of the last event Redis took from this server
        self._lost = False  # Redis lost events it had taken: they were added again (users are told)
        self._jobs: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()  # what the writer sends, in order
        self._away_since: float | None = None  # since when Redis refuses the writer (monotonic s)
        self._writer: asyncio.Task[None] | None = None
        self._renewed = 0.0  # when the lease was last renewed (monotonic s)
        self._checked = 0.0  # when a follower last looked for a session nobody runs
        self._vacant_since: float | None = None  # since when it has found nobody running it
        self._period = sharing.lease / 3
        self._closed = False
        self._advanced = asyncio.Event()  # set (and replaced) each time others' events were applied
        self.reader: asyncio.Task[None] | None = None  # this session's own reader, on a cluster

    # -- opening ---------------------------------------------------------------------

    async def open(self) -> None:
        """Read the session's epoch and the events others emitted since our copy; start reading."""
        client = self._store._client()
        async with self._store._errors("share", self._key):
            redis = client.redis
            await redis.set(self._epoch_key, "r-" + secrets.token_hex(6), nx=True)
            epoch = await redis.get(self._epoch_key)
            self.epoch = epoch.decode() if isinstance(epoch, bytes) else str(epoch)
            for stream in (self._commands, self._replies):
                top = await redis.xrevrange(stream, count=1)
                self._ids[stream] = _id(top[0][0]) if top else "0-0"
            await self._catch_up(redis)
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write(), name=f"llmsock-share-write-{self._key}")

    async def _catch_up(self, redis: Any) -> None:
        """Apply the stream's events after our copy's seq (and remember a few before it, for resume)."""
        start = max(1, self._member.seq - REMEMBERED + 1)
        entries = await redis.xrange(self._events, min=f"0-{start}")
        kept: list[SessionEvent] = []
        for entry_id, fields in entries:
            entry_seq = _seq(entry_id)
            event = self._decode(entry_id, fields)
            if event is None:
                continue
            if entry_seq <= self._member.seq:
                kept.append(event)
                continue
            if kept:
                self._member.remember(kept)
                kept = []
            if entry_seq != self._member.seq + 1:
                log.warning(
                    "llmsock: session %s: the shared events jump from %d to %d; its copy here may lag",
                    self._key,
                    self._member.seq,
                    entry_seq,
                )
                break
            self._follow(event)
        if kept:
            self._member.remember(kept)
        if entries:
            self._ids[self._events] = _id(entries[-1][0])

    # -- the port --------------------------------------------------------------------

    def submit(self, command: Any, reply: Callable[[Any], None]) -> None:
        """Hand ``command`` to the session's runner (through the commands stream); never blocks."""
        route = secrets.token_hex(6)
        self._routes[route] = reply
        while len(self._routes) > ROUTES_KEPT:
            self._routes.popitem(last=False)
        payload = _dumps({"o": self._me, "r": route, "c": valuecodec.encode(command)})
        self._jobs.put_nowait(("command", (route, command, payload)))

    def publish(self, session_id: str, event: SessionEvent) -> None:
        """Deliver ``event`` here; if this server runs the session, add it to the events stream."""
        self._fanout.publish(session_id, event)
        if self.runs_here:
            if not self._outbox:
                self._first_seq = event.seq
                self._jobs.put_nowait(("events", None))
            self._outbox.append(_dumps(valuecodec.encode(event)))
            if type(event) is UserMessage:  # its turn starts: no longer waiting, once the event is in
                self._unqueue(event.message_id)

    async def reach(self, seq: int) -> None:
        """Return once our copy has applied the events up to ``seq``, or after the store's timeout."""
        deadline = time.monotonic() + self._store.timeout
        while self._member.seq < seq and not self._closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await within(self._advanced.wait(), remaining)

    def settled(self) -> None:
        """No work here any more: give the lease back once the events are in the stream."""
        if self.runs_here:
            self._jobs.put_nowait(("release", None))

    def leave(self) -> None:
        """Stop sharing this session (it left memory); what is queued is still sent."""
        self._sharing.left(self)

    def stop(self) -> None:
        """Stop reading and writing at once (the server is gone; a lease it holds expires)."""
        self._closed = True
        for task in (self._writer, self.reader):
            if task is not None:
                task.cancel()

    async def close(self) -> None:
        """Hand on the events still queued, give the lease back, stop reading."""
        if self._closed:
            return
        self._closed = True
        if self.runs_here:
            self._jobs.put_nowait(("release", None))
        self._jobs.put_nowait(("stop", None))
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)

    # -- writing -----------------------------------------------------------------------

    async def _write(self) -> None:
        """Send what this server hands on, in order: commands, events, replies, lease releases.

        While Redis cannot be reached, the job is tried again (with backoff) until it can: events
        are never skipped, so the stream keeps one series without a gap. The session's users are
        told when that starts and when it ends (if this server runs the session).
        """
        while True:
            kind, payload = await self._jobs.get()
            if kind == "stop":
                return
            failures = 0
            while True:
                try:
                    await self._send(kind, payload)
                    self._away_since = None
                    break
                except asyncio.CancelledError:
                    raise
                except StoreError as exc:  # Redis is away: wait, then send the same job again
                    now = time.monotonic()
                    self._away_since = now if self._away_since is None else self._away_since
                    if kind == "command" and now - self._away_since >= self._store.timeout:
                        self._refuse(payload, exc)  # its user is told; the next command is refused at once
                        break
                    if self._closed and failures >= CLOSING_TRIES:  # the server stops: not forever
                        log.error("llmsock: session %s: a %s was not shared: %s", self._key, kind, exc)
                        break
                    if failures == 0:
                        self._tell("warning", "sharing_unavailable", f"{exc.message}; events wait here")
                    wait = RETRY_AFTER[min(failures, len(RETRY_AFTER) - 1)]
                    failures += 1
                    await asyncio.sleep(wait)
                except Exception as exc:
                    log.warning("llmsock: session %s: could not hand on a %s: %s", self._key, kind, exc)
                    break
            if failures or self._lost:
                said = "events that Redis lost (it restarted without its data) were shared again"
                self._tell("info", "sharing_restored", said if self._lost else "Redis answers again")
                self._lost = False

    def _refuse(self, job: tuple[str, Any, str], exc: StoreError) -> None:
        """Refuse a command that could not reach Redis in time: its sender gets an error reply."""
        route, command, _ = job
        reply = self._routes.pop(route, None)
        log.warning("llmsock: session %s: a %s was not handed on: %s", self._key, command.kind, exc)
        if reply is None or type(command) is Notice:
            return
        request_id = getattr(command, "request_id", None) or getattr(command, "message_id", None)
        what = {"user_message": "prompt", "control": "request"}.get(command.kind, command.kind)
        message = f"{exc.message}; the {what} was not sent, try again"
        reply(
            ErrorReply(
                code="sharing_unavailable",
                message=message,
                ts=int(time.time() * 1000),
                request_id=request_id,
                refused=command.kind,
            )
        )

    def cut_off(self, why: str) -> None:
        """This server cannot read the session's events: tell its views, unless it runs the session
        (then they see its events live, and are told by its diagnostics when sharing stalls)."""
        if self._closed or self.runs_here:
            return
        message = f"{why}; this view shows no new events of the shared chat until Redis answers again"
        self._fanout.publish(
            self._key, ErrorReply(code="sharing_unavailable", message=message, ts=int(time.time() * 1000))
        )

    def _tell(self, level: str, code: str, message: str) -> None:
        """Tell the session's users (through a diagnostic of the runner's) that sharing stalls or goes on."""
        if self.runs_here and not self._closed:
            self._member.act(Notice(level=level, code=code, message=message), _drop)

    async def _send(self, kind: str, payload: Any) -> None:
        client = self._store._client()
        redis = client.redis
        async with self._store._errors("share", self._key):
            if kind == "command":
                await redis.xadd(self._commands, {"c": payload[2]}, maxlen=COMMANDS_KEPT, approximate=True)
            elif kind == "unqueue":
                await redis.hdel(self._queued_key, payload)
            elif kind == "reply":
                await redis.xadd(self._replies, {"v": payload}, maxlen=COMMANDS_KEPT, approximate=True)
            elif kind == "events":
                await self._flush(redis)
            elif kind == "release":
                await self._flush(redis)
                if self.runs_here and not self._member.busy():
                    released = await redis.eval(
                        _RELEASE, 3, self._lease_key, self._done_key, self._commands, self._me
                    )
                    if released:
                        self.runs_here = False

    async def _flush(self, redis: Any) -> None:
        refilled = False
        while self._outbox:
            batch, first = self._outbox[:BATCH], self._first_seq
            may_start = self._flushed == 0 or refilled  # else an empty stream means Redis lost it
            answer = await redis.eval(
                _EMIT,
                2,
                self._events,
                self._lease_key,
                self._me,
                self._lease_ms,
                EVENTS_KEPT,
                first,
                int(may_start),
                *batch,
            )
            if answer == 1:
                self._flushed = first + len(batch) - 1
            elif answer != 0 and not refilled and _seq(answer[1]) < first - 1:
                refilled = True  # Redis lost events it took (it restarted without its data)
                self._refill(_seq(answer[1]), first)
                continue
            else:
                why = "the lease is lost" if answer == 0 else f"the stream ends at {_id(answer[1])!r}"
                log.error(
                    "llmsock: session %s: events %d-%d were not shared (%s)",
                    self._key,
                    first,
                    first + len(batch) - 1,
                    why,
                )
            del self._outbox[: len(batch)]  # only once Redis took them (or refused them for good)
            self._first_seq = first + len(batch)

    def _refill(self, top_seq: int, first: int) -> None:
        """Put back in front of the outbox the events after ``top_seq`` that Redis lost, from this
        server's copy (its last few thousand events), and tell the session's users."""
        lost = [event for event in self._member.recent_after(top_seq) if event.seq < first]
        log.warning(
            "llmsock: session %s: Redis lost events after %d; %d are added again",
            self._key,
            top_seq,
            len(lost),
        )
        if lost:
            self._outbox[:0] = [_dumps(valuecodec.encode(event)) for event in lost]
            self._first_seq = lost[0].seq
        self._lost = True

    # -- reading -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def cursors(self) -> dict[str, str]:
        """The session's streams and the last entry read of each, for the server's ``XREAD``."""
        return self._ids

    def take(self, name: str, entries: list[Any]) -> bool:
        """Take entries the reader read from stream ``name``; return whether they are commands."""
        self._ids[name] = _id(entries[-1][0])
        if name == self._events:
            self._apply(entries)
        elif name == self._replies:
            self._route(entries)
        else:
            return True
        return False

    def _apply(self, entries: list[Any]) -> None:
        for entry_id, fields in entries:
            seq = _seq(entry_id)
            if seq <= self._member.seq:
                continue  # ours, or applied while catching up
            if seq != self._member.seq + 1:
                log.warning(
                    "llmsock: session %s: missed events %d-%d", self._key, self._member.seq + 1, seq - 1
                )
            event = self._decode(entry_id, fields)
            if event is not None:
                self._follow(event)
        self._advanced.set()
        self._advanced = asyncio.Event()

    def _decode(self, entry_id: Any, fields: dict[bytes, bytes]) -> Any:
        """Return the event of a stream entry, or None (logged) if it is not one of ours."""
        try:
            return valuecodec.decode(json.loads(fields[b"e"]))
        except Exception as exc:
            log.warning(
                "llmsock: session %s: event %s of Redis is not readable: %s", self._key, _id(entry_id), exc
            )
            return None

    def _follow(self, event: SessionEvent) -> None:
        """Apply another server's event; one our copy refuses is logged, never raised into the reader."""
        try:
            self._member.follow(event)
        except Exception:
            log.exception(
                "llmsock: session %s: event %d of another server was refused here", self._key, event.seq
            )

    def _route(self, entries: list[Any]) -> None:
        for _, fields in entries:
            data = json.loads(fields[b"v"])
            if data.get("to") != self._me:
                continue
            reply = self._routes.get(data.get("r"))
            if reply is not None:
                reply(valuecodec.decode(data["v"]))

    async def keep_up(self, redis: Any, commands: bool) -> None:
        """Run the session if nobody does and there is work; act on waiting commands; keep the lease."""
        now = time.monotonic()
        if not self.runs_here:
            if not commands and now - self._checked < self._period:
                return
            self._checked = now
            if not await self._should_take(redis, now):
                return
            if not await redis.set(self._lease_key, self._me, nx=True, px=self._lease_ms):
                return
            self._renewed = now
            self._vacant_since = None
            await self._catch_up(redis)  # everything the last runner added, before we add anything
            self.runs_here = True
            self._done = (await redis.get(self._done_key) or b"").decode()
            await self._member.take_over()
            await self._take_queued(redis)
            commands = True
        if commands:
            await self._act(redis)
        if self.runs_here and now - self._renewed >= self._period:
            if self._member.busy() or self._outbox:
                renewed = await redis.eval(
                    _RENEW, 2, self._lease_key, self._done_key, self._me, self._lease_ms, ""
                )
                if not renewed:
                    self.runs_here = False
                    log.error("llmsock: session %s: this server lost the session's lease mid-turn", self._key)
                self._renewed = now
            else:
                self.settled()

    async def _should_take(self, redis: Any, now: float) -> bool:
        """Whether this server should run the session now: nobody does, and there is work.

        A command of this server's own is taken at once; otherwise (its runner went away mid-turn,
        or another server's command waits) only once nobody has run it for a third of the lease,
        so the server whose client sent a prompt is the one that answers it.
        """
        if await redis.exists(self._lease_key):
            self._vacant_since = None
            return False
        done = (await redis.get(self._done_key) or b"").decode()
        waiting = await redis.xrange(self._commands, min=f"({done}" if done else "-", count=1)
        if waiting and json.loads(waiting[0][1][b"c"]).get("o") == self._me:
            return True
        if not waiting and not self._member.turn_open and not await redis.hlen(self._queued_key):
            self._vacant_since = None
            return False
        if self._vacant_since is None:
            self._vacant_since = now
        return now - self._vacant_since >= self._period

    async def _act(self, redis: Any) -> None:
        entries = await redis.xrange(self._commands, min=f"({self._done}" if self._done else "-")
        for entry_id, fields in entries:
            self._done = _id(entry_id)
            data = json.loads(fields[b"c"])
            try:
                command = valuecodec.decode(data["c"])
            except Exception as exc:
                log.warning("llmsock: session %s: a shared command could not be read: %s", self._key, exc)
                continue
            reply = self._reply_to(data.get("o"), data.get("r"))
            if isinstance(command, SendPrompt) and command.message_id:
                # Kept until its turn starts (or it is refused): a runner that dies meanwhile
                # leaves it to the next one, not lost.
                await redis.hset(self._queued_key, command.message_id, _dumps({"id": _id(entry_id), **data}))
                await redis.pexpire(self._queued_key, round(QUEUED_FOR * 1000))
                reply = self._unqueue_if_refused(command.message_id, reply)
            self._member.act(command, reply)
        if entries:
            await redis.eval(_RENEW, 2, self._lease_key, self._done_key, self._me, self._lease_ms, self._done)
            self._renewed = time.monotonic()
            if not self._member.busy():
                self.settled()

    async def _take_queued(self, redis: Any) -> None:
        """Act, in their order, on the prompts a runner that went away had taken and not started."""
        queued = [json.loads(value) for value in (await redis.hgetall(self._queued_key)).values()]
        started = {e.message_id for e in self._member.recent_after(0) if type(e) is UserMessage}
        now_ms = time.time() * 1000
        for item in sorted(queued, key=lambda item: _id_parts(item["id"])):
            command = valuecodec.decode(item["c"])
            if command.message_id in started or now_ms - _id_parts(item["id"])[0] > QUEUED_FOR * 1000:
                self._unqueue(command.message_id)  # it ran, or waited too long to run now
                continue
            log.info(
                "llmsock: session %s: prompt %s taken over from the last runner",
                self._key,
                command.message_id,
            )
            reply = self._unqueue_if_refused(command.message_id, self._reply_to(item.get("o"), item.get("r")))
            self._member.act(command, reply)

    def _unqueue(self, message_id: str) -> None:
        self._jobs.put_nowait(("unqueue", message_id))

    def _unqueue_if_refused(self, message_id: str, reply: Callable[[Any], None]) -> Callable[[Any], None]:
        def refused(answer: Any) -> None:
            if type(answer) is ErrorReply and answer.request_id == message_id:
                self._unqueue(message_id)
            reply(answer)

        return refused

    def _reply_to(self, origin: Any, route: Any) -> Callable[[Any], None]:
        if origin == self._me:
            local = self._routes.get(route, _drop)
            return local

        def remote(reply: Any) -> None:
            payload = _dumps({"to": origin, "r": route, "v": valuecodec.encode(reply)})
            self._jobs.put_nowait(("reply", payload))

        return remote


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _drop(reply: Any) -> None:
    """A reply whose command's sender is gone."""


def _id(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _id_parts(raw: Any) -> tuple[int, int]:
    """Return a stream entry id's two numbers: (milliseconds, sequence), as Redis orders them."""
    ms, _, seq = _id(raw).partition("-")
    return int(ms), int(seq)


def _seq(raw: Any) -> int:
    """Return the event seq an events stream entry id ``0-<seq>`` carries."""
    return _id_parts(raw)[1]
