"""permessage-deflate (RFC 7692): negotiated only when the server allows it, bounded after inflating.

A client that offers the extension to a server with ``compression=True`` gets it and receives the
answer compressed on the wire; a compressed frame that would inflate past ``max_message_size`` (a
compression bomb) closes that connection with 1009 while other clients stream on; with the
default (off) no extension is negotiated.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import zlib
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from benchmarks import compression as bench
from llmsock_widget.client import Client
from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.limits import Compression
from llmsock_widget.server.thread import CLOSE_TOO_BIG, ServerThread
from tests.conftest import TIMEOUT

from .conftest import MakeServer, auth

LIMIT = 64 * 1024  # the servers' max_message_size here


def deflating_server(make_server: MakeServer, **options: Any) -> ServerThread:
    options.setdefault("model", BuiltinModel(tokens_per_second=None))
    return make_server(compression=True, max_message_size=LIMIT, **options)


async def stream_answer(ws: ClientConnection, prompt: str) -> tuple[int, str, str]:
    """Send ``prompt`` after the hello; return the deltas, their joined text and the end's text."""
    await asyncio.wait_for(ws.recv(), TIMEOUT)  # the hello
    await ws.send(prompt)
    deltas, parts = 0, []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert message.get("name") != "error", message
        if message.get("name") != "interaction.model":
            continue
        event = message["data"]["event"]
        if event["type"] == "delta":
            deltas += 1
            parts.append(event["text"])
        elif event["type"] == "end":
            return deltas, "".join(parts), event["text"]


def open_ws(server: ServerThread) -> Any:
    """Connect with websockets' defaults: it offers permessage-deflate, as browsers do."""
    return connect(server.url, additional_headers=auth(server), max_size=None, open_timeout=TIMEOUT)


def extension(ws: ClientConnection) -> str | None:
    return ws.response.headers.get("Sec-WebSocket-Extensions") if ws.response else None


def test_a_client_that_offers_deflate_gets_it_and_the_answer_comes_compressed(
    make_server: MakeServer,
) -> None:
    server = deflating_server(make_server)

    async def scenario() -> tuple[str | None, int, tuple[int, str, str], int]:
        async with open_ws(server) as ws:
            before = bench.bytes_received(ws)
            answer = await stream_answer(ws, "/long 2000")
            wire = bench.bytes_received(ws) - before
            return extension(ws), len(ws.protocol.extensions), answer, wire

    offered, extensions, (deltas, joined, end), wire = asyncio.run(scenario())
    assert offered is not None and offered.startswith("permessage-deflate")
    assert extensions == 1
    assert deltas >= 1 and joined == end and end.startswith('You said: "/long 2000"')
    # The answer's text goes twice (its deltas, then the end event); compressed, the whole turn
    # is far smaller than the text once.
    assert wire < len(end.encode()) / 2, f"{wire} bytes on the wire for {len(end)} characters"


def test_with_compression_off_no_extension_is_negotiated(make_server: MakeServer) -> None:
    server = make_server(model=BuiltinModel(tokens_per_second=None))  # the default: off
    assert server.compression == Compression(enabled=False)

    async def scenario() -> tuple[str | None, int, tuple[int, str, str], int]:
        async with open_ws(server) as ws:
            before = bench.bytes_received(ws)
            answer = await stream_answer(ws, "/long 500")
            return extension(ws), len(ws.protocol.extensions), answer, bench.bytes_received(ws) - before

    offered, extensions, (deltas, joined, end), wire = asyncio.run(scenario())
    assert offered is None and extensions == 0
    assert deltas >= 1 and joined == end and end.startswith('You said: "/long 500"')
    assert wire > 2 * len(end.encode())  # the text whole, twice: its deltas and the end event


def bomb(size: int) -> bytes:
    """Return a masked text frame, RSV1 set, whose deflated payload inflates to ``size`` spaces."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = compressor.compress(b" " * size) + compressor.flush(zlib.Z_SYNC_FLUSH)
    payload = payload[:-4]  # RFC 7692 7.2.1: the empty block's tail is not sent
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    if len(payload) < 126:
        head = struct.pack("!BB", 0xC1, 0x80 | len(payload))
    elif len(payload) <= 0xFFFF:
        head = struct.pack("!BBH", 0xC1, 0x80 | 126, len(payload))
    else:
        head = struct.pack("!BBQ", 0xC1, 0x80 | 127, len(payload))
    return head + mask + masked


async def send_bomb(server: ServerThread, frame: bytes) -> int | None:
    """Open a WebSocket by hand offering deflate, send ``frame``; return the close code received."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Extensions: permessage-deflate\r\nAuthorization: Bearer {server.token}\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101") and b"permessage-deflate" in head, head
    writer.write(frame)
    try:
        while True:  # skip the server's frames (the hello) up to its close frame
            first, second = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", await reader.readexactly(8))[0]
            data = await reader.readexactly(size)
            if first & 0x0F == 0x8:
                return int(struct.unpack("!H", data[:2])[0]) if len(data) >= 2 else None
    except asyncio.IncompleteReadError:
        return None  # closed without a close frame
    finally:
        writer.close()


