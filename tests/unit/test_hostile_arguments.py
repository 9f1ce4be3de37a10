"""Hostile tool-call arguments (B3, B12): strictly parsed, refused clearly, and every event still encodes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from llmsock_widget.core.events import (
    ControlResult,
    Diagnostic,
    ErrorReply,
    Event,
    ModelDelta,
    ModelEnd,
    SessionReady,
    ToolCall,
    ToolResult,
)
from llmsock_widget.models import BuiltinModel
from llmsock_widget.notebook import notebookfile
from llmsock_widget.runtime.hub import Hub
from llmsock_widget.server.websocket import text_frames
from llmsock_widget.stores import MemoryStore
from llmsock_widget.tools import ToolRegistry, call_tool
from llmsock_widget.wire import protocol
from llmsock_widget.wire.protocol import SendPrompt
from tests.conftest import TIMEOUT

DEEP = '{"expression": ' + "[" * 5000 + "]" * 5000 + "}"

HOSTILE = {
    "nan": '{"expression": NaN}',
    "infinity": '{"expression": Infinity}',
    "minus-infinity": '{"expression": -Infinity}',
    "overflowing-float": '{"expression": 1e999}',
    "deep-5000": DEEP,
    "duplicate-keys": '{"expression": "1", "expression": "2"}',
    "lone-surrogate-escape": '{"expression": "\\ud800"}',
    "lone-surrogate-char": '{"expression": "a\ud800"}',
    "huge-integer": '{"expression": ' + "9" * 400 + "}",
}


def strict(frame: str) -> Any:
    """Parse a frame as a client must: strict JSON, valid UTF-8."""
    frame.encode("utf-8")  # a lone surrogate would raise here, as it does when the frame is sent
    return json.loads(frame, parse_constant=lambda name: pytest.fail(f"{name} in a frame"))


def recording_registry(calls: list[Any]) -> ToolRegistry:
    """A registry with one tool that records each call it gets."""
    registry = ToolRegistry()

    def evaluate(expression: Any) -> str:
        """Record the expression."""
        calls.append(expression)
        return "ran"

    registry.register(evaluate)
    return registry


@pytest.mark.parametrize("arguments", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_arguments_are_refused_and_never_run(arguments: str) -> None:
    """Each hostile argument text is refused with invalid_arguments, and the tool never runs."""
    calls: list[Any] = []
    outcome = asyncio.run(call_tool(recording_registry(calls), "evaluate", arguments, timeout=TIMEOUT))
    assert outcome.ok is False and outcome.error is not None
    assert outcome.error["code"] == "invalid_arguments"
    assert outcome.error["message"].startswith("arguments are not valid JSON")
    assert calls == []
    json.loads(outcome.content())  # what the model is told is itself valid JSON


def test_duplicate_key_never_runs_with_the_last_value() -> None:
    """{"expression": "1", "expression": "2"} is refused, naming the key, instead of running with "2"."""
    calls: list[Any] = []
    arguments = HOSTILE["duplicate-keys"]
    outcome = asyncio.run(call_tool(recording_registry(calls), "evaluate", arguments, timeout=TIMEOUT))
    assert outcome.error == {
        "code": "invalid_arguments",
        "message": "arguments are not valid JSON: duplicate key in JSON object: 'expression'",
    }
    assert calls == []


def tool_call(arguments: str) -> ToolCall:
    """Return the event of a call to evaluate with ``arguments``."""
    return ToolCall(
        session_id="s", seq=5, ts=1, turn_id="t", call_id="c1", name="evaluate", arguments=arguments
    )


@pytest.mark.parametrize("arguments", HOSTILE.values(), ids=HOSTILE.keys())
def test_tool_call_with_hostile_arguments_encodes_in_every_dialect(arguments: str) -> None:
    """A tool_call with hostile arguments reaches every dialect and SSE as strict JSON, the raw text shown."""
    event = tool_call(arguments)
    envelope = [strict(f) for f in protocol.frames(event, "envelope")]
    typed = [strict(f) for f in protocol.frames(event, "typed")]
    sse = protocol.sse_message(event)
    assert sse is not None and sse.startswith("event: interaction.model\ndata: ") and sse.endswith("\n\n")
    sse_data = strict(sse.split("data: ", 1)[1])
    shown = envelope[0]["data"]["event"]["toolCall"]["arguments"]
    assert isinstance(shown, str) and shown.startswith('{"expression"')  # the text as the model wrote it
    assert typed[0]["type"] == "tool_call" and typed[0]["data"]["args"] == shown
    assert sse_data["event"]["toolCall"]["arguments"] == shown
    assert envelope[0]["data"]["meta"]["sequence"] == typed[0]["metadata"]["sequence"] == 5


def test_valid_arguments_are_still_shown_parsed() -> None:
    """Arguments that are strict JSON are shown parsed, as before."""
    frame = strict(protocol.frames(tool_call('{"expression": "6*7"}'), "envelope")[0])
    assert frame["data"]["event"]["toolCall"]["arguments"] == {"expression": "6*7"}


def deep(levels: int) -> Any:
    """Return a list nested ``levels`` deep."""
    value: Any = []
    for _ in range(levels):
        value = [value]
    return value


UNENCODABLE: dict[str, Event] = {
    "tool-result-nan": ToolResult(
        session_id="s", seq=7, ts=1, turn_id="t", call_id="c", name="n", ok=True, result=float("nan")
    ),
    "tool-result-deep": ToolResult(
        session_id="s", seq=7, ts=1, turn_id="t", call_id="c", name="n", ok=True, result=deep(100_000)
    ),
    "end-usage-infinity": ModelEnd(
        session_id="s", seq=7, ts=1, turn_id="t", finish_reason="stop", text="", usage={"x": float("inf")}
    ),
}


@pytest.mark.parametrize("event", UNENCODABLE.values(), ids=UNENCODABLE.keys())
def test_unencodable_session_event_becomes_a_diagnostic_with_its_sequence(event: Event) -> None:
    """A session event JSON cannot hold is sent as an unencodable_event diagnostic at the same sequence."""
    for dialect in protocol.DIALECTS:
        if dialect == "llmcore" and isinstance(event, ModelEnd):
            continue  # llm-core's end event carries no usage: nothing unencodable is left in it
        (frame,) = protocol.frames(event, dialect)
        message = strict(frame)
        if dialect == "llmcore":  # llm-core's DiagnosticEntry: llmsock's code and level in its data
            interaction = message["data"]["event"]
            body, meta = interaction["entry"]["data"], interaction["meta"]
            assert interaction["kind"] == "diagnostic" and interaction["entry"]["level"] == "error"
            assert meta["sequence"] == 7 and meta["correlationId"] == "t"
        else:
            body = message["data"]["event"] if dialect == "envelope" else message["data"]
            meta = message["data"]["meta"] if dialect == "envelope" else message["metadata"]
            assert meta["sequence"] == 7 and meta["turnId"] == "t"
        assert body["code"] == "unencodable_event" and body["level"] == "error"
    sse = protocol.sse_message(event)
    assert sse is not None and sse.startswith("event: interaction.diagnostic\n")
    assert strict(sse.split("data: ", 1)[1])["event"]["code"] == "unencodable_event"


@pytest.mark.parametrize(
    "event",
    [
        ControlResult(action="get_status", ok=True, message="", ts=1, data={"x": float("nan")}),
        ControlResult(action="get_status", ok=True, message="", ts=1, data={"x": deep(100_000)}),
    ],
    ids=["control-nan", "control-deep"],
)
def test_unencodable_reply_becomes_an_internal_error_reply(event: Event) -> None:
    """A reply JSON cannot hold is sent as an internal_error reply to the same request, never raised."""
    for dialect in protocol.DIALECTS:
        (frame,) = protocol.frames(event, dialect)
        message = strict(frame)
        if dialect == "llmcore":  # a reply travels in an event-stream event, as the envelope's frame
            body = message["data"]["event"]["event"]["data"]
        else:
            body = message["data"]["event"] if dialect == "envelope" else message["data"]
        assert body["code"] == "internal_error"
        assert body["message"] == "internal error (see the kernel log)"


def test_lone_surrogate_in_model_text_is_sent_as_valid_utf8() -> None:
    """A delta holding a lone surrogate is sent with U+FFFD in its place rather than failing the batch."""
    delta = ModelDelta(session_id="s", seq=2, ts=1, turn_id="t", text="a\ud800b")
    for dialect in protocol.DIALECTS:
        (frame,) = protocol.frames(delta, dialect)
        assert "a\ufffdb" in json.dumps(strict(frame), ensure_ascii=False)


def test_attach_does_not_leak_a_subscriber_when_delivering_fails() -> None:
    """A connection whose ready or replay cannot be delivered is unsubscribed, however often it retries."""

    def broken(event: Event) -> None:
        if not isinstance(event, SessionReady):
            raise RuntimeError("the connection cannot take this event")

    async def scenario() -> tuple[int, list[int], int]:
        hub = Hub(store=MemoryStore(), model=BuiltinModel(tokens_per_second=None))
        seen: list[Event] = []
        key, detach, _ready = await hub.attach("leaky", seen.append)
        hub.handle(key, SendPrompt(text="hello there", message_id="m"), lambda e: None)
        await asyncio.wait_for(_until_end(seen), TIMEOUT)
        before = hub.fanout.count(key)
        counts = []
        for _ in range(3):
            with pytest.raises(RuntimeError):
                await hub.attach(key, broken, resume=(hub.epoch, 1))
            counts.append(hub.fanout.count(key))
        await detach()
        return before, counts, hub.fanout.count(key)

    before, counts, after = asyncio.run(scenario())
    assert before == 1 and counts == [1, 1, 1] and after == 0


async def _until_end(seen: list[Event]) -> None:
    """Yield to the loop until the turn's end has been delivered."""
    while not any(isinstance(e, ModelEnd) for e in seen):
        await asyncio.sleep(0)


