"""LiveSession: emitting events gives exactly the state the reducer gives, with deltas joined lazily."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from llmsock_widget.core.events import (
    Diagnostic,
    ModelDelta,
    ModelEnd,
    ModelReasoning,
    ModelStart,
    ModelUsage,
    SessionEvent,
    StatusChanged,
    ToolCall,
    UserMessage,
)
from llmsock_widget.core.session import InteractionState, InvalidTransition, apply, new_state
from llmsock_widget.runtime.live import LiveSession

SID = "s1"

# One step of a script: what to emit, and how the event may be wrong.
KINDS = (
    ("delta",) * 4
    + ("reasoning",) * 2
    + ("user", "start", "end", "status", "diagnostic", "usage", "tool", "read")
)
FAULTS = ("none", "none", "none", "none", "seq", "turn", "session")


def make_event(state: InteractionState, kind: str, fault: str, text: str, ts: int) -> SessionEvent:
    """Return an event of ``kind`` that follows ``state``, broken as ``fault`` says."""
    seq = state.seq + (2 if fault == "seq" else 1)
    session_id = "other" if fault == "session" else state.session_id
    turn_id = "t-wrong" if fault == "turn" else state.turn_id
    base: dict[str, Any] = {"session_id": session_id, "seq": seq, "ts": ts}
    if kind == "user":
        return UserMessage(**base, turn_id=f"t{seq}" if fault != "turn" else None, text=text, message_id="m")
    if kind == "start":
        return ModelStart(**base, turn_id=turn_id, model="builtin", message_id="m")
    if kind == "end":
        return ModelEnd(**base, turn_id=turn_id, finish_reason="stop", text="", message_id="m")
    if kind == "status":
        return StatusChanged(**base, turn_id=turn_id, status="generating")
    if kind == "diagnostic":
        return Diagnostic(**base, turn_id=turn_id, level="info", code="x", message="note")
    if kind == "usage":
        return ModelUsage(**base, turn_id=turn_id, input_tokens=1, output_tokens=2, message_id="m")
    if kind == "tool":
        return ToolCall(
            **base, turn_id=turn_id, call_id=f"c{seq}", name="clock", arguments="{}", message_id="m"
        )
    cls = ModelDelta if kind == "delta" else ModelReasoning
    return cls(**base, turn_id=turn_id, text=text, message_id="m")


def live_session(state: InteractionState, published: list[SessionEvent]) -> LiveSession:
    return LiveSession(
        key=SID, state=state, publish=lambda key, event: published.append(event), clock=lambda: 0
    )


steps = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.sampled_from(FAULTS),
        st.text(max_size=4),
        st.integers(min_value=0, max_value=3000),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(steps, st.booleans())
def test_emit_gives_the_reducers_state_whenever_it_is_read(
    script: list[tuple[str, str, str, int]], streaming: bool
) -> None:
    """Any events, valid or not, in any order: same state, same refusals, same published events."""
    reference = new_state(SID, ts=1000, model="builtin")
    if streaming:  # start in an answer, where deltas are taken
        for kind in ("user", "start"):
            reference = apply(reference, make_event(reference, kind, "none", "hi", 1000))
    published: list[SessionEvent] = []
    live = live_session(reference, published)
    accepted: list[SessionEvent] = []
    for kind, fault, text, ts in script:
        if kind == "read":  # reading folds the pending text: results must not depend on when
            assert live.state == reference
            continue
        event = make_event(reference, kind, fault, text, ts)
        try:
            expected: InteractionState | None = apply(reference, event)
        except InvalidTransition:
            expected = None
        try:
            live.emit(event)
            emitted = True
        except InvalidTransition:
            emitted = False
        assert emitted == (expected is not None), event
        if expected is not None:
            reference = expected
            accepted.append(event)
        assert (live.seq, live.turn_id) == (reference.seq, reference.turn_id)
        assert live.stamp()["seq"] == reference.seq + 1
    assert live.state == reference
    assert published == accepted == list(live.recent)


def test_a_long_answer_is_joined_once_and_reads_in_between_see_all_of_it() -> None:
    """10,000 deltas: the state read midway and at the end holds every character so far, in order."""
    state = apply(
        new_state(SID), UserMessage(session_id=SID, seq=1, ts=1, turn_id="t", text="hi", message_id="m")
    )
    state = apply(state, ModelStart(session_id=SID, seq=2, ts=2, turn_id="t", model="b", message_id="m"))
    live = live_session(state, [])
    words = [f" w{i}" for i in range(10_000)]
    for i, word in enumerate(words):
        live.emit(ModelDelta(**live.stamp(), turn_id=live.turn_id, text=word, message_id="m"))
        if i == 4_999:
            assert live.state.current is not None and live.state.current.text == "".join(words[:5000])
    final = live.state
    assert final.current is not None and final.current.text == "".join(words)
    assert final.seq == 2 + len(words)


def test_setting_the_state_drops_nothing_and_takes_the_new_value() -> None:
    """Assigning ``state`` (as the hub does after a save) folds first, then takes the new state as is."""
    state = apply(
        new_state(SID), UserMessage(session_id=SID, seq=1, ts=1, turn_id="t", text="hi", message_id="m")
    )
    state = apply(state, ModelStart(session_id=SID, seq=2, ts=2, turn_id="t", model="b", message_id="m"))
    live = live_session(state, [])
    live.emit(ModelDelta(session_id=SID, seq=3, ts=3, turn_id="t", text="abc", message_id="m"))
    current = live.state
    live.state = current.__class__(**{**_fields(current), "revision": 7})
    assert live.state.revision == 7 and live.state.current is not None and live.state.current.text == "abc"
    live.emit(ModelDelta(session_id=SID, seq=4, ts=4, turn_id="t", text="d", message_id="m"))
    assert live.state.current is not None and live.state.current.text == "abcd"
    assert live.state.revision == 7 and live.unsaved


def _fields(state: InteractionState) -> dict[str, Any]:
    return {name: getattr(state, name) for name in state.__dataclass_fields__}
