"""Redis: what the Redis session store costs (``llmsock_widget.stores.redis.RedisStore``).

The suite starts a ``redis-server`` of its own (on a free loopback port, with a random
password, no persistence, in a temporary folder) and stops it at the end.  The snapshot is a
realistic one: a session of ``turns`` turns (default 20, answers of ~``reply_chars`` = 500
characters) built through the reducer, as the ``snapshot`` suite builds its sessions.

* **save and load**: round trips per second of that snapshot through ``RedisStore.save`` (the
  compare-and-set Lua script, with ``snapshot.dumps``) and ``RedisStore.load`` (``HMGET``, with
  ``snapshot.loads``), by 1, 8 and 64 sessions at once on one event loop, each session saving
  (or loading) again as soon as its last round trip ended, for ``seconds`` each; with the
  p50 and p99 time of one round trip, and the CPU this process (the client's loop) and
  ``redis-server`` used meanwhile, which says which of the two is the bound;
* **compare-and-set**: two stores (two clients, as two servers) save one session: blind (each
  keeps its own copy and saves it with its next revision, in turn, on one loop: every save of
  the second is refused) and racing (each on a thread and loop of its own loads, bumps the
  revision and saves, for ``seconds``); conflicts are counted, and the stored revision must
  equal the saves stored (no save was silently lost);
* **memory**: ``used_memory`` of ``INFO memory`` before and after storing ``memory_sessions``
  sessions of that snapshot, divided by their number, and ``MEMORY USAGE`` of one key;
* **server**: a ``ServerThread`` with the builtin model at full speed and the store, and a
  :class:`~llmsock_widget.client.Client` in this process asking ``prompts`` short prompts in one
  session, one after the other: turns per second and the share of the wall time the server
  spent in ``store.save`` (two saves a turn), with ``RedisStore`` and with ``MemoryStore``.

Every row carries the machine's 1-minute load average when it was measured.
"""

from __future__ import annotations

import asyncio
import importlib.util
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from llmsock_widget.core import snapshot
from llmsock_widget.core.session import InteractionState
from llmsock_widget.errors import StoreConflict, StoreError
from llmsock_widget.models import BuiltinModel
from llmsock_widget.stores.base import SessionId, SessionStore, resolve
from llmsock_widget.stores.memory import MemoryStore
from llmsock_widget.stores.redis import RedisStore

from .common import BenchFailure, load_1m, percentile, start_server, table
from .redisprocess import RedisProcess, RedisUnavailable
from .snapshots import build_session

MISSING_PACKAGE = "the redis package is not installed: pip install 'llmsock[redis]'"


# -- the redis-server -----------------------------------------------------------------------------


# -- save and load ----------------------------------------------------------------------------------


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _rate(
    kind: str, sessions: int, done: int, seconds: float, times: list[float], cpu: tuple[float, float]
) -> dict[str, Any]:
    times.sort()
    return {
        "operation": kind,
        "sessions": sessions,
        "ops": done,
        "per_second": done / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(times, 50) * 1000,
        "p99_ms": percentile(times, 99) * 1000,
        "client_cpu_pct": 100 * cpu[0] / seconds if seconds > 0 else 0.0,
        "redis_cpu_pct": 100 * cpu[1] / seconds if seconds > 0 else 0.0,
        "load_1m": load_1m(),
    }


async def _hammer(
    sessions: int, seconds: float, op: Callable[[str, int], Awaitable[None]]
) -> tuple[int, float, list[float]]:
    """Run ``op(session, i)`` in ``sessions`` tasks, back to back, for ``seconds``.

    Returns the round trips done, the seconds they took, and each one's time.
    """
    times: list[float] = []
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(session: str) -> None:
        i = 0
        while time.perf_counter() < deadline:
            i += 1
            began = time.perf_counter()
            await op(session, i)
            times.append(time.perf_counter() - began)

    await asyncio.gather(*(worker(f"bench-{n}") for n in range(sessions)))
    return len(times), time.perf_counter() - start, times


