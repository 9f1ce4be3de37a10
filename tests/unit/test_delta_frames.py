"""Tests for the delta fast path of llmsock_widget.wire.encode.frames: the same bytes as the general path."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsock_widget.core.events import Diagnostic, ModelDelta
from llmsock_widget.wire import protocol
from llmsock_widget.wire.codes import Dialect
from llmsock_widget.wire.strictjson import dumps

_BUILD: dict[Dialect, Callable[[Any], Any]] = {
    "envelope": protocol.to_envelope,
    "typed": protocol.to_typed,
    "llmcore": protocol.to_llmcore,
}

# Any code point, lone surrogates and control characters included.
_ANY_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF))

HOSTILE = [
    "",
    "plain ascii",
    "\ud800",
    "a\udfffb",
    "\udbff\udfff",  # a valid pair written as two lone halves
    "\ud83d\ude00 and \U0001f600",
    "".join(chr(c) for c in range(0x20)) + "\x7f\u2028\u2029",
    '"quotes" \\backslashes\\ </script> \u0000',
    "é" * 100_000 + "\ud800",
    "x" * 1_000_000,
    ("line\n" + "\t\u00e9\u4e2d\ud801" * 50) * 2_000,
]


def _general(event: ModelDelta, dialect: Dialect) -> tuple[str, ...]:
    """Return the delta's frames as the general path builds them: a dict, json, then well_formed."""
    return (protocol.well_formed(dumps(_BUILD[dialect](event))),)


def _delta(text: str, ids: str = "s-1", turn: str | None = "t-1") -> ModelDelta:
    return ModelDelta(session_id=ids, seq=7, ts=1_700_000_000_123, turn_id=turn, text=text, message_id=ids)


@pytest.mark.parametrize("dialect", protocol.DIALECTS)
@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_delta_frames_equal_general_path(text: str, dialect: Dialect) -> None:
    """A delta with hostile text gets the general path's bytes, and a frame UTF-8 can carry."""
    got = protocol.frames(_delta(text), dialect)
    assert got == _general(_delta(text), dialect)
    assert all(frame.encode("utf-8") for frame in got)


@settings(max_examples=300)
@given(text=_ANY_TEXT, ids=_ANY_TEXT.filter(bool), turn=st.one_of(st.none(), _ANY_TEXT))
def test_delta_frames_equal_general_path(text: str, ids: str, turn: str | None) -> None:
    """For any text and ids, lone surrogates included, the fast path's frames are the general path's."""
    event = _delta(text, ids, turn)
    for dialect in protocol.DIALECTS:
        assert protocol.frames(event, dialect) == _general(event, dialect)


def test_delta_that_cannot_be_encoded_still_becomes_a_diagnostic() -> None:
    """A delta whose text is not a string is sent as the unencodable_event diagnostic, with its seq."""
    event = _delta("x")
    object.__setattr__(event, "text", None)  # a value no constructor check stops
    stand_in = Diagnostic(
        session_id="s-1",
        seq=7,
        ts=1_700_000_000_123,
        turn_id="t-1",
        level="error",
        code="unencodable_event",
        message="a ModelDelta event could not be encoded (TypeError); it is left out",
    )
    for dialect in protocol.DIALECTS:
        assert protocol.frames(event, dialect) == (dumps(_BUILD[dialect](stand_in)),)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"seq": 0}, "seq must be >= 1, not 0"),
        ({"seq": True}, "seq must be >= 1, not True"),
        ({"seq": "3"}, "seq must be >= 1, not '3'"),
        ({"session_id": ""}, "session_id must not be empty"),
    ],
)
def test_bad_event_still_says_what_is_wrong(fields: dict[str, Any], message: str) -> None:
    """An event refused on construction names the bad value, as before."""
    values: dict[str, Any] = {"session_id": "s-1", "seq": 1, "ts": 0, "text": "x", **fields}
    with pytest.raises(ValueError) as caught:
        ModelDelta(**values)
    assert str(caught.value) == message
