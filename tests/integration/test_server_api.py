"""Seed 004's WSServer and getStats API, from a thread that is not the server's (as a notebook cell calls it).

ServerThread.send_to_session, broadcast, active_sessions, connection_count and on(...), and
Client.connection_stats, against a real server and real WebSocket clients (docs/api.md).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import threading
from datetime import datetime, timezone
from typing import Any

import pytest

from llmsock_widget.client import Backoff, Client
from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.listeners import ServerEvent
from llmsock_widget.server.thread import ServerThread
from tests.conftest import TIMEOUT

from .conftest import Client as Peer
from .conftest import MakeServer, is_turn_end, open_client


def is_notice(message: dict[str, Any]) -> bool:
    """Whether a frame, in either dialect, is a diagnostic."""
    return message.get("name") == "interaction.diagnostic" or message.get("type") == "diagnostic"


def notice_of(message: dict[str, Any]) -> dict[str, Any]:
    """Return a diagnostic's level, code and message, whatever the dialect."""
    body = message["data"]["event"] if "name" in message else message["data"]
    return {key: body[key] for key in ("level", "code", "message")}


async def ready(peer: Peer) -> dict[str, Any]:
    """Receive the peer's ready announcement."""
    return await peer.recv()


async def nothing_more(peer: Peer) -> None:
    """Check that nothing reached ``peer`` before the pong of a ping sent now (frames keep their order)."""
    await peer.send({"type": "ping", "id": "probe"})
    frame = await peer.recv()
    assert frame.get("type") == "pong" or frame.get("data", {}).get("event", {}).get("type") == "pong", frame


class Recorder:
    """A listener that keeps what it is called with, and on which thread, for a test to wait on."""

    def __init__(self) -> None:
        self.events: list[ServerEvent] = []
        self.threads: set[str] = set()
        self._changed = threading.Condition()

    def __call__(self, event: ServerEvent) -> None:
        with self._changed:
            self.events.append(event)
            self.threads.add(threading.current_thread().name)
            self._changed.notify_all()

    def wait_for(self, kind: str, count: int = 1) -> list[ServerEvent]:
        """Return the events of ``kind`` once there are ``count`` of them (bounded by TIMEOUT)."""
        with self._changed:
            ok = self._changed.wait_for(lambda: len(self.of(kind)) >= count, TIMEOUT)
        assert ok, f"{count} {kind} event(s) expected, got {self.events}"
        return self.of(kind)

    def of(self, kind: str) -> list[ServerEvent]:
        return [event for event in self.events if event.kind == kind]


@pytest.fixture
def fast(make_server: MakeServer) -> ServerThread:
    """A server whose builtin model answers at full speed."""
    return make_server(model=BuiltinModel(tokens_per_second=None))


def test_send_to_session_reaches_every_connection_of_that_session_only(fast: ServerThread, run: Any) -> None:
    async def scenario() -> tuple[int, list[dict[str, Any]]]:
        first = await open_client(fast, session="alpha", dialect="envelope")
        second = await open_client(fast, session="alpha", dialect="typed")
        other = await open_client(fast, session="beta", dialect="envelope")
        for peer in (first, second, other):
            await ready(peer)
        # From a thread of its own, as a notebook cell (the kernel's main thread) would call it.
        reached = await asyncio.to_thread(fast.send_to_session, "alpha", "The data is refreshed.")
        got = [await first.recv(), await second.recv()]
        await nothing_more(other)
        for peer in (first, second, other):
            await peer.ws.close()
        return reached, got

    reached, got = run(scenario())

    assert reached == 2
    assert all(is_notice(frame) for frame in got), got
    expected = {"level": "info", "code": "notice", "message": "The data is refreshed."}
    assert [notice_of(frame) for frame in got] == [expected, expected]


def test_send_to_a_session_nobody_has_open_reaches_nobody(fast: ServerThread) -> None:
    assert fast.send_to_session("nobody-here", "hello?") == 0
    with pytest.raises(ValueError, match="level"):
        fast.send_to_session("nobody-here", "hello?", level="loud")  # type: ignore[arg-type]