async def _round_trips(
    store: RedisStore, state: InteractionState, loads: list[int], seconds: float, redis_pid: int
) -> list[dict[str, Any]]:
    """Time save and load round trips at each load; with the CPU of this process and of Redis."""
    processes = (psutil.Process(), psutil.Process(redis_pid))

    async def timed(op: Callable[[str, int], Awaitable[None]], sessions: int) -> tuple[Any, ...]:
        before = [_cpu_seconds(p) for p in processes]
        done, took, times = await _hammer(sessions, seconds, op)
        cpu = tuple(_cpu_seconds(p) - b for p, b in zip(processes, before, strict=True))
        return done, took, times, cpu

    messages = len(state.messages)
    rows: list[dict[str, Any]] = []
    base = 0
    for sessions in loads:
        base += 10_000_000  # revisions above every earlier run's, so each save is stored

        async def save(session: str, i: int, base: int = base) -> None:
            await store.save(session, replace(state, revision=base + i))

        async def load(session: str, i: int) -> None:
            loaded = await store.load(session)
            if loaded is None or len(loaded.messages) != messages:
                raise BenchFailure(f"session {session} did not load whole: {loaded!r:.100}")

        rows.append(_rate("save", sessions, *await timed(save, sessions)))
        rows.append(_rate("load", sessions, *await timed(load, sessions)))
    return rows


# -- compare-and-set ------------------------------------------------------------------------------


async def _blind(
    url: str, a: RedisStore, b: RedisStore, state: InteractionState, rounds: int
) -> dict[str, Any]:
    """Two stores, each with its own copy, save in turn; return what was stored and refused.

    Each writer's copy differs (its model's name): the same snapshot saved again at its own
    revision counts as stored (a retried save), so identical copies would never conflict.
    """
    session = "cas-blind"
    revisions = {"a": 0, "b": 0}
    stored = conflicts = 0
    times: list[float] = []
    for _ in range(rounds):
        for name, store in (("a", a), ("b", b)):
            began = time.perf_counter()
            try:
                await store.save(session, replace(state, revision=revisions[name] + 1, model=name))
                revisions[name] += 1
                stored += 1
            except StoreConflict:
                conflicts += 1
            times.append(time.perf_counter() - began)
    final = _stored_revision(url, a.key_of(session))
    return _cas_row("blind, in turn", final, stored, conflicts, sum(times), times)


def _racer(
    url: str,
    prefix: str,
    state: InteractionState,
    barrier: threading.Barrier,
    seconds: float,
    out: dict[str, Any],
    name: str,
) -> None:
    """In a thread of its own (a second server): load, bump, save, for ``seconds``."""

    async def main() -> None:
        store = RedisStore(url, prefix=prefix)
        stored = conflicts = 0
        times: list[float] = []
        await store.load("cas-race")  # connect before the start
        barrier.wait()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            current = await store.load("cas-race")
            revision = current.revision if current is not None else 0
            try:
                await store.save("cas-race", replace(state, revision=revision + 1, model=name))
                stored += 1
            except StoreConflict:
                conflicts += 1
            times.append(time.perf_counter() - began)
        await store.aclose()
        out.update(stored=stored, conflicts=conflicts, times=times)

    try:
        asyncio.run(main())
    except BaseException as exc:  # reported by the caller
        out["error"] = f"{type(exc).__name__}: {exc}"


