"""Values passed between servers that share a session come back equal, and bad ones are refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmsock_widget.core import commands, events, valuecodec
from llmsock_widget.errors import InvalidFrame

BASE: dict[str, Any] = {"session_id": "team", "seq": 7, "ts": 1_700_000_000_000, "turn_id": "t1"}


def _values() -> list[Any]:
    # Made per call, never kept at module level: another test counts the live ModelDelta objects.
    return [
        events.UserMessage(**BASE, text="hi ✓", message_id="u1", options={"model": "builtin", "tools": []}),
        events.UserMessage(**BASE, text="again", message_id="u2", replaces="u1", replaced=2),
        events.ModelStart(**BASE, model="builtin", message_id="u1"),
        events.ModelDelta(**BASE, text="tok", message_id="u1"),
        events.ModelReasoning(**BASE, text="hmm", message_id="u1"),
        events.ToolCall(**BASE, call_id="c1", name="calc", arguments='{"x": 1}'),
        events.ToolResult(
            **BASE, call_id="c1", name="calc", ok=True, result={"v": [1, 2.5, None]}, duration_ms=3
        ),
        events.ToolResult(
            **BASE, call_id="c2", name="calc", ok=False, error={"code": "denied", "message": "no"}
        ),
        events.ToolApproval(**BASE, call_id="c1", name="run_code", arguments="{}", timeout_ms=120_000),
        events.ToolApproved(**BASE, call_id="c1", name="run_code", approved=False, reason="timeout"),
        events.ModelUsage(**BASE, input_tokens=3, output_tokens=9),
        events.ModelEnd(**BASE, finish_reason="aborted", text="partial", usage={"input_tokens": 3}),
        events.ModelError(**BASE, code="timeout", message="no answer", text="x", recoverable=False),
        events.Diagnostic(**BASE, level="warning", code="recovered", message="cut"),
        events.StatusChanged(**BASE, status="paused"),
        events.HistoryCleared(**BASE),
        events.ControlResult(
            action="abort", ok=True, ts=1, request_id="a", data={"n": 1}, message="turn aborted"
        ),
        events.ErrorReply(code="queue_full", message="full", ts=1, request_id="u3", refused="user_message"),
        events.Pong(ts=1, request_id="p", data={"echo": True}),
        commands.SendPrompt(text="hello", message_id="u1", options={"system": "be brief"}, replaces=None),
        commands.Control(action="abort", request_id="stop"),
        commands.Approve(call_id="c1", approved=True, request_id="r"),
        commands.Ping(request_id="p", data={}),
        commands.Notice(level="info", code="sharing_restored", message="Redis answers again"),
    ]


@pytest.mark.parametrize("index", range(len(_values())), ids=[type(v).__name__ for v in _values()])
def test_a_value_comes_back_equal_through_json(index: int) -> None:
    value = _values()[index]
    assert valuecodec.decode(json.loads(json.dumps(valuecodec.encode(value)))) == value


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"k": "Nope"},
        {"k": "ModelDelta", "session_id": "team", "seq": 0, "ts": 1, "text": "x"},  # seq must be >= 1
        {"k": "StatusChanged", "session_id": "team", "seq": 1, "ts": 1, "status": "dancing"},
        {"k": "ModelDelta", "session_id": "team", "seq": 1, "ts": 1},  # no text
    ],
)
def test_a_value_that_is_not_ours_is_refused(data: Any) -> None:
    with pytest.raises(InvalidFrame):
        valuecodec.decode(data)


def test_a_field_a_newer_server_added_is_left_out() -> None:
    """A server one version ahead may send a field this one does not know: the value still reads."""
    data = {"k": "Control", "action": "abort", "request_id": None, "priority": "high"}
    assert valuecodec.decode(data) == commands.Control(action="abort")


def test_something_else_is_not_encoded() -> None:
    with pytest.raises(TypeError):
        valuecodec.encode(object())
