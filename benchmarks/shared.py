"""Shared: one session open on two servers that share it through Redis (``stores/redisshare.py``).

The suite starts a ``redis-server`` of its own (as the ``redis`` suite does), or with ``cluster``
a Redis Cluster of three primaries (``redis+cluster://``, where each shared session has a reader of
its own), and two llmsock servers on it, with one key prefix, so they share sessions:

* **server A**, a :class:`~llmsock_widget.server.thread.ServerThread` in the suite's own process:
  it runs every turn (its clients send the prompts);
* **server B**, the same server class in a process of its own (spawned), as a second machine's
  server would be: its clients only watch, and get the turns' events from the session's Redis
  Stream (``XREAD BLOCK``).

Both use the default lease (5 s) and :class:`PromptModel`: the builtin model unpaced, except
for prompts ``/stamp R N``, which :class:`~.latency.StampedModel` answers (N deltas at R a
second, each carrying the CLOCK_MONOTONIC nanoseconds at which the model made it).  The clients
run in a third process and read the clock as each frame arrives: one clock for every process of
the machine, so "arrival minus made" is the time from the model on A to a client, on A or on B
(finer than the envelope's ``meta.timestamp``, which is in milliseconds).  What is measured:

* **cross-server delivery**: one session, a client on A and one on B; the A client asks
  ``/long deltas`` (default 10,000) unpaced; deltas/s to each client from the prompt to its
  ``end`` (median of ``repeat`` runs after one warm-up, each a new session), checking that both
  got the whole answer; then a paced answer (``/stamp 200 600``, 3 s) and its latency to each;
* **load**: ``N`` sessions (default 10, 50, 70, 90, 200), each with a client on A that asks for a paced
  answer (``rate`` = 20 deltas/s for ``seconds`` = 5 s, the prompts spread over one delta
  interval) and a watcher on B: deltas delivered per second on each side against those offered,
  the latency on each side, how late A's loop made the deltas, and the CPU of redis-server (of its
  nodes together, on a cluster), of each server's process and of the clients' process meanwhile;
* **memory**: ``used_memory`` (``INFO memory``, summed over the nodes) before and after
  ``memory_sessions`` sessions each answer one ``/long memory_tokens`` prompt, per session; the
  ``MEMORY USAGE`` of each key of one of them (asked of the node of its slot), and of the events
  stream of the cross-server sessions (10,000 deltas), per 1,000 events.

Every row carries the machine's 1-minute load average when it was measured.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import importlib.util
import json
import logging
import re
import statistics
import tempfile
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import psutil  # type: ignore[import-untyped]
from websockets.asyncio.client import ClientConnection, connect

from llmsock_widget.models import BuiltinModel
from llmsock_widget.models.base import ModelChunk, ModelRequest
from llmsock_widget.server.thread import ServerThread
from llmsock_widget.stores.redis import RedisStore
from llmsock_widget.stores.redisshare import LEASE

from .common import BenchFailure, ClientProcess, child_recv, load_1m, percentile, start_server, table
from .latency import StampedModel
from .redis import MISSING_PACKAGE
from .redisprocess import RedisClusterProcess, RedisProcess, RedisUnavailable

PREFIX = "bench"
OPENING = 64  # connections opened at once (Tornado listens with a backlog of 128)
SUBPROTOCOL = "llmsock.envelope.v1"
PACED_RATE, PACED_SECONDS = 200.0, 3.0  # the cross-server latency run
LOADS = (10, 50, 70, 90, 200)  # sessions at once, by default


class PromptModel:
    """The builtin model unpaced, but ``/stamp R N`` answers N stamped deltas at R a second."""

    name = "bench-shared"

    def __init__(self) -> None:
        self._builtin = BuiltinModel(tokens_per_second=None)

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """Stream the answer of the last user message."""
        text = next((str(m.get("content")) for m in reversed(request.messages) if m["role"] == "user"), "")
        words = text.split()
        if len(words) == 3 and words[0] == "/stamp":
            return StampedModel(rate=float(words[1]), count=int(words[2])).stream(request)
        return self._builtin.stream(request)


class LogCount(logging.Handler):
    """Count the ``llmsock`` logger's warnings and errors, by message (digits made ``N``)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        logging.getLogger("llmsock").addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        """Count ``record`` (called under the handler's lock, on the server's thread)."""
        self.counts[re.sub(r"\d+", "N", record.getMessage())[:200]] += 1

    def take(self) -> dict[str, int]:
        """Return the counts since the last call, and start again."""
        self.acquire()
        try:
            counts, self.counts = dict(self.counts), Counter()
        finally:
            self.release()
        return counts

    def remove(self) -> None:
        """Stop counting."""
        logging.getLogger("llmsock").removeHandler(self)


