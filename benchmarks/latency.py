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

The control (:class:`PlainServer`) is a server a user might write with the ``websockets``
package: for each prompt it streams the same paced, stamped deltas (one ``json.dumps`` and one
``send`` each) to the same clients, in the same run, so its figures stand beside llmsock's.

The burst (:func:`burst`) is ``sessions`` turns started at once: every client sends a prompt
for an unpaced ``deltas``-delta answer at the same moment; it times from the prompts to the
last ``end`` and reads the server thread's CPU time, per turn.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, AsyncIterator

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from llmsock_widget.core.events import ModelDelta
from llmsock_widget.models import BuiltinModel
from llmsock_widget.models.base import ModelChunk, ModelRequest, TextChunk, UsageChunk
from llmsock_widget.wire import protocol

from .bare import FIRST_DELTA_SEQUENCE
from .common import (
    BenchFailure,
    ClientProcess,
    WebsocketsControl,
    child_recv,
    load_1m,
    percentile,
    server_thread,
    start_server,
    table,
    thread_cpu,
)

OPENING = 64  # connections the client opens at once (Tornado listens with a backlog of 128)
LLMSOCK, PLAIN = "llmsock", "websockets"  # the servers of each load, in the order they run


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


# -- the control: a plain ``websockets`` server ------------------------------------------------


