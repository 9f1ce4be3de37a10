"""Tests for llmsock_widget.core.snapshot: state <-> versioned JSON."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest

from llmsock_widget.core import snapshot
from llmsock_widget.core.session import InteractionState, Message, new_state
from llmsock_widget.errors import CorruptSnapshot, SnapshotVersionError, StoreError


def _empty() -> InteractionState:
    return new_state("empty-session", ts=1_700_000_000_000, model="builtin")


def _several_turns() -> InteractionState:
    def pair(n: int, status: Any, text: str, **extra: Any) -> tuple[Message, Message]:
        turn = f"t{n}"
        return (
            Message(id=f"m{n}", role="user", text=f"question {n} — ünïcode 😀", turn_id=turn, ts=100 * n),
            Message(
                id=f"{turn}:a",
                role="assistant",
                text=text,
                turn_id=turn,
                ts=100 * n + 1,
                status=status,
                **extra,
            ),
        )

    messages = (
        *pair(1, "complete", "answer one", usage={"inputTokens": 10, "outputTokens": 4}),
        *pair(2, "aborted", "partial ans"),
        *pair(3, "error", "half", error={"code": "model_error", "message": "upstream 502"}),
        *pair(4, "length", "cut off here", usage={"inputTokens": 30, "outputTokens": 64}),
        *pair(5, "aborted", ""),
        *pair(
            6,
            "error",
            "x",
            error={"code": "timeout", "message": "took too long"},
            usage={"inputTokens": 1, "outputTokens": 1},
        ),
    )
    return InteractionState(
        session_id="sess_turns-1",
        seq=27,
        revision=4,
        phase="idle",
        status="paused",
        turn_id=None,
        messages=messages,
        current=None,
        model="gpt-test",
        created_at=5,
        updated_at=999,
    )


def _mid_stream() -> InteractionState:
    base = _several_turns()
    user = Message(id="m7", role="user", text="tell me more", turn_id="t7", ts=700)
    current = Message(
        id="t7:a",
        role="assistant",
        text="Sure, h",
        turn_id="t7",
        ts=701,
        status="streaming",
        usage={"inputTokens": 3, "outputTokens": 2},
    )
    return dataclasses.replace(
        base,
        seq=31,
        revision=5,
        phase="streaming",
        status="generating",
        turn_id="t7",
        messages=(*base.messages, user),
        current=current,
        updated_at=1001,
    )


STATES = {"empty": _empty, "several turns": _several_turns, "mid-stream": _mid_stream}


def _valid() -> dict[str, Any]:
    return snapshot.encode(_mid_stream())


# -- round trip --------------------------------------------------------------------------


@pytest.mark.parametrize("make", list(STATES.values()), ids=list(STATES))
def test_round_trip_keeps_every_field(make: Any) -> None:
    """loads(dumps(state)) equals the state on every field, messages and current included."""
    state = make()
    back = snapshot.loads(snapshot.dumps(state))
    for f in dataclasses.fields(InteractionState):
        assert getattr(back, f.name) == getattr(state, f.name), f.name
    assert back == state


@pytest.mark.parametrize("make", list(STATES.values()), ids=list(STATES))
def test_round_trip_through_bytes(make: Any) -> None:
    """loads accepts the snapshot as UTF-8 bytes too."""
    state = make()
    assert snapshot.loads(snapshot.dumps(state).encode("utf-8")) == state


def test_round_trip_keeps_message_types() -> None:
    """Messages come back as a tuple of Message values, current as a Message."""
    back = snapshot.loads(snapshot.dumps(_mid_stream()))
    assert isinstance(back.messages, tuple)
    assert all(isinstance(m, Message) for m in back.messages)
    assert isinstance(back.current, Message)


def test_dumps_is_versioned_compact_json() -> None:
    """dumps writes compact JSON that starts with the schema number and keeps non-ASCII as is."""
    text = snapshot.dumps(_several_turns())
    data = json.loads(text)
    assert data["schema"] == snapshot.SCHEMA == 1
    assert text == json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    assert "😀" in text


def test_encode_does_not_share_message_dicts() -> None:
    """encode copies error/usage dicts, so changing the snapshot does not change the state."""
    state = _several_turns()
    data = snapshot.encode(state)
    data["messages"][1]["usage"]["inputTokens"] = 999
    assert state.messages[1].usage == {"inputTokens": 10, "outputTokens": 4}


# -- versions ------------------------------------------------------------------------------


def test_newer_schema_is_refused_with_a_clear_message() -> None:
    """A snapshot from a newer llmsock raises SnapshotVersionError naming both versions."""
    data = _valid()
    data["schema"] = snapshot.SCHEMA + 1
    with pytest.raises(SnapshotVersionError) as info:
        snapshot.decode(data)
    message = str(info.value)
    assert str(snapshot.SCHEMA + 1) in message
    assert str(snapshot.SCHEMA) in message
    assert "newer" in message
    assert info.value.recoverable is False


def test_snapshot_version_error_is_not_corrupt_snapshot() -> None:
    """A newer snapshot is not corrupt: the store must not move it aside."""
    assert not issubclass(SnapshotVersionError, CorruptSnapshot)
    assert issubclass(CorruptSnapshot, StoreError)


# -- corrupt snapshots -----------------------------------------------------------------------


def _without(key: str) -> dict[str, Any]:
    data = _valid()
    del data[key]
    return data


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(_valid())
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


CORRUPT = {
    "not an object (list)": [],
    "not an object (string)": "snapshot",
    "not an object (null)": None,
    "missing schema": _without("schema"),
    "schema is a string": _with(("schema",), "1"),
    "schema is a float": _with(("schema",), 1.0),
    "schema is a boolean": _with(("schema",), True),
    "schema zero": _with(("schema",), 0),
    "schema negative": _with(("schema",), -1),
    "missing sessionId": _without("sessionId"),
    "empty sessionId": _with(("sessionId",), ""),
    "sessionId not a string": _with(("sessionId",), 7),
    "missing seq": _without("seq"),
    "negative seq": _with(("seq",), -1),
    "seq a string": _with(("seq",), "3"),
    "seq a float": _with(("seq",), 3.0),
    "seq a boolean": _with(("seq",), True),
    "negative revision": _with(("revision",), -2),
    "bad phase": _with(("phase",), "thinking"),
    "bad status": _with(("status",), "busy"),
    "turnId not a string": _with(("turnId",), 12),
    "model not a string": _with(("model",), None),
    "createdAt a string": _with(("createdAt",), "yesterday"),
    "messages not a list": _with(("messages",), {"0": {}}),
    "missing messages": _without("messages"),
    "message not an object": _with(("messages", 0), "hello"),
    "bad role": _with(("messages", 0, "role"), "system"),
    "bad message status": _with(("messages", 1, "status"), "done"),
    "message text not a string": _with(("messages", 0, "text"), ["a"]),
    "message id empty": _with(("messages", 0, "id"), ""),
    "message missing ts": _with(
        ("messages", 0), {"id": "x", "role": "user", "text": "", "turnId": "t", "status": "complete"}
    ),
    "message negative ts": _with(("messages", 0, "ts"), -5),
    "error not an object": _with(("messages", 5, "error"), "boom"),
    "error value not a string": _with(("messages", 5, "error", "code"), 500),
    "usage value not an integer": _with(("messages", 1, "usage", "inputTokens"), "10"),
    "usage value a boolean": _with(("messages", 1, "usage", "inputTokens"), True),
    "current not an object": _with(("current",), "streaming"),
    "current bad status": _with(("current", "status"), "writing"),
}


@pytest.mark.parametrize("data", list(CORRUPT.values()), ids=list(CORRUPT))
def test_malformed_snapshot_is_corrupt(data: Any) -> None:
    """A snapshot that is not well formed raises CorruptSnapshot (never KeyError/TypeError)."""
    with pytest.raises(CorruptSnapshot):
        snapshot.decode(data)


@pytest.mark.parametrize(
    "text",
    ["", "not json", "{", '{"schema": 1,}', b"\xff\xfe\x00", "[" * 100_000 + "]" * 100_000],
    ids=["empty", "not json", "truncated", "trailing comma", "bad utf-8", "very deep"],
)
def test_unreadable_text_is_corrupt(text: str | bytes) -> None:
    """loads of text that is not JSON raises CorruptSnapshot."""
    with pytest.raises(CorruptSnapshot):
        snapshot.loads(text)


def test_corrupt_snapshot_message_says_what_is_wrong() -> None:
    """The CorruptSnapshot message names the offending field."""
    with pytest.raises(CorruptSnapshot, match="seq"):
        snapshot.decode(_with(("seq",), -1))


# -- tolerance and secrets ------------------------------------------------------------------


def test_unknown_fields_are_ignored() -> None:
    """Extra fields at the top, in messages and in current do not stop a snapshot from loading."""
    data = _valid()
    data["futureFeature"] = {"x": 1}
    data["messages"][0]["reactions"] = ["👍"]
    data["current"]["draft"] = True
    assert snapshot.decode(data) == _mid_stream()


def test_optional_fields_may_be_missing() -> None:
    """A snapshot without turnId or current loads with them as None."""
    data = snapshot.encode(_several_turns())
    del data["turnId"]
    del data["current"]
    assert snapshot.decode(data) == _several_turns()


def test_snapshot_holds_no_secret_fields() -> None:
    """dumps output has no token/apiKey/api_key key anywhere (the state has no place for them)."""
    forbidden = {"token", "apikey", "api_key", "secret", "password", "authorization"}

    def keys(value: Any) -> set[str]:
        if isinstance(value, dict):
            return {k.lower() for k in value} | {k for v in value.values() for k in keys(v)}
        if isinstance(value, list):
            return {k for v in value for k in keys(v)}
        return set()

    for make in STATES.values():
        text = snapshot.dumps(make())
        assert not keys(json.loads(text)) & forbidden


def test_state_type_has_no_place_for_secrets() -> None:
    """Neither InteractionState nor Message has a field that could hold a token or key."""
    names = {f.name.lower() for f in dataclasses.fields(InteractionState)}
    names |= {f.name.lower() for f in dataclasses.fields(Message)}
    assert not {n for n in names if "token" in n or "key" in n or "secret" in n}


def _long_state(turns: int, chars: int) -> InteractionState:
    messages = []
    for n in range(turns):
        messages.append(Message(id=f"m{n}", role="user", text=f"question {n}", turn_id=f"t{n}", ts=n))
        messages.append(Message(id=f"t{n}:a", role="assistant", text="x" * chars, turn_id=f"t{n}", ts=n))
    return dataclasses.replace(new_state("big"), messages=tuple(messages), seq=2 * turns)


def test_fit_drops_oldest_whole_turns_to_meet_the_cap() -> None:
    """fit() drops the oldest turns (both messages) until the snapshot fits, and counts them."""
    state = _long_state(turns=20, chars=1000)
    fitted = snapshot.fit(state, max_chars=8000)
    assert len(snapshot.dumps(fitted)) <= 8000
    assert fitted.dropped_turns == 20 - len(fitted.messages) // 2
    assert fitted.messages[-1] == state.messages[-1] and fitted.messages[0].role == "user"
    assert snapshot.loads(snapshot.dumps(fitted)) == fitted


def test_fit_keeps_a_state_that_already_fits() -> None:
    """A state under the cap comes back unchanged."""
    state = _long_state(turns=2, chars=10)
    assert snapshot.fit(state, max_chars=100_000) is state


def test_fit_always_keeps_the_latest_turn() -> None:
    """Even when one turn alone is over the cap, the latest turn is kept (the cap is a goal, not a cut)."""
    state = _long_state(turns=3, chars=50_000)
    fitted = snapshot.fit(state, max_chars=1000)
    assert [m.turn_id for m in fitted.messages] == ["t2", "t2"] and fitted.dropped_turns == 2


@pytest.mark.parametrize("cap", range(5000, 5400, 7))
def test_fit_never_ends_over_the_cap(cap: int) -> None:
    """Whatever the cap, a fitted snapshot of many turns is within it (the count's digits included)."""
    fitted = snapshot.fit(_long_state(turns=30, chars=100), max_chars=cap)
    assert len(snapshot.dumps(fitted)) <= cap