def _race(url: str, prefix: str, state: InteractionState, seconds: float, timeout: float) -> dict[str, Any]:
    barrier = threading.Barrier(2, timeout=timeout)
    outs: list[dict[str, Any]] = [{}, {}]
    threads = [
        threading.Thread(
            target=_racer,
            args=(url, prefix, state, barrier, seconds, out, f"writer-{n}"),
            name=f"bench-racer-{n}",
        )
        for n, out in enumerate(outs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + timeout)
    for out in outs:
        if "error" in out or "stored" not in out:
            raise BenchFailure(f"a racing store failed: {out.get('error', 'it did not finish')}")
    final = _stored_revision(url, RedisStore(url, prefix=prefix).key_of("cas-race"))
    stored = sum(int(out["stored"]) for out in outs)
    conflicts = sum(int(out["conflicts"]) for out in outs)
    times = [t for out in outs for t in out["times"]]
    return _cas_row("load+save, racing", final, stored, conflicts, seconds, times)


def _cas_row(
    mode: str,
    final: int,
    stored: int,
    conflicts: int,
    seconds: float,
    times: list[float],
) -> dict[str, Any]:
    if final != stored:  # every save stored moved the revision by one: anything else lost a save
        raise BenchFailure(f"{mode}: {stored} saves stored but the revision is {final}")
    times.sort()
    attempts = stored + conflicts
    return {
        "mode": mode,
        "attempts": attempts,
        "stored": stored,
        "conflicts": conflicts,
        "conflict_pct": 100 * conflicts / attempts if attempts else 0.0,
        "stored_per_second": stored / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(times, 50) * 1000,
        "revision": final,
        "load_1m": load_1m(),
    }


def _stored_revision(url: str, key: str) -> int:
    """Return the revision Redis holds at ``key`` (0: none), read by a client of its own."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=10.0)
    try:
        raw = client.hget(key, "revision")
    finally:
        client.close()
    return int(raw) if raw is not None else 0


# -- memory -----------------------------------------------------------------------------------------


async def _fill(store: RedisStore, state: InteractionState, count: int) -> None:
    gate = asyncio.Semaphore(64)

    async def one(n: int) -> None:
        async with gate:
            await store.save(f"mem-{n}", replace(state, revision=1))

    await asyncio.gather(*(one(n) for n in range(count)))


def _memory(server: RedisProcess, url: str, state: InteractionState, count: int) -> dict[str, Any]:
    store = RedisStore(url, prefix="benchmem")
    client = server.client()
    try:
        asyncio.run(
            store.save("mem-warm", replace(state, revision=1))
        )  # the script is loaded, a client known
        before = int(client.info("memory")["used_memory"])
        asyncio.run(_fill(store, state, count))
        after = int(client.info("memory")["used_memory"])
        usage = int(client.memory_usage(store.key_of("mem-0"), samples=0) or 0)
        version = str(client.info("server")["redis_version"])
    finally:
        client.close()
    return {
        "sessions": count,
        "used_before": before,
        "used_after": after,
        "per_session": (after - before) / count,
        "memory_usage_key": usage,
        "snapshot_bytes": len(snapshot.dumps(state).encode("utf-8")),
        "redis_version": version,
        "load_1m": load_1m(),
    }


# -- a server round trip --------------------------------------------------------------------------


class TimedStore:
    """A store that forwards to another and adds up the time its saves take (on the server's loop)."""

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.saves = 0
        self.save_seconds = 0.0

    async def load(self, session_id: SessionId) -> InteractionState | None:
        """Load from the inner store."""
        return await resolve(self.inner.load(session_id))

    async def save(self, session_id: SessionId, state: InteractionState) -> bool:
        """Save to the inner store, timed."""
        began = time.perf_counter()
        try:
            return bool(await resolve(self.inner.save(session_id, state)))
        finally:
            self.save_seconds += time.perf_counter() - began
            self.saves += 1

    async def delete(self, session_id: SessionId) -> bool:
        """Delete from the inner store."""
        return bool(await resolve(self.inner.delete(session_id)))


async def _ask_all(
    url: str, token: str, store: TimedStore, prompts: int, timeout: float
) -> tuple[float, list[float], int, float, int]:
    """Ask ``prompts`` prompts one after the other.

    Returns the time, each turn's, the saves meanwhile and their time, and the stored snapshot's size.
    """
    from llmsock_widget.client import Client

    times: list[float] = []
    async with Client(url, token=token, session="bench-turns") as client:
        await client.ask("warm up", timeout=timeout)  # the session is loaded and saved once
        saves, save_seconds = store.saves, store.save_seconds
        start = time.perf_counter()
        for n in range(prompts):
            began = time.perf_counter()
            answer = await client.ask(f"Question {n}: what does the hub keep?", timeout=timeout)
            if answer.finish_reason != "stop":
                raise BenchFailure(f"turn {n} ended {answer.finish_reason}: {answer.error}")
            times.append(time.perf_counter() - began)
        took = time.perf_counter() - start
        saved = store.saves - saves, store.save_seconds - save_seconds
    final = await store.load("bench-turns")  # what the last save stored (it follows the last end)
    size = len(snapshot.dumps(final).encode("utf-8")) if final is not None else 0
    return took, times, *saved, size


def _server_turns(name: str, inner: SessionStore, prompts: int, timeout: float) -> dict[str, Any]:
    store = TimedStore(inner)
    server = start_server(
        model=BuiltinModel(tokens_per_second=None),
        store=store,
        messages_per_second=10_000.0,  # the client's pace is the figure, not the rate limit's
        message_burst=10_000,
    )
    try:
        took, times, saves, save_seconds, size = asyncio.run(
            _ask_all(server.url, server.token, store, prompts, timeout)
        )
    finally:
        server.stop()
    times.sort()
    return {
        "store": name,
        "prompts": prompts,
        "turns_per_second": prompts / took,
        "turn_p50_ms": percentile(times, 50) * 1000,
        "turn_p99_ms": percentile(times, 99) * 1000,
        "saves": saves,
        "save_ms": save_seconds * 1000 / max(1, saves),
        "save_share_pct": 100 * save_seconds / took,
        "snapshot_bytes": size,
        "load_1m": load_1m(),
    }


# -- the suite --------------------------------------------------------------------------------------


def run(
    *,
    turns: int = 20,
    reply_chars: int = 500,
    sessions: list[int] | None = None,
    seconds: float = 2.0,
    rounds: int = 500,
    memory_sessions: int = 1000,
    prompts: int = 100,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Start a redis-server, measure the store against it, stop it; return the report."""
    if importlib.util.find_spec("redis") is None:
        raise BenchFailure(MISSING_PACKAGE)
    loads = sessions or [1, 8, 64]
    state = build_session(turns, reply_chars=reply_chars)
    text = snapshot.dumps(state)
    with tempfile.TemporaryDirectory(prefix="llmsock-bench-redis-") as folder:
        try:
            server = RedisProcess(Path(folder), timeout=timeout).start()
        except RedisUnavailable as exc:
            raise BenchFailure(str(exc)) from None
        try:
            return _measure(server, state, text, loads, seconds, rounds, memory_sessions, prompts, timeout)
        except StoreError as exc:
            raise BenchFailure(f"the Redis store failed: {exc}") from None
        finally:
            server.stop()


def _measure(
    server: RedisProcess,
    state: InteractionState,
    text: str,
    loads: list[int],
    seconds: float,
    rounds: int,
    memory_sessions: int,
    prompts: int,
    timeout: float,
) -> dict[str, Any]:
    url = server.url

    async def trips() -> list[dict[str, Any]]:
        store = RedisStore(url, prefix="bench")
        await store.save("warm", replace(state, revision=1))
        try:
            return await _round_trips(store, state, loads, seconds, server.pid)
        finally:
            await store.aclose()

    async def blind() -> dict[str, Any]:
        a, b = RedisStore(url, prefix="benchcas"), RedisStore(url, prefix="benchcas")
        try:
            return await _blind(url, a, b, state, rounds)
        finally:
            await asyncio.gather(a.aclose(), b.aclose())

    return {
        "turns": len(state.messages) // 2,
        "messages": len(state.messages),
        "snapshot_bytes": len(text.encode("utf-8")),
        "dumps_ms": _median_ms(lambda: snapshot.dumps(state)),
        "loads_ms": _median_ms(lambda: snapshot.loads(text)),
        "seconds": seconds,
        "round_trips": asyncio.run(trips()),
        "cas": [asyncio.run(blind()), _race(url, "benchcas", state, seconds, timeout)],
        "memory": _memory(server, url, state, memory_sessions),
        "server": [
            _server_turns("RedisStore", RedisStore(url, prefix="benchsrv"), prompts, timeout),
            _server_turns("MemoryStore", MemoryStore(), prompts, timeout),
        ],
    }


def _median_ms(action: Callable[[], object], repeat: int = 50) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def render(report: dict[str, Any]) -> str:
    """Return the report as tables."""
    size = report["snapshot_bytes"]
    trips = [
        [
            r["operation"],
            r["sessions"],
            r["ops"],
            r["per_second"],
            r["p50_ms"],
            r["p99_ms"],
            r["client_cpu_pct"],
            r["redis_cpu_pct"],
            r["load_1m"],
        ]
        for r in report["round_trips"]
    ]
    cas = [
        [c["mode"], c["attempts"], c["stored"], c["conflicts"], c["conflict_pct"], c["stored_per_second"],
         c["p50_ms"], c["revision"], c["load_1m"]]
        for c in report["cas"]
    ]  # fmt: skip
    mem = report["memory"]
    srv = [
        [s["store"], s["prompts"], s["turns_per_second"], s["turn_p50_ms"], s["turn_p99_ms"], s["saves"],
         s["save_ms"], s["save_share_pct"], s["load_1m"]]
        for s in report["server"]
    ]  # fmt: skip
    redis_row, memory_row = report["server"]
    extra = 1000 / redis_row["turns_per_second"] - 1000 / memory_row["turns_per_second"]
    return "\n".join(
        [
            f"redis: a {report['turns']}-turn session ({report['messages']} messages), "
            f"snapshot {size:,} bytes "
            f"(dumps {report['dumps_ms']:.2f} ms, loads {report['loads_ms']:.2f} ms); "
            f"redis-server {mem['redis_version']} on loopback, password, no persistence",
            f"save and load round trips, {report['seconds']:g} s each, sessions at once on one loop",
            table(
                [
                    "operation",
                    "sessions",
                    "ops",
                    "ops/s",
                    "p50 ms",
                    "p99 ms",
                    "cli cpu %",
                    "redis cpu %",
                    "load 1m",
                ],
                trips,
            ),
            "",
            "compare-and-set: two stores (two clients) saving one session",
            table(
                [
                    "mode",
                    "attempts",
                    "stored",
                    "conflicts",
                    "conflict %",
                    "stored/s",
                    "p50 ms",
                    "revision",
                    "load 1m",
                ],
                cas,
            ),
            "",
            f"memory: {mem['sessions']:,} sessions stored: used_memory {mem['used_before']:,} -> "
            f"{mem['used_after']:,} bytes, {mem['per_session']:,.0f} bytes per session; MEMORY USAGE of one "
            f"key {mem['memory_usage_key']:,} bytes (snapshot {mem['snapshot_bytes']:,}); "
            f"load 1m {mem['load_1m']}",
            "",
            f"server: {redis_row['prompts']} short prompts in one session, builtin model unpaced, one client",
            table(
                [
                    "store",
                    "prompts",
                    "turns/s",
                    "turn p50 ms",
                    "turn p99 ms",
                    "saves",
                    "ms/save",
                    "save %",
                    "load 1m",
                ],
                srv,
            ),
            f"Redis costs {extra:.2f} ms per turn against MemoryStore; the session's snapshot "
            f"ends at {redis_row['snapshot_bytes']:,} bytes",
        ]
    )
