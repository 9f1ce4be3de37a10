"""Tests for llmsock_widget.core.session: the reducer and its transition table."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from llmsock_widget.core.events import (
    Diagnostic,
    HistoryCleared,
    ModelDelta,
    ModelEnd,
    ModelError,
    ModelStart,
    ModelUsage,
    StatusChanged,
    UserMessage,
)
from llmsock_widget.core.session import (
    InteractionState,
    InvalidTransition,
    Message,
    apply,
    history,
    new_state,
)
from llmsock_widget.errors import LocalError
from tests.unit.steps import step

SID = "s1"


def idle() -> InteractionState:
    return new_state(SID, ts=500, model="builtin")


def in_turn(turn_id: str = "t1", text: str = "Hello") -> InteractionState:
    return step(idle(), UserMessage, turn_id=turn_id, text=text, message_id="m1")


def streaming(*deltas: str) -> InteractionState:
    state = step(in_turn(), ModelStart, model="builtin", message_id="m1")
    for text in deltas:
        state = step(state, ModelDelta, text=text, message_id="m1")
    return state


# -- allowed transitions ------------------------------------------------------------------


def test_new_state_is_idle_and_empty() -> None:
    """A new session is idle at seq 0 with no messages, and keeps its creation time and model."""
    state = idle()
    assert (state.phase, state.status, state.seq, state.turn_id) == ("idle", "idle", 0, None)
    assert state.messages == () and state.current is None
    assert (state.created_at, state.updated_at, state.model) == (500, 500, "builtin")


def test_idle_user_message_starts_a_turn() -> None:
    """idle + UserMessage -> turn, with the user's message appended and the turn id kept."""
    state = in_turn("t1", "Hello")
    assert state.phase == "turn"
    assert state.turn_id == "t1"
    assert state.seq == 1
    assert state.messages == (Message(id="m1", role="user", text="Hello", turn_id="t1", ts=1001),)
    assert state.current is None
    assert state.updated_at == 1001


def test_user_message_without_turn_id_is_refused() -> None:
    """A UserMessage with no turn_id cannot start a turn."""
    state = idle()
    with pytest.raises(InvalidTransition):
        apply(state, UserMessage(session_id=SID, seq=1, ts=1, text="hi", message_id="m1"))


def test_turn_model_start_starts_streaming() -> None:
    """turn + ModelStart -> streaming, with an empty streaming assistant message as current."""
    state = step(in_turn(), ModelStart, model="gpt-x", message_id="m1")
    assert state.phase == "streaming"
    assert state.model == "gpt-x"
    assert state.current is not None
    assert state.current.role == "assistant"
    assert state.current.status == "streaming"
    assert state.current.text == ""
    assert state.current.turn_id == "t1"
    assert len(state.messages) == 1


def test_model_start_without_model_name_keeps_the_session_model() -> None:
    """A ModelStart with an empty model name leaves the session's model as it was."""
    state = step(in_turn(), ModelStart, model="")
    assert state.model == "builtin"


def test_turn_model_end_aborted_adds_an_aborted_placeholder() -> None:
    """turn + ModelEnd(aborted) -> idle, with an empty assistant message marked aborted."""
    state = step(in_turn(), ModelEnd, finish_reason="aborted", text="")
    assert state.phase == "idle"
    assert state.turn_id is None
    assert state.current is None
    assert [m.role for m in state.messages] == ["user", "assistant"]
    placeholder = state.messages[-1]
    assert placeholder.status == "aborted"
    assert placeholder.text == ""
    assert placeholder.turn_id == "t1"


def test_turn_model_error_ends_the_turn_with_an_error_placeholder() -> None:
    """turn + ModelError -> idle, with an assistant message marked error that holds the code."""
    state = step(in_turn(), ModelError, code="model_unavailable", message="no model")
    assert state.phase == "idle"
    assert state.turn_id is None
    last = state.messages[-1]
    assert (last.role, last.status, last.text) == ("assistant", "error", "")
    assert last.error == {"code": "model_unavailable", "message": "no model"}


def test_streaming_delta_appends_text() -> None:
    """streaming + ModelDelta -> streaming, with the delta's text appended to current."""
    state = streaming("Hel", "lo", " wörld")
    assert state.phase == "streaming"
    assert state.current is not None
    assert state.current.text == "Hello wörld"
    assert state.seq == 5


