"""Measure delta throughput over loopback: the full llmsock stack against a bare Tornado handler.

Run ``python -m llmsock_widget.bench [--deltas N] [--repeat N] [--json]``.  This is a benchmark,
not a test: it asserts only that every delta arrived, and prints numbers.

* **full stack**: a :class:`~llmsock_widget.server.ServerThread` with the builtin model at full
  speed answers the prompt ``/long N`` (exactly N text deltas) through hub, reducer, fan-out,
  encoder and the connection's outbox.
* **bare tornado**: a minimal ``WebSocketHandler`` that writes the same N frames, encoded
  beforehand by :func:`llmsock_widget.protocol.encode` from the same tokens, so the bytes on the
  wire are the same size.  It is the floor Tornado itself sets.

Both servers run on background threads with their own loops (the thread rule of server.py); the
one client runs on the main thread's loop.  Client and servers share one process, hence one GIL,
so the client's cost is in both figures; the server-thread CPU time per delta is reported apart.
Each run uses a new connection (a new session) and times from sending the prompt to receiving
the ``end`` event.  The figures are the median of ``--repeat`` runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import statistics
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any, Coroutine, Protocol, Sequence

import tornado
import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.websocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException
from websockets.version import version as websockets_version

from . import protocol
from .events import Event, ModelDelta, ModelEnd, SessionReady
from .hub import new_id, now_ms
from .models import BuiltinModel
from .models.base import ModelRequest, TextChunk
from .models.builtin import MAX_DIRECTIVE_TOKENS
from .server import ServerThread

YIELD_EVERY = 64
"""The bare handler yields to its loop this often, as the builtin model does when unpaced."""


class BenchFailure(Exception):
    """A run did not go as the benchmark requires (missing deltas, an error event, a timeout)."""


# -- the frames the bare server sends ----------------------------------------------------------


@dataclass(frozen=True)
class Frames:
    """Pre-encoded envelope frames: the hello, one per delta, and the final ``end``."""

    ready: str
    deltas: tuple[str, ...]
    end: str


def _encode(event: Event) -> str:
    frame = protocol.encode(event, "envelope")
    if frame is None:
        raise BenchFailure(f"{type(event).__name__} has no envelope frame")
    return frame


def build_frames(tokens: Sequence[str]) -> Frames:
    """Return the frames the full stack sends for ``tokens``, with ids and seqs of the same size."""
    session_id, turn_id, message_id, ts = new_id(), new_id("t-"), new_id("m-"), now_ms()
    first = 4  # the full stack sends user message, status and start (seq 1-3) before the deltas
    deltas = tuple(
        _encode(
            ModelDelta(
                session_id=session_id,
                seq=first + i,
                ts=ts,
                turn_id=turn_id,
                text=token,
                message_id=message_id,
            )
        )
        for i, token in enumerate(tokens)
    )
    end = ModelEnd(
        session_id=session_id,
        seq=first + len(tokens) + 1,
        ts=ts,
        turn_id=turn_id,
        finish_reason="stop",
        text="".join(tokens),
        message_id=message_id,
        usage={"inputTokens": 2, "outputTokens": len(tokens)},
    )
    ready = SessionReady(session_id=session_id, seq=0, status="idle", ts=ts, created=True)
    return Frames(ready=_encode(ready), deltas=deltas, end=_encode(end))


def _delta_prefix() -> bytes | None:
    """Return the bytes every envelope delta frame starts with, or None if the encoder has no such prefix."""
    frame = _encode(ModelDelta(session_id="s", seq=1, ts=0, turn_id="t", text=""))
    mark = '"type":"delta"'
    cut = frame.find(mark)
    # The prefix must end at the type and hold no per-event value; otherwise every frame is parsed.
    return frame[: cut + len(mark)].encode() if 0 <= cut and '"s"' not in frame[:cut] else None


_DELTA_PREFIX = _delta_prefix()


async def reply_tokens(prompt: str) -> list[str]:
    """Return the text tokens the builtin model streams for ``prompt`` as a session's first turn."""
    request = ModelRequest(messages=({"role": "user", "content": prompt},))
    model = BuiltinModel(tokens_per_second=None)
    return [chunk.text async for chunk in model.stream(request) if isinstance(chunk, TextChunk)]


# -- the bare Tornado server --------------------------------------------------------------------


