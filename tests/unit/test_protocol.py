"""Tests for llmsock_widget.wire.protocol: both wire dialects, driven by the shared fixtures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmsock_widget.core import events
from llmsock_widget.core.events import ModelDelta, ModelEnd, Pong, UserMessage
from llmsock_widget.errors import ClientError, InvalidFrame, UnknownType
from llmsock_widget.wire import protocol

WIRE = Path(__file__).resolve().parent.parent / "fixtures" / "wire"


def _load(name: str) -> list[dict[str, Any]]:
    with open(WIRE / name, encoding="utf-8") as f:
        cases = json.load(f)
    assert isinstance(cases, list) and cases
    return cases


CLIENT_FRAMES = _load("client_frames.json")
SERVER_EVENTS = _load("server_events.json")


def _command_dict(command: protocol.Command) -> dict[str, Any]:
    """Return the language-neutral form of a command used by the fixtures."""
    if isinstance(command, protocol.SendPrompt):
        return {
            "kind": "prompt",
            "text": command.text,
            "messageId": command.message_id,
            "options": command.options,
        }
    if isinstance(command, protocol.Control):
        return {"kind": "control", "action": command.action, "requestId": command.request_id}
    if isinstance(command, protocol.Ping):
        return {"kind": "ping", "requestId": command.request_id, "data": command.data}
    raise AssertionError(f"not a command: {command!r}")


def _event(case: dict[str, Any]) -> events.Event:
    cls = getattr(events, case["event"]["class"])
    return cls(**case["event"]["fields"])  # type: ignore[no-any-return]


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [case["name"] for case in cases]


# -- the fixtures themselves -----------------------------------------------------------


@pytest.mark.parametrize("cases", [CLIENT_FRAMES, SERVER_EVENTS], ids=["client_frames", "server_events"])
def test_fixture_names_are_unique(cases: list[dict[str, Any]]) -> None:
    """Every fixture case has a distinct name, so test ids are unambiguous."""
    names = _ids(cases)
    assert len(names) == len(set(names))


def test_client_fixtures_have_the_documented_shape() -> None:
    """Each client case has name, dialect, a string frame and exactly one of command/error."""
    for case in CLIENT_FRAMES:
        assert set(case) == {"name", "dialect", "frame", "expect"}, case["name"]
        assert case["dialect"] in protocol.DIALECTS, case["name"]
        assert isinstance(case["frame"], str), case["name"]
        assert len(case["expect"]) == 1 and set(case["expect"]) <= {"command", "error"}, case["name"]


def test_client_fixtures_cover_every_client_type_and_control_action() -> None:
    """The client fixtures decode every seed-004 type and control action at least once."""
    kinds = set()
    actions = set()
    for case in CLIENT_FRAMES:
        command = case["expect"].get("command")
        if command and case["dialect"] == "typed":
            kinds.add(command["kind"])
            if command["kind"] == "control":
                actions.add(command["action"])
    assert kinds == {"prompt", "control", "ping"}
    assert actions == set(protocol.CONTROL_ACTIONS)


def test_server_fixtures_cover_every_event_class() -> None:
    """Every public event class in events.py has at least one server fixture."""
    classes = {
        name
        for name, obj in vars(events).items()
        if isinstance(obj, type)
        and dataclasses.is_dataclass(obj)
        and obj.__module__ == events.__name__
        and not name.startswith("_")
    }
    covered = {case["event"]["class"] for case in SERVER_EVENTS}
    assert classes == covered


# -- decode ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CLIENT_FRAMES, ids=_ids(CLIENT_FRAMES))
def test_decode_matches_fixture(case: dict[str, Any]) -> None:
    """decode gives the fixture's command, or raises a client error with the fixture's code."""
    expect = case["expect"]
    if "command" in expect:
        command = protocol.decode(case["frame"], case["dialect"])
        assert _command_dict(command) == expect["command"]
    else:
        with pytest.raises(ClientError) as info:
            protocol.decode(case["frame"], case["dialect"])
        assert info.value.code == expect["error"]["code"]
        assert info.value.recoverable is True


def test_unknown_type_raises_unknown_type_class() -> None:
    """An unknown seed-004 type raises UnknownType, not InvalidFrame."""
    with pytest.raises(UnknownType):
        protocol.decode('{"type":"hello"}', "typed")


def test_unknown_control_action_raises_unknown_type_class() -> None:
    """An unknown control action raises UnknownType naming the action."""
    with pytest.raises(UnknownType, match="reboot"):
        protocol.decode('{"type":"control","data":{"type":"reboot"}}', "typed")


def test_invalid_frame_message_names_the_problem() -> None:
    """A duplicate key is reported as such, with the key in the message."""
    with pytest.raises(InvalidFrame, match=r"duplicate key.*'type'"):
        protocol.decode('{"type":"ping","type":"ping"}', "typed")


def test_envelope_unknown_json_type_is_a_prompt() -> None:
    """In the envelope dialect a JSON object with an unknown type is sent as prompt text, verbatim."""
    frame = '{"type": "chat", "text": "hi"}'
    assert protocol.decode(frame, "envelope") == protocol.SendPrompt(text=frame)


def test_envelope_known_json_type_is_a_command() -> None:
    """In the envelope dialect a JSON object with a seed-004 client type is decoded as that command."""
    assert protocol.decode('{"type":"control","data":{"type":"pause"}}', "envelope") == protocol.Control(
        action="pause"
    )
    assert protocol.decode('{"type":"user_message","data":{"text":"x"}}', "envelope") == protocol.SendPrompt(
        text="x"
    )


def test_parse_json_returns_plain_values() -> None:
    """parse_json returns the parsed value for well-formed JSON within the limits."""
    text = '{"a":[1,2.5,"x",null,true],"b":{"c":12345678901234567890}}'
    assert protocol.parse_json(text) == {"a": [1, 2.5, "x", None, True], "b": {"c": 12345678901234567890}}


def test_parse_json_depth_limit_is_exact() -> None:
    """parse_json accepts nesting down to MAX_DEPTH and refuses one level more."""
    limit = protocol.MAX_DEPTH
    ok = "[" * (limit + 1) + "]" * (limit + 1)
    assert protocol.parse_json(ok) is not None
    too_deep = "[" * (limit + 2) + "]" * (limit + 2)
    with pytest.raises(InvalidFrame):
        protocol.parse_json(too_deep)


def test_parse_json_very_deep_nesting_is_invalid_frame() -> None:
    """A nesting deep enough to exhaust the recursion limit is an InvalidFrame, not a crash."""
    with pytest.raises(InvalidFrame):
        protocol.parse_json("[" * 100_000 + "]" * 100_000)


def test_parse_json_refuses_float_overflow() -> None:
    """A number that overflows to infinity is refused like Infinity (it could never be encoded back)."""
    with pytest.raises(InvalidFrame):
        protocol.parse_json('{"x":1e999}')
    with pytest.raises(InvalidFrame):
        protocol.parse_json("[-1e400]")


def test_decoded_ping_data_can_always_be_encoded_in_a_pong() -> None:
    """A pong echoing a decoded ping's data encodes without error (no inf/nan slipped through)."""
    frame = '{"type":"ping","id":"p","data":{"x":1e999}}'
    try:
        command = protocol.decode(frame, "typed")
    except InvalidFrame:
        return
    assert isinstance(command, protocol.Ping)
    assert protocol.encode(Pong(ts=1, request_id=command.request_id, data=command.data), "typed")


