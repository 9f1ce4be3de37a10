"""The server's keepalive: every WebSocket is pinged; one that stops answering is closed, others stay."""

from __future__ import annotations

import asyncio
import base64
import secrets
import struct
from typing import Any

from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread
from tests.conftest import TIMEOUT
from tests.integration.conftest import MakeServer, masked_frame, open_client, read_frame

INTERVAL = 0.2  # seconds between the server's pings (and the time a client has to answer one)


async def raw_client(server: ServerThread, session: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a WebSocket by hand, authenticated by header; the caller answers no ping unless it says so."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        (
            f"GET /ws?session={session}&dialect=envelope HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(secrets.token_bytes(16)).decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {server.token}\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def frames_until_close(
    reader: asyncio.StreamReader, writer: Any, answer: int
) -> tuple[int, list[int], bytes]:
    """Read frames until the server's close, answering the first ``answer`` pings; return the
    pings received, the opcodes seen and the last frame's payload (the close's, if it closed)."""
    opcodes: list[int] = []
    pings = 0
    while True:
        opcode, payload = await asyncio.wait_for(read_frame(reader), TIMEOUT)
        opcodes.append(opcode)
        if opcode == 0x9:
            pings += 1
            if pings <= answer:
                writer.write(masked_frame(0xA, payload))
                await writer.drain()
        if opcode == 0x8 or pings > answer + 3:  # closed, or three pings unanswered and still open
            return pings, opcodes, payload


def test_a_client_that_stops_answering_pings_is_closed_and_the_others_stay(
    make_server: MakeServer, run: Any
) -> None:
    """Two pings answered, the third not: the server closes with 1000 "ping timed out" after it,
    while a client that answers every ping (the websockets client) stays connected."""
    server = make_server(model=BuiltinModel(tokens_per_second=None), ping_interval=INTERVAL)

    async def scenario() -> tuple[int, list[int], bytes, dict[str, Any]]:
        steady = await open_client(server, session="steady", dialect="envelope")
        await steady.recv()
        reader, writer = await raw_client(server, "silent")
        pings, opcodes, close = await frames_until_close(reader, writer, answer=2)
        writer.close()
        # The steady client has outlived a sweep with a missing pong: it still gets its answer.
        await steady.send("/echo still here")
        end = (await steady.recv_until(lambda m: m["data"]["event"]["type"] == "end"))[-1]
        await steady.ws.close()
        return pings, opcodes, close, end["data"]["event"]

    pings, opcodes, close, end = run(scenario())
    assert opcodes[0] == 0x1, "the ready frame comes first"
    assert pings == 3, f"closed after {pings} pings: the third, unanswered, should close it"
    assert opcodes[-1] == 0x8
    assert struct.unpack("!H", close[:2])[0] == 1000
    assert close[2:].decode() == "ping timed out"
    assert end["text"] == "still here"