class _BareHandler(tornado.websocket.WebSocketHandler):
    """Say hello on open; answer any text frame with all the delta frames, then ``end``."""

    def initialize(self, server: BareServer) -> None:
        self.server = server

    def open(self, *args: str, **kwargs: str) -> None:
        self.set_nodelay(True)  # as the llmsock server does, so both pay the same per-frame send
        self.server.connections.add(self)
        self.write_message(self.server.frames.ready)

    async def on_message(self, message: str | bytes) -> None:
        frames = self.server.frames
        try:
            for index, frame in enumerate(frames.deltas, 1):
                self.write_message(frame)
                if index % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            await self.write_message(frames.end)
        except tornado.websocket.WebSocketClosedError:
            pass

    def on_close(self) -> None:
        self.server.connections.discard(self)


class BareServer:
    """A bare Tornado WebSocket server on its own daemon thread and loop, on 127.0.0.1:0."""

    def __init__(self, frames: Frames, *, timeout: float = 10.0) -> None:
        self.frames = frames
        self.timeout = timeout
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.connections: set[_BareHandler] = set()
        self._http: tornado.httpserver.HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> BareServer:
        """Start listening; return when ready.  Raise BenchFailure if it cannot."""
        self._thread = threading.Thread(target=self._run, name="bench-bare-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.timeout) or self._error is not None:
            self.stop()
            raise BenchFailure(f"the bare server did not start: {self._error}")
        return self

    def stop(self) -> None:
        """Stop the server and join its thread; calling it again does nothing."""
        thread, loop, self._thread = self._thread, self.loop, None
        if thread is None:
            return
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(self.timeout)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]:
        """Run a coroutine on the server's loop; return a concurrent.futures.Future."""
        if self.loop is None:
            raise RuntimeError("the bare server is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
            self.loop = loop
        except BaseException as exc:  # start() re-raises it in the caller's thread
            self._error = exc
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
        finally:
            self.loop = None
            loop.close()

    async def _startup(self) -> None:
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        app = tornado.web.Application([(r"/ws", _BareHandler, {"server": self})])
        self._http = tornado.httpserver.HTTPServer(app)
        self._http.add_sockets(sockets)

    async def _shutdown(self) -> None:
        if self._http is not None:
            self._http.stop()
            for conn in list(self.connections):
                conn.close(1001, "server stopping")
            await asyncio.wait_for(self._http.close_all_connections(), self.timeout)
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


# -- the client ---------------------------------------------------------------------------------


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
    client_cpu: float  # CPU seconds the main (client) thread spent during the turn


async def _thread_cpu() -> float:
    return time.thread_time()


async def _server_cpu(server: _Server) -> float:
    return float(await asyncio.wrap_future(server.submit(_thread_cpu())))


async def measure(target: Target, deltas: int, *, timeout: float) -> Run:
    """Connect, wait for the hello, send ``/long <deltas>`` and receive until ``end``; time the turn.

    The turn may take ``timeout`` seconds plus one per 1,000 deltas; every other step ``timeout``.
    """
    async with connect(
        target.server.url,
        additional_headers=target.headers,
        compression=None,
        max_size=None,
        open_timeout=timeout,
        close_timeout=timeout,
    ) as ws:
        await asyncio.wait_for(ws.recv(decode=False), timeout)  # the hello: not part of the turn
        server_cpu = await _server_cpu(target.server)
        client_cpu = time.thread_time()
        start = time.perf_counter()
        await ws.send(f"/long {deltas}")
        received, frames, size = await asyncio.wait_for(_receive_turn(ws), timeout + deltas / 1000)
        seconds = time.perf_counter() - start
        client_cpu = time.thread_time() - client_cpu
        server_cpu = await _server_cpu(target.server) - server_cpu
    return Run(
        deltas=received,
        frames=frames,
        payload_bytes=size,
        seconds=seconds,
        server_cpu=server_cpu,
        client_cpu=client_cpu,
    )


async def _receive_turn(ws: ClientConnection) -> tuple[int, int, int]:
    """Receive frames until the model's ``end``; return (deltas, frames, bytes)."""
    deltas = frames = size = 0
    while True:
        frame = await ws.recv(decode=False)  # bytes: no UTF-8 decoding, and len() is the payload size
        frames += 1
        size += len(frame)
        # No JSON parsing in the hot path: the client shares the GIL with the server, so keep it cheap.
        if _DELTA_PREFIX is not None and frame.startswith(_DELTA_PREFIX):
            deltas += 1
            continue
        kind = _model_event_type(frame)
        if kind == "delta":
            deltas += 1
        elif kind == "end":
            return deltas, frames, size
        elif kind == "error":
            raise BenchFailure(f"the server sent an error: {frame[:300]!r}")


def _model_event_type(frame: bytes) -> str | None:
    message = json.loads(frame)
    if message.get("name") != "interaction.model":
        return "error" if message.get("name") == "error" else None
    return str(message["data"]["event"]["type"])


# -- running and reporting ----------------------------------------------------------------------


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
    )


