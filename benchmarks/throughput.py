"""Throughput: deltas per second over loopback, the full llmsock stack against bare Tornado.

* **full stack**: a :class:`~llmsock_widget.server.thread.ServerThread` with the builtin model at full
  speed answers the prompt ``/long N`` (exactly N text deltas) through the turn, the live
  session (reducer), the fan-out, the encoder and the connection's outbox.
* **bare tornado**: :class:`~.bare.BareServer` writes the same N frames with one
  ``write_message`` each: the floor Tornado's API sets.
* **bare batched**: the same, but each loop turn's 64 frames go out in one ``IOStream.write``:
  the best a plain Tornado handler that sends one frame per delta can do, and the control the
  full stack is measured against.
* **bare merged** (the ceiling, reported apart): each loop turn's 64 deltas go out as one
  merged delta frame (docs/protocol.md, section 5.1), pre-encoded, in one ``IOStream.write``:
  what the wire allows a server that does no work per delta, as the full stack's outbox merges
  the deltas one loop turn queues.

Each run opens a new connection (a new session), waits for the hello, then times from sending
the prompt to receiving the ``end`` event.  The client runs in a process of its own by default
(``client="process"``), as a browser would; ``client="thread"`` runs it on the main thread of the
servers' process, sharing their GIL (the method of the first published figures).  The server
thread's CPU time is read on that thread (``time.thread_time``) before and after the turn.
The figures are the median of ``repeat`` runs after one warm-up run per target; each run notes
the machine's 1-minute load average when it ends, and every row gives the range of those.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, replace
from multiprocessing.connection import Connection
from typing import Any, Coroutine, Literal, Protocol

from websockets.asyncio.client import ClientConnection, connect

from llmsock_widget.core.events import ModelDelta
from llmsock_widget.models import BuiltinModel
from llmsock_widget.wire import protocol

from .bare import FIRST_DELTA_SEQUENCE, BareServer, build_frames, reply_tokens
from .common import BenchFailure, ClientProcess, child_recv, load_1m, start_server, table

Client = Literal["process", "thread"]


class _Server(Protocol):
    @property
    def url(self) -> str: ...

    def submit(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]: ...


@dataclass(frozen=True)
class Target:
    """A server to measure, with the headers its clients send."""

    name: str
    server: _Server
    headers: dict[str, str]


@dataclass(frozen=True)
class Run:
    """One measured turn."""

    deltas: int
    frames: int
    payload_bytes: int  # WebSocket message payloads, frame headers not counted
    seconds: float
    server_cpu: float  # CPU seconds the server's thread spent during the turn
    client_cpu: float  # CPU seconds the client's thread spent during the turn
    load: float = 0.0  # the machine's 1-minute load average when the turn ended


def _delta_prefix() -> bytes | None:
    """Return the bytes every envelope delta frame starts with, or None if there is no such prefix."""
    frame = protocol.encode(ModelDelta(session_id="s", seq=1, ts=0, turn_id="t", text=""), "envelope") or ""
    mark = '"type":"delta"'
    cut = frame.find(mark)
    # The prefix must end at the type and hold no per-event value; otherwise every frame is parsed.
    return frame[: cut + len(mark)].encode() if 0 <= cut and '"s"' not in frame[:cut] else None


_DELTA_PREFIX = _delta_prefix()


async def receive_turn(ws: ClientConnection) -> tuple[int, int, int]:
    """Receive frames until the model's ``end``; return (deltas, frames, bytes).

    The server merges deltas that wait together into one frame carrying the last one's
    sequence (docs/protocol.md, section 5.1), so the deltas received are counted by sequence:
    the last delta's, less the one before the first delta of a new session.
    """
    last = FIRST_DELTA_SEQUENCE - 1
    frames = size = 0
    while True:
        frame = await ws.recv(decode=False)  # bytes: no UTF-8 decoding, and len() is the payload size
        frames += 1
        size += len(frame)
        # No JSON parsing in the hot path: keep the client's cost low.
        if _DELTA_PREFIX is not None and frame.startswith(_DELTA_PREFIX):
            last = _sequence(frame)
            continue
        kind = _model_event_type(frame)
        if kind == "delta":
            last = _sequence(frame)
        elif kind == "end":
            return last - FIRST_DELTA_SEQUENCE + 1, frames, size
        elif kind == "error":
            raise BenchFailure(f"the server sent an error: {frame[:300]!r}")


def _sequence(frame: bytes) -> int:
    """Return the ``sequence`` of an envelope frame, read without parsing its JSON."""
    at = frame.rindex(b'"sequence":') + len(b'"sequence":')
    end = at
    while frame[end : end + 1].isdigit():
        end += 1
    return int(frame[at:end])


def _model_event_type(frame: bytes) -> str | None:
    message = json.loads(frame)
    if message.get("name") != "interaction.model":
        return "error" if message.get("name") == "error" else None
    return str(message["data"]["event"]["type"])


def _connect(url: str, headers: dict[str, str], timeout: float) -> Any:
    return connect(
        url,
        additional_headers=headers,
        compression=None,
        max_size=None,
        open_timeout=timeout,
        close_timeout=timeout,
    )


async def _turn(ws: ClientConnection, deltas: int, timeout: float) -> tuple[int, int, int, float, float]:
    client_cpu = time.thread_time()
    start = time.perf_counter()
    await ws.send(f"/long {deltas}")
    received, frames, size = await asyncio.wait_for(receive_turn(ws), timeout + deltas / 1000)
    return received, frames, size, time.perf_counter() - start, time.thread_time() - client_cpu


async def _thread_cpu() -> float:
    return time.thread_time()


def _server_cpu(server: _Server, timeout: float) -> float:
    return float(server.submit(_thread_cpu()).result(timeout))


# -- the client on the main thread -------------------------------------------------------------


async def _measure_in_thread(target: Target, deltas: int, timeout: float) -> Run:
    async with _connect(target.server.url, target.headers, timeout) as ws:
        await asyncio.wait_for(ws.recv(decode=False), timeout)  # the hello: not part of the turn
        server_cpu = await asyncio.wrap_future(target.server.submit(_thread_cpu()))
        received, frames, size, seconds, client_cpu = await _turn(ws, deltas, timeout)
        server_cpu = await asyncio.wrap_future(target.server.submit(_thread_cpu())) - server_cpu
    return Run(received, frames, size, seconds, server_cpu, client_cpu)


# -- the client in its own process -------------------------------------------------------------


async def client_main(conn: Connection, timeout: float) -> int:
    """The client process: for each ``(url, headers, deltas)`` from the parent, measure one turn.

    It connects and waits for the hello, says ``ready``, waits for ``go`` (the parent reads the
    server's CPU time in between), runs the turn and sends back its figures.  ``None`` ends it.
    """
    runs = 0
    while (request := await child_recv(conn)) is not None:
        url, headers, deltas = request
        async with _connect(url, headers, timeout) as ws:
            await asyncio.wait_for(ws.recv(decode=False), timeout)
            conn.send(("ready",))
            await child_recv(conn)
            conn.send(("run", *await _turn(ws, deltas, timeout)))
        runs += 1
    return runs


def _measure_in_process(client: ClientProcess, target: Target, deltas: int, timeout: float) -> Run:
    client.send((target.server.url, target.headers, deltas))
    client.recv(timeout)
    server_cpu = _server_cpu(target.server, timeout)
    client.send("go")
    _, received, frames, size, seconds, client_cpu = client.recv(timeout + deltas / 1000)
    server_cpu = _server_cpu(target.server, timeout) - server_cpu
    return Run(received, frames, size, seconds, server_cpu, client_cpu)


# -- running and reporting ---------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """The median of a target's runs."""

    name: str
    deltas: int
    seconds: float
    deltas_per_second: float
    mb_per_second: float
    server_cpu_us_per_delta: float
    client_cpu_us_per_delta: float
    min_seconds: float
    max_seconds: float
    runs: list[float]
    load_min: float = 0.0  # the 1-minute load average over the runs: lowest and highest
    load_max: float = 0.0


def summarize(name: str, runs: Sequence[Run]) -> Summary:
    """Return the medians of ``runs`` (one turn each)."""
    seconds = statistics.median(r.seconds for r in runs)
    deltas = runs[0].deltas
    return Summary(
        name=name,
        deltas=deltas,
        seconds=seconds,
        deltas_per_second=deltas / seconds,
        mb_per_second=statistics.median(r.payload_bytes for r in runs) / seconds / 1e6,
        server_cpu_us_per_delta=statistics.median(r.server_cpu for r in runs) / deltas * 1e6,
        client_cpu_us_per_delta=statistics.median(r.client_cpu for r in runs) / deltas * 1e6,
        min_seconds=min(r.seconds for r in runs),
        max_seconds=max(r.seconds for r in runs),
        runs=[round(r.seconds, 6) for r in runs],
        load_min=min(r.load for r in runs),
        load_max=max(r.load for r in runs),
    )


def run(*, deltas: int, repeat: int, client: Client = "process", timeout: float = 60.0) -> dict[str, Any]:
    """Start the three servers, warm up, measure ``repeat`` turns on each; return the report."""
    frames = build_frames(asyncio.run(reply_tokens(f"/long {deltas}")))
    with contextlib.ExitStack() as stack:
        full = start_server(model=BuiltinModel(tokens_per_second=None), start_timeout=timeout)
        stack.callback(full.stop, timeout)
        bare = BareServer(frames, timeout=timeout).start()
        stack.callback(bare.stop)
        batched = BareServer(frames, mode="batched", timeout=timeout).start()
        stack.callback(batched.stop)
        merged = BareServer(frames, mode="merged", timeout=timeout).start()
        stack.callback(merged.stop)
        targets = [
            Target("full stack", full, {"Authorization": f"Bearer {full.token}"}),
            Target("bare tornado", bare, {}),
            Target("bare batched", batched, {}),
            Target("bare merged", merged, {}),
        ]
        if client == "process":
            process = ClientProcess(client_main, timeout)
            stack.callback(process.close)
            stack.callback(process.send, None)

            def measure(target: Target) -> Run:
                return _checked(target, _measure_in_process(process, target, deltas, timeout), deltas)

        else:

            def measure(target: Target) -> Run:
                return _checked(target, asyncio.run(_measure_in_thread(target, deltas, timeout)), deltas)

        runs: dict[str, list[Run]] = {t.name: [] for t in targets}
        for target in targets:  # warm up: imports, first-connection costs, caches
            measure(target)
        for index in range(repeat):
            # Rotate the order so no target always runs right after the same other one.
            shift = index % len(targets)
            for target in targets[shift:] + targets[:shift]:
                runs[target.name].append(measure(target))
    summaries = [summarize(t.name, runs[t.name]) for t in targets]
    full_s, bare_s, batched_s, merged_s = summaries
    return {
        "deltas": deltas,
        "repeat": repeat,
        "client": client,
        "results": {s.name.replace(" ", "_"): asdict(s) for s in summaries[:3]},
        "ceiling": {merged_s.name.replace(" ", "_"): asdict(merged_s)},
        "ratio_full_over_bare": full_s.deltas_per_second / bare_s.deltas_per_second,
        "ratio_full_over_bare_batched": full_s.deltas_per_second / batched_s.deltas_per_second,
        "ratio_full_over_bare_merged": full_s.deltas_per_second / merged_s.deltas_per_second,
    }


def _checked(target: Target, run: Run, deltas: int) -> Run:
    if run.deltas != deltas:
        raise BenchFailure(f"{target.name}: received {run.deltas} deltas, expected {deltas}")
    return replace(run, load=load_1m())


def render(report: dict[str, Any]) -> str:
    """Return the report as a table."""
    rows = [
        [
            s["name"],
            s["deltas"],
            f"{s['seconds']:.3f}",
            s["deltas_per_second"],
            s["mb_per_second"],
            s["server_cpu_us_per_delta"],
            s["client_cpu_us_per_delta"],
            f"{s['min_seconds']:.3f}-{s['max_seconds']:.3f}",
            f"{s['load_min']:.2f}-{s['load_max']:.2f}",
        ]
        for s in [*report["results"].values(), *report.get("ceiling", {}).values()]
    ]
    headers = [
        "target",
        "deltas",
        "seconds",
        "deltas/s",
        "MB/s",
        "srv µs/d",
        "cli µs/d",
        "min-max s",
        "load 1m",
    ]
    lines = [
        f"throughput: median of {report['repeat']} run(s) after 1 warm-up; client in a "
        f"{'separate process' if report['client'] == 'process' else 'thread of the server process'}",
        table(headers, rows),
        f"full stack / bare tornado (deltas/s): {report['ratio_full_over_bare']:.2f}; "
        f"full stack / bare batched (the best plain handler, one frame per delta): "
        f"{report['ratio_full_over_bare_batched']:.2f}",
    ]
    if "ratio_full_over_bare_merged" in report:
        lines.append(
            f"full stack / bare merged (the wire's ceiling: pre-encoded frames of 64 merged deltas): "
            f"{report['ratio_full_over_bare_merged']:.2f}"
        )
    lines.append("load 1m: the machine's 1-minute load average at the end of the runs (lowest-highest)")
    return "\n".join(lines)