# -- server B, in a process of its own ------------------------------------------------------------


async def peer_main(conn: Connection, url: str, connections: int, timeout: float) -> dict[str, Any]:
    """In server B's process: start a server on ``url``'s Redis, say where it is, run until told.

    Besides ``stop``, it answers ``logs`` with the warnings its server logged since the last time.
    """
    logs = LogCount()
    server = start_server(
        connections=connections,
        model=PromptModel(),
        store=RedisStore(url, prefix=PREFIX),
        start_timeout=timeout,
    )
    try:
        conn.send(("ready", server.url, server.token))
        while await asyncio.to_thread(conn.recv) == "logs":  # a thread blocks: no polling beside the server
            conn.send(("logs", logs.take()))
    finally:
        server.stop()
        logs.remove()
    return {}


# -- the clients' process ---------------------------------------------------------------------------


async def _open(target: tuple[str, str], session: str, timeout: float) -> ClientConnection:
    url, token = target
    ws = await connect(
        f"{url}?session={session}",
        additional_headers={"Authorization": f"Bearer {token}"},
        subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
        compression=None,
        max_size=None,
        open_timeout=timeout,
    )
    await asyncio.wait_for(ws.recv(), timeout)  # the ready: attached to its session
    return ws


def _prompt(text: str) -> str:
    return json.dumps({"type": "user_message", "id": "u1", "data": {"text": text}})


class _Side:
    """What the clients of one server received: stamped latencies, deltas, text, arrival times."""

    def __init__(self) -> None:
        self.latency = array.array("q")  # ns, arrival minus made
        self.lateness = array.array("q")  # ns, made minus due (how late A's loop made it)
        self.text_chars = 0
        self.last_ns = 0

    async def read_turn(self, ws: ClientConnection) -> tuple[int, int, str]:
        """Read ``ws`` to the turn's end; return first and end arrival (ns) and the answer's text."""
        first, pieces = 0, []
        while True:
            frame = await ws.recv()
            now = time.monotonic_ns()
            message = json.loads(frame)
            if message.get("name") != "interaction.model":
                continue
            event = message["data"]["event"]
            kind = event.get("type")
            if kind == "delta":
                first = first or now
                text = event.get("text", "")
                pieces.append(text)
                stamps = text.split() if text.startswith(" ") and text[1:2].isdigit() else []
                for due, made in zip(stamps[::2], stamps[1::2], strict=True):
                    self.latency.append(now - int(made))
                    self.lateness.append(int(made) - int(due))
                self.last_ns = max(self.last_ns, now)
            elif kind == "end":
                answer = "".join(pieces)
                self.text_chars += len(answer)
                return first, now, answer
            elif kind == "error":
                raise BenchFailure(f"the turn failed: {str(event)[:300]}")

    def summary(self) -> dict[str, Any]:
        return {
            "latency": self.latency.tobytes(),
            "lateness": self.lateness.tobytes(),
            "last_ns": self.last_ns,
        }