async def _measure_checked(target: Target, deltas: int, *, timeout: float) -> Run:
    run = await measure(target, deltas, timeout=timeout)
    if run.deltas != deltas:
        raise BenchFailure(f"{target.name}: received {run.deltas} deltas, expected {deltas}")
    return run


async def bench(*, deltas: int, repeat: int, timeout: float) -> list[Summary]:
    """Start both servers, warm up, measure ``repeat`` turns on each, stop them; return the medians."""
    frames = build_frames(await reply_tokens(f"/long {deltas}"))
    with contextlib.ExitStack() as stack:
        full = ServerThread(model=BuiltinModel(tokens_per_second=None), start_timeout=timeout).start()
        stack.callback(full.stop, timeout)
        bare = BareServer(frames, timeout=timeout).start()
        stack.callback(bare.stop)
        targets = [
            Target("full stack", full, {"Authorization": f"Bearer {full.token}"}),
            Target("bare tornado", bare, {}),
        ]
        runs: dict[str, list[Run]] = {t.name: [] for t in targets}
        for target in targets:  # warm up: imports, first-connection costs, caches
            await _measure_checked(target, deltas, timeout=timeout)
        for index in range(repeat):
            # Alternate the order so neither target always runs right after the other.
            for target in targets if index % 2 == 0 else targets[::-1]:
                runs[target.name].append(await _measure_checked(target, deltas, timeout=timeout))
    return [summarize(t.name, runs[t.name]) for t in targets]


def _versions() -> dict[str, str]:
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "tornado": tornado.version,
        "websockets": websockets_version,
    }


def report(summaries: Sequence[Summary], *, repeat: int) -> dict[str, Any]:
    """Return the results as one JSON-ready object."""
    full, bare = summaries
    return {
        "deltas": full.deltas,
        "repeat": repeat,
        "versions": _versions(),
        "results": {s.name.replace(" ", "_"): asdict(s) for s in summaries},
        "ratio_full_over_bare": full.deltas_per_second / bare.deltas_per_second,
    }


def render(summaries: Sequence[Summary], *, repeat: int) -> str:
    """Return the results as a small table."""
    versions = ", ".join(f"{k} {v}" for k, v in _versions().items())
    lines = [
        f"llmsock bench: median of {repeat} run(s) after 1 warm-up ({versions})",
        f"{'target':<14}{'deltas':>8}{'seconds':>10}{'deltas/s':>11}{'MB/s':>8}"
        f"{'srv µs/d':>10}{'cli µs/d':>10}   min-max s",
    ]
    for s in summaries:
        lines.append(
            f"{s.name:<14}{s.deltas:>8}{s.seconds:>10.3f}{s.deltas_per_second:>11,.0f}{s.mb_per_second:>8.2f}"
            f"{s.server_cpu_us_per_delta:>10.1f}{s.client_cpu_us_per_delta:>10.1f}"
            f"   {s.min_seconds:.3f}-{s.max_seconds:.3f}"
        )
    full, bare = summaries
    ratio = full.deltas_per_second / bare.deltas_per_second
    lines.append(f"full stack / bare tornado (deltas/s): {ratio:.2f}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m llmsock_widget.bench", description="Measure delta throughput over loopback."
    )
    parser.add_argument("--deltas", type=int, default=10_000, help="deltas per turn (default 10000)")
    parser.add_argument("--repeat", type=int, default=5, help="measured runs per target (default 5)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one step may take (default 60)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not 1 <= args.deltas <= MAX_DIRECTIVE_TOKENS:
        parser.error(f"--deltas must be from 1 to {MAX_DIRECTIVE_TOKENS}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        summaries = asyncio.run(bench(deltas=args.deltas, repeat=args.repeat, timeout=args.timeout))
    except (BenchFailure, WebSocketException, asyncio.TimeoutError, OSError) as exc:
        print(f"bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    leftover = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if leftover:
        print(f"bench failed: threads still running after shutdown: {leftover}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report(summaries, repeat=args.repeat)))
    else:
        print(render(summaries, repeat=args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