def test_error_frames_carry_no_exception_text() -> None:
    """The stand-in for an unencodable event names only the event kind and the error type."""
    event = UNENCODABLE["tool-result-nan"]
    replacement = protocol.unencodable(event, ValueError("secret detail"))
    assert isinstance(replacement, Diagnostic) and "secret" not in replacement.message
    assert isinstance(protocol.unencodable(object(), ValueError("secret")), ErrorReply)


def test_transcript_export_shows_deeply_nested_arguments_as_text() -> None:
    """A saved call with 5,000-deep arguments exports to Markdown, its arguments shown as written."""

    async def scenario() -> str:
        calls: list[Any] = []
        hub = Hub(
            store=MemoryStore(),
            model=BuiltinModel(tokens_per_second=None),
            tools=recording_registry(calls),
        )
        seen: list[Event] = []
        key, detach, _ready = await hub.attach("deep", seen.append)
        hub.handle(key, SendPrompt(text=f"/tool evaluate {DEEP}", message_id="m"), lambda e: None)
        await asyncio.wait_for(_until_end(seen), TIMEOUT)
        text = notebookfile.markdown(hub.sessions[key].state)
        await detach()
        assert calls == []
        return text

    text = asyncio.run(scenario())
    assert "```text\n" + DEEP + "\n```" in text and "invalid_arguments" in text


def test_a_lone_surrogate_never_fails_a_websocket_batch() -> None:
    """The WebSocket writer sends a frame with a lone surrogate as valid UTF-8, with the rest of its batch."""
    data = text_frames(["a\ud800", "next"])
    assert data == bytes((0x81, 2)) + b"a?" + bytes((0x81, 4)) + b"next"
