"""Compression: bytes on the wire, CPU and memory per connection with and without permessage-deflate.

``python -m benchmarks.compression [--answers chat,10000] [--repeat 5] [--no-proxy] [--connections 200]``

One :class:`~llmsock_widget.server.thread.ServerThread` per variant (deflate off, and on with each
zlib setting measured) runs in this process with the builtin model at full speed.  A client in a
process of its own, with ``websockets``' defaults (it offers permessage-deflate, as browsers do),
asks each server for the same answer, directly and through jupyter-server-proxy (a real
``jupyter server`` in a subprocess, the way a chat view in JupyterLab connects), the variants
interleaved in a rotating order in every round.  Per turn it records:

* **wire B/d**: the bytes the client's TCP socket received during the turn (``TCP_INFO``'s
  ``tcpi_bytes_received``: WebSocket frames as sent, compressed or not, without TCP/IP headers),
  per delta;
* **srv µs/d**: CPU time of the llmsock server's thread per delta (what deflate costs the kernel);
* **proxy µs/d**: CPU time of the whole Jupyter server process per delta (through the proxy only);
* **cli µs/d**: CPU time of the client's thread per delta (what inflating costs a client).

The figures are medians over the rounds.  ``memory`` opens ``connections`` WebSockets to a server
in a fresh process of its own, each streaming one short answer (so the deflate state is in use),
and gives the server's RSS growth per connection, with deflate off and on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import secrets
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
from websockets.asyncio.client import ClientConnection, connect

from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.limits import Compression
from llmsock_widget.server.thread import ServerThread

from .common import (
    BenchFailure,
    ClientProcess,
    child_recv,
    describe,
    machine,
    start_server,
    table,
)

DIALECT = "llmsock.envelope.v1"
CHAT_PROMPT = "How do WebSockets keep a chat answer streaming?"  # a normal prompt: the builtin's usual reply
VARIANTS: dict[str, Compression] = {
    "off": Compression(enabled=False),
    "deflate level 1, memLevel 5": Compression(enabled=True, level=1, mem_level=5),
    "deflate level 6, memLevel 8": Compression(enabled=True, level=6, mem_level=8),
}
_TCPI_BYTES_RECEIVED = 128  # offset of tcpi_bytes_received (u64) in Linux's struct tcp_info


def prompt_for(answer: str) -> str:
    """Return the prompt for an answer: ``chat`` (a normal prompt) or a count of deltas (``/long N``)."""
    return CHAT_PROMPT if answer == "chat" else f"/long {int(answer)}"


def bytes_received(ws: ClientConnection) -> int:
    """Return how many bytes the connection's TCP socket has received so far (Linux ``TCP_INFO``)."""
    sock = ws.transport.get_extra_info("socket")
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("Q", info, _TCPI_BYTES_RECEIVED)[0])


# -- the client process -------------------------------------------------------------------------


async def _read_turn(ws: ClientConnection, timeout: float) -> tuple[int, str]:
    """Read frames up to the model's ``end``; return the deltas and whether their text matched it.

    Deltas that waited together come as one frame with the last one's sequence (docs/protocol.md,
    section 5.1), so they are counted by sequence: the last delta's less the start's.
    """
    start = last = 0
    parts: list[str] = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        name = message.get("name")
        if name == "error":
            raise BenchFailure(f"the server sent an error: {str(message)[:300]}")
        if name != "interaction.model":
            continue
        event, sequence = message["data"]["event"], message["data"]["meta"]["sequence"]
        if event["type"] == "start":
            start = last = sequence
        elif event["type"] == "delta":
            last = sequence
            parts.append(event["text"])
        elif event["type"] == "end":
            return last - start, "ok" if "".join(parts) == event["text"] else "text differs"


