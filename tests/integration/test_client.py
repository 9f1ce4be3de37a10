"""The Python client against a real server: answers, shared sessions, resume, reload, the chat CLI."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsock_widget.client import (
    Backoff,
    Client,
    ClientClosed,
    ConnectionLost,
    EventStream,
    HandshakeRefused,
    RequestFailed,
    SessionRefused,
)
from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread
from llmsock_widget.stores import JsonFileStore
from tests.conftest import TIMEOUT

from .conftest import MakeServer, assert_no_event_lost

FAST = Backoff(base=0.01, factor=2.0, cap=0.2)
ROOT = Path(__file__).resolve().parents[2]


def client(server: ServerThread, **options: Any) -> Client:
    """Return a client of ``server`` with a fast reconnect schedule."""
    return Client(server.url, token=server.token, backoff=FAST, open_timeout=TIMEOUT, **options)


async def next_message(stream: EventStream) -> dict[str, Any]:
    """Return the stream's next message, bounded by TIMEOUT."""
    return await asyncio.wait_for(anext(stream), TIMEOUT)


async def until(stream: EventStream, predicate: Any) -> list[dict[str, Any]]:
    """Return the stream's messages up to and including the first that matches ``predicate``."""
    seen = []
    while True:
        seen.append(await next_message(stream))
        if predicate(seen[-1]):
            return seen


def event(message: dict[str, Any]) -> dict[str, Any]:
    """Return an envelope's event body ({} for pseudo-events)."""
    data = message.get("data", {})
    return data.get("event", {}) if isinstance(data.get("event"), dict) else {}


def sequence(message: dict[str, Any]) -> int | None:
    """Return an envelope's sequence, or None for replies and pseudo-events."""
    meta = message.get("data", {}).get("meta")
    return meta.get("sequence") if isinstance(meta, dict) else None


def is_end(message: dict[str, Any]) -> bool:
    """Whether an envelope ends a turn."""
    return message.get("name") == "interaction.model" and event(message).get("type") in ("end", "error")


def is_idle(message: dict[str, Any]) -> bool:
    """Whether an envelope is the status: idle that follows a turn."""
    return message.get("name") == "interaction.status" and event(message).get("status") == "idle"


def deltas(messages: list[dict[str, Any]]) -> str:
    """Return the concatenated text deltas of ``messages``."""
    return "".join(event(m).get("text", "") for m in messages if event(m).get("type") == "delta")


def drop(server: ServerThread, session: str | None, dialect: str | None = None) -> None:
    """Abort, from the server's side, the TCP stream of the connections on ``session`` (in ``dialect``)."""
    server.call_soon(abort_streams, server, session, dialect)


def abort_streams(server: ServerThread, session: str | None, dialect: str | None = None) -> None:
    """Abort the matching connections' TCP streams (call on the server's loop)."""
    for handler in list(server.connections):
        if handler.session_id == session and dialect in (None, handler.dialect) and handler.ws_connection:
            handler.ws_connection.stream.close()


