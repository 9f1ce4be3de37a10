"""LiveSession's hot path: a delta costs the checks that can change, a save no extra copy of the state."""

from __future__ import annotations

from dataclasses import replace

import pytest

from llmsock_widget.core.events import (
    ModelDelta,
    ModelReasoning,
    ModelStart,
    SessionEvent,
    UserMessage,
    model_delta,
)
from llmsock_widget.core.session import InvalidTransition, new_state
from llmsock_widget.runtime import live as live_module
from llmsock_widget.runtime.live import LiveSession

SID = "s1"


def streaming() -> tuple[LiveSession, list[SessionEvent]]:
    published: list[SessionEvent] = []
    live = LiveSession(
        key=SID, state=new_state(SID, ts=1), publish=lambda _, e: published.append(e), clock=lambda: 1
    )
    live.emit(UserMessage(session_id=SID, seq=1, ts=1, turn_id="t1", text="hi", message_id="m"))
    live.emit(ModelStart(session_id=SID, seq=2, ts=1, turn_id="t1", model="builtin", message_id="m"))
    return live, published


def delta(seq: int, **changes: object) -> ModelDelta:
    event = ModelDelta(session_id=SID, seq=seq, ts=2, turn_id="t1", text=f"<{seq}>", message_id="m")
    return replace(event, **changes)  # type: ignore[arg-type]


def test_a_stream_of_deltas_asks_the_lifecycle_once(monkeypatch: pytest.MonkeyPatch) -> None:
    live, _ = streaming()
    calls = 0
    full_check = live_module.check  # type: ignore[attr-defined]

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return full_check(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(live_module, "check", counting)
    for seq in range(3, 1003):
        live.emit(delta(seq))
    assert calls == 1  # not once per delta
    assert live.state.current is not None
    assert live.state.current.text == "".join(f"<{seq}>" for seq in range(3, 1003))


@pytest.mark.parametrize(
    "wrong",
    [{"seq": 5}, {"seq": 3}, {"session_id": "other"}, {"turn_id": "t2"}],
    ids=["skips a seq", "repeats a seq", "another session", "another turn"],
)
def test_a_wrong_delta_after_good_ones_is_refused_as_before(wrong: dict[str, object]) -> None:
    live, published = streaming()
    live.emit(delta(3))
    with pytest.raises(InvalidTransition):
        wrong = dict(wrong)
        live.emit(delta(int(wrong.pop("seq", 4)), **wrong))  # type: ignore[call-overload]
    live.emit(delta(4))  # the session goes on from where it was
    assert [e.seq for e in published] == [1, 2, 3, 4]


def test_reasoning_after_deltas_is_checked_in_its_own_right() -> None:
    live, published = streaming()
    live.emit(delta(3))
    live.emit(ModelReasoning(session_id=SID, seq=4, ts=2, turn_id="t1", text="hm", message_id="m"))
    assert live.state.current is not None and live.state.current.reasoning == "hm"
    assert [e.seq for e in published] == [1, 2, 3, 4]


def test_a_save_with_nothing_emitted_meanwhile_keeps_the_saved_state_itself() -> None:
    live, _ = streaming()
    base = live.state
    saved = replace(base, revision=base.revision + 1)
    live.mark_saved(saved, base)
    assert live.state is saved  # no second copy of the whole state
    assert live.saved_seq == 2 and not live.unsaved


def test_a_save_overtaken_by_events_keeps_them_and_takes_the_revision() -> None:
    live, _ = streaming()
    base = live.state
    saved = replace(base, revision=base.revision + 1)
    live.emit(delta(3))  # while the store was writing
    live.mark_saved(saved, base)
    assert live.state.revision == saved.revision and live.state.seq == 3
    assert live.state.current is not None and live.state.current.text == "<3>"
    assert live.unsaved


def test_emit_delta_publishes_and_folds_what_emit_of_the_same_delta_does() -> None:
    fast, fast_published = streaming()
    slow, slow_published = streaming()
    for seq in range(3, 503):
        fast.emit_delta(f"<{seq}>")
        slow.emit(delta(seq, ts=1, message_id=slow.message_id))
    fast.emit(ModelReasoning(session_id=SID, seq=503, ts=1, turn_id="t1", text="hm", message_id="m"))
    fast.emit_delta("after")  # checked again: the last event was no delta
    slow.emit(ModelReasoning(session_id=SID, seq=503, ts=1, turn_id="t1", text="hm", message_id="m"))
    slow.emit(delta(504, ts=1, text="after", message_id=slow.message_id))
    assert fast_published == slow_published
    assert fast.state == slow.state
    assert fast.missed(2) == slow.missed(2)


def test_emit_delta_outside_a_streaming_turn_is_refused_and_publishes_nothing() -> None:
    published: list[SessionEvent] = []
    live = LiveSession(
        key=SID, state=new_state(SID, ts=1), publish=lambda _, e: published.append(e), clock=lambda: 1
    )
    with pytest.raises(InvalidTransition):
        live.emit_delta("no turn")
    assert published == [] and live.seq == 0


@pytest.mark.parametrize("seq", [0, -1, True, 1.0])
def test_model_delta_makes_what_the_dataclass_makes_and_refuses_what_it_refuses(seq: object) -> None:
    made = model_delta(SID, 7, 3, "t1", "m", "x")
    assert made == ModelDelta(session_id=SID, seq=7, ts=3, turn_id="t1", message_id="m", text="x")
    assert hash(made) == hash(ModelDelta(session_id=SID, seq=7, ts=3, turn_id="t1", message_id="m", text="x"))
    with pytest.raises(ValueError, match="seq must be >= 1"):
        model_delta(SID, seq, 3, "t1", "m", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seq must be >= 1"):
        ModelDelta(session_id=SID, seq=seq, ts=3, turn_id="t1", message_id="m", text="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="session_id"):
        model_delta("", 7, 3, "t1", "m", "x")
    with pytest.raises(AttributeError):
        made.text = "changed"  # type: ignore[misc]