def test_delta_does_not_copy_the_transcript() -> None:
    """A delta replaces only current: the messages tuple is the very same object before and after."""
    before = streaming("a")
    after = step(before, ModelDelta, text="b")
    assert after.messages is before.messages
    assert after.current is not before.current


def test_streaming_usage_is_kept_on_current() -> None:
    """streaming + ModelUsage -> streaming, with the token counts stored on current."""
    state = step(streaming("x"), ModelUsage, input_tokens=12, output_tokens=3)
    assert state.phase == "streaming"
    assert state.current is not None
    assert state.current.usage == {"inputTokens": 12, "outputTokens": 3}
    assert state.current.text == "x"


@pytest.mark.parametrize(
    ("reason", "status"), [("stop", "complete"), ("length", "length"), ("aborted", "aborted")]
)
def test_streaming_end_finishes_the_message(reason: str, status: str) -> None:
    """streaming + ModelEnd -> idle; the answer keeps its text and gets a status from the finish reason."""
    state = step(streaming("Hi", " there"), ModelEnd, finish_reason=reason, text="Hi there")
    assert state.phase == "idle"
    assert state.turn_id is None
    assert state.current is None
    answer = state.messages[-1]
    assert (answer.role, answer.text, answer.turn_id) == ("assistant", "Hi there", "t1")
    assert answer.status == status
    assert answer.error is None


def test_end_keeps_usage_from_the_usage_event() -> None:
    """A ModelEnd without usage keeps the counts a ModelUsage stored earlier."""
    state = step(streaming("x"), ModelUsage, input_tokens=1, output_tokens=2)
    state = step(state, ModelEnd, finish_reason="stop", text="x")
    assert state.messages[-1].usage == {"inputTokens": 1, "outputTokens": 2}


def test_end_usage_replaces_earlier_usage() -> None:
    """A ModelEnd carrying usage sets the answer's usage to it."""
    state = step(streaming("x"), ModelUsage, input_tokens=1, output_tokens=2)
    state = step(state, ModelEnd, finish_reason="stop", text="x", usage={"inputTokens": 5, "outputTokens": 6})
    assert state.messages[-1].usage == {"inputTokens": 5, "outputTokens": 6}


def test_streaming_error_keeps_partial_text() -> None:
    """streaming + ModelError -> idle; the partial answer is kept with status error and the error code."""
    state = step(streaming("Par", "tial"), ModelError, code="model_error", message="boom", text="Partial")
    assert state.phase == "idle"
    assert state.current is None
    answer = state.messages[-1]
    assert answer.text == "Partial"
    assert answer.status == "error"
    assert answer.error == {"code": "model_error", "message": "boom"}


def test_idle_history_cleared_empties_messages() -> None:
    """idle + HistoryCleared -> idle with no messages, seq still advancing."""
    state = step(streaming("x"), ModelEnd, finish_reason="stop", text="x")
    assert state.messages
    cleared = step(state, HistoryCleared)
    assert cleared.phase == "idle"
    assert cleared.messages == ()
    assert cleared.seq == state.seq + 1


def _states() -> dict[str, InteractionState]:
    return {"idle": idle(), "turn": in_turn(), "streaming": streaming("x")}


@pytest.mark.parametrize("phase", ["idle", "turn", "streaming"])
def test_diagnostic_allowed_in_every_phase(phase: str) -> None:
    """Diagnostic is allowed in any phase and changes nothing but seq and updated_at."""
    state = _states()[phase]
    after = apply(
        state, Diagnostic(session_id=SID, seq=state.seq + 1, ts=9999, level="warning", code="c", message="m")
    )
    assert after == replace(state, seq=state.seq + 1, updated_at=9999)


@pytest.mark.parametrize("phase", ["turn", "streaming"])
def test_status_changed_allowed_during_a_turn(phase: str) -> None:
    """StatusChanged(paused) is allowed while a turn runs and sets status without changing phase."""
    state = _states()[phase]
    after = apply(state, StatusChanged(session_id=SID, seq=state.seq + 1, ts=9999, status="paused"))
    assert after.status == "paused"
    assert after.phase == phase
    assert after == replace(state, seq=state.seq + 1, updated_at=9999, status="paused")