# -- detect_dialect ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "dialect"),
    [
        ("Hello, who are you?", "envelope"),
        ("", "envelope"),
        ("[1, 2]", "envelope"),
        ("{not json", "envelope"),
        ('{"type":"hello"}', "envelope"),
        ('{"text":"no type"}', "envelope"),
        ('{"type":"ping","type":"ping"}', "envelope"),
        ('{"type":"user_message","data":{"text":"hi"}}', "typed"),
        ('{"type":"control","data":{"type":"abort"}}', "typed"),
        ('{"type":"ping"}', "typed"),
        ('  \n{"type":"ping"}', "typed"),
    ],
    ids=[
        "plain text",
        "empty",
        "json array",
        "brace non-json",
        "unknown type",
        "no type",
        "duplicate keys",
        "user_message",
        "control",
        "ping",
        "leading whitespace",
    ],
)
def test_detect_dialect(frame: str, dialect: str) -> None:
    """A first frame that is a valid JSON object with a client type means typed; anything else envelope."""
    assert protocol.detect_dialect(frame) == dialect


# -- encode ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", SERVER_EVENTS, ids=_ids(SERVER_EVENTS))
@pytest.mark.parametrize("dialect", protocol.DIALECTS)
def test_encode_matches_fixture(case: dict[str, Any], dialect: str) -> None:
    """encode gives text that parses back to the fixture's object, or None where the dialect has none."""
    text = protocol.encode(_event(case), dialect)  # type: ignore[arg-type]
    expected = case[dialect]
    if expected is None:
        assert text is None
    else:
        assert text is not None
        assert json.loads(text) == expected


