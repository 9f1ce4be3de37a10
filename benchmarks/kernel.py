"""Kernel: what llmsock costs a real IPython kernel, and how it streams beside a busy cell.

Kernels are started as Jupyter starts them (jupyter_client's ``KernelManager``, the
``python3`` kernel of this environment, each in a temporary directory of its own, with
bytecode cached as an installed package has it); this process is their client, over ZMQ for
cells and over WebSocket for chats, so it shares no GIL with them.  Linux only: the threads'
CPU and waiting times are read from ``/proc``.

* **load**: in each of ``kernels`` fresh kernels, the wall time of a ``%load_ext llmsock``
  cell (from the execute request to the kernel's ``idle``) minus that of an empty cell.
* **idle**: the kernel process's CPU time over ``idle_seconds`` of doing nothing, without
  llmsock, with its server started, and with one chat view (a WebSocket) connected, and the
  server thread's own.
* **streaming**: the kernel's server runs :class:`benchmarks.latency.StampedModel` (``rate``
  deltas a second, each stamped with when it was due and when it was made).  With **busy**, a
  cell runs a pure-Python numeric loop in timed chunks meanwhile; without, the kernel is idle.
  On a timeline of quiet spells, streams (``benchmarks.latency.client_main``: one session,
  ``rate`` x ``seconds`` deltas) and Stop trials (a prompt, two deltas, a pause of a random
  fraction of a delta interval, then ``abort``), this process measures per-delta lateness, how
  long Stop takes (abort sent -> the turn's ``end`` with ``finishReason: aborted`` received),
  and (busy) the **GIL cost** of llmsock's thread on the user's computation, two ways: the
  loop's chunks inside the streams against those inside the quiet spells, and the share of
  its time the cell's thread slept (a pure-Python loop sleeps only to wait for the GIL; the
  time it waited for a CPU, other work on the machine, is left out).  Each run repeats this
  for every switch interval in ``intervals`` (``sys.setswitchinterval`` in the kernel after
  the load; 1 ms is what llmsock sets while its server runs, 5 ms is CPython's default).

CLOCK_MONOTONIC is one clock for every process of a Linux machine, so the kernel's stamps and
chunk times compare with this process's readings.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import queue
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any, Callable

from jupyter_client.manager import KernelManager
from websockets.asyncio.client import ClientConnection, connect

from . import latency
from .common import BenchFailure, child_recv, load_1m, percentile, table

ROOT = Path(__file__).resolve().parents[1]  # the checkout: the kernel imports benchmarks.latency from it
# Iterations of the busy cell's loop per timed chunk: about 40 ms here, two delta intervals at
# 50 deltas/s, so every chunk of a stream pays its share (a median of shorter chunks would miss
# the deltas that fall into a few of them).
CHUNK_ITERATIONS = 300_000
FLAG_EVERY = 32  # chunks between two looks for the release flag (a syscall: it lets go of the GIL)
STOP_AFTER = 2  # deltas a Stop trial waits for before it aborts
SETTLE = 0.5  # seconds between a stream (or the Stop trials) and the quiet spell after it
GOALS = {"load_ms": 150.0, "idle_cpu_percent": 0.1, "late_p50_ms": 10.0, "stop_ms": 50.0, "gil_percent": 2.0}

Window = tuple[int, int]  # [start, end] in CLOCK_MONOTONIC nanoseconds


@dataclass(frozen=True)
class Threads:
    """Counters of the kernel's server thread and main thread (ns and counts since they started)."""

    server_cpu: int = 0
    server_sleeps: int = 0  # voluntary context switches: its loop's polls, its waits for the GIL
    main_cpu: int = 0
    main_queued: int = 0  # runnable but waiting for a CPU (other work on the machine)
    main_sleeps: int = 0  # a pure-Python loop sleeps only to wait for the GIL
    main_wall: int = 0  # CLOCK_MONOTONIC when the main thread's counters were read

    def __add__(self, other: Threads) -> Threads:
        return Threads(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def __sub__(self, other: Threads) -> Threads:
        return Threads(*(a - b for a, b in zip(astuple(self), astuple(other), strict=True)))


def queued_percent(threads: Threads, wall_ns: int) -> float:
    """Return the share of ``wall_ns`` the main thread was runnable but had no CPU (%)."""
    return 100 * threads.main_queued / wall_ns if wall_ns > 0 else math.nan


def gil_wait_percent(threads: Threads, wall_ns: int) -> float:
    """Return the share of the main thread's time it spent waiting, not computing (%).

    Of ``wall_ns``, the main thread computed (``main_cpu``), waited for a CPU (``main_queued``,
    other work on the machine: left out) or slept; a thread in a pure-Python loop sleeps only
    while another thread holds the GIL.
    """
    available = wall_ns - threads.main_queued
    if available <= 0:
        return math.nan
    return 100 * max(0, available - threads.main_cpu) / available


# -- pure helpers ---------------------------------------------------------------------------------


def chunks_within(chunks: Sequence[int], windows: Sequence[Window]) -> list[tuple[int, int]]:
    """Return (wall ns, CPU ns) of each chunk wholly inside one of ``windows``.

    ``chunks`` is the busy cell's flat record: start ns, end ns, CPU ns, three per chunk.
    """
    inside = []
    for i in range(0, len(chunks) - 2, 3):
        start, end, cpu = chunks[i], chunks[i + 1], chunks[i + 2]
        if any(low <= start and end <= high for low, high in windows):
            inside.append((end - start, cpu))
    return inside


def loop_cost(quiet: Sequence[tuple[int, int]], streaming: Sequence[tuple[int, int]]) -> dict[str, float]:
    """Return the chunks' medians (ms) and how much longer they took while streaming (%).

    ``mean_cost_percent`` compares the means instead: every chunk counts, and so does every
    preemption by other work on the machine.
    """
    if not quiet or not streaming:
        raise BenchFailure(f"too few timed chunks: {len(quiet)} quiet, {len(streaming)} streaming")
    quiet_ms = statistics.median(wall for wall, _ in quiet) / 1e6
    streaming_ms = statistics.median(wall for wall, _ in streaming) / 1e6
    quiet_mean = statistics.fmean(wall for wall, _ in quiet)
    streaming_mean = statistics.fmean(wall for wall, _ in streaming)
    quiet_cpu = statistics.median(cpu for _, cpu in quiet) / 1e6
    streaming_cpu = statistics.median(cpu for _, cpu in streaming) / 1e6
    return {
        "quiet_ms": quiet_ms,
        "streaming_ms": streaming_ms,
        "quiet_cpu_ms": quiet_cpu,
        "streaming_cpu_ms": streaming_cpu,
        "cost_percent": 100 * (streaming_ms / quiet_ms - 1),
        "mean_cost_percent": 100 * (streaming_mean / quiet_mean - 1),
        "cpu_cost_percent": 100 * (streaming_cpu / quiet_cpu - 1),
        "quiet_chunks": len(quiet),
        "streaming_chunks": len(streaming),
    }


def spread(values: Sequence[float]) -> dict[str, float]:
    """Return the median, smallest and largest of ``values`` (nan for none)."""
    if not values:
        return {"median": math.nan, "min": math.nan, "max": math.nan}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def quantiles_ms(ns: Sequence[int]) -> dict[str, float]:
    """Return p50, p99 and max of nanosecond samples, in milliseconds."""
    ordered = sorted(ns)
    return {
        "p50": percentile(ordered, 50) / 1e6,
        "p99": percentile(ordered, 99) / 1e6,
        "max": (ordered[-1] / 1e6) if ordered else math.nan,
    }


def event_of(frame: str | bytes) -> dict[str, Any] | None:
    """Return the session event an envelope frame carries (None for other frames)."""
    message = json.loads(frame)
    data = message.get("data") if isinstance(message, dict) else None
    event = data.get("event") if isinstance(data, dict) else None
    return event if isinstance(event, dict) else None


# -- the kernel ----------------------------------------------------------------------------------


class Kernel:
    """A python3 kernel of this environment, started as Jupyter starts one, with a blocking client."""

    def __init__(self, timeout: float, pycache: Path) -> None:
        self.timeout = timeout
        # A directory of its own, as a notebook's: the kernel's chats are saved beside it.
        self._directory = tempfile.TemporaryDirectory(prefix="llmsock-bench-kernel-")
        self.cwd = Path(self._directory.name)
        self.manager = KernelManager(kernel_name="python3")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        # An installed package comes with its bytecode; a checkout run with PYTHONDONTWRITEBYTECODE
        # would compile every module at each import.  The kernels share a bytecode cache of their
        # own (the checkout is not written to).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
        # The kernel's own log lines (its start-up warning, llmsock's "listening on") would be
        # mixed into the tables; a failing cell is reported through its error message instead.
        self.manager.start_kernel(
            env=env, cwd=str(self.cwd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.client = self.manager.blocking_client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=timeout)
        self.pid = int(self.manager.provisioner.pid)  # type: ignore[union-attr]
        self.tasks = Path(f"/proc/{self.pid}/task")  # its threads (Linux)

    def submit(self, code: str) -> str:
        """Start executing ``code``; return the request's message id."""
        return str(self.client.execute(code, store_history=False))

    def wait(self, msg_id: str, marker: str | None = None) -> list[dict[str, Any]]:
        """Return the IOPub messages of ``msg_id`` until idle (or until ``marker`` is printed)."""
        messages, text = [], ""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchFailure(f"a cell gave no {marker or 'idle'} within {self.timeout:g} s") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            messages.append(msg)
            kind, content = msg["msg_type"], msg["content"]
            if kind == "error":
                raise BenchFailure(f"a cell failed: {content['ename']}: {content['evalue']}")
            if kind == "stream":
                text += content["text"]
            if marker is not None and marker in text:
                return messages
            if marker is None and kind == "status" and content["execution_state"] == "idle":
                return messages

    def timed(self, code: str) -> float:
        """Run ``code``; return the cell's wall time in ms, from the request to the kernel's idle."""
        start = time.perf_counter()
        self.wait(self.submit(code))
        return (time.perf_counter() - start) * 1e3

    def value(self, expression: str) -> Any:
        """Return the JSON value of ``expression`` evaluated in the kernel."""
        marker = "\x1fbench:"
        messages = self.wait(self.submit(f"print({marker!r} + __import__('json').dumps({expression}))"))
        text = "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")
        return json.loads(text.rpartition(marker)[2])

    def cpu(self, thread_id: int | None = None) -> float:
        """Return the CPU seconds the kernel process (or one of its threads) has used.

        Linux's schedstat counts nanoseconds; the clock ticks of ``/proc/PID/stat`` count 10 ms,
        too coarse for a server that should use under 0.1% of a core (10 ms in 10 s).
        """
        ids = [thread_id] if thread_id is not None else [int(t.name) for t in self.tasks.iterdir()]
        return sum(self.thread(tid)[0] for tid in ids) / 1e9

    def thread(self, thread_id: int) -> tuple[int, int, int]:
        """Return one thread's CPU ns, ns waiting for a CPU, and sleeps (voluntary context switches).

        Linux's schedstat counts nanoseconds on a CPU and runnable in its queue.
        """
        task = self.tasks / str(thread_id)
        try:
            cpu, queued, _ = (int(x) for x in (task / "schedstat").read_text().split())
            status = (task / "status").read_text()
        except FileNotFoundError:
            return 0, 0, 0  # a thread that has ended
        sleeps = next(line for line in status.splitlines() if line.startswith("voluntary_ctxt_switches"))
        return cpu, queued, int(sleeps.split()[1])

    def close(self) -> None:
        """Shut the kernel down and remove its directory."""
        try:
            self.client.stop_channels()
            self.manager.shutdown_kernel(now=True)
        finally:
            self._directory.cleanup()


@contextlib.contextmanager
def kernel(timeout: float, pycache: Path) -> Iterator[Kernel]:
    """Start a kernel (bytecode cached in ``pycache``); shut it down afterwards."""
    started = Kernel(timeout, pycache)
    try:
        yield started
    finally:
        started.close()


def load_server(k: Kernel) -> dict[str, Any]:
    """Load the extension; return the server's url, token and thread id."""
    k.timed("%load_ext llmsock")
    return dict(
        k.value(
            "(lambda s: {'url': s.url, 'token': s.token, 'thread': s._thread.native_id})"
            "(__import__('llmsock_widget').get_server())"
        )
    )


# -- load and idle ---------------------------------------------------------------------------------


def load_cost(kernels: int, timeout: float, pycache: Path) -> dict[str, Any]:
    """Time ``%load_ext llmsock`` against an empty cell in ``kernels`` fresh kernels.

    One kernel loads it first, uncounted, to fill the bytecode cache.
    """
    with kernel(timeout, pycache) as k:
        k.timed("%load_ext llmsock")
    runs = []
    for _ in range(kernels):
        with kernel(timeout, pycache) as k:
            for _ in range(2):  # the first cells of a kernel pay for IPython's own first use
                k.timed("pass")
            before = load_1m()
            empties = [_timed_cpu(k, "pass") for _ in range(3)]
            empty = statistics.median(w for w, _ in empties), statistics.median(c for _, c in empties)
            loaded = _timed_cpu(k, "%load_ext llmsock")
            runs.append(
                {
                    "load_ms": loaded[0],
                    "empty_ms": empty[0],
                    "added_ms": loaded[0] - empty[0],
                    "added_cpu_ms": loaded[1] - empty[1],
                    "load": before,
                }
            )
    return {
        "runs": runs,
        "added_ms": spread([r["added_ms"] for r in runs]),
        "added_cpu_ms": spread([r["added_cpu_ms"] for r in runs]),
    }


def _timed_cpu(k: Kernel, code: str) -> tuple[float, float]:
    """Run ``code``; return the cell's wall time and the kernel process's CPU time, in ms.

    The CPU time does not grow when other work on the machine delays the kernel.
    """
    cpu = k.cpu()
    wall = k.timed(code)
    return wall, (k.cpu() - cpu) * 1e3


def idle_cpu(seconds: float, timeout: float, pycache: Path) -> dict[str, Any]:
    """Measure the idle kernel's CPU without llmsock, with its server, and with a chat connected."""
    with kernel(timeout, pycache) as k:
        k.timed("pass")
        rows = [_idle_row(k, "kernel alone", seconds, None)]
        server = load_server(k)
        time.sleep(1.0)  # the server's start-up work is not idleness
        rows.append(_idle_row(k, "llmsock loaded", seconds, server["thread"]))

        async def connected() -> dict[str, Any]:
            async with _connect(server, timeout) as ws:
                await ws.recv()  # the hello
                await asyncio.sleep(1.0)
                return await asyncio.to_thread(_idle_row, k, "1 chat connected", seconds, server["thread"])

        rows.append(asyncio.run(connected()))
    return {"seconds": seconds, "rows": rows}


def _idle_row(k: Kernel, name: str, seconds: float, thread: int | None) -> dict[str, Any]:
    before = load_1m()
    process, server = k.cpu(), k.cpu(thread) if thread else 0.0
    start = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - start
    process, server = k.cpu() - process, (k.cpu(thread) - server) if thread else math.nan
    return {
        "state": name,
        "process_percent": 100 * process / wall,
        "server_percent": 100 * server / wall,
        "load": before,
    }


# -- streaming beside a cell ----------------------------------------------------------------------


def busy_cell(flag: Path) -> str:
    """Code for a cell that runs the numeric loop in timed chunks until ``flag`` exists."""
    return (
        "import array as _ba, os as _bo, time as _bt\n"
        "_bench_chunks = _ba.array('q')\n"
        "print('started', flush=True)\n"
        "_bench_n = 0\n"
        f"while _bench_n % {FLAG_EVERY} or not _bo.path.exists({str(flag)!r}):\n"
        "    _bench_n += 1\n"
        "    _bs, _bc = _bt.monotonic_ns(), _bt.thread_time_ns()\n"
        "    _bx = 1\n"
        f"    for _bi in range({CHUNK_ITERATIONS}):\n"
        "        _bx = (_bx * 1103515245 + 12345) & 0xFFFFFFFF\n"
        "    _bench_chunks.extend((_bs, _bt.monotonic_ns(), _bt.thread_time_ns() - _bc))\n"
    )


@dataclass
class Timeline:
    """What one pass of the timeline measured (CLOCK_MONOTONIC ns)."""

    probe: Callable[[], Threads]  # the kernel's threads, read at each window's start and end
    quiet: list[Window] = field(default_factory=list)
    streaming: list[Window] = field(default_factory=list)
    late: list[int] = field(default_factory=list)  # made - due, per delta
    arrival: list[int] = field(default_factory=list)  # arrival - due, per delta
    stops: list[int] = field(default_factory=list)  # abort sent -> aborted end received
    streaming_threads: Threads = Threads()  # what the kernel's threads did during the streams
    quiet_threads: Threads = Threads()  # and during the quiet spells


@contextlib.asynccontextmanager
async def _connect(server: dict[str, Any], timeout: float) -> Any:
    headers = {"Authorization": f"Bearer {server['token']}"}
    async with connect(
        server["url"], additional_headers=headers, compression=None, max_size=None, open_timeout=timeout
    ) as ws:
        yield ws


async def _stream(server: dict[str, Any], rate: float, timeout: float, out: Timeline) -> None:
    """Stream one answer through ``latency.client_main`` (in this loop, over a pipe)."""
    parent, child = multiprocessing.Pipe()
    try:
        task = asyncio.create_task(
            latency.client_main(child, server["url"], server["token"], 1, rate, timeout)
        )
        await asyncio.wait_for(child_recv(parent), timeout)  # connected
        before = out.probe()
        start = time.monotonic_ns()
        parent.send("go")
        result = await task
        out.streaming.append((start, time.monotonic_ns()))
        out.streaming_threads += out.probe() - before
    finally:
        parent.close()
        child.close()
    made = _samples(result["latency"])
    late = _samples(result["lateness"])
    out.late.extend(late)
    out.arrival.extend(a + b for a, b in zip(made, late, strict=True))


def _samples(raw: bytes) -> list[int]:
    return list(array.array("q", raw))


async def _stops(server: dict[str, Any], trials: int, rate: float, timeout: float, out: Timeline) -> None:
    """Run ``trials`` turns, each aborted after STOP_AFTER deltas; keep how long each Stop took."""
    abort = json.dumps({"type": "control", "id": "bench_abort", "data": {"type": "abort"}})
    async with _connect(server, timeout) as ws:
        await ws.recv()  # the hello
        for _ in range(trials):
            await ws.send("stop me")
            deltas = 0
            while deltas < STOP_AFTER:
                event = await _next_event(ws, timeout)
                deltas += event.get("type") == "delta"
            await asyncio.sleep(random.uniform(0, 1 / rate))  # any phase of the model's pace
            sent = time.monotonic_ns()
            await ws.send(abort)
            while True:
                event = await _next_event(ws, timeout)
                if event.get("type") == "end":
                    break
            if event.get("finishReason") != "aborted":
                raise BenchFailure(f"the turn was not aborted: {event!r:.300}")
            out.stops.append(time.monotonic_ns() - sent)


async def _next_event(ws: ClientConnection, timeout: float) -> dict[str, Any]:
    while True:
        event = event_of(await asyncio.wait_for(ws.recv(), timeout))
        if event is None:
            continue
        if event.get("type") == "error":
            raise BenchFailure(f"the server sent an error: {event!r:.300}")
        return event


async def _quiet(seconds: float, out: Timeline) -> None:
    """Keep a quiet spell of ``seconds``, after the server has settled from what came before."""
    if seconds <= 0:
        return
    # A closed connection and its session's end keep the server's thread busy for a moment.
    await asyncio.sleep(SETTLE)
    before = out.probe()
    start = time.monotonic_ns()
    await asyncio.sleep(seconds)
    out.quiet.append((start, time.monotonic_ns()))
    out.quiet_threads += out.probe() - before


async def timeline(
    server: dict[str, Any],
    probe: Callable[[], Threads],
    *,
    rounds: int,
    rate: float,
    stops: int,
    quiet: float,
    timeout: float,
) -> Timeline:
    """Run quiet, then ``rounds`` x (stream, quiet, Stop trials, quiet)."""
    out = Timeline(probe)
    await _quiet(quiet, out)
    for _ in range(rounds):
        await _stream(server, rate, timeout, out)
        await _quiet(quiet, out)
        await _stops(server, stops, rate, timeout, out)
        await _quiet(quiet, out)
    return out


def figures(measured: Timeline) -> dict[str, Any]:
    """Return what a timeline measured: lateness, Stop, and what the kernel's threads did."""
    streaming, quiet = measured.streaming_threads, measured.quiet_threads
    streamed = sum(end - start for start, end in measured.streaming)
    quiet_ns = sum(end - start for start, end in measured.quiet)
    deltas = max(1, len(measured.late))
    return {
        "deltas": len(measured.late),
        "late_ms": quantiles_ms(measured.late),
        "arrival_ms": quantiles_ms(measured.arrival),
        "stop_ms": quantiles_ms(measured.stops),
        "stops": len(measured.stops),
        "server_cpu_percent": 100 * streaming.server_cpu / streamed if streamed else math.nan,
        "server_sleeps_per_delta": streaming.server_sleeps / deltas,
        "main_sleeps_per_delta": streaming.main_sleeps / deltas,
        "gil_wait_percent": gil_wait_percent(streaming, streaming.main_wall),
        "quiet_wait_percent": gil_wait_percent(quiet, quiet.main_wall),
        "quiet_server_cpu_percent": 100 * quiet.server_cpu / quiet_ns if quiet_ns else math.nan,
        "queued_percent": queued_percent(streaming, streaming.main_wall),
        "quiet_queued_percent": queued_percent(quiet, quiet.main_wall),
    }


def scenario(
    k: Kernel,
    server: dict[str, Any],
    *,
    busy: bool,
    interval_ms: float,
    rate: float,
    stops: int,
    quiet: float,
    timeout: float,
) -> dict[str, Any]:
    """Run the timeline on ``k`` at one switch interval, beside the busy cell or on an idle kernel."""
    k.timed(f"__import__('sys').setswitchinterval({interval_ms / 1e3!r})")
    before = load_1m()
    flag = k.cwd / "release"
    flag.unlink(missing_ok=True)
    cell = k.submit(busy_cell(flag)) if busy else None

    def probe() -> Threads:
        server_cpu, _, server_sleeps = k.thread(server["thread"])
        # The clock is read next to the main thread's counters, not at the window's edges: this
        # process may wait for a CPU in between, on a busy machine for tens of milliseconds.
        before = time.monotonic_ns()
        main = k.thread(k.pid)  # the main thread's id is the process's
        return Threads(server_cpu, server_sleeps, *main, (before + time.monotonic_ns()) // 2)

    try:
        if cell is not None:
            k.wait(cell, marker="started")
        measured = asyncio.run(
            timeline(server, probe, rounds=2, rate=rate, stops=stops, quiet=quiet, timeout=timeout)
        )
    finally:
        flag.touch()
    row = {"busy": busy, "interval_ms": interval_ms, "load": before, **figures(measured), "loop": None}
    if cell is not None:
        k.wait(cell)
        chunks = k.value("_bench_chunks.tolist()")
        row["loop"] = loop_cost(
            chunks_within(chunks, measured.quiet), chunks_within(chunks, measured.streaming)
        )
    return row


def streaming(
    *,
    repeat: int,
    intervals: Sequence[float],
    rate: float,
    seconds: float,
    stops: int,
    timeout: float,
    pycache: Path,
) -> dict[str, Any]:
    """Run every scenario ``repeat`` times, each round in a fresh kernel, the intervals interleaved."""
    rows = []
    for _ in range(repeat):
        with kernel(timeout, pycache) as k:
            server = load_server(k)
            count = max(1, round(rate * seconds))
            k.timed(
                "from benchmarks.latency import StampedModel as _BenchModel\n"
                "__import__('llmsock_widget').get_server()"
                f".set_model(_BenchModel(rate={rate!r}, count={count}))"
            )
            for interval in intervals:
                for busy in (True, False):
                    rows.append(
                        scenario(
                            k,
                            server,
                            busy=busy,
                            interval_ms=interval,
                            rate=rate,
                            stops=stops,
                            quiet=2.0 if busy else 0.0,
                            timeout=timeout + seconds * 10,
                        )
                    )
    return {"rows": rows}


# -- the suite --------------------------------------------------------------------------------------


def run(
    *,
    kernels: int = 5,
    idle_seconds: float = 10.0,
    repeat: int = 3,
    intervals: Sequence[float] = (1.0, 5.0),
    rate: float = 50.0,
    seconds: float = 4.0,
    stops: int = 10,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Run the suite; return the report."""
    report: dict[str, Any] = {"rate": rate, "seconds": seconds, "chunk_iterations": CHUNK_ITERATIONS}
    with tempfile.TemporaryDirectory(prefix="llmsock-bench-pycache-") as cache:
        pycache = Path(cache)
        report["load"] = load_cost(kernels, timeout, pycache)
        report["idle"] = idle_cpu(idle_seconds, timeout, pycache)
        report["streaming"] = streaming(
            repeat=repeat,
            intervals=intervals,
            rate=rate,
            seconds=seconds,
            stops=stops,
            timeout=timeout,
            pycache=pycache,
        )
    report["summary"] = summarise(report)
    return report


def summarise(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Return each goal with the figures that answer it: median and range over the runs."""
    rows = report["streaming"]["rows"]
    idle = {r["state"]: r for r in report["idle"]["rows"]}
    lines = [
        {"figure": "%load_ext llmsock adds (ms)", "goal": GOALS["load_ms"], **report["load"]["added_ms"]},
        {
            "figure": "%load_ext llmsock adds (kernel CPU ms)",
            "goal": GOALS["load_ms"],
            **report["load"]["added_cpu_ms"],
        },
    ]
    lines += [
        {
            "figure": f"idle CPU, {state} (% of a core, {what})",
            "goal": GOALS["idle_cpu_percent"],
            **spread([value]),
        }
        for state in ("llmsock loaded", "1 chat connected")
        for what, value in (
            ("server thread", idle[state]["server_percent"]),
            (
                "process over kernel alone",
                idle[state]["process_percent"] - idle["kernel alone"]["process_percent"],
            ),
        )
    ]
    for interval in sorted({r["interval_ms"] for r in rows}):
        for busy in (True, False):
            some = [r for r in rows if r["interval_ms"] == interval and r["busy"] == busy]
            where = f"{'busy' if busy else 'idle'} kernel, switch {interval:g} ms"
            lines.append(
                {
                    "figure": f"arrival - due p50 (ms), {where}",
                    "goal": GOALS["late_p50_ms"],
                    **spread([r["arrival_ms"]["p50"] for r in some]),
                }
            )
            lines.append(
                {
                    "figure": f"Stop p50 (ms), {where}",
                    "goal": GOALS["stop_ms"],
                    **spread([r["stop_ms"]["p50"] for r in some]),
                }
            )
            lines.append(
                {
                    "figure": f"Stop max (ms), {where}",
                    "goal": GOALS["stop_ms"],
                    **spread([r["stop_ms"]["max"] for r in some]),
                }
            )
            if busy:
                lines.append(
                    {
                        "figure": f"GIL cost: the cell's thread waiting (%), switch {interval:g} ms",
                        "goal": GOALS["gil_percent"],
                        **spread([r["gil_wait_percent"] for r in some]),
                    }
                )
                lines.append(
                    {
                        "figure": f"GIL cost: the loop's chunks slower (%), switch {interval:g} ms",
                        "goal": GOALS["gil_percent"],
                        **spread([r["loop"]["cost_percent"] for r in some]),
                    }
                )
    return lines


def render(report: dict[str, Any]) -> str:
    """Return the report as tables."""
    loads = report["load"]["runs"]
    parts = [
        "kernel: %load_ext llmsock in fresh kernels (cell wall time, request to idle)",
        table(
            ["kernel", "load_ext ms", "empty cell ms", "added ms", "added cpu ms", "load"],
            [
                [i + 1, r["load_ms"], r["empty_ms"], r["added_ms"], r["added_cpu_ms"], r["load"]]
                for i, r in enumerate(loads)
            ],
        ),
        "",
        f"idle CPU over {report['idle']['seconds']:g} s (100% is one core)",
        table(
            ["state", "kernel process %", "server thread %", "load"],
            [
                [r["state"], r["process_percent"], r["server_percent"], r["load"]]
                for r in report["idle"]["rows"]
            ],
        ),
        "",
        f"streaming: {report['rate']:g} deltas/s; late = the model made it - it was due; arrival = "
        "the client had it - it was due; Stop = abort sent -> aborted end received; srv = server thread",
        table(
            [
                "kernel",
                "switch ms",
                "deltas",
                "late p50",
                "late p99",
                "arrival p50",
                "arrival p99",
                "Stop p50",
                "Stop max",
                "srv cpu %",
                "srv sleeps/d",
                "load",
            ],
            [_streaming_row(r) for r in report["streaming"]["rows"]],
        ),
        "",
        f"the busy cell's loop ({report['chunk_iterations']:,}-iteration chunks) streaming against quiet: "
        "main = the cell's thread; wait = its share of time asleep (for the GIL), queued = waiting for "
        "a CPU",
        table(
            [
                "switch ms",
                "main sleeps/d",
                "wait %",
                "quiet wait %",
                "queued %",
                "quiet queued %",
                "chunk ms",
                "chunk cpu ms",
                "slower %",
                "mean slower %",
                "cpu slower %",
                "load",
            ],
            [_loop_row(r) for r in report["streaming"]["rows"] if r["busy"]],
        ),
        "",
        "figures against the goals of issue 16 (median, min-max over the runs)",
        table(
            ["figure", "median", "min", "max", "goal"],
            [[s["figure"], s["median"], s["min"], s["max"], s["goal"]] for s in report["summary"]],
        ),
    ]
    return "\n".join(parts)


def _streaming_row(r: dict[str, Any]) -> list[Any]:
    return [
        "busy cell" if r["busy"] else "idle",
        r["interval_ms"],
        r["deltas"],
        r["late_ms"]["p50"],
        r["late_ms"]["p99"],
        r["arrival_ms"]["p50"],
        r["arrival_ms"]["p99"],
        r["stop_ms"]["p50"],
        r["stop_ms"]["max"],
        r["server_cpu_percent"],
        r["server_sleeps_per_delta"],
        r["load"],
    ]


def _loop_row(r: dict[str, Any]) -> list[Any]:
    loop = r["loop"]
    return [
        r["interval_ms"],
        r["main_sleeps_per_delta"],
        r["gil_wait_percent"],
        r["quiet_wait_percent"],
        r["queued_percent"],
        r["quiet_queued_percent"],
        loop["quiet_ms"],
        loop["quiet_cpu_ms"],
        loop["cost_percent"],
        loop["mean_cost_percent"],
        loop["cpu_cost_percent"],
        r["load"],
    ]