@pytest.mark.parametrize("status", ["paused", "generating"])
def test_idle_session_cannot_be_paused_or_set_generating(status: str) -> None:
    """With no turn running, StatusChanged(paused) or (generating) raises InvalidTransition."""
    state = _states()["idle"]
    with pytest.raises(InvalidTransition, match="not allowed while idle"):
        apply(state, StatusChanged(session_id=SID, seq=state.seq + 1, ts=9999, status=status))


def test_updated_at_never_goes_back() -> None:
    """An event with an older ts leaves updated_at at the newer value."""
    state = in_turn()
    after = apply(state, Diagnostic(session_id=SID, seq=2, ts=1, level="info", code="c", message="m"))
    assert after.updated_at == state.updated_at


def test_full_conversation_of_two_turns() -> None:
    """Two turns in a row give user/assistant pairs in order, with seq counting every event."""
    state = step(streaming("one"), ModelEnd, finish_reason="stop", text="one")
    state = step(state, UserMessage, turn_id="t2", text="again", message_id="m2")
    state = step(state, ModelStart, model="builtin")
    state = step(state, ModelDelta, text="two")
    state = step(state, ModelEnd, finish_reason="stop", text="two")
    assert [(m.role, m.text, m.turn_id) for m in state.messages] == [
        ("user", "Hello", "t1"),
        ("assistant", "one", "t1"),
        ("user", "again", "t2"),
        ("assistant", "two", "t2"),
    ]
    assert state.seq == 8
    assert state.phase == "idle"


def test_apply_does_not_mutate_its_input() -> None:
    """apply returns a new state and leaves the old one as it was."""
    state = streaming("a")
    snapshot = replace(state)
    step(state, ModelDelta, text="b")
    assert state == snapshot


# -- refused transitions ------------------------------------------------------------------


def test_invalid_transition_is_a_local_error() -> None:
    """InvalidTransition is our bug, not the peer's: a LocalError reported on the wire as internal_error."""
    assert issubclass(InvalidTransition, LocalError)
    assert InvalidTransition.code == "internal_error"


def test_delta_while_idle_is_refused() -> None:
    """A ModelDelta in idle raises InvalidTransition."""
    with pytest.raises(InvalidTransition):
        step(idle(), ModelDelta, text="x", turn_id="t1")


def test_delta_while_turn_is_refused() -> None:
    """A ModelDelta before ModelStart raises InvalidTransition."""
    with pytest.raises(InvalidTransition):
        step(in_turn(), ModelDelta, text="x")


def test_user_message_while_turn_is_refused() -> None:
    """A second UserMessage before the model starts raises InvalidTransition."""
    with pytest.raises(InvalidTransition):
        step(in_turn(), UserMessage, text="again", message_id="m2")


def test_user_message_while_streaming_is_refused() -> None:
    """A UserMessage while streaming raises InvalidTransition."""
    with pytest.raises(InvalidTransition):
        step(streaming("x"), UserMessage, text="again", message_id="m2")


@pytest.mark.parametrize("phase", ["turn", "streaming"])
def test_history_cleared_during_a_turn_is_refused(phase: str) -> None:
    """HistoryCleared while a turn runs raises InvalidTransition."""
    with pytest.raises(InvalidTransition):
        step(_states()[phase], HistoryCleared)


def test_model_start_twice_is_refused() -> None:
    """A second ModelStart while streaming raises InvalidTransition."""
    with pytest.raises(InvalidTransition):
        step(streaming(), ModelStart, model="builtin")


@pytest.mark.parametrize("cls", [ModelStart, ModelEnd, ModelError, ModelUsage])
def test_model_events_while_idle_are_refused(cls: type) -> None:
    """Model events with no turn running raise InvalidTransition."""
    fields: dict[str, Any] = {
        ModelStart: {"model": "m"},
        ModelEnd: {"finish_reason": "stop", "text": ""},
        ModelError: {"code": "c", "message": "m"},
        ModelUsage: {"input_tokens": 1, "output_tokens": 1},
    }[cls]
    with pytest.raises(InvalidTransition):
        step(idle(), cls, turn_id="t1", **fields)


def test_usage_before_model_start_is_refused() -> None:
    """A ModelUsage in turn (before ModelStart) raises InvalidTransition."""
    with pytest.raises(InvalidTransition):
        step(in_turn(), ModelUsage, input_tokens=1, output_tokens=1)