async def burst_main(
    conn: Connection, a: tuple[str, str], b: tuple[str, str], deltas: int, repeat: int, timeout: float
) -> list[dict[str, Any]]:
    """One client on A and one on B in a new session; A's asks ``/long deltas``; time both to the end."""
    runs = []
    for n in range(repeat + 1):  # the first is a warm-up
        session = f"burst-{n}"
        on_a, on_b = await _open(a, session, timeout), await _open(b, session, timeout)
        side_a, side_b = _Side(), _Side()
        sent = time.monotonic_ns()
        await on_a.send(_prompt(f"/long {deltas}"))
        (first_a, end_a, text_a), (first_b, end_b, text_b) = await asyncio.wait_for(
            asyncio.gather(side_a.read_turn(on_a), side_b.read_turn(on_b)), timeout
        )
        if text_a != text_b or not text_a:
            raise BenchFailure(f"B got {len(text_b)} characters of the answer, A {len(text_a)}")
        await asyncio.gather(on_a.close(), on_b.close())
        if n:
            runs.append({"session": session, "sent": sent, "a": (first_a, end_a), "b": (first_b, end_b)})
    return runs


async def load_main(
    conn: Connection,
    a: tuple[str, str],
    b: tuple[str, str],
    tag: str,
    sessions: int,
    rate: float,
    count: int,
    timeout: float,
) -> dict[str, Any]:
    """Open a watcher on B and a client on A per session, say ``connected``, wait, then stream."""
    gate = asyncio.Semaphore(OPENING)

    async def one(target: tuple[str, str], n: int) -> ClientConnection:
        async with gate:
            return await _open(target, f"{tag}-{n}", timeout)

    watchers = await asyncio.gather(*(one(b, n) for n in range(sessions)))
    askers = await asyncio.gather(*(one(a, n) for n in range(sessions)))
    conn.send(("connected", sessions))
    await child_recv(conn)
    side_a, side_b = _Side(), _Side()
    cpu, start = time.process_time(), time.monotonic_ns()

    async def session(n: int) -> None:
        await asyncio.sleep(n / rate / sessions)  # spread over one delta interval
        await askers[n].send(_prompt(f"/stamp {rate:g} {count}"))
        await asyncio.gather(side_a.read_turn(askers[n]), side_b.read_turn(watchers[n]))

    await asyncio.wait_for(asyncio.gather(*(session(n) for n in range(sessions))), timeout)
    cpu = time.process_time() - cpu
    await asyncio.gather(*(ws.close() for ws in (*watchers, *askers)), return_exceptions=True)
    return {"start": start, "cpu": cpu, "a": side_a.summary(), "b": side_b.summary()}


# -- the Redis the servers share -------------------------------------------------------------------


class _SharedRedis:
    """One redis-server or a Redis Cluster, seen the same way by the runs.

    Its processes (for CPU), ``INFO`` figures summed over its nodes, and a client for keys: on a
    cluster that client sends each command about a key to the node of the key's slot.
    """

    def __init__(self, server: RedisProcess | RedisClusterProcess) -> None:
        self.server = server
        self.url = server.url
        self.nodes = server.nodes if isinstance(server, RedisClusterProcess) else [server]

    @property
    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes]

    def describe(self) -> str:
        """Return what it is, e.g. ``a Redis Cluster of 3 redis-server 7.2.4 primaries``."""
        version = self.info("server", "redis_version")[0]
        if isinstance(self.server, RedisClusterProcess):
            return f"a Redis Cluster of {len(self.nodes)} redis-server {version} primaries without replicas"
        return f"redis-server {version}"

    def info(self, section: str, field: str) -> list[Any]:
        """Return ``field`` of ``INFO section`` on each node."""
        values = []
        for node in self.nodes:
            client = node.client()
            try:
                values.append(client.info(section)[field])
            finally:
                client.close()
        return values

    def total(self, section: str, field: str) -> int:
        """Return ``field`` of ``INFO section`` summed over the nodes."""
        return sum(int(value) for value in self.info(section, field))

    @contextlib.contextmanager
    def keys(self) -> Iterator[Any]:
        """Yield a client to read keys with (a cluster client on a cluster); close it after."""
        client = self.server.client()
        try:
            yield client
        finally:
            client.close()


