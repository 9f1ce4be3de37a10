"""The ``llmcore`` dialect: llm-core v1.21.5's envelopes exactly as its code sends them.

Frames are ``{"name": "interaction.<kind>", "data": {"event": <InteractionEvent>}}`` (llm-core's
``toEventStreamEvent``); on ``/sse`` the block is ``event: <name>`` and ``data: <data>``, as in
llm-core's own SSE example.  The fixture tests/fixtures/wire/llmcore/session.json was captured from
this server with the builtin model (which reasons aloud here first on a ``/think`` prompt: it has no
reasoning of its own); scripts/dev/llmcore_reducer.sh feeds it to llm-core's own reducer.
Regenerate them with ``.venv/bin/python -m tests.integration.test_llmcore_dialect``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from llmsock_widget.core.events import (
    ControlResult,
    Diagnostic,
    ErrorReply,
    ModelDelta,
    ModelEnd,
    Pong,
    SessionReady,
    StatusChanged,
)
from llmsock_widget.errors import InvalidFrame
from llmsock_widget.models import BuiltinModel
from llmsock_widget.models.base import ModelChunk, ModelRequest, ReasoningChunk
from llmsock_widget.server.thread import ServerThread
from llmsock_widget.wire import protocol
from llmsock_widget.wire.codes import CLOSE_SESSION_REFUSED, SUBPROTOCOL_LLMCORE
from llmsock_widget.wire.decode import parse_dialect
from llmsock_widget.wire.encode import to_llmcore
from llmsock_widget.wire.strictjson import dumps
from tests.conftest import TIMEOUT

from .conftest import ORIGIN, MakeServer, auth, is_model, is_turn_end, open_client
from .test_sse_resume import Block, Follower, follow

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "wire" / "llmcore" / "session.json"
SESSION = "llmcore-fixture"

# The turns captured: (name, prompt).  "abort" is stopped after its third delta.
TURNS = (
    ("plain", "Hello from llm-core"),
    ("tool", '/tool calculate {"expression": "6*7"}'),
    ("reasoning", "/think What is two and two?"),
    ("error", "/error 3"),
    ("abort", "/hold 3"),
)


class ThinkingModel(BuiltinModel):
    """The builtin model, which first reasons aloud (two reasoning deltas) on a ``/think`` prompt."""

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        prompt = str(request.messages[-1].get("content") or "")
        if prompt.startswith("/think "):
            yield ReasoningChunk(text="Two and two ")
            yield ReasoningChunk(text="make four.")
            request = ModelRequest(
                messages=(*request.messages[:-1], {"role": "user", "content": "/echo Four."}),
                options=request.options,
                tools=request.tools,
                session_id=request.session_id,
            )
        async for chunk in super().stream(request):
            yield chunk


# -- capture ------------------------------------------------------------------------------------


def sequence(message: dict[str, Any]) -> int:
    """Return the sequence of a session event's frame."""
    return int(message["data"]["meta"]["sequence"])


def is_idle(block: Block) -> bool:
    """Whether ``block`` is the llmcore frame of ``status: idle`` (the turn is over)."""
    event = block.data["event"]
    return event["kind"] == "event-stream" and event["event"]["data"] == {"type": "status", "status": "idle"}


def frame(block: Block) -> dict[str, Any]:
    """Return the WebSocket frame that carries what ``block`` does (same name, same data)."""
    return {"name": block.event, "data": block.data}


