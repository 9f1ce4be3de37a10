"""The typed dialect's end of a failed or refused prompt, seed 004's error codes, and flat options."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from llmsock_widget.core.commands import Control, Ping, SendPrompt
from llmsock_widget.core.events import ErrorReply, ModelError
from llmsock_widget.errors import InvalidFrame
from llmsock_widget.models import BuiltinModel
from llmsock_widget.runtime.hub import Hub
from llmsock_widget.stores import MemoryStore
from llmsock_widget.wire import encode as encoder
from llmsock_widget.wire import protocol

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

# Every code seed 004's server sends (Cantika23/aibase at 40e0c54, backend/src/ws/entry.ts, sendError).
SEED004_SERVER_CODES = {
    "INVALID_MESSAGE",
    "UNKNOWN_MESSAGE_TYPE",
    "UNKNOWN_CONTROL",
    "NO_CONVERSATION",
    "PROCESSING_ERROR",
    "CONTROL_ERROR",
}

FAILED = ModelError(
    session_id="s1",
    seq=7,
    ts=5,
    turn_id="t1",
    code="rate_limited",
    message="the provider is rate limiting requests (HTTP 429)",
    text="Half an",
    message_id="msg_1",
)


def typed_frames(event: Any) -> list[dict[str, Any]]:
    return [json.loads(frame) for frame in protocol.frames(event, "typed")]


# -- the end of a failed prompt ------------------------------------------------------------------


def test_a_model_error_is_llm_complete_then_the_error_in_the_typed_dialect() -> None:
    """llm_complete (marked, the partial text, no sequence) comes first; the error frame is unchanged."""
    complete, error = typed_frames(FAILED)
    assert complete == {
        "type": "llm_complete",
        "id": "msg_1",
        "data": {
            "fullText": "Half an",
            "finishReason": "error",
            "aborted": False,
            "error": {
                "code": "rate_limited",
                "message": "the provider is rate limiting requests (HTTP 429)",
                "recoverable": True,
            },
        },
        "metadata": {"sessionId": "s1", "timestamp": 5, "turnId": "t1"},
    }
    assert error == json.loads(protocol.encode(FAILED, "typed") or "")
    assert error["type"] == "error" and error["data"]["fullText"] == "Half an"
    assert error["metadata"]["sequence"] == 7 and "llmsockCode" not in error["data"]


@pytest.mark.parametrize("dialect", ["envelope", "llmcore"])
def test_other_dialects_end_a_failed_turn_with_the_error_alone(dialect: str) -> None:
    """The envelope's error is final on its own: no end is added before it."""
    (frame,) = protocol.frames(FAILED, dialect)  # type: ignore[arg-type]
    assert '"error"' in frame and '"end"' not in frame


def test_a_refused_prompt_is_llm_complete_then_the_error_reply() -> None:
    """A refused user_message with an id gets llm_complete (no text) and the reply, both with its id."""
    reply = ErrorReply(code="queue_full", message="full", ts=9, request_id="q2", refused="user_message")
    complete, error = typed_frames(reply)
    codes = {"code": "PROCESSING_ERROR", "llmsockCode": "queue_full", "message": "full", "recoverable": True}
    assert complete == {
        "type": "llm_complete",
        "id": "q2",
        "data": {"fullText": "", "finishReason": "error", "aborted": False, "error": codes},
        "metadata": {"timestamp": 9},
    }
    assert error == {"type": "error", "id": "q2", "data": codes, "metadata": {"timestamp": 9}}


@pytest.mark.parametrize(
    "reply",
    [
        ErrorReply(code="invalid_message", message="empty prompt", ts=1, refused="user_message"),
        ErrorReply(code="invalid_request", message="busy", ts=1, request_id="c1", refused="control"),
        ErrorReply(code="invalid_message", message="bad", ts=1, request_id="p1", refused="ping"),
        ErrorReply(code="too_many_messages", message="slow down", ts=1, request_id="m1"),
    ],
    ids=["prompt-without-id", "control", "ping", "not-a-refusal"],
)
def test_only_a_refused_prompt_with_an_id_gets_an_llm_complete(reply: ErrorReply) -> None:
    """No client could match an llm_complete without an id, and other requests have no turn to end."""
    assert [frame["type"] for frame in typed_frames(reply)] == ["error"]


def test_the_envelope_error_reply_is_the_same_whatever_was_refused() -> None:
    """``refused`` changes only the typed dialect."""
    plain = ErrorReply(code="queue_full", message="full", ts=9, request_id="q2")
    marked = ErrorReply(code="queue_full", message="full", ts=9, request_id="q2", refused="user_message")
    assert protocol.frames(plain, "envelope") == protocol.frames(marked, "envelope")


# -- seed 004's codes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "refused", "seed"),
    [
        ("invalid_message", "", "INVALID_MESSAGE"),
        ("invalid_message", "user_message", "INVALID_MESSAGE"),
        ("unknown_type", "shout", "UNKNOWN_MESSAGE_TYPE"),
        ("unknown_type", "control", "UNKNOWN_CONTROL"),
        ("invalid_request", "control", "CONTROL_ERROR"),
        ("invalid_request", "user_message", "NO_CONVERSATION"),
        ("queue_full", "user_message", "PROCESSING_ERROR"),
        ("internal_error", "control", "CONTROL_ERROR"),
        ("internal_error", "user_message", "PROCESSING_ERROR"),
        ("internal_error", "ping", "INVALID_MESSAGE"),
        ("invalid_request", "ping", None),
        ("too_many_messages", "user_message", None),
        ("invalid_message", None, None),
    ],
)
def test_seed004_code(code: str, refused: str | None, seed: str | None) -> None:
    """Each reply gets the code seed 004's server sends in its situation, or none."""
    assert encoder.seed004_code(code, refused) == seed
    data = typed_frames(ErrorReply(code=code, message="m", ts=1, refused=refused))[-1]["data"]
    assert (data["code"], data.get("llmsockCode")) == ((code, None) if seed is None else (seed, code))