# -- measuring ----------------------------------------------------------------------------------------


class _Cpu:
    """CPU seconds of some groups of processes (a group's summed), read at the start and the end of a run."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.processes = {name: [psutil.Process(pid) for pid in group] for name, group in pids.items()}
        self.before = self._read()
        self.began = time.monotonic()

    def _read(self) -> dict[str, float]:
        return {name: sum(map(_cpu_seconds, group)) for name, group in self.processes.items()}

    def percent(self) -> tuple[dict[str, float], float]:
        """Return each process's CPU % of one core since the start, and the seconds since then."""
        wall, now = time.monotonic() - self.began, self._read()
        return {name: 100 * (now[name] - self.before[name]) / wall for name in now}, wall


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _ms(values: array.array[int], p: float) -> float:
    return percentile(values, p) / 1e6


def _latency(raw: bytes) -> dict[str, Any]:
    values = array.array("q", raw)
    ordered = array.array("q", sorted(values))
    return {
        "deltas": len(ordered),
        "p50": _ms(ordered, 50),
        "p99": _ms(ordered, 99),
        "max": _ms(ordered, 100),
    }


class _Bench:
    """The two servers, the Redis they share, and the runs."""

    def __init__(
        self,
        redis: _SharedRedis,
        a: ServerThread,
        b: ClientProcess,
        b_target: tuple[str, str],
        logs: LogCount,
    ):
        self.redis, self.a, self.b, self.b_target, self.logs = redis, a, b, b_target, logs
        self.a_target = (a.url, a.token)
        self.timeout = a.start_timeout

    def warnings(self) -> dict[str, dict[str, int]]:
        """Return the warnings each server logged since the last call."""
        self.b.send("logs")
        _, on_b = self.b.recv(self.timeout)
        return {"a": self.logs.take(), "b": on_b}

    def cpu(self, clients: ClientProcess) -> _Cpu:
        pids = {"a": [psutil.Process().pid], "b": [self.b.pid], "clients": [clients.pid]}
        return _Cpu({"redis": self.redis.pids, **pids})

    def burst(self, deltas: int, repeat: int, timeout: float) -> dict[str, Any]:
        clients = ClientProcess(burst_main, self.a_target, self.b_target, deltas, repeat, timeout)
        try:
            runs = clients.result(timeout * (repeat + 2))
        finally:
            clients.close()
        rows = []
        for side in ("a", "b"):
            rates = [deltas / ((r[side][1] - r["sent"]) / 1e9) for r in runs]
            firsts = [(r[side][0] - r["sent"]) / 1e6 for r in runs]
            ends = [(r[side][1] - r["sent"]) / 1e6 for r in runs]
            rows.append(
                {
                    "client": _SIDE[side],
                    "deltas": deltas,
                    "runs": len(runs),
                    "per_second": statistics.median(rates),
                    "per_second_range": [min(rates), max(rates)],
                    "first_ms": statistics.median(firsts),
                    "end_ms": statistics.median(ends),
                }
            )
        stream = self._stream_usage(runs[-1]["session"])
        return {"rows": rows, "stream": stream, "load_1m": load_1m()}

    def load(self, tag: str, sessions: int, rate: float, seconds: float, timeout: float) -> dict[str, Any]:
        """Run one load; a load the servers fail (a refused session, a turn's error) is a row that says so."""
        count = max(1, round(rate * seconds))
        wait = timeout + seconds * 4
        row: dict[str, Any] = {
            "sessions": sessions,
            "rate": rate,
            "offered_per_second": sessions * rate,
            "expected": sessions * count,
        }
        clients = ClientProcess(load_main, self.a_target, self.b_target, tag, sessions, rate, count, wait)
        try:
            clients.recv(timeout + sessions * 0.1)  # connected
            commands, row["redis_clients"] = self._commands(), self._clients()
            cpu = self.cpu(clients)
            clients.send("go")
            result = clients.result(wait + 10)
            percent, wall = cpu.percent()
            commands = self._commands() - commands
        except BenchFailure as exc:
            return {**row, "error": str(exc), "load_1m": load_1m()}
        finally:
            clients.close()
        row |= {
            "cpu_pct": percent,
            "clients_cpu_s": result["cpu"],
            "redis_commands_per_second": commands / wall,
            "load_1m": load_1m(),
        }
        for side in ("a", "b"):
            got = result[side]
            stats = _latency(got["latency"])
            took = (got["last_ns"] - result["start"]) / 1e9
            stats["per_second"] = stats["deltas"] / took if took > 0 else 0.0
            stats["late_p99"] = _ms(array.array("q", sorted(array.array("q", got["lateness"]))), 99)
            row[side] = stats
        return row

    def _clients(self) -> int:
        return self.redis.total("clients", "connected_clients") - len(self.redis.nodes)  # not the askers

    def _commands(self) -> int:
        return self.redis.total("stats", "total_commands_processed")

    def _stream_usage(self, session: str) -> dict[str, Any]:
        with self.redis.keys() as client:
            key = f"{PREFIX}:{{{session}}}:events"
            return {
                "events": int(client.xlen(key)),
                "bytes": int(client.memory_usage(key, samples=0) or 0),
            }

    def memory(self, sessions: int, tokens: int, timeout: float) -> dict[str, Any]:
        before, clients_before = self.redis.total("memory", "used_memory"), self._clients()
        asyncio.run(_ask_each(self.a_target, sessions, tokens, timeout))
        with self.redis.keys() as client:
            _wait_released(client, sessions, timeout)
        # Read with no other client of ours open, as before: their buffers count in used_memory.
        after, clients_after = self.redis.total("memory", "used_memory"), self._clients()
        with self.redis.keys() as client:
            keys = {}
            for key in sorted(client.scan_iter(match=f"{PREFIX}:{{mem-0}}:*")):
                name = key.decode().rpartition(":")[2]
                keys[name] = {
                    "type": client.type(key).decode(),
                    "bytes": int(client.memory_usage(key, samples=0) or 0),
                }
            events = int(client.xlen(f"{PREFIX}:{{mem-0}}:events"))
        return {
            "sessions": sessions,
            "tokens": tokens,
            "used_before": before,
            "used_after": after,
            "per_session": (after - before) / sessions,
            "redis_clients": [clients_before, clients_after],
            "keys": keys,
            "events": events,
            "load_1m": load_1m(),
        }


