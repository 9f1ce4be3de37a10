"""The server's limits: message rate, connection cap, handshake timeout, pause timeout.

Each case checks the documented outcome (an error frame with its code, an HTTP status, a closed
socket) and that nothing else was lost: other clients keep streaming, the server keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.limits import RateLimiter
from llmsock_widget.server.thread import ServerThread
from tests.conftest import TIMEOUT

from .conftest import MakeServer, is_turn_end, open_client


def event(message: dict[str, Any]) -> dict[str, Any]:
    return message["data"]["event"]


@pytest.fixture
def start(make_server: MakeServer) -> MakeServer:
    """Return ``start(**options)``: a server with the builtin model at full speed, stopped after the test."""

    def start_fast(**options: Any) -> ServerThread:
        return make_server(model=BuiltinModel(tokens_per_second=None), **options)

    return start_fast


def test_rate_limiter_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=10.0, burst=3, clock=lambda: now[0])
    assert [limiter.allow() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.1  # one token back
    assert [limiter.allow(), limiter.allow()] == [True, False]
    now[0] += 10.0  # never more than the burst
    assert sum(limiter.allow() for _ in range(10)) == 3
    assert limiter.should_warn() and not limiter.should_warn()
    now[0] += 1.0
    assert limiter.should_warn()


def test_a_flood_is_dropped_with_one_error_and_the_others_keep_streaming(run: Any, start: MakeServer) -> None:
    # 20 a second: however slowly this machine sends the 200 pings (up to 4.75 s), most are over.
    server = start(messages_per_second=20, message_burst=5)

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        calm = await open_client(server, session="shared", dialect="envelope")
        flood = await open_client(server, session="shared", dialect="envelope")
        await calm.recv()
        await flood.recv()
        received = server.stats.messages_in
        await calm.send("/long 300")
        for i in range(200):
            await flood.send({"type": "ping", "id": f"p{i}"})
        streamed = await calm.recv_until(is_turn_end)
        replies = await flood.recv_until(lambda m: event(m).get("code") == "too_many_messages")
        deadline = time.monotonic() + TIMEOUT
        while server.stats.messages_in < received + 201:  # the server read the prompt and every ping
            assert time.monotonic() < deadline, "the server did not read the flood"
            await asyncio.sleep(0.01)
        open_now = len(server.connections)
        calm.ws.transport.abort()
        flood.ws.transport.abort()
        return streamed, replies, open_now

    streamed, replies, open_now = run(scenario())
    end = event(streamed[-1])
    assert end["type"] == "end" and len(end["text"].split()) > 100
    error = event(replies[-1])
    assert error["recoverable"] is True and "20 a second" in error["message"]
    assert open_now == 2, "the flooding client is not disconnected"
    assert server.stats.rate_limited >= 100


def test_the_connection_cap_refuses_with_503_until_a_place_frees(run: Any, start: MakeServer) -> None:
    server = start(max_connections=2)

    async def scenario() -> tuple[int, str, str | None, dict[str, Any]]:
        first = await open_client(server, session="a")
        second = await open_client(server, session="b")
        await first.recv()
        await second.recv()
        with pytest.raises(InvalidStatus) as refused:
            await open_client(server, session="c")
        response = refused.value.response
        await first.ws.close()
        deadline = time.monotonic() + TIMEOUT
        while len(server.connections) >= 2:  # the server notices the close
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        third = await open_client(server, session="c")
        ready = event(await third.recv())
        await second.ws.close()
        await third.ws.close()
        return response.status_code, response.body.decode(), response.headers.get("Retry-After"), ready

    status, body, retry, ready = run(scenario())
    assert status == 503 and retry == "5"
    assert json.loads(body)["error"]["code"] == "too_many_connections"
    assert ready["type"] == "ready"
    assert server.stats.over_capacity == 1


def test_a_handshake_that_never_finishes_is_closed(run: Any, start: MakeServer) -> None:
    server = start(handshake_timeout=0.5)
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never end
        started = time.monotonic()
        assert sock.recv(1024) == b"", "the server closed the connection"
        waited = time.monotonic() - started
    assert waited < TIMEOUT

    async def still_serves() -> dict[str, Any]:
        client = await open_client(server)
        ready = event(await client.recv())
        await client.ws.close()
        return ready

    assert run(still_serves())["type"] == "ready"


def test_a_pause_nobody_resumes_ends_the_turn(run: Any, start: MakeServer) -> None:
    server = start(pause_timeout=0.3)

    async def scenario() -> list[dict[str, Any]]:
        client = await open_client(server, session="paused", dialect="envelope")
        await client.recv()
        await client.send("/hold 3")
        await client.recv_until(lambda m: event(m).get("type") == "delta")
        await client.send({"type": "control", "id": "c1", "data": {"type": "pause"}})
        seen = await client.recv_until(is_turn_end)
        await client.ws.close()
        return seen

    seen = run(scenario())
    diagnostics = [event(m) for m in seen if event(m).get("type") == "diagnostic"]
    assert any(d["code"] == "pause_timeout" for d in diagnostics)
    assert event(seen[-1])["type"] == "end" and event(seen[-1])["finishReason"] == "aborted"
