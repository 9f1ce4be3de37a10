"""Tests for llmsock_widget.core.lifecycle: the one table of a turn's phases and statuses."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from llmsock_widget.core import events, lifecycle
from llmsock_widget.core.events import (
    STATUSES,
    Diagnostic,
    ModelDelta,
    ModelEnd,
    ModelReasoning,
    ModelStart,
    ModelUsage,
    StatusChanged,
    ToolCall,
    ToolResult,
    UserMessage,
)
from llmsock_widget.core.lifecycle import TRANSITIONS, allows, next_stage
from llmsock_widget.core.session import InteractionState, InvalidTransition, apply, new_state
from llmsock_widget.runtime.live import LiveSession

SID = "s1"
REST = ("idle", "idle")


def emit(state: InteractionState, cls: type, **fields: Any) -> InteractionState:
    """Apply an event of ``cls`` that follows ``state`` (next seq, same session and turn)."""
    fields.setdefault("turn_id", state.turn_id)
    return apply(state, cls(session_id=SID, seq=state.seq + 1, ts=state.seq + 1, **fields))


def paused_answer() -> InteractionState:
    """Return a session whose answer streams a tool call and was then paused, as a turn runs it."""
    state = emit(new_state(SID), UserMessage, turn_id="t1", text="hi", message_id="m1")
    state = emit(state, StatusChanged, status="generating")
    state = emit(state, ModelStart, model="builtin")
    state = emit(state, ModelDelta, text="Hel")
    state = emit(state, ToolCall, call_id="c1", name="clock", arguments="{}")
    return emit(state, StatusChanged, status="paused")


def test_every_stage_and_kind_is_one_the_events_can_have() -> None:
    """The table names only real phases, statuses and session events, so no row is dead."""
    phases = set(get_args(lifecycle.Phase))
    event_names = {cls.__name__ for cls in get_args(events.SessionEvent)} - {"StatusChanged"}
    kinds = event_names | {f"StatusChanged({status})" for status in STATUSES}
    for (phase, status), row in TRANSITIONS.items():
        assert phase in phases and status in STATUSES
        for kind, (next_phase, next_status) in row.items():
            assert kind in kinds, kind
            assert (next_phase, next_status) in TRANSITIONS, (phase, status, kind)


def test_every_stage_can_come_back_to_rest() -> None:
    """From every stage some events lead back to idle/idle: no stage traps a session."""
    back = {REST}
    while True:
        more = {stage for stage, row in TRANSITIONS.items() if set(row.values()) & back} - back
        if not more:
            break
        back |= more
    assert back == set(TRANSITIONS)


@pytest.mark.parametrize("status", STATUSES)
def test_a_session_with_no_turn_cannot_be_paused_or_resumed(status: str) -> None:
    """With the phase idle, neither a pause nor a resume is in the table, whatever the status."""
    assert not allows("idle", status, lifecycle.PAUSE)  # type: ignore[arg-type]
    assert not allows("idle", status, lifecycle.RESUME)  # type: ignore[arg-type]


def test_the_reducer_takes_its_next_phase_and_status_from_the_table() -> None:
    """apply gives the phase and status the table lists for each event of a paused, resumed turn."""
    state = new_state(SID)
    script: list[tuple[type, dict[str, Any]]] = [
        (UserMessage, {"turn_id": "t1", "text": "hi", "message_id": "m1"}),
        (StatusChanged, {"status": "generating"}),
        (ModelStart, {"model": "builtin"}),
        (ModelDelta, {"text": "a"}),
        (StatusChanged, {"status": "paused"}),
        (StatusChanged, {"status": "generating"}),
        (ModelEnd, {"finish_reason": "stop", "text": "a"}),
        (StatusChanged, {"status": "idle"}),
    ]
    for cls, fields in script:
        before = (state.phase, state.status)
        state = emit(state, cls, **fields)
        kind = cls.__name__ if cls is not StatusChanged else f"StatusChanged({fields['status']})"
        assert (state.phase, state.status) == next_stage(*before, kind)  # type: ignore[misc]
    assert (state.phase, state.status) == REST


@pytest.mark.parametrize(
    ("cls", "fields"),
    [
        (ModelDelta, {"text": "lo"}),
        (ModelReasoning, {"text": "hmm"}),
        (ModelUsage, {"input_tokens": 1, "output_tokens": 1}),
        (ToolCall, {"call_id": "c2", "name": "clock", "arguments": "{}"}),
        (StatusChanged, {"status": "paused"}),
    ],
)
def test_nothing_of_the_model_comes_while_paused(cls: type, fields: dict[str, Any]) -> None:
    """A paused answer takes no delta, reasoning, usage or tool call, and no second pause."""
    with pytest.raises(InvalidTransition, match="not allowed while streaming"):
        emit(paused_answer(), cls, **fields)


def test_a_running_tool_finishes_while_paused() -> None:
    """A tool result still comes while paused, and the answer stays paused."""
    state = emit(paused_answer(), ToolResult, call_id="c1", name="clock", ok=True, result="noon")
    assert (state.phase, state.status) == ("streaming", "paused")
    assert state.current is not None and state.current.tools[0].status == "complete"


def test_a_turn_aborted_while_paused_only_goes_back_to_idle() -> None:
    """After an end while paused, the next prompt waits for StatusChanged(idle); resume is refused."""
    ended = emit(paused_answer(), ModelEnd, finish_reason="aborted", text="Hel")
    assert (ended.phase, ended.status) == ("idle", "paused")
    for cls, fields in [
        (StatusChanged, {"status": "generating"}),
        (StatusChanged, {"status": "paused"}),
        (UserMessage, {"turn_id": "t2", "text": "next", "message_id": "m2"}),
    ]:
        with pytest.raises(InvalidTransition, match="not allowed while idle"):
            emit(ended, cls, **fields)
    emit(ended, Diagnostic, level="info", code="note", message="told at any moment")
    rest = emit(ended, StatusChanged, status="idle")
    assert (rest.phase, rest.status) == REST


def test_a_live_session_with_no_turn_refuses_pause_and_resume_and_says_nothing() -> None:
    """LiveSession.pause and resume on an idle session return False and emit no event."""
    published: list[Any] = []
    live = LiveSession(
        key=SID, state=new_state(SID), publish=lambda k, e: published.append(e), clock=lambda: 0
    )
    assert live.pause() is False and live.resume() is False and live.abort() is False
    assert published == [] and live.state.status == "idle" and not live.held