def test_broadcast_skips_the_excluded_session(fast: ServerThread, run: Any) -> None:
    async def scenario() -> tuple[int, list[dict[str, Any]]]:
        excluded = await open_client(fast, session="alpha", dialect="envelope")
        peers = [await open_client(fast, session=name, dialect="typed") for name in ("beta", "gamma")]
        for peer in (excluded, *peers):
            await ready(peer)
        reached = await asyncio.to_thread(
            fast.broadcast, "Maintenance at noon.", exclude="alpha", level="warning"
        )
        got = [await peer.recv() for peer in peers]
        await nothing_more(excluded)
        for peer in (excluded, *peers):
            await peer.ws.close()
        return reached, got

    reached, got = run(scenario())

    assert reached == 2
    assert [notice_of(frame)["message"] for frame in got] == ["Maintenance at noon."] * 2
    assert {notice_of(frame)["level"] for frame in got} == {"warning"}


def test_active_sessions_and_connection_count_follow_connects_and_disconnects(
    fast: ServerThread, run: Any
) -> None:
    seen = Recorder()
    fast.on("client_disconnected", seen)
    assert fast.active_sessions() == [] and fast.connection_count() == 0

    async def scenario() -> tuple[Any, ...]:
        a1, a2, b = [
            await open_client(fast, session=name, dialect="envelope") for name in ("alpha", "alpha", "beta")
        ]
        for peer in (a1, a2, b):
            await ready(peer)
        await a1.send({"type": "user_message", "id": "m1", "data": {"text": "Hello"}})
        for peer in (a1, a2):  # a2 reads too: a client that stops reading cannot close quickly
            await peer.recv_until(is_turn_end)
        before = await asyncio.to_thread(fast.active_sessions), await asyncio.to_thread(fast.connection_count)
        # A notice moves beta's sequence on; it must still close once its last client leaves.
        await asyncio.to_thread(fast.send_to_session, "beta", "Goodbye.")
        await b.recv()
        await a2.ws.close()
        await b.ws.close()
        await asyncio.to_thread(seen.wait_for, "client_disconnected", 2)
        after = await asyncio.to_thread(fast.active_sessions), await asyncio.to_thread(fast.connection_count)
        await a1.ws.close()
        return before, after

    (sessions, count), (sessions_after, count_after) = run(scenario())

    assert count == 3
    by_id = {info.id: info for info in sessions}
    assert set(by_id) == {"alpha", "beta"}
    assert (by_id["alpha"].connections, by_id["beta"].connections) == (2, 1)
    assert (by_id["alpha"].message_count, by_id["beta"].message_count) == (2, 0)  # the prompt and its answer
    assert by_id["alpha"].created_at.tzinfo is timezone.utc
    assert by_id["alpha"].last_activity >= by_id["alpha"].created_at
    # beta had nothing to keep it open; alpha keeps its last connection.
    assert count_after == 1
    assert [(info.id, info.connections) for info in sessions_after] == [("alpha", 1)]


def test_an_sse_stream_is_a_connection_that_gets_notices(fast: ServerThread) -> None:
    seen = Recorder()
    fast.on("client_connected", seen)
    fast.on("client_disconnected", seen)
    conn = http.client.HTTPConnection("127.0.0.1", fast.port, timeout=TIMEOUT)
    conn.request("GET", "/sse?session=watched", headers={"Authorization": f"Bearer {fast.token}"})
    response = conn.getresponse()
    assert response.status == 200

    def next_block() -> dict[str, str]:
        lines = []
        while (line := response.readline().decode()) != "\n":
            assert line, "the stream ended"
            lines.append(line.rstrip("\n"))
        return dict(line.split(": ", 1) for line in lines if ": " in line)

    assert next_block()["event"] == "interaction.session"  # the ready announcement
    try:
        assert fast.connection_count() == 1
        assert [(info.id, info.connections) for info in fast.active_sessions()] == [("watched", 1)]
        assert fast.send_to_session("watched", "Seen over SSE too.") == 1
        block = next_block()
    finally:
        conn.close()
    assert block["event"] == "interaction.diagnostic"
    assert json.loads(block["data"])["event"]["message"] == "Seen over SSE too."
    seen.wait_for("client_disconnected")
    assert [(e.kind, e.session, e.transport) for e in seen.events] == [
        ("client_connected", "watched", "sse"),
        ("client_disconnected", "watched", "sse"),
    ]


