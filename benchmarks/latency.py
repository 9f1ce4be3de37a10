"""Latency: how long a delta takes from the model to the client, with 1 to 1,000 sessions streaming.

The server runs :class:`StampedModel`, a paced model (``rate`` deltas a second per session)
whose every delta's text carries two CLOCK_MONOTONIC readings in nanoseconds: when the delta
was due by the pace, and when the model made it (right before yielding it).  The clients run in
a process of their own (the server's GIL is not shared with them), one WebSocket per session;
each receives its frames, reads the clock on arrival and keeps

* **latency**: arrival minus made: the model yielding the chunk to the client having the frame
  (the turn, the reducer, the fan-out, the encoder, the outbox, Tornado, the socket, the client);
* **lateness**: made minus due: how late the server's loop woke the model, which grows when the
  loop cannot keep up with the offered load.

CLOCK_MONOTONIC is one clock for every process of a Linux machine, so the two processes'
readings compare.  All clients connect first; then the sessions' prompts go out spread over one
delta interval (so their deltas do not all fall due at once), and every session streams ``rate``
x ``seconds`` deltas.  With ``busy``, a thread of the server's process runs a pure-Python loop
meanwhile (a notebook cell computing), sharing the GIL with the server's thread.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, AsyncIterator

from websockets.asyncio.client import ClientConnection, connect

from llmsock_widget.core.events import ModelDelta
from llmsock_widget.models.base import ModelChunk, ModelRequest, TextChunk, UsageChunk
from llmsock_widget.wire import protocol

from .common import (
    BenchFailure,
    ClientProcess,
    child_recv,
    percentile,
    server_thread,
    start_server,
    table,
    thread_cpu,
)

OPENING = 64  # connections the client opens at once (Tornado listens with a backlog of 128)


class StampedModel:
    """A paced model whose deltas say when they were due and when they were made (ns, CLOCK_MONOTONIC)."""

    def __init__(self, *, rate: float, count: int, name: str = "stamped") -> None:
        if not rate > 0 or count < 1:
            raise ValueError("rate must be > 0 and count >= 1")
        self.name = name
        self.interval_ns = round(1e9 / rate)
        self.count = count

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """Yield ``count`` deltas, each at its time (as the builtin model paces: from the start, no drift)."""
        start = time.monotonic_ns()
        for index in range(self.count):
            due = start + index * self.interval_ns
            await asyncio.sleep(max(0.0, (due - time.monotonic_ns()) / 1e9))
            yield TextChunk(text=f" {due} {time.monotonic_ns()}")
        yield UsageChunk(input_tokens=1, output_tokens=self.count)


def _delta_prefix() -> bytes:
    frame = protocol.encode(ModelDelta(session_id="s", seq=1, ts=0, turn_id="t", text=""), "envelope") or ""
    return frame[: frame.index('"text":"') + len('"text":"')].encode()


_PREFIX = _delta_prefix()  # up to the opening quote of the text


# -- the client process ------------------------------------------------------------------------


async def client_main(
    conn: Connection, url: str, token: str, sessions: int, rate: float, timeout: float
) -> dict[str, Any]:
    """Open ``sessions`` connections, say ``connected``, wait for ``go``, stream, return the samples."""
    headers = {"Authorization": f"Bearer {token}"}
    gate = asyncio.Semaphore(OPENING)

    async def open_one() -> ClientConnection:
        async with gate:
            ws = await connect(
                url, additional_headers=headers, compression=None, max_size=None, open_timeout=timeout
            )
            await asyncio.wait_for(ws.recv(decode=False), timeout)  # the hello: attached to its session
            return ws

    sockets = await asyncio.gather(*(open_one() for _ in range(sessions)))
    conn.send(("connected", len(sockets)))
    await child_recv(conn)
    latency, lateness = array.array("q"), array.array("q")
    cpu, start = time.process_time(), time.monotonic_ns()

    async def stream(ws: ClientConnection, offset: float) -> None:
        await asyncio.sleep(offset)
        await ws.send("go")
        while True:
            frame = await ws.recv(decode=False)
            now = time.monotonic_ns()
            if frame.startswith(_PREFIX):
                # One stamp per delta; deltas that waited together come merged (protocol 5.1):
                # each stamp in the frame is a delta that arrived now.
                begin = len(_PREFIX)
                stamps = frame[begin : frame.index(b'"', begin)].split()
                for due, made in zip(stamps[::2], stamps[1::2], strict=True):
                    latency.append(now - int(made))
                    lateness.append(int(made) - int(due))
            elif b'"type":"end"' in frame:
                return
            elif b'"type":"error"' in frame:
                raise BenchFailure(f"the server sent an error: {frame[:300]!r}")

    spread = 1 / rate / sessions
    await asyncio.wait_for(asyncio.gather(*(stream(ws, i * spread) for i, ws in enumerate(sockets))), timeout)
    wall = (time.monotonic_ns() - start) / 1e9
    cpu = time.process_time() - cpu
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {"latency": latency.tobytes(), "lateness": lateness.tobytes(), "wall": wall, "cpu": cpu}


# -- a busy kernel -----------------------------------------------------------------------------


class Spinner:
    """A thread running a pure-Python loop until stopped, as a cell computing in the kernel would."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="bench-busy-cell", daemon=True)

    def _spin(self) -> None:
        n = 0
        while not self._stop.is_set():
            for _ in range(10_000):
                n += 1

    def __enter__(self) -> Spinner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- running -----------------------------------------------------------------------------------


