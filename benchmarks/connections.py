"""Connections: the server's memory per idle WebSocket, and how many it holds.

The server runs in a fresh process of its own (so nothing else it did shapes its memory), and a
client process opens authenticated WebSockets to it, in steps (1, then 500, 1,000, 2,000, ...
up to ``connections``), each on a new session as a chat view's first connection is, and waits
for each one's hello, so the session is attached.  After every step the server process collects
garbage and reads its resident set size (RSS) with psutil.
The memory per connection is the growth from the first connection to the last step, divided
by the connections added; it includes the session each connection made (its state, its
replay buffer, its locks) and everything Tornado keeps per connection.  Socket buffers live
in the kernel and are not counted in RSS.

Two controls run the same way, each in a fresh process of its own, with the same client and
steps (:mod:`benchmarks.idleservers`): a plain server written with the ``websockets`` package
and a bare Tornado ``WebSocketHandler``.  Each says the same hello on accepting a connection
and then leaves it idle, so the three figures compare what an idle connection costs.

Both processes raise their soft limit of open files to the hard one, and the run asks for no
more connections than the server process may open files, less a reserve for its own use
(``RESERVE``): past that limit Tornado's accept handler fails with EMFILE on every turn of the
loop, logging each failure, while the connection waits in the listen queue.  If a connection
fails (a refusal, a timeout), the run stops at that step and says why.
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any, Union

import psutil  # type: ignore[import-untyped]
from websockets.asyncio.client import ClientConnection, connect

from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread

from .common import (
    BenchFailure,
    ClientProcess,
    child_recv,
    load_1m,
    raise_open_files_limit,
    start_server,
    table,
)
from .idleservers import IdleTornadoServer, IdleWebsocketsServer

OPENING = 64  # connections opened at once (Tornado listens with a backlog of 128)
RESERVE = 200  # open files the server process keeps for itself (listening socket, logs, /proc reads)
STEPS = (500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000)
LLMSOCK, WEBSOCKETS, TORNADO = "llmsock", "websockets", "bare tornado"
CONTROLS = (WEBSOCKETS, TORNADO)  # run after llmsock, in this order

AnyServer = Union[ServerThread, IdleWebsocketsServer, IdleTornadoServer]


def steps(connections: int) -> list[int]:
    """Return the connection counts to measure at: 1, the standard steps below ``connections``, and it."""
    return sorted({1, *(s for s in STEPS if s < connections), connections})


def kib_per_connection(rows: Sequence[dict[str, Any]]) -> float:
    """Return the RSS growth from the first step to the last in KiB per connection added (nan if none)."""
    if not rows:
        return math.nan
    first, last = rows[0], rows[-1]
    added = last["connections"] - first["connections"]
    return (last["rss_mib"] - first["rss_mib"]) * 1024 / added if added > 0 else math.nan


def ratio(numerator: float, denominator: float) -> float:
    """Return ``numerator / denominator``, or nan if either is not a positive figure."""
    if not (numerator > 0 and denominator > 0):  # also false for nan
        return math.nan
    return numerator / denominator


async def client_main(conn: Connection, url: str, token: str, counts: list[int], timeout: float) -> int:
    """Open connections up to each count in turn; after each, report and wait for the parent."""
    headers = {"Authorization": f"Bearer {token}"}
    gate = asyncio.Semaphore(OPENING)
    held: list[ClientConnection] = []

    async def open_one() -> None:
        async with gate:
            ws = await connect(url, additional_headers=headers, compression=None, open_timeout=timeout)
            try:
                await asyncio.wait_for(ws.recv(decode=False), timeout)
            except BaseException:
                await ws.close()
                raise
            held.append(ws)

    for count in counts:
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(open_one() for _ in range(count - len(held))), return_exceptions=True
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        reason = None
        if failures:
            first = failures[0]
            reason = f"{len(failures):,} failed; first: {type(first).__name__}: {first}"[:300]
        conn.send(("step", len(held), time.monotonic() - started, reason))
        if await child_recv(conn) == "stop" or failures:
            break
    await asyncio.gather(*(ws.close() for ws in held), return_exceptions=True)
    return len(held)


async def server_main(conn: Connection, kind: str, connections: int) -> None:
    """The server process: start a server, say where, then measure itself whenever asked, until ``stop``."""
    server = _start(kind, connections)
    try:
        conn.send(("server", server.url, server.token, _measure(server)))
        while await child_recv(conn) != "stop":
            conn.send(("measured", _measure(server)))
    finally:
        server.stop()


def _start(kind: str, connections: int) -> AnyServer:
    if kind == LLMSOCK:
        return start_server(model=BuiltinModel(tokens_per_second=None), connections=connections)
    control: IdleWebsocketsServer | IdleTornadoServer
    if kind == WEBSOCKETS:
        control = IdleWebsocketsServer()
    elif kind == TORNADO:
        control = IdleTornadoServer()
    else:
        raise BenchFailure(f"no such server: {kind!r}")
    control.start()
    return control


def _measure(server: AnyServer) -> dict[str, Any]:
    gc.collect()
    process = psutil.Process()
    loop = server.loop
    if loop is None:
        raise BenchFailure("the server's loop is not running")
    held, sessions = asyncio.run_coroutine_threadsafe(_held(server), loop).result(10)
    return {"rss": process.memory_info().rss, "fds": process.num_fds(), "held": held, "sessions": sessions}


async def _held(server: AnyServer) -> tuple[int, int | None]:
    """Return the connections the server holds and its live sessions (None for a control)."""
    if isinstance(server, ServerThread):
        return len(server.connections), len(server.hub.sessions)
    return server.held(), None


def run(*, connections: int, timeout: float = 60.0, control: bool = True) -> dict[str, Any]:
    """Open up to ``connections`` idle WebSockets in steps to llmsock (and to each control); report RSS.

    The report's top level is llmsock's run; ``controls`` holds the controls' runs, each of the
    same form, and ``ratio_to_websockets`` llmsock's KiB per idle connection over the
    ``websockets`` server's.
    """
    limit = raise_open_files_limit()  # the children take the same limit (common._child raises theirs)
    tried = max(1, min(connections, limit - RESERVE))
    report = _run_one(LLMSOCK, connections, tried, limit, timeout)
    kinds = CONTROLS if control else ()
    controls = {kind: _run_one(kind, connections, tried, limit, timeout) for kind in kinds}
    report["controls"] = controls
    plain = controls.get(WEBSOCKETS)
    report["ratio_to_websockets"] = (
        ratio(report["kib_per_connection"], plain["kib_per_connection"]) if plain else None
    )
    return report


def _run_one(kind: str, connections: int, tried: int, limit: int, timeout: float) -> dict[str, Any]:
    """Measure one server, in a fresh process of its own, with a fresh client process."""
    counts = steps(tried)
    rows: list[dict[str, Any]] = []
    stopped = None
    server = ClientProcess(server_main, kind, tried)
    try:
        _, url, token, at_start = server.recv(timeout)
        client = ClientProcess(client_main, url, token, counts, timeout)
        try:
            for _ in counts:
                _, opened, seconds, reason = client.recv(timeout + tried * 0.05)
                server.send("measure")
                _, measured = server.recv(timeout)
                rows.append(
                    {
                        "connections": opened,
                        "server_connections": measured["held"],
                        "sessions": measured["sessions"],
                        "rss_mib": measured["rss"] / 2**20,
                        "open_seconds": seconds,
                        "server_fds": measured["fds"],
                    }
                )
                if reason is not None:
                    stopped = reason
                    client.send("stop")
                    break
                client.send("next")
            client.result(timeout + tried * 0.01)
        finally:
            client.close()
    finally:
        server.send("stop")
        server.close()
    load = load_1m()
    before = at_start["rss"]
    if not rows:
        raise BenchFailure(f"{kind}: no connection step finished")
    last = rows[-1]
    for row in rows:
        row["rss_growth_mib"] = row["rss_mib"] - before / 2**20
    if stopped is None and tried < connections:
        stopped = (
            f"the server process may open {limit:,} files, so {tried:,} of the {connections:,} asked "
            f"for were tried ({RESERVE} kept for its own use)"
        )
    return {
        "server": kind,
        "asked": connections,
        "tried": tried,
        "held": last["connections"],
        "stopped": stopped or f"held all {last['connections']:,} asked for",
        "open_files_limit": limit,
        "rss_before_mib": before / 2**20,
        "rss_end_mib": last["rss_mib"],
        "kib_per_connection": kib_per_connection(rows),
        "load_1m": load,
        "steps": rows,
    }


def render(report: dict[str, Any]) -> str:
    """Return the report as tables: llmsock's steps, then one row per server."""
    rows = [
        [
            s["connections"],
            s["server_connections"],
            s["sessions"],
            s["rss_mib"],
            s["rss_growth_mib"],
            s["server_fds"],
            f"{s['open_seconds']:.2f}",
        ]
        for s in report["steps"]
    ]
    headers = ["connections", "on server", "sessions", "RSS MiB", "growth MiB", "server fds", "open s"]
    soft = report["open_files_limit"]
    lines = [
        "connections: idle authenticated WebSockets, one session each, to a server in a process "
        f"of its own ({report['rss_before_mib']:.1f} MiB RSS before the first)",
        table(headers, rows),
        f"memory per idle connection: {report['kib_per_connection']:.1f} KiB "
        f"(first step to last); held {report['held']:,}: {report['stopped']} "
        f"(open files limit {soft:,} per process)",
    ]
    runs = [report, *report.get("controls", {}).values()]
    summary = [
        [
            r.get("server", LLMSOCK),
            r["kib_per_connection"],
            r["held"],
            r["rss_before_mib"],
            r["rss_end_mib"],
            r["load_1m"],
        ]
        for r in runs
    ]
    summary_headers = ["server", "KiB per idle conn", "held", "RSS MiB before", "RSS MiB at end", "load 1m"]
    lines += [
        "",
        "each server in a fresh process of its own, the same client and steps "
        "(KiB per idle connection: first step to last; load: 1-minute average after its last step)",
        table(summary_headers, summary),
    ]
    lines += [
        f"{r['server']}: {r['stopped']}"
        for r in runs[1:]
        if not str(r["stopped"]).startswith("held all") and r["stopped"] != report["stopped"]
    ]
    ratio_to_plain = report.get("ratio_to_websockets")
    if ratio_to_plain is not None:
        lines.append(f"{LLMSOCK} / {WEBSOCKETS} (KiB per idle connection): {ratio_to_plain:.2f}")
    return "\n".join(lines)