def test_listeners_see_connects_disconnects_and_errors_off_the_server_loop(
    fast: ServerThread, run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: ServerEvent) -> None:
        raise RuntimeError("a listener with a bug")

    seen = Recorder()
    for kind in ("client_connected", "client_disconnected", "client_error"):
        fast.on(kind, broken)  # registered first: the server and the next listener must not notice
        fast.on(kind, seen)

    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        peer = await open_client(fast, session="alpha", dialect="typed")
        await ready(peer)
        await peer.send({"type": "no_such_type", "id": "x1"})
        refusal = await peer.recv()
        await peer.send({"type": "user_message", "id": "m1", "data": {"text": "still there?"}})
        answer = await peer.recv_until(lambda m: m.get("type") in ("llm_complete", "error"))
        await peer.ws.close()
        await asyncio.to_thread(seen.wait_for, "client_disconnected")
        return refusal, answer

    with caplog.at_level(logging.ERROR, logger="llmsock"):
        refusal, answer = run(scenario())

    assert answer[-1]["type"] == "llm_complete"  # the broken listener hurt nothing
    connected, disconnected = seen.of("client_connected"), seen.of("client_disconnected")
    assert [(e.session, e.transport) for e in connected] == [("alpha", "websocket")]
    assert [(e.session, e.transport) for e in disconnected] == [("alpha", "websocket")]
    assert disconnected[0].close_code == 1000
    (error,) = seen.of("client_error")
    assert refusal["type"] == "error"
    # The listener gets llmsock's own code; the typed frame carries seed 004's beside it.
    assert (error.error_code, error.request_id) == (refusal["data"]["llmsockCode"], "x1")
    assert refusal["data"]["code"] == "UNKNOWN_MESSAGE_TYPE"
    assert seen.threads == {"llmsock-events"}  # never the server's thread
    assert isinstance(connected[0].at, datetime)
    assert sum("a listener of" in r.getMessage() for r in caplog.records) == 3


def test_a_listener_may_call_back_into_the_server(fast: ServerThread, run: Any) -> None:
    fast.on("client_connected", lambda event: fast.send_to_session(event.session or "", "Welcome!"))

    async def scenario() -> dict[str, Any]:
        peer = await open_client(fast, session="alpha", dialect="envelope")
        await ready(peer)
        greeting = await peer.recv()
        await peer.ws.close()
        return greeting

    assert notice_of(run(scenario()))["message"] == "Welcome!"


def test_started_and_stopped_are_told_around_the_clients_and_before_start_and_stop_return(run: Any) -> None:
    server = ServerThread(model=BuiltinModel(tokens_per_second=None))
    seen = Recorder()
    for kind in ("started", "client_connected", "client_disconnected"):
        server.on(kind, seen)

    @server.on("stopped")
    def stopped(event: ServerEvent) -> None:
        seen(event)

    async def scenario() -> None:
        peer = await open_client(server, session="alpha", dialect="envelope")
        await ready(peer)
        await asyncio.to_thread(server.stop)  # the client is still connected
        await peer.ws.wait_closed()

    try:
        server.start()
        (started,) = seen.wait_for("started")
        assert server.url in started.message
        run(scenario())
    finally:
        server.stop()
    # stop() returned: the stopped listener has run, after the client was told gone.
    assert [event.kind for event in seen.events] == [
        "started",
        "client_connected",
        "client_disconnected",
        "stopped",
    ]
    with pytest.raises(ValueError, match="unknown server event"):
        server.on("client_conected", seen)  # type: ignore[arg-type]


def test_client_connection_stats_count_what_it_sent_and_received(fast: ServerThread, run: Any) -> None:
    async def scenario() -> tuple[Any, ...]:
        client = Client(fast.url, token=fast.token, backoff=Backoff(base=0.01, cap=0.2), open_timeout=TIMEOUT)
        empty = client.connection_stats()
        async with client:
            await client.ask("Hello", timeout=TIMEOUT)
            round_trip = await client.ping()
            stats = client.connection_stats()
            server_side = await asyncio.to_thread(fast.status)
            # The server drops the connection (it is going away): the client reconnects by itself.
            events = client.events()
            for conn in list(fast.connections):
                fast.call_soon(conn.close, 1001, "going away")
            async for message in events:
                if message.get("name") == "client.reconnected":
                    break
            again = client.connection_stats()
        return empty, stats, round_trip, server_side, again

    empty, stats, round_trip, server_side, again = run(scenario())

    assert empty.connected_at is None and empty.last_message_at is None
    assert (empty.messages_sent, empty.messages_received, empty.average_latency) == (0, 0, None)
    assert stats.messages_sent == 2 == server_side["messagesIn"]  # the prompt and the ping
    assert stats.messages_received == server_side["messagesOut"]  # ready, the turn's events, the pong
    assert stats.connected_at is not None and stats.last_message_at is not None
    assert stats.connected_at <= stats.last_message_at
    assert stats.reconnect_count == 0
    assert (stats.average_latency, stats.pings) == (round_trip, 1)
    assert again.reconnect_count == 1 and again.connected_at is not None
    assert again.connected_at >= stats.connected_at