async def capture(server: ServerThread) -> dict[str, Any]:
    """Drive the turns over a WebSocket and record what an llmcore ``/sse`` follower receives."""
    driver = await open_client(server, session=SESSION)
    await driver.recv()
    turns = []
    async with follow(server, f"session={SESSION}&dialect=llmcore") as stream:
        ready = frame(await stream.next())
        for name, prompt in TURNS:
            await driver.send(prompt)
            if name == "abort":  # stopped once its three deltas are out, so the partial answer is known
                start = (await driver.recv_until(is_model("start")))[-1]["data"]["meta"]["sequence"]
                # They may come merged into fewer frames (docs/protocol.md, section 5.1); the third
                # delta's sequence is the start's plus three.
                third = start + 3
                await driver.recv_until(lambda m, third=third: is_model("delta")(m) and sequence(m) >= third)
                await driver.send({"type": "control", "id": "stop-1", "data": {"type": "abort"}})
            end = (await driver.recv_until(is_turn_end))[-1]["data"]["event"]
            blocks = await stream.until(is_idle)
            expect = {"type": end["type"], "text": end["text"]}
            expect |= {"finishReason": end["finishReason"]} if end["type"] == "end" else {"code": end["code"]}
            turns.append(
                {"name": name, "prompt": prompt, "expect": expect, "frames": [frame(b) for b in blocks]}
            )
    await driver.ws.close()
    replies = await post(server, {"type": "control", "id": "history-1", "data": {"type": "get_history"}})
    replies += (await post(server, {"type": "ping", "id": "ping-1"}))[1:]
    return {"session": SESSION, "ready": ready, "turns": turns, "replies": replies}


async def post(server: ServerThread, command: dict[str, Any]) -> list[dict[str, Any]]:
    """POST ``command`` to ``/sse`` in the llmcore dialect; return its frames (ready, reply)."""
    url = f"http://127.0.0.1:{server.port}/sse?session={SESSION}&dialect=llmcore"
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        async with client.stream("POST", url, headers=auth(server), content=json.dumps(command)) as response:
            assert response.status_code == 200
            follower = Follower(response)
            return [frame(await follower.next()), frame(await follower.next())]  # the ready, the reply


def make_fixture_server(make: Any) -> ServerThread:
    return make(model=ThinkingModel(tokens_per_second=None), allowed_origins=[ORIGIN])


# -- shape: what may differ from run to run ----------------------------------------------------

_VOLATILE_KEYS = {"timestamp", "ts", "epoch", "createdAt", "updatedAt", "lastActivity", "connectedAt"}
_RANDOM_ID = re.compile(r"\b[tme]-[A-Za-z0-9_-]{16}")