_SIDE = {"a": "on A (runs the turn)", "b": "on B (other process)"}


async def _ask_each(a: tuple[str, str], sessions: int, tokens: int, timeout: float) -> None:
    """Ask ``/long tokens`` in each of ``sessions`` new sessions on A, 10 at a time."""
    gate = asyncio.Semaphore(10)

    async def one(n: int) -> None:
        async with gate:
            ws = await _open(a, f"mem-{n}", timeout)
            await ws.send(_prompt(f"/long {tokens}"))
            await asyncio.wait_for(_Side().read_turn(ws), timeout)
            await ws.close()

    await asyncio.gather(*(one(n) for n in range(sessions)))


def _wait_released(client: Any, sessions: int, timeout: float) -> None:
    """Wait until A gave back the lease of each memory session (its last events are in the stream)."""
    deadline = time.monotonic() + timeout
    leases = [f"{PREFIX}:{{mem-{n}}}:lease" for n in range(sessions)]
    while client.exists(*leases):
        if time.monotonic() > deadline:
            raise BenchFailure("server A still holds a memory session's lease")
        time.sleep(0.05)
    time.sleep(0.5)  # the sessions leave A's memory once their clients are gone; let that settle


# -- the suite --------------------------------------------------------------------------------------


def run(
    *,
    deltas: int = 10_000,
    repeat: int = 3,
    sessions: list[int] | None = None,
    rate: float = 20.0,
    seconds: float = 5.0,
    memory_sessions: int = 10,
    memory_tokens: int = 1000,
    timeout: float = 60.0,
    cluster: bool = False,
) -> dict[str, Any]:
    """Start a redis-server (or a Redis Cluster) and two servers sharing sessions through it, measure,
    stop; return the report.

    Each load runs on a new pair of servers (the same Redis), so a load the servers fail (sessions
    that could not be saved stay in memory, and keep reading) leaves the next one alone.
    """
    if importlib.util.find_spec("redis") is None:
        raise BenchFailure(MISSING_PACKAGE)
    loads = sessions or list(LOADS)
    with tempfile.TemporaryDirectory(prefix="llmsock-bench-shared-") as folder:
        try:
            server = (RedisClusterProcess if cluster else RedisProcess)(Path(folder), timeout=timeout).start()
        except RedisUnavailable as exc:
            raise BenchFailure(str(exc)) from None
        redis = _SharedRedis(server)
        try:
            report: dict[str, Any] = {"redis": redis.describe(), "lease": LEASE, "seconds": seconds}
            with _servers(redis, 16, timeout) as bench:
                report["burst"] = bench.burst(deltas, repeat, timeout) | {"warnings": bench.warnings()}
                report["paced"] = bench.load("paced", 1, PACED_RATE, PACED_SECONDS, timeout)
                report["paced"]["warnings"] = bench.warnings()
                memory = bench.memory(memory_sessions, memory_tokens, timeout)
                report["memory"] = memory | {"warnings": bench.warnings()}
            report["load"] = []
            for n in loads:
                with _servers(redis, n, timeout) as bench:
                    report["load"].append(bench.load(f"load{n}", n, rate, seconds, timeout))
                    report["load"][-1]["warnings"] = bench.warnings()
            return report
        finally:
            server.stop()