@pytest.mark.parametrize("case", SERVER_EVENTS, ids=_ids(SERVER_EVENTS))
def test_to_functions_agree_with_encode(case: dict[str, Any]) -> None:
    """to_envelope/to_typed return the objects that encode serialises."""
    event = _event(case)
    assert protocol.to_envelope(event) == case["envelope"]
    assert protocol.to_typed(event) == case["typed"]


@pytest.mark.parametrize("dialect", protocol.DIALECTS)
def test_encode_is_compact_json(dialect: str) -> None:
    """encode emits JSON with no whitespace between tokens."""
    event = ModelEnd(
        session_id="s",
        seq=2,
        ts=5,
        turn_id="t",
        finish_reason="stop",
        text="a b",
        message_id="m",
        usage={"inputTokens": 1, "outputTokens": 2},
    )
    text = protocol.encode(event, dialect)  # type: ignore[arg-type]
    assert text is not None
    assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    assert ", " not in text and ": " not in text and "\n" not in text


@pytest.mark.parametrize("dialect", protocol.DIALECTS)
def test_encode_keeps_non_ascii_text(dialect: str) -> None:
    """encode writes non-ASCII characters as themselves, not as \\u escapes."""
    text = "Grüße, 日本, 😀"
    event = ModelDelta(session_id="s", seq=3, ts=1, turn_id="t", text=text, message_id="m")
    encoded = protocol.encode(event, dialect)  # type: ignore[arg-type]
    assert encoded is not None
    assert text in encoded
    assert "\\u" not in encoded


def test_typed_chunk_id_is_the_user_message_id() -> None:
    """A seed-004 llm_chunk carries the id of the user message it answers."""
    user = UserMessage(session_id="s", seq=1, ts=1, turn_id="t1", text="hi", message_id="msg_42")
    delta = ModelDelta(session_id="s", seq=3, ts=2, turn_id="t1", text="Hel", message_id=user.message_id)
    encoded = protocol.encode(delta, "typed")
    assert encoded is not None
    message = json.loads(encoded)
    assert message["type"] == "llm_chunk"
    assert message["id"] == "msg_42"
    assert message["data"] == {"chunk": "Hel", "isComplete": False}


def test_encode_refuses_a_non_event() -> None:
    """encode raises TypeError for a value that is not an event, in both dialects."""
    for dialect in protocol.DIALECTS:
        with pytest.raises(TypeError):
            protocol.encode(object(), dialect)  # type: ignore[arg-type]


def test_encode_never_writes_nan() -> None:
    """encode refuses a non-finite number rather than writing invalid JSON."""
    with pytest.raises(ValueError):
        protocol.encode(Pong(ts=1, data={"x": float("nan")}), "typed")


@given(
    text=st.text(alphabet=st.characters(exclude_categories=["Cs"])),
    ids=st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1),
    turn=st.one_of(st.none(), st.text(min_size=1, alphabet='abc-_"\\')),
)
def test_delta_fast_path_equals_general_encoding(text: str, ids: str, turn: str | None) -> None:
    """The hand-built delta frame is byte-for-byte the general json.dumps encoding, in both dialects."""
    event = ModelDelta(session_id=ids, seq=7, ts=123, turn_id=turn, text=text, message_id=ids)
    for dialect, build in (("envelope", protocol.to_envelope), ("typed", protocol.to_typed)):
        general = json.dumps(build(event), ensure_ascii=False, separators=(",", ":"))
        assert protocol.encode(event, dialect) == general  # type: ignore[arg-type]