def scenario(*, sessions: int, rate: float, seconds: float, busy: bool, timeout: float) -> dict[str, Any]:
    """Run one load: ``sessions`` sessions streaming ``rate`` deltas a second for ``seconds``."""
    count = max(1, round(rate * seconds))
    server = start_server(model=StampedModel(rate=rate, count=count), connections=sessions)
    try:
        client = ClientProcess(client_main, server.url, server.token, sessions, rate, timeout + seconds * 10)
        try:
            client.recv(timeout + sessions * 0.05)  # connected
            with Spinner() if busy else contextlib.nullcontext():
                thread = server_thread(server)
                cpu, started = thread_cpu(thread), time.monotonic()
                client.send("go")
                result = client.result(timeout + seconds * 10)
                cpu, wall = thread_cpu(thread) - cpu, time.monotonic() - started
        finally:
            client.close()
    finally:
        server.stop()
    made = array.array("q", result["latency"])
    late = array.array("q", result["lateness"])
    total = sorted(a + b for a, b in zip(made, late, strict=True))
    latency, lateness = sorted(made), sorted(late)
    if len(latency) != sessions * count:
        raise BenchFailure(f"received {len(latency)} deltas, expected {sessions * count}")
    ms = 1e6
    return {
        "sessions": sessions,
        "rate": rate,
        "busy": busy,
        "deltas": len(latency),
        "offered_per_second": sessions * rate,
        "delivered_per_second": len(latency) / result["wall"],
        "latency_ms": {
            "p50": percentile(latency, 50) / ms,
            "p90": percentile(latency, 90) / ms,
            "p99": percentile(latency, 99) / ms,
            "max": latency[-1] / ms,
        },
        "lateness_ms": {"p50": percentile(lateness, 50) / ms, "p99": percentile(lateness, 99) / ms},
        "from_due_ms": {
            "p50": percentile(total, 50) / ms,
            "p99": percentile(total, 99) / ms,
            "max": total[-1] / ms,
        },
        "server_thread_cpu_percent": 100 * cpu / wall,
        "client_cpu_percent": 100 * result["cpu"] / result["wall"],
    }


def run(
    *, sessions: list[int], rate: float, seconds: float, busy: bool = True, timeout: float = 60.0
) -> dict[str, Any]:
    """Run each load in ``sessions``, then (``busy``) one session beside a busy thread; return the report."""
    loads = [(n, False) for n in sessions] + ([(1, True)] if busy else [])
    results = [scenario(sessions=n, rate=rate, seconds=seconds, busy=b, timeout=timeout) for n, b in loads]
    return {
        "rate": rate,
        "seconds": seconds,
        "switch_interval_ms": sys.getswitchinterval() * 1000,
        "results": results,
    }


def render(report: dict[str, Any]) -> str:
    """Return the report as a table."""
    rows = [
        [
            f"{r['sessions']:,}" + (" + busy thread" if r["busy"] else ""),
            r["deltas"],
            r["offered_per_second"],
            r["delivered_per_second"],
            r["latency_ms"]["p50"],
            r["latency_ms"]["p90"],
            r["latency_ms"]["p99"],
            r["latency_ms"]["max"],
            r["from_due_ms"]["p50"],
            r["from_due_ms"]["p99"],
            r["from_due_ms"]["max"],
            r["server_thread_cpu_percent"],
            r["client_cpu_percent"],
        ]
        for r in report["results"]
    ]
    headers = [
        "sessions",
        "deltas",
        "offered/s",
        "delivered/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "due p50",
        "due p99",
        "due max",
        "srv cpu %",
        "cli cpu %",
    ]
    return "\n".join(
        [
            f"latency: model yields a delta -> client has the frame; {report['rate']:g} deltas/s per session "
            f"for {report['seconds']:g} s; clients in a separate process",
            table(headers, rows),
            "p50-max ms: from the model yielding the delta; due: from when it was due by the model's "
            "pace (adds how late the server's loop woke the model)",
            "busy thread: a pure-Python loop in another thread of the server's process "
            f"(GIL switch interval {report['switch_interval_ms']:g} ms)",
        ]
    )