@contextlib.contextmanager
def _servers(redis: _SharedRedis, sessions: int, timeout: float) -> Iterator[_Bench]:
    """Start server A here and server B in its own process, both on ``redis``; stop both at the end."""
    with contextlib.ExitStack() as stack:
        logs = LogCount()  # counted, not printed: the report says what the servers logged
        stack.callback(logs.remove)
        store = RedisStore(redis.url, prefix=PREFIX)
        a = start_server(connections=sessions, model=PromptModel(), store=store, start_timeout=timeout)
        stack.callback(a.stop)
        b = ClientProcess(peer_main, redis.url, sessions, timeout)
        stack.callback(_stop_peer, b, timeout)
        _, url, token = b.recv(timeout)
        yield _Bench(redis, a, b, (url, token), logs)


def _stop_peer(peer: ClientProcess, timeout: float) -> None:
    with contextlib.suppress(OSError):
        peer.send("stop")
    peer.close(timeout)


_LOAD_HEADERS = (
    "sessions", "offered/s", "A got/s", "B got/s", "B got", "A p50", "A p99", "B p50", "B p99", "B max",
    "A late p99", "redis conns", "redis %", "redis cmd/s", "A %", "B %", "clients %", "load 1m",
)  # fmt: skip


def _load_row(r: dict[str, Any]) -> list[Any]:
    a, b, cpu = r["a"], r["b"], r["cpu_pct"]
    return [
        r["sessions"], r["offered_per_second"], a["per_second"], b["per_second"],
        f"{b['deltas']:,}/{r['expected']:,}", a["p50"], a["p99"], b["p50"], b["p99"], b["max"], a["late_p99"],
        r["redis_clients"], cpu["redis"], r["redis_commands_per_second"], cpu["a"], cpu["b"], cpu["clients"],
        r["load_1m"],
    ]  # fmt: skip


