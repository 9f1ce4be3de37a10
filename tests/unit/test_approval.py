"""Tool-call approval in the pure core and on the wire: events, the reducer, snapshots, frames."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from llmsock_widget.core import events, snapshot
from llmsock_widget.core.events import (
    ModelEnd,
    ModelStart,
    StatusChanged,
    ToolApproval,
    ToolApproved,
    ToolCall,
    ToolResult,
    UserMessage,
)
from llmsock_widget.core.session import InteractionState, InvalidTransition, history, new_state
from llmsock_widget.errors import ClientError, CorruptSnapshot
from llmsock_widget.models import BuiltinModel
from llmsock_widget.runtime.hub import Hub
from llmsock_widget.stores.memory import MemoryStore
from llmsock_widget.wire import protocol
from tests.unit.steps import step

SID = "s1"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "wire" / "approval_events.json"
CASES: list[dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))


def calling(status: str = "generating") -> InteractionState:
    """Return a streaming state whose answer has one running call ``c1`` of ``run_code``."""
    state = step(new_state(SID, ts=500), UserMessage, turn_id="t1", text="go", message_id="m1")
    state = step(state, StatusChanged, status="generating")
    state = step(state, ModelStart, model="builtin", message_id="m1")
    state = step(state, ToolCall, call_id="c1", name="run_code", arguments='{"code": "x = 1"}')
    if status == "paused":
        state = step(state, StatusChanged, status="paused")
    return state


def asked(status: str = "generating") -> InteractionState:
    return step(calling(status), ToolApproval, call_id="c1", name="run_code", arguments="{}", timeout_ms=500)


def record(state: InteractionState) -> Any:
    assert state.current is not None
    return state.current.tools[0]


# -- the reducer --------------------------------------------------------------------------------


def test_a_call_that_waits_is_pending_and_still_running() -> None:
    """ToolApproval marks the call's record pending; it has no result yet."""
    state = asked()
    assert record(calling()).approval == ""
    assert (record(state).approval, record(state).status) == ("pending", "running")


@pytest.mark.parametrize(
    ("approved", "reason", "expected"),
    [(True, "user", "approved"), (False, "user", "denied"), (False, "timeout", "timeout")],
)
def test_the_decision_is_kept_on_the_record(approved: bool, reason: str, expected: str) -> None:
    """ToolApproved turns pending into the decision; the call's result follows as for any call."""
    state = step(asked(), ToolApproved, call_id="c1", name="run_code", approved=approved, reason=reason)
    assert record(state).approval == expected
    error = None if approved else {"code": "denied", "message": "the user denied this call"}
    state = step(state, ToolResult, call_id="c1", name="run_code", ok=approved, result=1, error=error)
    assert record(state).approval == expected
    assert record(state).status == ("complete" if approved else "error")


def test_a_denied_call_reaches_the_model_as_a_denied_result() -> None:
    """The model's next step reads the denial as the call's result."""
    state = step(asked(), ToolApproved, call_id="c1", name="run_code", approved=False, reason="user")
    error = {"code": "denied", "message": "the user denied this call"}
    state = step(state, ToolResult, call_id="c1", name="run_code", ok=False, error=error)
    state = step(state, ModelEnd, finish_reason="stop", text="ok")
    tool_message = next(m for m in history(state) if m["role"] == "tool")
    assert json.loads(tool_message["content"]) == {"error": error}


def test_approval_may_be_asked_and_answered_while_paused() -> None:
    """A pause holds the model, not a call's approval: the request and the decision still come."""
    state = asked("paused")
    state = step(state, ToolApproved, call_id="c1", name="run_code", approved=True, reason="user")
    assert (state.status, record(state).approval) == ("paused", "approved")


@pytest.mark.parametrize(
    "make",
    [
        # a call the answer does not have
        lambda: step(calling(), ToolApproval, call_id="nope", name="x", arguments="", timeout_ms=1),
        # asked twice
        lambda: step(asked(), ToolApproval, call_id="c1", name="run_code", arguments="", timeout_ms=1),
        # a decision nobody asked for
        lambda: step(calling(), ToolApproved, call_id="c1", name="run_code", approved=True, reason="user"),
    ],
    ids=["unknown call", "asked twice", "not asked"],
)
def test_impossible_approval_events_are_refused(make: Any) -> None:
    with pytest.raises(InvalidTransition):
        make()