async def until_on_server(condition: Any) -> None:
    """Wait (on the server's loop) until ``condition()`` holds, bounded by TIMEOUT."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), TIMEOUT)


def assert_contiguous(messages: list[dict[str, Any]]) -> None:
    """Assert no session event is missing or repeated (deltas may be merged: :func:`assert_no_event_lost`)."""
    assert_no_event_lost([(seq, event(m).get("type")) for m in messages if (seq := sequence(m)) is not None])


# -- answers and shared sessions -----------------------------------------------------------


def test_ask_returns_the_text_of_the_end_event(server: ServerThread, run) -> None:
    """ask() returns the end event's text and finish reason; the app's stream holds the same turn."""

    async def scenario() -> tuple[Any, list[dict[str, Any]], dict[str, int]]:
        async with client(server) as c:
            stream = c.events()
            answer = await c.ask("Tell me about sockets", timeout=TIMEOUT)
            seen = await until(stream, is_end)
            return answer, seen, c.stats

    answer, seen, stats = run(scenario())
    end = event(seen[-1])
    assert answer.text == end["text"] == deltas(seen) and answer.text.startswith("You said")
    assert answer.finish_reason == "stop" and answer.error is None
    assert stats["messages_out"] == 1 and stats["messages_in"] >= len(seen) and stats["reconnects"] == 0


def test_two_clients_on_one_session_see_the_same_events(server: ServerThread, run) -> None:
    """Two clients on one session receive the same session events for a turn one of them starts:
    the same events besides deltas, in order, and the same answer text (each connection's deltas
    may be merged differently, as its reading allows)."""

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with client(server, session="shared") as a, client(server, session="shared") as b:
            stream_a, stream_b = a.events(), b.events()
            await a.ask("/long 200", timeout=TIMEOUT)
            return await until(stream_a, is_idle), await until(stream_b, is_idle)

    seen_a, seen_b = run(scenario())

    def view(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (sequence(m), m["name"], event(m).get("type"), event(m).get("text"))
            for m in messages
            if event(m).get("type") != "delta"
        ]

    ends = [event(m) for m in seen_a if event(m).get("type") == "end"]
    assert view(seen_a) == view(seen_b) and deltas(seen_a) == deltas(seen_b) == ends[-1]["text"]
    assert sequence(seen_a[-1]) > 200  # a long turn: 200 words, each its own event
    assert_contiguous(seen_a)
    assert_contiguous(seen_b)


def test_control_errors_and_abort(server: ServerThread, run) -> None:
    """An error reply raises RequestFailed with the server's code; abort ends the turn as aborted."""

    async def scenario() -> tuple[str, dict[str, Any], Any]:
        async with client(server) as c:
            stream = c.events()
            asked = asyncio.ensure_future(c.ask("/hold 3", timeout=TIMEOUT))
            await until(stream, lambda m: event(m).get("type") == "delta")
            with pytest.raises(RequestFailed) as refused:
                await c.control("clear_history")
            result = await c.abort()
            return refused.value.code, result, await asked

    code, result, answer = run(scenario())
    assert code == "invalid_request"
    assert result["action"] == "abort" and result["ok"] is True
    assert answer.finish_reason == "aborted" and answer.text.startswith("You")


# -- resume and reload ---------------------------------------------------------------------


def test_dropped_connection_resumes_seamlessly(server: ServerThread, run) -> None:
    """A server-side drop mid-answer: the client resumes, the app sees every event once, in order."""

    async def scenario() -> tuple[Any, list[dict[str, Any]], dict[str, int]]:
        async with client(server) as c:
            stream = c.events()
            asked = asyncio.ensure_future(c.ask("/slow 300 /long 300", timeout=TIMEOUT))
            seen: list[dict[str, Any]] = []
            while len(deltas(seen).split()) < 40:
                seen.append(await next_message(stream))
            drop(server, c.session)
            seen += await until(stream, is_end)
            return await asked, seen, c.stats

    answer, seen, stats = run(scenario())
    end = event(seen[-1])
    assert answer.text == end["text"] == deltas(seen)
    assert_contiguous(seen)
    notes = [m for m in seen if m["name"] == "client.reconnected"]
    assert notes and all(n["data"]["resumed"] is True for n in notes)
    assert stats["reconnects"] >= 1 and stats["replayed"] >= 0 and stats["reloads"] == 0


def test_typed_client_resumes_too(server: ServerThread, run) -> None:
    """In the seed-004 dialect, ask() survives a drop and returns the llm_complete text."""

    async def scenario() -> tuple[Any, list[dict[str, Any]], int]:
        async with client(server, dialect="typed") as c:
            stream = c.events()
            asked = asyncio.ensure_future(c.ask("/slow 300 /long 200", timeout=TIMEOUT))
            chunks = 0
            seen = []
            while chunks < 30:
                seen.append(await next_message(stream))
                chunks += seen[-1].get("type") == "llm_chunk"
            drop(server, c.session)
            seen += await until(stream, lambda m: m.get("type") == "llm_complete")
            return await asked, seen, c.stats["reconnects"]

    answer, seen, reconnects = run(scenario())
    text = "".join(m["data"]["chunk"] for m in seen if m.get("type") == "llm_chunk")
    assert answer.text == seen[-1]["data"]["fullText"] == text and reconnects >= 1
    seqs = [m["metadata"]["sequence"] for m in seen if "sequence" in m.get("metadata", {})]
    assert seqs == sorted(set(seqs))  # seed 004 skips start/usage, so only order and uniqueness hold