def _per_event(size: int, events: int) -> str:
    return f"{size:,} bytes for {events:,} events, {size / max(1, events):,.0f} bytes per event"


def render(report: dict[str, Any]) -> str:
    """Return the report as tables."""
    burst, paced, mem = report["burst"], report["paced"], report["memory"]
    deltas = burst["rows"][0]["deltas"]
    fast = [
        [r["client"], r["deltas"], r["runs"], r["per_second"],
         "{:,.0f}-{:,.0f}".format(*r["per_second_range"]), r["first_ms"], r["end_ms"], burst["load_1m"]]
        for r in burst["rows"]
    ]  # fmt: skip
    near = [
        [_SIDE[side], paced[side]["deltas"], paced[side]["p50"], paced[side]["p99"], paced[side]["max"],
         paced["load_1m"]]
        for side in ("a", "b")
    ]  # fmt: skip
    keys = ", ".join(f"{name} ({k['type']}) {k['bytes']:,}" for name, k in mem["keys"].items())
    stream = burst["stream"]
    first = report["load"][0]
    return "\n".join(
        [
            f"shared: servers A (this process) and B (its own process) share sessions through "
            f"{report['redis']} (loopback, password, no persistence); lease "
            f"{report['lease']:g} s; clients in a third process",
            f"cross-server delivery: one session, A's client asks for {deltas:,} deltas unpaced; "
            "times from the prompt (median of the runs)",
            table(["client", "deltas", "runs", "deltas/s", "range", "first ms", "end ms", "load 1m"], fast),
            "",
            f"latency, model on A to client: one session, {PACED_RATE:g} deltas/s for {PACED_SECONDS:g} s",
            table(["client", "deltas", "p50 ms", "p99 ms", "max ms", "load 1m"], near),
            "",
            f"load: N sessions, each {first['rate']:g} deltas/s for {report['seconds']:g} s on A, "
            "watched on B: deltas/s delivered, latency ms, A's lateness ms, CPU % of one core",
            table(_LOAD_HEADERS, [_load_row(r) for r in report["load"] if "error" not in r]),
            *(
                f"{r['sessions']} sessions: failed (load 1m {r['load_1m']}): {r['error']}"
                for r in report["load"]
                if "error" in r
            ),
            "",
            f"memory: {mem['sessions']} sessions, each one /long {mem['tokens']} answer: used_memory "
            f"{mem['used_before']:,} -> {mem['used_after']:,} bytes, {mem['per_session']:,.0f} bytes per "
            f"session (redis conns {mem['redis_clients'][0]} -> {mem['redis_clients'][1]}); "
            f"load 1m {mem['load_1m']}",
            f"one session's keys (MEMORY USAGE): {keys}",
            f"events stream: {_per_event(mem['keys'].get('events', {}).get('bytes', 0), mem['events'])}; "
            f"the {deltas:,}-delta session's: {_per_event(stream['bytes'], stream['events'])}",
            "",
            _warnings(report),
        ]
    )


def _warnings(report: dict[str, Any]) -> str:
    """Return what the servers logged (warnings and errors), run by run, with the commonest message."""
    runs = [("cross-server delivery", report["burst"]), ("latency", report["paced"])]
    runs += [("memory", report["memory"])]
    runs += [(f"load {r['sessions']}", r) for r in report["load"]]
    lines = []
    for name, result in runs:
        logged = result.get("warnings", {})
        counts = {side: sum(logged.get(side, {}).values()) for side in ("a", "b")}
        if not any(counts.values()):
            continue
        every: Counter[str] = Counter()
        for side in ("a", "b"):
            every.update(logged.get(side, {}))
        message, times = every.most_common(1)[0]
        lines.append(f"  {name}: A {counts['a']:,}, B {counts['b']:,}; most often ({times:,}): {message}")
    if not lines:
        return "the servers logged no warnings"
    return "\n".join(["warnings the servers logged, by run:", *lines])