def test_only_the_user_approves() -> None:
    """A timeout or a stop never approves; an unknown reason is refused where the event is made."""
    base: dict[str, Any] = {"session_id": SID, "seq": 1, "ts": 1, "call_id": "c", "name": "n"}
    with pytest.raises(ValueError, match="only the user"):
        ToolApproved(**base, approved=True, reason="timeout")
    with pytest.raises(ValueError, match="reason"):
        ToolApproved(**base, approved=False, reason="later")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout_ms"):
        ToolApproval(**base, arguments="", timeout_ms=-1)


def test_a_turn_that_ends_while_a_call_waits_marks_it_aborted() -> None:
    """An abort while waiting leaves the record aborted: neither pending nor running."""
    state = step(asked(), ModelEnd, finish_reason="aborted", text="")
    tool = state.messages[-1].tools[0]
    assert (tool.approval, tool.status, tool.error["code"] if tool.error else None) == (
        "aborted",
        "error",
        "aborted",
    )


# -- snapshots ----------------------------------------------------------------------------------


def test_snapshot_round_trip_keeps_the_approval_and_only_when_set() -> None:
    state = step(asked(), ToolApproved, call_id="c1", name="run_code", approved=False, reason="timeout")
    data = snapshot.encode(state)
    assert data["current"]["tools"][0]["approval"] == "timeout"
    assert snapshot.decode(json.loads(json.dumps(data))) == state
    plain = snapshot.encode(calling())
    assert "approval" not in plain["current"]["tools"][0]


def test_a_waiting_call_keeps_when_it_was_asked_and_for_how_long_until_decided() -> None:
    """A view that opens while a call waits reads the time left from history: askedAt and timeoutMs."""
    waiting = record(asked())
    assert (waiting.asked_at, waiting.timeout_ms) == (1000 + asked().seq, 500)  # the ToolApproval's ts
    data = snapshot.encode(asked())["current"]["tools"][0]
    assert (data["askedAt"], data["timeoutMs"]) == (waiting.asked_at, 500)
    assert snapshot.decode(snapshot.encode(asked())) == asked()
    decided = step(asked(), ToolApproved, call_id="c1", name="run_code", approved=True, reason="user")
    assert not {"askedAt", "timeoutMs"} & set(snapshot.encode(decided)["current"]["tools"][0])


def test_an_old_snapshot_without_approval_loads() -> None:
    data = snapshot.encode(calling())
    assert record(snapshot.decode(data)).approval == ""


def test_an_unknown_approval_is_a_corrupt_snapshot() -> None:
    data = snapshot.encode(asked())
    data["current"]["tools"][0]["approval"] = "maybe"
    with pytest.raises(CorruptSnapshot):
        snapshot.decode(data)


def test_a_pending_call_in_a_loaded_snapshot_is_aborted_after_recovery() -> None:
    """A restart cannot ask anybody any more: the waiting call of the cut turn ends aborted."""
    loaded = snapshot.decode(snapshot.encode(asked()))
    assert record(loaded).approval == "pending"
    store = MemoryStore()
    store.save(loaded.session_id, loaded)
    hub = Hub(store=store, model=BuiltinModel())

    async def reopen() -> InteractionState:
        _, detach, _ = await hub.attach(loaded.session_id, lambda event: None)
        state = hub.sessions[loaded.session_id].state
        await detach()
        return state

    recovered = asyncio.run(reopen())
    tool = recovered.messages[-1].tools[0]
    assert (recovered.phase, tool.approval, tool.status) == ("idle", "aborted", "error")


# -- frames: server -> client -------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
@pytest.mark.parametrize("dialect", protocol.DIALECTS)
def test_approval_frames_match_the_fixture(case: dict[str, Any], dialect: str) -> None:
    """Each dialect's frame of an approval event is the fixture's, and it is one frame."""
    event = getattr(events, case["event"]["class"])(**case["event"]["fields"])
    frames = protocol.frames(event, dialect)  # type: ignore[arg-type]
    assert [json.loads(f) for f in frames] == [case[dialect]]


def test_fixture_covers_every_decision() -> None:
    reasons = {(c["event"]["fields"].get("approved"), c["event"]["fields"].get("reason")) for c in CASES}
    assert {(True, "user"), (False, "user"), (False, "timeout"), (False, "aborted")} <= reasons


