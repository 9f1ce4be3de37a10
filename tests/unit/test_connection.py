"""The inbound pipeline of a connection parses each client frame's JSON once, whoever asks about it."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

from llmsock_widget.core.events import Event
from llmsock_widget.errors import InvalidFrame
from llmsock_widget.server.connection import act_on_frame
from llmsock_widget.server.limits import ConnectionStats, Limits, RateLimiter, Stats
from llmsock_widget.server.websocket import auth_frame_token
from llmsock_widget.wire import decode as decoder
from llmsock_widget.wire import protocol

PROMPT = json.dumps({"type": "user_message", "id": "m1", "data": {"text": "hello"}})


class FakeHub:
    """The part of the hub the pipeline uses: a clock and ``handle``, which records the commands."""

    def __init__(self) -> None:
        self.commands: list[protocol.Command] = []

    def clock(self) -> int:
        return 0

    def handle(self, session_id: str, command: protocol.Command, reply: Callable[[Event], None]) -> None:
        self.commands.append(command)


class FakeServer:
    """A ServerContext with only what ``act_on_frame`` reads."""

    def __init__(self) -> None:
        self.hub = FakeHub()
        self.stats = Stats()
        self.limits = Limits()

    def status(self) -> dict[str, Any]:
        return {}


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the strict parser's runs on client frames (the decoder's own reference to it)."""
    seen: list[str] = []
    real = decoder.parse_json

    def counting(text: str) -> Any:
        seen.append(text)
        return real(text)

    monkeypatch.setattr(decoder, "parse_json", counting)
    return seen


def _act(server: FakeServer, frame: str | protocol.ClientFrame, dialect: protocol.Dialect) -> list[Event]:
    replies: list[Event] = []
    limiter = RateLimiter(rate=1.0, burst=10)
    counters = ConnectionStats(transport="test")
    act_on_frame(server, "s1", frame, dialect, limiter, counters, replies.append)  # type: ignore[arg-type]
    return replies


def test_a_first_frame_is_parsed_once_for_the_sniff_and_the_decoder(parses: list[str]) -> None:
    """A first JSON prompt is parsed once, though the dialect sniff and the decoder both read it."""
    server = FakeServer()
    frame = protocol.ClientFrame(PROMPT)  # as the WebSocket handler makes it
    dialect = protocol.detect_dialect(frame)
    replies = _act(server, frame, dialect)
    assert dialect == "typed" and not replies
    assert server.hub.commands == [protocol.SendPrompt(text="hello", message_id="m1")]
    assert parses == [PROMPT]


@pytest.mark.parametrize("dialect", ["envelope", "typed"])
def test_a_json_frame_is_parsed_once_by_the_decoder(parses: list[str], dialect: protocol.Dialect) -> None:
    """A JSON command (as a comm link passes it, plain text) is parsed once in either dialect."""
    server = FakeServer()
    assert not _act(server, PROMPT, dialect)
    assert server.hub.commands == [protocol.SendPrompt(text="hello", message_id="m1")]
    assert parses == [PROMPT]


def test_a_plain_text_prompt_is_never_parsed(parses: list[str]) -> None:
    """A plain-text prompt in the envelope dialect is taken as it is, without running the JSON parser."""
    server = FakeServer()
    assert not _act(server, "hello", "envelope")
    assert server.hub.commands == [protocol.SendPrompt(text="hello")]
    assert parses == []


def test_a_bad_frame_gives_the_same_error_however_often_it_is_read(parses: list[str]) -> None:
    """A frame that is not JSON is parsed once and refused with the parser's own message."""
    server = FakeServer()
    frame = protocol.ClientFrame("{not json")
    assert protocol.detect_dialect(frame) == "envelope"
    assert auth_frame_token(frame) is None
    with pytest.raises(InvalidFrame) as first:
        frame.json()
    replies = _act(server, frame, "typed")
    assert [getattr(r, "message", None) for r in replies] == [first.value.message]
    assert parses == ["{not json"]


def test_the_auth_frame_is_parsed_once(parses: list[str]) -> None:
    """The browser's auth frame is read for its token with one run of the parser."""
    frame = protocol.ClientFrame(json.dumps({"type": "auth", "token": "t" * 32}))
    assert auth_frame_token(frame) == "t" * 32
    assert protocol.detect_dialect(frame) == "envelope"
    assert len(parses) == 1