@pytest.mark.parametrize("offset", [2, 5])
def test_seq_gap_is_refused(offset: int) -> None:
    """An event whose seq skips ahead raises InvalidTransition."""
    state = streaming("x")
    with pytest.raises(InvalidTransition, match="seq"):
        step(state, ModelDelta, text="y", seq=state.seq + offset)


def test_seq_repeat_is_refused() -> None:
    """An event repeating the current seq raises InvalidTransition."""
    state = streaming("x")
    with pytest.raises(InvalidTransition, match="seq"):
        step(state, ModelDelta, text="y", seq=state.seq)


def test_wrong_session_is_refused() -> None:
    """An event for another session raises InvalidTransition, even if it is allowed otherwise."""
    with pytest.raises(InvalidTransition, match="session"):
        step(idle(), UserMessage, session_id="other", turn_id="t1", text="hi", message_id="m1")


@pytest.mark.parametrize("cls", [ModelStart, ModelDelta, ModelEnd, ModelError])
def test_wrong_turn_id_is_refused(cls: type) -> None:
    """A model event for another turn raises InvalidTransition."""
    state = in_turn() if cls is ModelStart else streaming("x")
    fields: dict[str, Any] = {
        ModelStart: {"model": "m"},
        ModelDelta: {"text": "y"},
        ModelEnd: {"finish_reason": "stop", "text": "x"},
        ModelError: {"code": "c", "message": "m"},
    }[cls]
    with pytest.raises(InvalidTransition, match="turn"):
        step(state, cls, turn_id="t-other", **fields)


def test_missing_turn_id_during_a_turn_is_refused() -> None:
    """A model event with no turn_id during a turn raises InvalidTransition."""
    state = streaming("x")
    with pytest.raises(InvalidTransition):
        apply(state, ModelDelta(session_id=SID, seq=state.seq + 1, ts=1, text="y"))


def test_refused_event_leaves_state_usable() -> None:
    """After a refused event the same state still accepts the right next event."""
    state = streaming("x")
    with pytest.raises(InvalidTransition):
        step(state, ModelDelta, text="y", seq=state.seq + 2)
    assert step(state, ModelDelta, text="y").current.text == "xy"  # type: ignore[union-attr]


# -- history ---------------------------------------------------------------------------


def test_history_lists_roles_and_contents() -> None:
    """history() gives role/content pairs in transcript order."""
    state = step(streaming("Hi!"), ModelEnd, finish_reason="stop", text="Hi!")
    assert history(state) == [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"}]


def test_history_includes_aborted_partial_text() -> None:
    """history() includes an aborted answer with the text it reached."""
    state = step(streaming("Once upon"), ModelEnd, finish_reason="aborted", text="Once upon")
    assert history(state)[-1] == {"role": "assistant", "content": "Once upon"}


def test_history_includes_failed_partial_text() -> None:
    """history() includes a failed answer's partial text."""
    state = step(streaming("Half"), ModelError, code="model_error", message="x")
    assert history(state)[-1] == {"role": "assistant", "content": "Half"}


def test_history_gives_empty_answers_as_notes() -> None:
    """history() keeps an answer with no text (aborted or failed before any delta) as a note.

    So the roles alternate, as strict chat templates (Gemma's, Mistral's) require.
    """
    state = step(in_turn(), ModelEnd, finish_reason="aborted", text="")
    state = step(state, UserMessage, turn_id="t2", text="second", message_id="m2")
    state = step(state, ModelError, code="model_error", message="x")
    state = step(state, UserMessage, turn_id="t3", text="third", message_id="m3")
    state = step(state, ModelStart, model="m")
    state = step(state, ModelEnd, finish_reason="stop", text="")
    assert history(state) == [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "(no answer: it was stopped)"},
        {"role": "user", "content": "second"},
        {"role": "assistant", "content": "(no answer: x)"},
        {"role": "user", "content": "third"},
        {"role": "assistant", "content": "(no answer)"},
    ]


def test_history_leaves_out_the_message_being_streamed() -> None:
    """history() does not include current (the answer still streaming)."""
    assert history(streaming("partial")) == [{"role": "user", "content": "Hello"}]