async def client_main(conn: Connection, timeout: float) -> int:
    """For each request from the parent, connect, say ``ready``, wait for ``go``, run one turn."""
    runs = 0
    while (request := await child_recv(conn)) is not None:
        url, headers, auth_token, prompt = request
        async with connect(
            url,
            additional_headers=headers,
            subprotocols=[DIALECT],  # type: ignore[list-item]
            max_size=None,
            open_timeout=timeout,
        ) as ws:
            if auth_token is not None:  # a browser's way: the token as the first frame
                await ws.send(json.dumps({"type": "auth", "token": auth_token}))
            await asyncio.wait_for(ws.recv(), timeout)  # the hello
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions") if ws.response else None
            conn.send(("ready",))
            await child_recv(conn)
            before, cpu, start = bytes_received(ws), time.thread_time(), time.perf_counter()
            await ws.send(prompt)
            deltas, check = await _read_turn(ws, timeout)
            seconds, cpu = time.perf_counter() - start, time.thread_time() - cpu
            conn.send(("run", deltas, bytes_received(ws) - before, cpu, seconds, extensions, check))
        runs += 1
    return runs


# -- a Jupyter server with jupyter-server-proxy -------------------------------------------------


@contextlib.contextmanager
def jupyter_server(timeout: float) -> Iterator[tuple[int, str, psutil.Process]]:
    """Run ``jupyter server`` on 127.0.0.1 (private dirs); yield its port, token and process."""
    token = secrets.token_hex(24)
    with tempfile.TemporaryDirectory(prefix="llmsock-bench-jupyter-") as tmp:
        env = dict(os.environ)
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
            env[name] = str(Path(tmp, name.lower()))
        env.pop("JUPYTER_PATH", None)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [
            sys.executable, "-m", "jupyter", "server", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={tmp}",
            f"--IdentityProvider.token={token}", "--ServerApp.allow_root=True",
        ]  # fmt: skip
        with open(Path(tmp, "jupyter.log"), "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
        try:
            _wait_ready(port, token, process, timeout)
            yield port, token, psutil.Process(process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)


def _wait_ready(port: int, token: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=1):
                return
        except OSError:
            time.sleep(0.1)  # readiness polling, bounded by the deadline
    raise BenchFailure(f"jupyter server did not start (exit code {process.poll()})")


# -- measuring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """How the client reaches a server: its URL, headers and auth frame."""

    name: str
    url: str
    headers: dict[str, str]
    auth_token: str | None
    proxy: psutil.Process | None  # the Jupyter server, whose CPU time is counted


def _cpu(process: psutil.Process | None) -> float:
    """Return the CPU seconds of all of ``process``'s threads, to the nanosecond (``schedstat``)."""
    if process is None:
        return 0.0
    total = 0
    for task in Path(f"/proc/{process.pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            total += int(Path(task, "schedstat").read_text().split()[0])
    return total / 1e9


async def server_deflates(server: ServerThread) -> bool:
    """Whether every WebSocket of ``server`` negotiated permessage-deflate (the proxy's leg too)."""
    sockets = [getattr(c, "ws_connection", None) for c in server.connections]
    return bool(sockets) and all(getattr(s, "_compressor", None) is not None for s in sockets)


async def _now() -> float:
    return time.thread_time()


def _measure(
    client: ClientProcess, server: ServerThread, path: Route, prompt: str, timeout: float
) -> dict[str, Any]:
    client.send((path.url, path.headers, path.auth_token, prompt))
    client.recv(timeout)
    server_cpu = server.submit(_now()).result(timeout)
    proxy_cpu = _cpu(path.proxy)
    deflating = server.submit(server_deflates(server)).result(timeout)
    client.send("go")
    _, deltas, wire, client_cpu, seconds, extensions, check = client.recv(timeout * 4)
    server_cpu = server.submit(_now()).result(timeout) - server_cpu
    if check != "ok" or deltas < 1:
        raise BenchFailure(f"{path.name}: {deltas} deltas, {check}")
    return {
        "deltas": deltas,
        "wire_bytes": wire,
        "server_cpu": server_cpu,
        "proxy_cpu": _cpu(path.proxy) - proxy_cpu if path.proxy is not None else None,
        "client_cpu": client_cpu,
        "seconds": seconds,
        "negotiated": bool(extensions and "permessage-deflate" in extensions),
        "server_deflates": deflating,
    }


def routes(server: ServerThread, jupyter: tuple[int, str, psutil.Process] | None) -> list[Route]:
    """Return the ways to ``server``: direct, and through ``jupyter``'s proxy if there is one."""
    paths = [Route("direct", server.url, {"Authorization": f"Bearer {server.token}"}, None, None)]
    if jupyter is not None:
        port, token, process = jupyter
        url = f"ws://127.0.0.1:{port}/proxy/{server.port}/ws"
        headers = {"Authorization": f"token {token}", "Origin": f"http://127.0.0.1:{port}"}
        paths.append(Route("proxy", url, headers, server.token, process))
    return paths


def run(*, answers: Sequence[str], repeat: int, proxy: bool = True, timeout: float = 60.0) -> dict[str, Any]:
    """Measure every answer, path and variant ``repeat`` times (after one warm-up); return medians."""
    runs: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    with contextlib.ExitStack() as stack:
        jupyter = stack.enter_context(jupyter_server(timeout)) if proxy else None
        servers: dict[str, ServerThread] = {}
        for name, compression in VARIANTS.items():
            server = start_server(
                model=BuiltinModel(tokens_per_second=None), compression=compression, start_timeout=timeout
            )
            stack.callback(server.stop, timeout)
            if jupyter is not None:
                server.allow_host(f"127.0.0.1:{jupyter[0]}")
                server.allow_origin(f"http://127.0.0.1:{jupyter[0]}")
            servers[name] = server
        client = ClientProcess(client_main, timeout)
        stack.callback(client.close)
        stack.callback(client.send, None)
        names = list(servers)
        for index in range(repeat + 1):  # round 0 warms up and is not counted
            shift = index % len(names)
            for answer in answers:
                for name in names[shift:] + names[:shift]:
                    for path in routes(servers[name], jupyter):
                        figures = _measure(client, servers[name], path, prompt_for(answer), timeout)
                        if index:
                            runs.setdefault((answer, path.name, name), []).append(figures)
    return {"answers": list(answers), "repeat": repeat, "results": [_median(k, v) for k, v in runs.items()]}


def _median(key: tuple[str, str, str], runs: list[dict[str, Any]]) -> dict[str, Any]:
    answer, path, variant = key
    deltas = runs[0]["deltas"]

    def per_delta(field: str, scale: float) -> float | None:
        values = [r[field] for r in runs if r[field] is not None]
        return statistics.median(values) / deltas * scale if values else None

    return {
        "answer": answer,
        "path": path,
        "variant": variant,
        "negotiated": all(r["negotiated"] for r in runs),
        "server_deflates": all(r["server_deflates"] for r in runs),
        "deltas": deltas,
        "wire_bytes_per_delta": per_delta("wire_bytes", 1),
        "server_us_per_delta": per_delta("server_cpu", 1e6),
        "proxy_us_per_delta": per_delta("proxy_cpu", 1e6),
        "client_us_per_delta": per_delta("client_cpu", 1e6),
        "seconds": statistics.median(r["seconds"] for r in runs),
        "runs": len(runs),
    }


def render(report: dict[str, Any]) -> str:
    """Return the wire and CPU report as a table."""
    headers = [
        "answer",
        "path",
        "variant",
        "client",
        "server",
        "deltas",
        "wire B/d",
        "srv µs/d",
        "proxy µs/d",
        "cli µs/d",
        "s",
    ]
    keys: tuple[str, ...] = ("answer", "path", "variant", "negotiated", "server_deflates", "deltas")
    keys += ("wire_bytes_per_delta", "server_us_per_delta", "proxy_us_per_delta", "client_us_per_delta")
    ordered = sorted(report["results"], key=lambda r: (r["answer"] != "chat", r["answer"], r["path"]))
    rows = [[*(r[k] for k in keys), f"{r['seconds']:.3f}"] for r in ordered]
    return "\n".join(
        [
            f"compression: per delta, median of {report['repeat']} round(s) after 1 warm-up, "
            "variants interleaved",
            table(headers, rows),
            "client: the client's socket has permessage-deflate; server: llmsock's socket has it "
            "(through the proxy, the proxy's leg to llmsock)",
        ]
    )


# -- memory per connection ----------------------------------------------------------------------


async def memory_client(conn: Connection, url: str, token: str, count: int, timeout: float) -> int:
    """Open ``count`` connections, each streaming one short answer, then hold them until told."""
    held: list[ClientConnection] = []
    gate = asyncio.Semaphore(32)

    async def open_one() -> None:
        async with gate:
            ws = await connect(
                url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=timeout
            )
            held.append(ws)
            await asyncio.wait_for(ws.recv(), timeout)
            await ws.send("/long 300")
            await _read_turn(ws, timeout)

    await open_one()
    conn.send(("one",))
    await child_recv(conn)
    await asyncio.gather(*(open_one() for _ in range(count - 1)))
    conn.send(("all", sum(1 for ws in held if ws.protocol.extensions)))
    await child_recv(conn)
    await asyncio.gather(*(ws.close() for ws in held), return_exceptions=True)
    return len(held)


async def memory_server(conn: Connection, compression: Compression, connections: int) -> None:
    """A server in a process of its own: say where, then report its RSS whenever asked."""
    server = start_server(
        model=BuiltinModel(tokens_per_second=None), compression=compression, connections=connections
    )
    try:
        conn.send(("server", server.url, server.token))
        while await child_recv(conn) != "stop":
            gc.collect()
            conn.send(("rss", psutil.Process().memory_info().rss))
    finally:
        server.stop()


def memory(*, connections: int, timeout: float = 60.0) -> dict[str, Any]:
    """Return the server's RSS growth per connection (each streamed one answer) for each variant."""
    results = []
    for name, compression in VARIANTS.items():
        server = ClientProcess(memory_server, compression, connections)
        try:
            _, url, token = server.recv(timeout)
            client = ClientProcess(memory_client, url, token, connections, timeout)
            try:
                client.recv(timeout)
                server.send("measure")
                _, first = server.recv(timeout)
                client.send("more")
                _, negotiated = client.recv(timeout + connections * 0.1)
                server.send("measure")
                _, last = server.recv(timeout)
                client.send("close")
                client.result(timeout)
            finally:
                client.close()
        finally:
            server.send("stop")
            server.close()
        per = (last - first) / 1024 / max(1, connections - 1)
        results.append(
            {"variant": name, "connections": connections, "negotiated": negotiated, "kib_per_connection": per}
        )
    return {"connections": connections, "results": results}


def render_memory(report: dict[str, Any]) -> str:
    """Return the memory report as a table."""
    rows = [
        [r["variant"], r["connections"], r["negotiated"], r["kib_per_connection"]] for r in report["results"]
    ]
    return "\n".join(
        [
            f"memory: server RSS growth per connection, {report['connections']:,} connections, "
            "each after a 300-delta answer",
            table(["variant", "connections", "with deflate", "KiB/conn"], rows),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables (or ``--json``)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compression", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--answers", default="chat,10000", help="chat and/or delta counts (default chat,10000)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="measured rounds (default 5)")
    parser.add_argument("--no-proxy", action="store_true", help="leave out jupyter-server-proxy")
    parser.add_argument(
        "--connections", type=int, default=200, help="connections for memory, 0 skips (default 200)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one step may take (default 60)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    answers = [a.strip() for a in args.answers.split(",") if a.strip()]
    if args.repeat < 1 or not answers or not all(a == "chat" or a.isdigit() for a in answers):
        parser.error("--repeat must be >= 1 and --answers 'chat' or delta counts")
    info = machine()
    report: dict[str, Any] = {"machine": info}
    try:
        report["wire"] = run(
            answers=answers, repeat=args.repeat, proxy=not args.no_proxy, timeout=args.timeout
        )
        if args.connections > 1:
            report["memory"] = memory(connections=args.connections, timeout=args.timeout)
    except BenchFailure as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(describe(info))
    print(render(report["wire"]))
    if "memory" in report:
        print(render_memory(report["memory"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