def shape(value: Any, key: str = "") -> Any:
    """Return ``value`` with timestamps, the epoch and random ids replaced by placeholders."""
    if key in _VOLATILE_KEYS:
        return f"<{key}>"
    if key == "durationMs" or key == "server" or key == "connection":
        return f"<{key}>"
    if isinstance(value, dict):
        return {k: shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    if isinstance(value, str):
        return _RANDOM_ID.sub("<id>", value)
    return value


def load_fixture() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


# -- tests: the server's frames are the fixture's ------------------------------------------------


def test_server_frames_in_the_llmcore_dialect_match_the_fixture(make_server: MakeServer, run) -> None:
    """A fresh capture (builtin model: deterministic) has the committed fixture's shape, frame by frame."""
    captured = run(capture(make_fixture_server(make_server)))
    fixture = load_fixture()
    assert shape(captured["ready"]) == shape(fixture["ready"])
    assert [t["name"] for t in captured["turns"]] == [t["name"] for t in fixture["turns"]]
    for now, then in zip(captured["turns"], fixture["turns"], strict=True):
        assert shape(now) == shape(then), now["name"]
    assert shape(captured["replies"]) == shape(fixture["replies"])


def test_fixture_frames_are_llm_core_interaction_events() -> None:
    """Every frame is ``interaction.<kind>`` around ``{"event": {kind, event|entry, meta}}`` (llm-core's)."""
    fixture = load_fixture()
    frames = [fixture["ready"], *(f for t in fixture["turns"] for f in t["frames"]), *fixture["replies"]]
    last = 0
    for f in frames:
        assert set(f) == {"name", "data"} and set(f["data"]) == {"event"}
        event = f["data"]["event"]
        assert f["name"] == f"interaction.{event['kind']}"
        assert set(event) == {"kind", "entry" if event["kind"] == "diagnostic" else "event", "meta"}
        meta = event["meta"]
        assert set(meta) <= {"sequence", "timestamp", "sourceId", "correlationId", "interactionId"}
        assert type(meta["sequence"]) is int and type(meta["timestamp"]) is int and meta["sourceId"]
        if meta["sequence"]:  # a session event: one sequence after the other
            assert meta["sequence"] > last and meta["interactionId"] == SESSION
            last = meta["sequence"]
        if event["kind"] == "model":
            assert meta["sourceId"] == "model.primary" and meta["correlationId"].startswith("t-")


def test_each_turn_is_start_deltas_and_one_end_or_error() -> None:
    """Model events read as llm-core's ModelStreamEvent: start, deltas, usage, then end (no text) or error."""
    for turn in load_fixture()["turns"]:
        model = [f["data"]["event"]["event"] for f in turn["frames"] if f["name"] == "interaction.model"]
        assert model[0]["type"] == "start" and set(model[0]) == {"type", "id", "modelId"}
        last = model[-1]
        assert last["type"] == turn["expect"]["type"]
        text = "".join(m.get("text", "") for m in model if m["type"] == "delta")
        assert text == turn["expect"]["text"]
        if last["type"] == "end":
            assert last == {"type": "end", "finishReason": turn["expect"]["finishReason"]}, "no text in end"
        else:
            assert last == {
                "type": "error",
                "error": {
                    "code": turn["expect"]["code"],
                    "message": last["error"]["message"],
                    "recoverable": True,
                },
            }
        for usage in (m for m in model if m["type"] == "usage"):
            assert set(usage) == {"type", "usage"} and set(usage["usage"]) == {"inputTokens", "outputTokens"}


def test_tool_and_reasoning_deltas_are_llm_core_tool_calls_and_results() -> None:
    """``toolCall`` is llm-core's ToolCall (id, name, arguments); ``toolResult`` its ToolResult."""
    turns = {t["name"]: t for t in load_fixture()["turns"]}
    model = [f["data"]["event"]["event"] for f in turns["tool"]["frames"] if f["name"] == "interaction.model"]
    call = next(m["toolCall"] for m in model if "toolCall" in m)
    result = next(m["toolResult"] for m in model if "toolResult" in m)
    assert call == {"id": "call_2_1", "name": "calculate", "arguments": {"expression": "6*7"}}
    assert result == {"name": "calculate", "toolCallId": "call_2_1", "result": 42}
    thinking = [
        f["data"]["event"]["event"] for f in turns["reasoning"]["frames"] if f["name"] == "interaction.model"
    ]
    assert [m["reasoning"] for m in thinking if "reasoning" in m] == ["Two and two ", "make four."]


def test_the_llmcore_subprotocol_gives_the_same_frames_on_a_websocket(server: ServerThread, run) -> None:
    """``llmsock.llmcore.v1`` fixes the dialect: the WebSocket frames are the SSE blocks' name and data."""

    async def scenario() -> tuple[str | None, list[dict[str, Any]]]:
        client = await open_client(server, session="ws-llmcore", dialect="llmcore")
        frames = [await client.recv()]
        await client.send("/echo one two")
        frames += await client.recv_until(
            lambda m: m["name"] == "interaction.model" and m["data"]["event"]["event"]["type"] == "end"
        )
        await client.ws.close()
        return client.ws.subprotocol, frames

    subprotocol, frames = run(scenario())
    assert subprotocol == SUBPROTOCOL_LLMCORE
    ready = frames[0]["data"]["event"]
    assert ready["kind"] == "event-stream" and ready["event"]["name"] == "interaction.session"
    assert ready["event"]["data"]["type"] == "ready" and ready["meta"]["sequence"] == 0
    model = [f["data"]["event"]["event"] for f in frames if f["name"] == "interaction.model"]
    assert "".join(m.get("text", "") for m in model if m["type"] == "delta") == "one two"


def test_the_dialect_query_parameter_fixes_a_websocket_dialect(server: ServerThread, run) -> None:
    """``/ws?dialect=llmcore`` without a subprotocol speaks llmcore from its ready on; a bad name is 4400."""

    async def scenario() -> tuple[dict[str, Any], int | None, str | None]:
        url = f"{server.url}?session=query-llmcore&dialect=llmcore"
        async with connect(url, additional_headers=auth(server), open_timeout=TIMEOUT) as ws:
            ready = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        async with connect(f"{server.url}?dialect=llm-core", additional_headers=auth(server)) as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert ws.close_code is not None
            return ready, ws.close_code, ws.close_reason

    ready, code, reason = run(scenario())
    assert ready["name"] == "interaction.event-stream"
    assert ready["data"]["event"]["event"]["data"]["type"] == "ready"
    assert code == CLOSE_SESSION_REFUSED and reason == "dialect must be one of envelope, typed, llmcore"


def test_an_unknown_or_typed_dialect_on_sse_is_refused(server: ServerThread, run) -> None:
    """``/sse?dialect=`` takes envelope and llmcore; another name is a 400 that says which."""

    async def scenario(query: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            return await client.get(f"http://127.0.0.1:{server.port}/sse?{query}", headers=auth(server))

    for query, message in (
        ("dialect=llm-core", "dialect must be one of envelope, typed, llmcore"),
        ("dialect=typed", "/sse speaks the envelope and llmcore dialects"),
    ):
        response = run(scenario(query))
        assert response.status_code == 400
        assert response.json()["error"] == {"code": "invalid_message", "message": message}


# -- the encoder, pure ---------------------------------------------------------------------------


def test_the_delta_fast_path_is_the_general_encoding() -> None:
    """A delta's hand-built llmcore frame is byte for byte what the general encoder gives."""
    for turn_id in ("t-1", None):
        delta = ModelDelta(
            session_id="s", seq=4, ts=9, turn_id=turn_id, text='a "quoted"\nline é', message_id="m"
        )
        assert protocol.encode(delta, "llmcore") == dumps(to_llmcore(delta))


@pytest.mark.parametrize(
    "event",
    [
        SessionReady(session_id="s", seq=7, status="idle", ts=1, epoch="e-x"),
        ControlResult(action="get_status", ok=True, message="ok", data={}, ts=1, request_id="r"),
        ErrorReply(code="invalid_message", message="empty prompt", ts=1),
        Pong(ts=1, request_id="p"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_replies_have_sequence_zero(event: Any) -> None:
    """A reply is no session event: sequence 0 never moves llm-core's reducer past a session event."""
    frame = json.loads(protocol.frames(event, "llmcore")[0])
    assert frame["name"] == "interaction.event-stream"
    assert frame["data"]["event"]["meta"]["sequence"] == 0


def test_llmcore_event_shapes_of_status_diagnostic_and_end() -> None:
    """Status rides in event-stream; a diagnostic is llm-core's DiagnosticEntry; end carries no text."""
    status = json.loads(
        protocol.encode(StatusChanged(session_id="s", seq=3, ts=1, status="idle"), "llmcore") or ""
    )
    assert status["data"]["event"]["event"] == {
        "name": "interaction.status",
        "data": {"type": "status", "status": "idle"},
    }
    assert status["data"]["event"]["meta"]["sourceId"] == "llmsock.status"
    note = Diagnostic(session_id="s", seq=4, ts=1, level="info", code="queued", message="queued behind 1")
    entry = json.loads(protocol.encode(note, "llmcore") or "")["data"]["event"]["entry"]
    assert entry == {
        "level": "warn",
        "kind": "pipeline",
        "message": "queued behind 1",
        "data": {"code": "queued", "level": "info"},
    }
    end = ModelEnd(
        session_id="s", seq=5, ts=1, turn_id="t", finish_reason="stop", text="whole answer", message_id="m"
    )
    assert json.loads(protocol.encode(end, "llmcore") or "")["data"]["event"]["event"] == {
        "type": "end",
        "finishReason": "stop",
    }


def test_client_frames_in_llmcore_are_read_as_in_envelope() -> None:
    """llm-core sends a server nothing of its own: plain text is a prompt, JSON commands are commands."""
    assert protocol.decode("hi there", "llmcore") == protocol.decode("hi there", "envelope")
    ping = '{"type": "ping", "id": "p1"}'
    assert protocol.decode(ping, "llmcore") == protocol.decode(ping, "envelope")
    assert parse_dialect("llmcore") == "llmcore"
    with pytest.raises(InvalidFrame):
        parse_dialect("LLMCORE")


if __name__ == "__main__":  # regenerate the fixture
    server = ThinkingModel(tokens_per_second=None)
    srv = ServerThread(model=server, allowed_origins=[ORIGIN]).start()
    try:
        data = asyncio.run(asyncio.wait_for(capture(srv), TIMEOUT * 3))
    finally:
        srv.stop()
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE}")