def test_reconnect_to_a_forgotten_session_reloads_and_ask_still_answers(server: ServerThread, run) -> None:
    """A session evicted and no longer resumable is reloaded; ask() takes its answer from the history."""

    async def vanish(session: str | None) -> None:
        abort_streams(server, session)
        await until_on_server(lambda: session not in server.hub.sessions)  # turn over, saved, evicted
        server.hub._parked.clear()  # and its recent events forgotten, as after many other sessions

    async def scenario() -> tuple[Any, list[dict[str, Any]]]:
        async with client(server) as c:
            stream = c.events()
            asked = asyncio.ensure_future(c.ask("/slow 400 /long 40", timeout=TIMEOUT))
            await until(stream, lambda m: event(m).get("type") == "delta")
            # Block this loop while the server drops us and finishes the turn: we miss its end for sure.
            server.submit(vanish(c.session)).result(TIMEOUT)
            seen = await until(stream, lambda m: m["name"] == "client.reloaded")
            return await asked, seen

    answer, seen = run(scenario())
    reloaded = seen[-1]["data"]
    assert reloaded["restarted"] is False
    assistant = reloaded["history"]["messages"][-1]
    assert answer.text == assistant["text"] and answer.finish_reason == "stop" and len(answer.text) > 100


def test_reload_mid_answer_continues_from_the_streaming_text(server: ServerThread, run) -> None:
    """Missing more than the replay buffer: reload mid-answer, go on from history's current text."""

    async def fall_behind(session: str | None, last: int) -> None:
        abort_streams(server, session)
        live = server.hub.sessions[session]
        await until_on_server(lambda: live.state.seq > last + 4200)

    async def scenario() -> tuple[Any, list[dict[str, Any]]]:
        async with client(server) as c:
            stream = c.events()
            asked = asyncio.ensure_future(c.ask("/slow 8000 /long 9000", timeout=TIMEOUT))
            seen = await until(stream, lambda m: event(m).get("type") == "delta")
            server.submit(fall_behind(c.session, sequence(seen[-1]) or 0)).result(TIMEOUT)
            seen = await until(stream, lambda m: m["name"] == "client.reloaded")
            seen += await until(stream, is_end)
            return await asked, seen

    answer, seen = run(scenario())
    at = next(i for i, m in enumerate(seen) if m["name"] == "client.reloaded")
    reloaded, after = seen[at]["data"], seen[at + 1 :]
    assert reloaded["restarted"] is False and reloaded["history"]["current"] is not None
    assert sequence(after[0]) == reloaded["sequence"] + 1
    assert_contiguous(after)
    assert answer.text == event(seen[-1])["text"] == reloaded["history"]["current"]["text"] + deltas(after)


def test_server_restart_reloads_the_history(tmp_path: Path, run, make_server: MakeServer) -> None:
    """After a restart on the same port (new epoch), the client reloads the history and goes on."""
    store_dir = tmp_path / "sessions"
    first = make_server(
        model=BuiltinModel(tokens_per_second=None), store=JsonFileStore(store_dir, fsync=False)
    )

    async def scenario() -> tuple[Any, list[dict[str, Any]], Any, dict[str, int]]:
        async with client(first, session="kept") as c:
            stream = c.events()
            before = await c.ask("/echo remember this sentence", timeout=TIMEOUT)
            await asyncio.to_thread(first.stop)
            await asyncio.to_thread(
                make_server,
                port=first.port,
                token=first.token,
                model=BuiltinModel(tokens_per_second=None),
                store=JsonFileStore(store_dir, fsync=False),
            )
            seen = await until(stream, lambda m: m["name"] == "client.reloaded")
            after = await c.ask("/echo and this one", timeout=TIMEOUT)
            return before, seen, after, c.stats

    before, seen, after, stats = run(scenario())
    reloaded = seen[-1]["data"]
    texts = [m["text"] for m in reloaded["history"]["messages"]]
    assert before.text == "remember this sentence" and before.text in texts
    assert reloaded["restarted"] is True and reloaded["sequence"] >= 1
    assert [m["data"]["resumed"] for m in seen if m["name"] == "client.reconnected"] == [False]
    assert after.text == "and this one" and after.finish_reason == "stop"
    assert stats["reloads"] == 1 and stats["reconnects"] == 1