def test_a_compression_bomb_closes_that_connection_with_1009_and_others_stream_on(
    make_server: MakeServer,
) -> None:
    server = deflating_server(make_server)
    frame = bomb(64 * LIMIT)  # 4 MiB of text...
    assert len(frame) < LIMIT // 4  # ... in a frame far under the limit: only inflating can catch it

    async def scenario() -> tuple[int | None, tuple[int, str, str], tuple[int, str, str]]:
        async with open_ws(server) as other:
            answer = asyncio.create_task(stream_answer(other, "/slow 2000 /long 400"))
            code = await send_bomb(server, frame)
            during = await answer
        async with open_ws(server) as after:  # the server still takes new clients
            return code, during, await stream_answer(after, "/long 50")

    code, (_, joined, end), (_, _, later) = asyncio.run(scenario())
    assert code == CLOSE_TOO_BIG == 1009
    assert joined == end and end.startswith('You said: "/long 400"')
    assert later.startswith('You said: "/long 50"')
    assert server.running


def test_a_compressed_prompt_under_the_limit_is_taken_whole(make_server: MakeServer) -> None:
    """The limit is on the inflated text: a prompt just under it, sent compressed, is echoed back."""
    server = deflating_server(make_server)
    text = "word " * ((LIMIT - 1024) // 5)

    async def scenario() -> tuple[int, str, str]:
        async with open_ws(server) as ws:
            return await stream_answer(ws, "/echo " + text)

    _, joined, end = asyncio.run(scenario())
    assert joined == end == text


def test_the_python_client_works_with_compression_on_and_off(make_server: MakeServer) -> None:
    """The client offers deflate (websockets' default): it gets the same answer either way."""
    texts = []
    for enabled in (True, False):
        server = make_server(model=BuiltinModel(tokens_per_second=None), compression=enabled)

        async def scenario(server: ServerThread = server) -> tuple[str, str, bool]:
            async with Client(server.url, token=server.token, open_timeout=TIMEOUT) as client:
                answer = await client.ask("/long 300", timeout=TIMEOUT)
                deflating = await asyncio.wrap_future(server.submit(bench.server_deflates(server)))
                return answer.text, answer.finish_reason, deflating

        text, finish, deflating = asyncio.run(scenario())
        assert text.startswith('You said: "/long 300"') and finish == "stop"
        assert deflating is enabled
        texts.append(text)
    assert texts[0] == texts[1]


def test_the_benchmark_reports_bytes_and_memory_for_each_variant() -> None:
    """``python -m benchmarks.compression`` at a tiny size, without the proxy (see docs/benchmarks.md)."""
    report = bench.run(answers=["chat", "50"], repeat=1, proxy=False, timeout=TIMEOUT)
    rows = {(r["answer"], r["variant"]): r for r in report["results"]}
    assert len(rows) == 2 * len(bench.VARIANTS)
    for answer in ("chat", "50"):
        off = rows[(answer, "off")]
        assert not off["negotiated"]
        for name in bench.VARIANTS:
            if name != "off":
                on = rows[(answer, name)]
                assert on["negotiated"] and on["server_deflates"]
                assert on["wire_bytes_per_delta"] < off["wire_bytes_per_delta"] / 2
    assert "wire B/d" in bench.render(report)
    memory = bench.memory(connections=3, timeout=TIMEOUT)
    assert [r["negotiated"] for r in memory["results"]] == [0, 3, 3]
    assert "KiB/conn" in bench.render_memory(memory)


def test_through_jupyter_server_proxy_the_answer_arrives_whole_and_uncompressed(
    make_server: MakeServer,
) -> None:
    """The proxy deflates its own leg to llmsock but never the browser's: same answer, same bytes."""
    with bench.jupyter_server(TIMEOUT * 3) as jupyter:
        port = jupyter[0]
        server = deflating_server(make_server, allowed_hosts=[f"127.0.0.1:{port}"])
        server.allow_origin(f"http://127.0.0.1:{port}")
        (route,) = [r for r in bench.routes(server, jupyter) if r.name == "proxy"]

        async def scenario() -> tuple[str | None, bool, tuple[int, str, str]]:
            async with connect(
                route.url, additional_headers=route.headers, max_size=None, open_timeout=TIMEOUT
            ) as ws:
                await ws.send(json.dumps({"type": "auth", "token": server.token}))
                answer = await stream_answer(ws, "/long 1000")
                deflating = await asyncio.wrap_future(server.submit(bench.server_deflates(server)))
                return extension(ws), deflating, answer

        offered, deflating, (deltas, joined, end) = asyncio.run(scenario())
    assert offered is None  # the browser's leg
    assert deflating  # the proxy's leg to llmsock
    assert deltas >= 1 and joined == end and end.startswith('You said: "/long 1000"')


def test_serve_offers_deflate_only_with_its_flag() -> None:
    """`serve --compression` negotiates permessage-deflate; `serve` without it does not."""
    import signal
    import subprocess
    import sys

    async def negotiated(info: dict[str, Any]) -> str | None:
        headers = {"Authorization": f"Bearer {info['token']}"}
        async with connect(info["url"], additional_headers=headers, open_timeout=TIMEOUT) as ws:
            return extension(ws)

    for flags, expected in (([], None), (["--compression"], "permessage-deflate")):
        command = [sys.executable, "-m", "llmsock_widget", "serve", *flags]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        ) as proc:
            try:
                info = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
                got = asyncio.run(negotiated(info))
                assert (got or "").split(";")[0] == (expected or ""), (flags, got)
                proc.send_signal(signal.SIGINT)
                assert proc.wait(TIMEOUT) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