def _envelope(kind: str, seq: int, **event: Any) -> str:
    """Return an envelope frame as a plain server would write it: one ``json.dumps`` of a dict."""
    meta = {"sessionId": "plain", "timestamp": time.time_ns() // 1_000_000, "sequence": seq, "turnId": "t"}
    message = {
        "name": "interaction.model",
        "data": {"kind": "model", "event": {"type": kind, **event}, "meta": meta},
    }
    return json.dumps(message, separators=(",", ":"))


class PlainServer(WebsocketsControl):
    """A server written with the ``websockets`` package, on its own daemon thread and loop.

    It says hello on connecting; a ``/long N`` prompt gets the builtin model's N tokens unpaced
    (the burst), any other prompt ``count`` deltas paced at ``rate`` and stamped as
    :class:`StampedModel` stamps them (the latency run); then an ``end`` frame.  Deltas are
    numbered from the sequence the full stack's first delta has, so clients count them alike.
    """

    token = ""  # no authentication
    label = "the plain websockets server"
    max_size = None

    def __init__(self, *, rate: float, count: int, timeout: float = 10.0) -> None:
        super().__init__(timeout=timeout)
        self.interval_ns = round(1e9 / rate) if rate else 0
        self.count = count

    async def _handle(self, ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(_envelope("ready", 0))
            async for message in ws:
                text = message if isinstance(message, str) else message.decode()
                if text.startswith("/long "):
                    await self._unpaced(ws, text)
                else:
                    await self._paced(ws)

    async def _paced(self, ws: ServerConnection) -> None:
        start, seq = time.monotonic_ns(), FIRST_DELTA_SEQUENCE
        for index in range(self.count):
            due = start + index * self.interval_ns
            await asyncio.sleep(max(0.0, (due - time.monotonic_ns()) / 1e9))
            await ws.send(_envelope("delta", seq + index, text=f" {due} {time.monotonic_ns()}"))
        await ws.send(_envelope("end", seq + self.count + 1, finishReason="stop"))

    async def _unpaced(self, ws: ServerConnection, prompt: str) -> None:
        """Stream the builtin model's answer to ``prompt``, one frame per token, as it comes."""
        request = ModelRequest(messages=({"role": "user", "content": prompt},))
        seq, pieces = FIRST_DELTA_SEQUENCE, []
        async for chunk in BuiltinModel(tokens_per_second=None).stream(request):
            if isinstance(chunk, TextChunk):
                await ws.send(_envelope("delta", seq, text=chunk.text))
                pieces.append(chunk.text)
                seq += 1
        await ws.send(_envelope("end", seq + 1, finishReason="stop", text="".join(pieces)))


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


async def burst_client_main(
    conn: Connection, url: str, token: str, sessions: int, deltas: int, timeout: float
) -> dict[str, Any]:
    """Open ``sessions`` connections, say ``connected``, wait for ``go``, send every prompt at once."""
    from .throughput import receive_turn  # the throughput client's counting: deltas by sequence

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    gate = asyncio.Semaphore(OPENING)

    async def open_one() -> ClientConnection:
        async with gate:
            ws = await connect(
                url, additional_headers=headers, compression=None, max_size=None, open_timeout=timeout
            )
            await asyncio.wait_for(ws.recv(decode=False), timeout)
            return ws

    sockets = await asyncio.gather(*(open_one() for _ in range(sessions)))
    conn.send(("connected", len(sockets)))
    await child_recv(conn)
    cpu, start = time.process_time(), time.monotonic_ns()

    async def turn(ws: ClientConnection) -> int:
        await ws.send(f"/long {deltas}")
        received, _frames, _size = await receive_turn(ws)
        return received

    received = await asyncio.wait_for(asyncio.gather(*(turn(ws) for ws in sockets)), timeout)
    wall = (time.monotonic_ns() - start) / 1e9
    cpu = time.process_time() - cpu
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {"received": list(received), "wall": wall, "cpu": cpu}


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


def _start(server: str, rate: float, count: int, sessions: int, timeout: float) -> Any:
    """Start ``server`` streaming ``count`` stamped deltas at ``rate`` (``/long N`` unpaced, for bursts)."""
    if server == PLAIN:
        return PlainServer(rate=rate, count=count, timeout=timeout).start()
    model: Any = StampedModel(rate=rate, count=count) if rate else BuiltinModel(tokens_per_second=None)
    return start_server(model=model, connections=sessions, start_timeout=timeout)


def scenario(
    *, sessions: int, rate: float, seconds: float, busy: bool, timeout: float, server: str = LLMSOCK
) -> dict[str, Any]:
    """Run one load: ``sessions`` sessions streaming ``rate`` deltas a second for ``seconds``."""
    count = max(1, round(rate * seconds))
    target = _start(server, rate, count, sessions, timeout)
    try:
        client = ClientProcess(client_main, target.url, target.token, sessions, rate, timeout + seconds * 10)
        try:
            client.recv(timeout + sessions * 0.05)  # connected
            with Spinner() if busy else contextlib.nullcontext():
                thread = server_thread(target)
                cpu, started = thread_cpu(thread), time.monotonic()
                client.send("go")
                result = client.result(timeout + seconds * 10)
                cpu, wall = thread_cpu(thread) - cpu, time.monotonic() - started
        finally:
            client.close()
    finally:
        target.stop()
    made = array.array("q", result["latency"])
    late = array.array("q", result["lateness"])
    total = sorted(a + b for a, b in zip(made, late, strict=True))
    latency, lateness = sorted(made), sorted(late)
    if len(latency) != sessions * count:
        raise BenchFailure(f"{server}: received {len(latency)} deltas, expected {sessions * count}")
    ms = 1e6
    return {
        "server": server,
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
        "load": load_1m(),
    }


def burst(*, sessions: int, deltas: int, timeout: float, server: str = LLMSOCK) -> dict[str, Any]:
    """Start ``sessions`` turns of ``deltas`` unpaced deltas at once; time them to the last ``end``."""
    target = _start(server, 0.0, 1, sessions, timeout)
    try:
        client = ClientProcess(burst_client_main, target.url, target.token, sessions, deltas, timeout)
        try:
            client.recv(timeout + sessions * 0.05)  # connected
            thread = server_thread(target)
            cpu = thread_cpu(thread)
            client.send("go")
            result = client.result(timeout + sessions * 0.05)
            cpu = thread_cpu(thread) - cpu
        finally:
            client.close()
    finally:
        target.stop()
    if result["received"] != [deltas] * sessions:
        missing = sessions * deltas - sum(result["received"])
        raise BenchFailure(f"{server}: the burst lost {missing} of {sessions * deltas} deltas")
    return {
        "server": server,
        "sessions": sessions,
        "deltas": deltas,
        "seconds": result["wall"],
        "turns_per_second": sessions / result["wall"],
        "deltas_per_second": sessions * deltas / result["wall"],
        "server_cpu_ms_per_turn": 1000 * cpu / sessions,
        "server_cpu_us_per_delta": 1e6 * cpu / (sessions * deltas),
        "client_cpu_percent": 100 * result["cpu"] / result["wall"],
        "load": load_1m(),
    }


def run(
    *,
    sessions: list[int],
    rate: float,
    seconds: float,
    busy: bool = True,
    timeout: float = 60.0,
    control: bool = True,
    burst_sessions: int | None = None,
    burst_deltas: int = 100,
) -> dict[str, Any]:
    """Run each load in ``sessions``, then (``busy``) one session beside a busy thread; return the report.

    With ``control`` each load runs on the plain websockets server too, right after llmsock's.
    Then ``burst_sessions`` turns (by default the largest load; 0 for none) of ``burst_deltas``
    deltas start at once on each server.
    """
    loads = [(n, False) for n in sessions] + ([(1, True)] if busy else [])
    results, controls = [], []
    for n, b in loads:
        results.append(scenario(sessions=n, rate=rate, seconds=seconds, busy=b, timeout=timeout))
        if control and not b:
            controls.append(
                scenario(sessions=n, rate=rate, seconds=seconds, busy=b, timeout=timeout, server=PLAIN)
            )
    count = max(sessions) if burst_sessions is None else burst_sessions
    servers = (LLMSOCK, PLAIN) if control else (LLMSOCK,)
    bursts = [burst(sessions=count, deltas=burst_deltas, timeout=timeout, server=s) for s in servers if count]
    return {
        "rate": rate,
        "seconds": seconds,
        "switch_interval_ms": sys.getswitchinterval() * 1000,
        "results": results,
        "controls": controls,
        "bursts": bursts,
    }


def _row(r: dict[str, Any]) -> list[Any]:
    return [
        r.get("server", LLMSOCK),
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
        r.get("load"),
    ]


def render(report: dict[str, Any]) -> str:
    """Return the report as tables: the loads on each server, then the bursts."""
    controls = {r["sessions"]: r for r in report.get("controls", [])}
    rows = []
    for r in report["results"]:
        rows.append(_row(r))
        if not r["busy"] and r["sessions"] in controls:
            rows.append(_row(controls[r["sessions"]]))
    headers = [
        "server",
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
        "load 1m",
    ]
    lines = [
        f"latency: model yields a delta -> client has the frame; {report['rate']:g} deltas/s per session "
        f"for {report['seconds']:g} s; clients in a separate process",
        table(headers, rows),
        "p50-max ms: from the model yielding the delta; due: from when it was due by the model's "
        "pace (adds how late the server's loop woke the model)",
        f"{PLAIN}: the control, a plain server written with the websockets package streaming the same "
        "paced, stamped deltas to the same clients, right after llmsock's run",
        "busy thread: a pure-Python loop in another thread of the server's process "
        f"(GIL switch interval {report['switch_interval_ms']:g} ms)",
        "load 1m: the machine's 1-minute load average when the run ended",
    ]
    bursts = report.get("bursts", [])
    if bursts:
        burst_rows = [
            [
                b["server"],
                b["sessions"],
                b["deltas"],
                f"{b['seconds']:.3f}",
                b["turns_per_second"],
                b["deltas_per_second"],
                b["server_cpu_ms_per_turn"],
                b["server_cpu_us_per_delta"],
                b["client_cpu_percent"],
                b["load"],
            ]
            for b in bursts
        ]
        burst_headers = [
            "server",
            "turns",
            "deltas/turn",
            "seconds",
            "turns/s",
            "deltas/s",
            "srv ms/turn",
            "srv µs/d",
            "cli cpu %",
            "load 1m",
        ]
        lines += [
            "",
            f"burst: {bursts[0]['sessions']:,} sessions each start a {bursts[0]['deltas']}-delta "
            "unpaced turn at once; seconds from the prompts to the last end",
            table(burst_headers, burst_rows),
        ]
    return "\n".join(lines)