def test_slow_consumer_close_reconnects_and_the_answer_is_whole(run, make_server: MakeServer) -> None:
    """A 4008 close (outbound queue overflow) is followed by a reconnect; ask() returns the whole answer.

    A client that reads is never that far behind (its deltas wait merged), so the server's limit
    is lowered to one character for a moment, mid-answer: the next delta takes the real overflow
    path and closes with 4008; the limit is back once the server saw the client go.
    """
    plain = make_server(model=BuiltinModel(tokens_per_second=None))
    tight = make_server(model=BuiltinModel(tokens_per_second=400))
    limit = tight.outbound_limit

    def restore(_event: Any) -> None:
        tight.call_soon(setattr, tight, "outbound_limit", limit)

    tight.on("client_disconnected", restore)

    async def scenario() -> tuple[str, Any, list[dict[str, Any]]]:
        async with client(plain) as c:
            expected = (await c.ask("/long 200", timeout=TIMEOUT)).text
        async with client(tight) as c:
            stream = c.events()
            asked = asyncio.ensure_future(c.ask("/long 200", timeout=TIMEOUT))
            await until(stream, lambda m: event(m).get("type") == "delta")
            tight.call_soon(setattr, tight, "outbound_limit", 1)
            answer = await asked
            stream.close()
            return expected, answer, [m async for m in stream]

    expected, answer, seen = run(scenario())
    assert answer.text == expected and answer.finish_reason == "stop"
    assert 4008 in [m["data"]["code"] for m in seen if m["name"] == "client.reconnecting"]


def test_heartbeat_detects_a_silent_server(server: ServerThread, run) -> None:
    """A server that stops answering pings is dropped by the heartbeat (1011) and reconnected to."""
    gate = threading.Event()

    async def scenario() -> tuple[list[dict[str, Any]], Any]:
        async with client(server, heartbeat=0.2) as c:
            stream = c.events()
            server.call_soon(gate.wait, TIMEOUT)  # the server's loop stops: no pong, no frame
            try:
                seen = await until(stream, lambda m: m["name"] == "client.reconnecting")
            finally:
                gate.set()
            seen += await until(stream, lambda m: m["name"] == "client.reconnected")
            return seen, await c.ask("/echo alive", timeout=TIMEOUT)

    seen, answer = run(scenario())
    assert seen[0]["data"]["code"] == 1011 and "ping" in seen[0]["data"]["reason"]
    assert seen[-1]["data"]["resumed"] is True and answer.text == "alive"


def test_giving_up_ends_streams_with_connection_lost(run, make_server: MakeServer) -> None:
    """When the server stays away for max_attempts tries, streams raise ConnectionLost and so do sends."""
    srv = make_server(model=BuiltinModel(tokens_per_second=None))

    async def scenario() -> list[dict[str, Any]]:
        c = Client(srv.url, token=srv.token, backoff=Backoff(base=0.01, cap=0.02, max_attempts=3))
        await c.connect()
        stream = c.events()
        await asyncio.to_thread(srv.stop)
        seen: list[dict[str, Any]] = []
        with pytest.raises(ConnectionLost):
            while True:
                seen.append(await next_message(stream))
        with pytest.raises(ConnectionLost):
            await c.send_prompt("anyone there?")
        await c.close()
        return seen

    seen = run(scenario())
    attempts = [m["data"]["attempt"] for m in seen if m["name"] == "client.reconnecting"]
    assert attempts == [1, 2, 3]


def test_restart_with_a_new_token_ends_the_client(run, make_server: MakeServer) -> None:
    """A restarted server with another token refuses the reconnect: streams raise HandshakeRefused."""
    first = make_server(model=BuiltinModel(tokens_per_second=None))

    async def scenario() -> list[dict[str, Any]]:
        async with client(first) as c:
            stream = c.events()
            await asyncio.to_thread(first.stop)
            await asyncio.to_thread(make_server, port=first.port, model=BuiltinModel(tokens_per_second=None))
            seen: list[dict[str, Any]] = []
            with pytest.raises(HandshakeRefused):
                while True:
                    seen.append(await next_message(stream))
            return seen

    seen = run(scenario())
    assert seen and all(m["name"] == "client.reconnecting" for m in seen)