def test_every_code_of_seed_004s_server_is_offered() -> None:
    """The table names each code seed 004's server sends, and only those."""
    assert {seed for _, _, seed in encoder.SEED004_CODES} == SEED004_SERVER_CODES


def test_the_documented_table_is_the_code() -> None:
    """docs/protocol.md, section 10.2, lists SEED004_CODES row by row, in order."""
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    start = re.search(r"^### 10\.2 .*$", text, re.MULTILINE)
    assert start is not None, "docs/protocol.md has no section 10.2"
    end = re.compile(r"^#{2,3} ", re.MULTILINE).search(text, start.end())
    rows = [
        line for line in text[start.end() : end.start() if end else None].splitlines() if line.startswith("|")
    ]
    documented = []
    for line in rows[2:]:  # after the header and its rule
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        ours, refused, seed = (cell.strip("`") for cell in cells[:3])
        documented.append((ours, "*" if refused == "any" else refused, seed))
    assert documented == list(encoder.SEED004_CODES)


# -- the refused message's type ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('{"type": "user_message", "data": {"text": "  "}}', "user_message"),
        ('{"type": "control", "data": {"type": "explode"}}', "control"),
        ('{"type": "shout"}', "shout"),
        ('{"type": 5}', ""),
        ("[1, 2]", ""),
        ("{not json", ""),
        ("hello", ""),
    ],
)
def test_message_type(text: str, kind: str) -> None:
    """The type an error reply names: the frame's string ``type``, or "" when it has none."""
    assert protocol.ClientFrame(text).message_type() == kind


def test_each_command_names_its_message_type() -> None:
    assert (SendPrompt(text="x").kind, Control(action="abort").kind, Ping().kind) == (
        "user_message",
        "control",
        "ping",
    )


# -- options flat in data ------------------------------------------------------------------------------


def decode_prompt(data: dict[str, Any]) -> SendPrompt:
    command = protocol.decode(json.dumps({"type": "user_message", "id": "u1", "data": data}), "typed")
    assert isinstance(command, SendPrompt)
    return command


def test_options_flat_in_data_are_read() -> None:
    """Seed 004's client spreads its options into data."""
    command = decode_prompt({"text": "hi", "temperature": 0.7, "maxTokens": 1000, "tools": ["calculate"]})
    assert command.options == {"temperature": 0.7, "maxTokens": 1000, "tools": ["calculate"]}


def test_data_options_win_over_flat_ones() -> None:
    command = decode_prompt(
        {"text": "hi", "temperature": 0.7, "maxTokens": 9, "options": {"temperature": 0.1}}
    )
    assert command.options == {"temperature": 0.1, "maxTokens": 9}


def test_a_flat_null_option_is_no_option() -> None:
    assert decode_prompt({"text": "hi", "temperature": None, "maxTokens": None}).options == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"text": "hi", "maxTokens": 0}, "data.maxTokens must be an integer from 1 to 1000000"),
        ({"text": "hi", "temperature": True}, "data.temperature must be a number from 0 to 2"),
        ({"text": "hi", "tools": "calculate"}, "data.tools must be true, false or a list of tool names"),
        ({"text": "hi", "maxTokens": 5, "options": {"maxTokens": 0}}, "options.maxTokens must be"),
    ],
)
def test_a_bad_flat_option_is_refused_and_named(data: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidFrame) as caught:
        decode_prompt(data)
    assert caught.value.message.startswith(message) and caught.value.request_id == "u1"


# -- what the hub names in its refusals ---------------------------------------------------------------


def test_the_hub_names_what_it_refuses() -> None:
    """Queue full, a control refused, a command with no session: each reply names its message type."""

    async def scenario() -> list[ErrorReply]:
        hub = Hub(store=MemoryStore(), model=BuiltinModel(tokens_per_second=None), max_queue=0)
        seen: list[Any] = []
        key, detach, _ = await hub.attach("refusals", seen.append)
        hub.handle(key, SendPrompt(text="/hold 1", message_id="a"), seen.append)  # runs until aborted
        hub.handle(key, SendPrompt(text="two", message_id="b"), seen.append)  # no room in the queue
        hub.handle(key, Control(action="clear_history", request_id="c"), seen.append)  # a turn runs
        hub.handle("nobody", SendPrompt(text="three", message_id="d"), seen.append)  # not attached
        hub.handle(key, Control(action="abort", request_id="e"), seen.append)
        await detach()
        return [e for e in seen if isinstance(e, ErrorReply)]

    replies = asyncio.run(scenario())
    assert [(e.code, e.request_id, e.refused) for e in replies] == [
        ("queue_full", "b", "user_message"),
        ("invalid_request", "c", "control"),
        ("invalid_request", "d", "user_message"),
    ]
    typed = [json.loads(protocol.frames(e, "typed")[-1])["data"]["code"] for e in replies]
    assert typed == ["PROCESSING_ERROR", "CONTROL_ERROR", "NO_CONVERSATION"]
