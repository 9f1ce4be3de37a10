"""Bad input gets a clear error (or a documented close code) and loses nothing."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from llmsock_widget.models import BuiltinModel
from llmsock_widget.notebook.answer import Answer, ask
from llmsock_widget.server.thread import CLOSE_UNSUPPORTED, ServerThread
from tests.conftest import TIMEOUT

from .conftest import MakeServer, auth, is_turn_end, open_client

BAD_TYPED_FRAMES = {
    "not json": ("hello there", "invalid_message"),
    "json array": ("[1, 2]", "invalid_message"),
    "missing type": ('{"data": {}}', "invalid_message"),
    "type not a string": ('{"type": 5}', "invalid_message"),
    "unknown type": ('{"type": "shout", "data": {}}', "unknown_type"),
    "unknown control": ('{"type": "control", "data": {"type": "explode"}}', "unknown_type"),
    "missing text": ('{"type": "user_message", "data": {}}', "invalid_message"),
    "text not a string": ('{"type": "user_message", "data": {"text": 5}}', "invalid_message"),
    "empty text": ('{"type": "user_message", "data": {"text": "  "}}', "invalid_message"),
    "bad options": (
        '{"type": "user_message", "data": {"text": "x", "options": {"maxTokens": -1}}}',
        "invalid_message",
    ),
    "NaN": (
        '{"type": "user_message", "data": {"text": "x", "options": {"temperature": NaN}}}',
        "invalid_message",
    ),
    "duplicate keys": ('{"type": "ping", "type": "control"}', "invalid_message"),
    "deep nesting": ('{"type": "ping", "data": ' + '{"a": ' * 60 + "1" + "}" * 60 + "}", "invalid_message"),
    "huge integer": ('{"type": "ping", "data": {"n": ' + "9" * 5000 + "}}", "invalid_message"),
    "lone surrogate": ('{"type": "user_message", "data": {"text": "\\ud800"}}', "invalid_message"),
    "data not an object": ('{"type": "ping", "data": []}', "invalid_message"),
}


# The code seed 004's server sends for these frames (the others: INVALID_MESSAGE).
SEED004_CODES = {"unknown type": "UNKNOWN_MESSAGE_TYPE", "unknown control": "UNKNOWN_CONTROL"}


@pytest.mark.parametrize("name", list(BAD_TYPED_FRAMES))
def test_bad_typed_frame_gets_error_and_session_goes_on(server: ServerThread, run, name: str) -> None:
    """Each malformed seed-004 frame gets an error with its code; the same connection then chats normally."""
    frame, code = BAD_TYPED_FRAMES[name]

    async def scenario() -> tuple[dict, dict]:
        client = await open_client(server, dialect="typed")
        await client.recv()
        await client.send(frame)
        error = await client.recv()
        await client.send({"type": "user_message", "id": "ok", "data": {"text": "still here?"}})
        done = (await client.recv_until(lambda m: m["type"] == "llm_complete"))[-1]
        await client.ws.close()
        return error, done

    error, done = run(scenario())
    assert error["type"] == "error"
    assert error["data"]["llmsockCode"] == code and error["data"]["message"]
    assert error["data"]["code"] == SEED004_CODES.get(name, "INVALID_MESSAGE")  # docs/protocol.md, 10.2
    assert error["data"]["recoverable"] is True
    assert "Traceback" not in error["data"]["message"]
    assert "still here?" in done["data"]["fullText"]


def test_empty_plain_text_prompt_is_an_error_envelope(server: ServerThread, run) -> None:
    """An empty prompt in the envelope dialect gets an interaction.error envelope."""

    async def scenario() -> dict:
        client = await open_client(server, dialect="envelope")
        await client.recv()
        await client.send("   ")
        error = await client.recv()
        await client.ws.close()
        return error

    error = run(scenario())
    assert error["name"] == "interaction.error"
    assert error["data"]["event"]["code"] == "invalid_message"


def test_binary_frame_closes_with_1003(server: ServerThread, run) -> None:
    """A binary frame closes the connection with code 1003; other connections keep streaming."""

    async def scenario() -> tuple[int | None, dict]:
        bystander = await open_client(server, session="bin")
        client = await open_client(server, session="bin")
        await bystander.recv()
        await client.recv()
        await client.ws.send(b"\x00\x01")
        try:
            await asyncio.wait_for(client.ws.recv(), TIMEOUT)
        except ConnectionClosed:
            pass
        code = client.ws.close_code
        await bystander.send("are you fine?")
        end = (await bystander.recv_until(is_turn_end))[-1]
        await bystander.ws.close()
        return code, end

    code, end = run(scenario())
    assert code == CLOSE_UNSUPPORTED
    assert end["data"]["event"]["type"] == "end"


def test_oversize_frame_closes_with_1009(make_server: MakeServer) -> None:
    """A frame over max_message_size closes with 1009 (message too big)."""
    server = make_server(max_message_size=4096)

    async def scenario() -> int | None:
        ws = await connect(server.url, additional_headers=auth(server), open_timeout=TIMEOUT, max_size=None)
        await ws.recv()
        await ws.send("x" * 10_000)
        try:
            while True:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
        except ConnectionClosed:
            pass
        return ws.close_code

    assert asyncio.run(scenario()) == 1009


def test_handler_exception_becomes_error_frame(server: ServerThread, run) -> None:
    """An unexpected exception inside the hub is an internal_error frame, not a dead connection."""
    original = server.hub.handle

    def broken(session_id, command, reply):  # type: ignore[no-untyped-def]
        if getattr(command, "request_id", None) == "boom":
            raise RuntimeError("secret detail that must not reach the wire")
        return original(session_id, command, reply)

    server.hub.handle = broken  # type: ignore[method-assign]

    async def scenario() -> tuple[dict, dict]:
        client = await open_client(server, dialect="typed")
        await client.recv()
        await client.send({"type": "ping", "id": "boom"})
        error = await client.recv()
        await client.send({"type": "ping", "id": "fine"})
        pong = await client.recv()
        await client.ws.close()
        return error, pong

    error, pong = run(scenario())
    assert error["type"] == "error" and error["data"]["code"] == "internal_error"
    assert "secret" not in json.dumps(error)
    assert pong["type"] == "pong" and pong["id"] == "fine"


class ExplodingModel(BuiltinModel):
    """A model that raises an unexpected exception type after two tokens."""

    async def stream(self, request):  # type: ignore[no-untyped-def, override]
        count = 0
        async for chunk in super().stream(request):
            yield chunk
            count += 1
            if count == 2:
                raise KeyError("api_key=sk-should-not-leak")


def test_unexpected_model_exception_is_a_clean_model_error(make_server: MakeServer) -> None:
    """A model raising a non-llmsock exception ends the turn with model_error and no leaked detail."""
    server = make_server(model=ExplodingModel(tokens_per_second=None))

    async def scenario() -> list[dict]:
        ws = await connect(server.url, additional_headers=auth(server), open_timeout=TIMEOUT)
        await ws.recv()
        await ws.send("hello")
        seen = []
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            seen.append(m)
            if is_turn_end(m):
                break
        await ws.close()
        return seen

    seen = asyncio.run(scenario())
    error = seen[-1]["data"]["event"]
    assert error["type"] == "error" and error["code"] == "model_error"
    assert "sk-should-not-leak" not in json.dumps(seen)


def test_client_that_stops_reading_is_dropped_and_reply_completes(make_server: MakeServer) -> None:
    """A client that never reads is dropped (close 4008); the reply still completes for others and is saved.

    The close frame waits behind data the client never read, so the client may see 1006 instead;
    the server's counter is the reliable witness.  The other client is ``ask()`` on the same
    session, which reads inside the server, so only the stalled client can fall behind.
    """
    server = make_server(model=BuiltinModel(tokens_per_second=None), outbound_limit=64 * 1024)

    async def scenario() -> tuple[int, Answer]:
        # max_queue=1 and a tiny receive buffer: this client's socket fills and the server must notice.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect, so it sticks
        sock.connect(("127.0.0.1", server.port))
        stalled = await connect(
            server.url + "?session=slow",
            additional_headers=auth(server),
            open_timeout=TIMEOUT,
            max_queue=1,
            sock=sock,
        )
        # 50,000 tokens are about 260 KB of text, sent to the stalled client as merged deltas
        # (docs/protocol.md, section 5.1) and again in the end event: far past the 64 KiB limit
        # and the socket buffers.  Paced, so the turn outlasts the first writes.
        answer = await asyncio.to_thread(
            ask, "/slow 20000 /long 50000", session="slow", server=server, display=False, timeout=TIMEOUT
        )
        stalled.transport.abort()
        return server.stats.slow_consumers_dropped, answer

    code, answer = asyncio.run(scenario())
    saved = server.store.load("slow")  # type: ignore[union-attr]
    assert code == 1
    assert answer.finish_reason == "stop" and len(answer.text) > 200_000
    assert saved is not None and saved.messages[-1].text == answer.text
    assert saved.messages[-1].status == "complete"


def test_error_reply_names_the_message_it_answers(server: ServerThread, run) -> None:
    """An invalid seed-004 prompt with an id gets llm_complete, then an error, both with that id."""

    async def scenario() -> tuple[dict, dict]:
        client = await open_client(server, dialect="typed")
        await client.recv()
        await client.send({"type": "user_message", "id": "bad-1", "data": {"text": 42}})
        complete, error = await client.recv(), await client.recv()
        await client.ws.close()
        return complete, error

    complete, error = run(scenario())
    assert complete["type"] == "llm_complete" and complete["id"] == "bad-1"
    assert complete["data"]["finishReason"] == "error"
    assert error["type"] == "error" and error["id"] == "bad-1"
    assert error["data"]["llmsockCode"] == "invalid_message"