# -- refusals, secrets, closing ------------------------------------------------------------


def test_invalid_session_is_refused_without_retrying(server: ServerThread, run) -> None:
    """A 4400 close raises SessionRefused from connect(); nothing is retried."""

    async def scenario() -> tuple[int, int]:
        c = client(server, session="not.valid")
        with pytest.raises(SessionRefused) as refused:
            await c.connect()
        await c.close()
        return refused.value.close_code, c.stats["attempts"]

    assert run(scenario()) == (4400, 0)


def test_wrong_token_is_refused_and_never_shown(server: ServerThread, run) -> None:
    """A wrong token raises HandshakeRefused (401); the token is in no URL, repr or message."""
    secret = "not-the-token-" + "x" * 20

    async def scenario() -> tuple[int, str, str]:
        c = Client(server.url, token=secret, backoff=FAST, open_timeout=TIMEOUT)
        with pytest.raises(HandshakeRefused) as refused:
            await c.connect()
        await c.close()
        return refused.value.status, str(refused.value), repr(c)

    status, message, text = run(scenario())
    assert status == 401 and "invalid token" in message
    assert secret not in message and secret not in text
    with pytest.raises(ValueError, match="token"):
        Client(server.url + "?access_token=abc", token=server.token)


def test_token_is_not_logged_even_at_debug(server: ServerThread, run, caplog) -> None:
    """With every logger at DEBUG, a session with a reconnect logs nothing that holds the token."""
    caplog.set_level(logging.DEBUG)

    async def scenario() -> int:
        async with client(server) as c:
            stream = c.events()
            asked = asyncio.ensure_future(c.ask("/slow 300 /long 60", timeout=TIMEOUT))
            await until(stream, lambda m: event(m).get("type") == "delta")
            drop(server, c.session)
            await asked
            return c.stats["reconnects"]

    assert run(scenario()) >= 1
    assert caplog.records and server.token not in caplog.text


def test_close_ends_streams_and_refuses_sends(server: ServerThread, run) -> None:
    """close() ends every event stream; sending afterwards raises ClientClosed."""

    async def scenario() -> list[dict[str, Any]]:
        c = client(server)
        stream = c.events()
        await c.connect()
        await c.close()
        await c.close()  # idempotent
        seen = [m async for m in stream]
        with pytest.raises(ClientClosed):
            await c.send_prompt("hello")
        with pytest.raises(ClientClosed):
            await c.connect()
        return seen

    seen = run(scenario())
    assert [event(m).get("type") for m in seen] == ["ready"]


# -- property: any drops, same answer ------------------------------------------------------

PACED = "/slow 2000 /long 600"


@pytest.fixture(scope="module")
def shared_server() -> Iterator[ServerThread]:
    """One server for every example of the property test."""
    srv = ServerThread(model=BuiltinModel(tokens_per_second=None)).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def baseline(shared_server: ServerThread) -> str:
    """The text of an uninterrupted run of the property test's prompt."""

    async def ask() -> str:
        async with client(shared_server) as c:
            return (await c.ask(PACED, timeout=TIMEOUT)).text

    return asyncio.run(ask())


@settings(max_examples=15, deadline=None)
@given(points=st.lists(st.integers(min_value=1, max_value=590), min_size=1, max_size=3, unique=True))
def test_any_drops_give_the_uninterrupted_text(shared_server: ServerThread, baseline: str, points) -> None:
    """Dropping the connection at random delta counts changes nothing the app sees: same text, no gap."""

    async def scenario() -> tuple[Any, list[dict[str, Any]], dict[str, int]]:
        pending = sorted(points)
        async with (
            client(shared_server) as c,
            client(shared_server, session=c.session, dialect="typed") as watcher,
        ):
            # The watcher keeps the session in the server's memory (and its replay buffer with it);
            # only the envelope connection is dropped.
            assert watcher.session == c.session
            stream = c.events()
            asked = asyncio.ensure_future(c.ask(PACED, timeout=TIMEOUT))
            seen: list[dict[str, Any]] = []
            count, armed = 0, True
            while not seen or not is_end(seen[-1]):
                seen.append(await next_message(stream))
                count += event(seen[-1]).get("type") == "delta"
                armed = armed or seen[-1]["name"] == "client.reconnected"
                if armed and pending and count >= pending[0]:
                    pending.pop(0)
                    armed = False  # the next drop waits for the reconnect, so it hits a live connection
                    drop(shared_server, c.session, "envelope")
            return await asked, seen, c.stats

    answer, seen, stats = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
    assert answer.text == baseline == deltas(seen) == event(seen[-1])["text"]
    assert_contiguous(seen)
    assert all(m["data"]["resumed"] for m in seen if m["name"] == "client.reconnected")
    assert stats["reloads"] == 0


