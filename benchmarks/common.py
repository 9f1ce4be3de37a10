"""What every suite of the benchmark shares: failures, the machine, tables, percentiles, client processes."""

from __future__ import annotations

import asyncio
import datetime
import inspect
import math
import multiprocessing
import os
import platform
import resource
import subprocess
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable, Coroutine

import psutil  # type: ignore[import-untyped]
import tornado
import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.websocket
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.version import version as websockets_version

from llmsock_widget.server.loopthread import LoopThread
from llmsock_widget.server.thread import ServerThread


class BenchFailure(Exception):
    """A run did not go as the benchmark requires (missing deltas, an error event, a timeout)."""


# -- the machine --------------------------------------------------------------------------------


def cpu_model() -> str:
    """Return the CPU model named in /proc/cpuinfo (or what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    root = Path(__file__).resolve().parents[1]  # the checkout: benchmarks/ sits at its top
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5, check=True
    )
    return done.stdout.strip()


def _commit() -> str | None:
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}{' (with uncommitted changes)' if dirty else ''}"


def machine() -> dict[str, Any]:
    """Return what the figures depend on: date, commit, CPUs, memory, versions."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "tornado": tornado.version,
        "websockets": websockets_version,
        "open_files_limit": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def load_1m() -> float:
    """Return the machine's load average over the last minute, printed beside each figure."""
    return round(os.getloadavg()[0], 2)


def describe(info: dict[str, Any]) -> str:
    """Return the machine as two lines for the top of a report."""
    return (
        f"{info['date']}, commit {info['commit'] or 'unknown'}; {info['cpus']} CPUs ({info['cpu_model']}), "
        f"{info['memory_gib']} GiB, {info['os']}\n"
        f"{info['python']}, tornado {info['tornado']}, websockets {info['websockets']}; "
        f"load average {' '.join(str(x) for x in info['load_average'])} (1, 5, 15 min) at the start"
    )


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


# -- figures ------------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], p: float) -> float:
    """Return the ``p``-th percentile of sorted values by the nearest-rank method (nan if empty)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Return rows as a plain-text table: the first column left-aligned, the others right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


# -- servers ------------------------------------------------------------------------------------


def start_server(*, connections: int = 100, **options: Any) -> ServerThread:
    """Start a ServerThread that accepts at least ``connections`` clients at once."""
    if "max_connections" in inspect.signature(ServerThread).parameters:  # servers with a connection cap
        options["max_connections"] = max(connections + 16, 100)
    return ServerThread(**options).start()


def thread_cpu(thread: threading.Thread | None) -> float:
    """Return the CPU seconds (user + system) the OS has charged to ``thread`` so far (0.0 if unknown)."""
    native = getattr(thread, "native_id", None)
    if native is None:
        return 0.0
    for info in psutil.Process().threads():
        if info.id == native:
            return float(info.user_time + info.system_time)
    return 0.0


def server_thread(server: ServerThread) -> threading.Thread | None:
    """Return the thread a ServerThread runs its loop on."""
    return getattr(server, "_thread", None)


# -- client processes ---------------------------------------------------------------------------

ClientMain = Callable[..., Coroutine[Any, Any, Any]]


def _child(conn: Connection, main: ClientMain, args: tuple[Any, ...]) -> None:
    raise_open_files_limit()
    try:
        conn.send(("result", asyncio.run(main(conn, *args))))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


class ClientProcess:
    """A client in a process of its own, so it does not share the server's GIL.

    ``main(conn, *args)`` is a coroutine function of a module (the process is spawned, so it
    must be importable); it talks to the parent over ``conn`` (see :meth:`send`, :meth:`recv`)
    and its return value is what :meth:`result` returns.
    """

    def __init__(self, main: ClientMain, *args: Any) -> None:
        context = multiprocessing.get_context("spawn")  # no fork: the parent runs threads
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_child, args=(child, main, args), daemon=True)
        self.process.start()
        child.close()

    @property
    def pid(self) -> int:
        return self.process.pid or 0

    def send(self, message: Any) -> None:
        self.conn.send(message)

    def recv(self, timeout: float) -> Any:
        """Return the child's next message; raise BenchFailure if it failed or said nothing in time."""
        if not self.conn.poll(timeout):
            raise BenchFailure(f"the client process said nothing for {timeout:g} s")
        try:
            message = self.conn.recv()
        except EOFError:
            raise BenchFailure("the client process ended without a result") from None
        if isinstance(message, tuple) and message and message[0] == "error":
            raise BenchFailure(f"the client process failed: {message[1]}")
        return message

    def result(self, timeout: float) -> Any:
        """Wait for the child's return value."""
        message = self.recv(timeout)
        if not (isinstance(message, tuple) and message and message[0] == "result"):
            raise BenchFailure(f"unexpected message from the client process: {message!r:.200}")
        return message[1]

    def close(self, timeout: float = 10.0) -> None:
        """Wait for the process to end; kill it if it does not."""
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)
        self.conn.close()