# -- frames: client -> server -------------------------------------------------------------------


@pytest.mark.parametrize("dialect", protocol.DIALECTS)
def test_an_approval_frame_decodes_in_every_dialect(dialect: str) -> None:
    frame = json.dumps({"type": "approval", "id": "a1", "data": {"toolCallId": "c1", "approved": False}})
    command = protocol.decode(frame, dialect)  # type: ignore[arg-type]
    assert command == protocol.Approve(call_id="c1", approved=False, request_id="a1")
    assert protocol.detect_dialect(frame) == "typed"  # a first frame of this type picks the typed dialect


@pytest.mark.parametrize(
    "data",
    [
        {"approved": True},
        {"toolCallId": "", "approved": True},
        {"toolCallId": 7, "approved": True},
        {"toolCallId": "x" * 257, "approved": True},
        {"toolCallId": "c1"},
        {"toolCallId": "c1", "approved": 1},
        {"toolCallId": "c1", "approved": "yes"},
        {"toolCallId": "c1", "approved": None},
    ],
)
@pytest.mark.parametrize("dialect", ["envelope", "typed"])
def test_a_malformed_approval_is_invalid_message(data: dict[str, Any], dialect: str) -> None:
    frame = json.dumps({"type": "approval", "id": "a2", "data": data})
    with pytest.raises(ClientError) as info:
        protocol.decode(frame, dialect)  # type: ignore[arg-type]
    assert info.value.code == "invalid_message"
    assert info.value.request_id == "a2"


# -- attachments --------------------------------------------------------------------------------


def prompt(attachments: Any, dialect: str = "typed") -> Any:
    data = {"text": "look", "options": {"attachments": attachments}}
    return protocol.decode(json.dumps({"type": "user_message", "id": "m1", "data": data}), dialect)  # type: ignore[arg-type]


@pytest.mark.parametrize("dialect", ["envelope", "typed"])
def test_attachments_are_validated_and_kept(dialect: str) -> None:
    eight = [{"name": f"v{i}", "text": "t" * 8000, "extra": 1} for i in range(8)]
    command = prompt(eight, dialect)
    assert command.options["attachments"] == [{"name": f"v{i}", "text": "t" * 8000} for i in range(8)]


@pytest.mark.parametrize(
    "attachments",
    [
        [{"name": f"v{i}", "text": "t"} for i in range(9)],
        [{"name": "df", "text": "t" * 8001}],
        [{"name": "", "text": "t"}],
        [{"name": "df"}],
        [{"name": "df", "text": 3}],
        ["df"],
        {"name": "df", "text": "t"},
    ],
    ids=["nine", "too long", "no name", "no text", "text not a string", "not objects", "not a list"],
)
def test_bad_attachments_are_refused(attachments: Any) -> None:
    with pytest.raises(ClientError) as info:
        prompt(attachments)
    assert info.value.code == "invalid_message"
    assert "options.attachments" in info.value.message


def test_the_model_reads_the_attachments_after_the_text() -> None:
    """The model reads the text, then one fenced block per attachment; the transcript keeps the text."""
    options = {
        "attachments": [{"name": "df", "text": "df: DataFrame 2x1"}, {"name": "n", "text": "n: int 3"}]
    }
    state = step(new_state(SID), UserMessage, turn_id="t1", text="explain", message_id="m1", options=options)
    expected = (
        "explain\n\nContext `@df`:\n```text\ndf: DataFrame 2x1\n```\n\nContext `@n`:\n```text\nn: int 3\n```"
    )
    assert history(state) == [{"role": "user", "content": expected}]
    assert state.messages[-1].text == "explain"
    loaded = snapshot.decode(json.loads(json.dumps(snapshot.encode(state))))
    assert history(loaded) == history(state)  # a restarted session still tells the model
    assert snapshot.encode(state)["messages"][0]["attachments"] == [
        {"name": "df", "text": "df: DataFrame 2x1"},
        {"name": "n", "text": "n: int 3"},
    ]


def test_a_prompt_without_attachments_is_sent_as_before() -> None:
    state = step(new_state(SID), UserMessage, turn_id="t1", text="hi", message_id="m1")
    assert history(state) == [{"role": "user", "content": "hi"}]
    assert "attachments" not in snapshot.encode(state)["messages"][0]