# -- the chat command ----------------------------------------------------------------------


async def start_chat(server: ServerThread, *args: str) -> asyncio.subprocess.Process:
    """Start ``python -m llmsock_widget chat`` on ``server`` with the token in LLMSOCK_TOKEN."""
    env = {**os.environ, "LLMSOCK_TOKEN": server.token, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmsock_widget",
        "chat",
        "--url",
        server.url,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )


async def read_until(stream: asyncio.StreamReader, marker: bytes, sofar: bytearray) -> bytes:
    """Read ``stream`` into ``sofar`` until it holds ``marker``; return everything read so far."""
    while marker not in sofar:
        chunk = await asyncio.wait_for(stream.read(4096), TIMEOUT)
        if not chunk:
            raise AssertionError(f"output ended before {marker!r}: {bytes(sofar)!r}")
        sofar.extend(chunk)
    return bytes(sofar)


def test_chat_streams_an_answer_and_exits_on_eof(server: ServerThread, run) -> None:
    """The chat prints the answer of a line from stdin, exits 0 at EOF, and never shows the token."""

    async def scenario() -> tuple[int | None, bytes, bytes]:
        proc = await start_chat(server, "--session", "cli")
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write(b"/echo hello from the pipe\n")
        await proc.stdin.drain()
        out = await read_until(proc.stdout, b"hello from the pipe\n", bytearray())
        proc.stdin.close()
        code = await asyncio.wait_for(proc.wait(), TIMEOUT)
        return code, out + await proc.stdout.read(), await proc.stderr.read()

    code, out, err = run(scenario())
    assert code == 0 and out == b"hello from the pipe\n"
    assert b"connected to session cli" in err and server.token.encode() not in out + err


def test_chat_ctrl_c_stops_the_answer_and_keeps_the_chat(server: ServerThread, run) -> None:
    """Ctrl-C mid-answer prints "(stopped)" and the chat goes on; Ctrl-C at the prompt exits 0."""

    async def scenario() -> tuple[int | None, bytes, bytes]:
        proc = await start_chat(server)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        out = bytearray()
        proc.stdin.write(b"/hold 3\n")
        await proc.stdin.drain()
        await read_until(proc.stdout, b"You", out)
        proc.send_signal(signal.SIGINT)
        await read_until(proc.stdout, b"(stopped)\n", out)
        proc.stdin.write(b"/echo still here\n")
        await proc.stdin.drain()
        await read_until(proc.stdout, b"still here\n", out)
        proc.send_signal(signal.SIGINT)  # at the prompt: leave
        code = await asyncio.wait_for(proc.wait(), TIMEOUT)
        return code, bytes(out), await proc.stderr.read()

    code, out, err = run(scenario())
    assert code == 0 and out.endswith(b"\n(stopped)\nstill here\n")
    assert server.token.encode() not in out + err


def test_chat_without_the_token_variable_exits_2(server: ServerThread, run) -> None:
    """Without the token's environment variable the chat exits 2 and says which variable is missing."""

    async def scenario() -> tuple[int | None, bytes]:
        proc = await start_chat(server, "--token-env", "LLMSOCK_TEST_NO_SUCH_VARIABLE")
        _, err = await asyncio.wait_for(proc.communicate(b""), TIMEOUT)
        return proc.returncode, err

    code, err = run(scenario())
    assert code == 2 and b"LLMSOCK_TEST_NO_SUCH_VARIABLE is not set" in err


def test_chat_refuses_a_token_on_the_command_line(capsys) -> None:
    """--token is refused with exit 2, and the refusal does not repeat the value."""
    from llmsock_widget.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["chat", "--url", "ws://127.0.0.1:9/ws", "--token", "s3cret-value"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "never taken from the command line" in err and "s3cret" not in err