async def child_recv(conn: Connection) -> Any:
    """In a client process: wait for the parent's next message without blocking the loop."""
    while not conn.poll():
        await asyncio.sleep(0.005)
    return conn.recv()


def monotonic_ms() -> float:
    """Return CLOCK_MONOTONIC in milliseconds (the same clock in every process of this machine)."""
    return time.monotonic_ns() / 1e6


class ControlServer(LoopThread):
    """A comparison server on its own daemon thread and loop, on 127.0.0.1:0 (``/ws``)."""

    label = "the control server"  # in the error when it cannot start

    def __init__(self, *, timeout: float = 10.0) -> None:
        super().__init__()  # loop, _ready, _error
        self.timeout = timeout
        self.port = 0
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> Any:
        """Start listening; return self when ready.  Raise BenchFailure if it cannot."""
        self._thread = threading.Thread(target=self._run, name=f"bench-{type(self).__name__}", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.timeout) or self._error is not None:
            self.stop()
            raise BenchFailure(f"{self.label} did not start: {self._error}")
        return self

    def stop(self) -> None:
        """Stop the server and join its thread; calling it again does nothing."""
        thread, loop, self._thread = self._thread, self.loop, None
        if thread is None:
            return
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(self.timeout)


class TornadoControl(ControlServer):
    """A control server whose ``handler`` (a Tornado ``WebSocketHandler``) serves ``/ws``.

    The handler is given ``server=self`` and keeps itself in ``connections`` while open.
    """

    handler: type[tornado.websocket.WebSocketHandler]

    def __init__(self, *, timeout: float = 10.0) -> None:
        super().__init__(timeout=timeout)
        self.connections: set[Any] = set()
        self._http: tornado.httpserver.HTTPServer | None = None

    def held(self) -> int:
        """Return the connections open now (call it on the server's loop)."""
        return len(self.connections)

    async def _startup(self) -> None:
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        app = tornado.web.Application([(r"/ws", self.handler, {"server": self})])
        self._http = tornado.httpserver.HTTPServer(app)
        self._http.add_sockets(sockets)

    async def _shutdown(self) -> None:
        if self._http is not None:
            self._http.stop()
            for handler in list(self.connections):
                handler.close(1001, "server stopping")
            await asyncio.wait_for(self._http.close_all_connections(), self.timeout)
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


class WebsocketsControl(ControlServer):
    """A control server written with the ``websockets`` package; ``_handle`` serves a connection.

    ``serve`` gets its defaults but compression, and ``max_size``.
    """

    max_size: int | None = 2**20  # the largest message it takes (serve's default; None: any)

    def __init__(self, *, timeout: float = 10.0) -> None:
        super().__init__(timeout=timeout)
        self._server: Server | None = None

    def held(self) -> int:
        """Return the connections open now (call it on the server's loop)."""
        return len(self._server.connections) if self._server is not None else 0

    async def _startup(self) -> None:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, compression=None, max_size=self.max_size, backlog=128
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), self.timeout)

    async def _handle(self, ws: ServerConnection) -> None:
        raise NotImplementedError
