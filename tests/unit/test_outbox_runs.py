"""The WebSocket outbox's runs of deltas: what waits together leaves as the merged frames it must.

A delta waiting alone is queued as its shared frame (no object of its own); one that continues
it turns the two into a run.  Whatever the order of events, the frames that leave must be those
of the reference rule (docs/protocol.md, section 5.1): consecutive deltas of one message of one
turn, with nothing between them, leave as one delta (``joined_deltas``); every other event
leaves as its own frames.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from llmsock_widget.core.events import Event, ModelDelta, StatusChanged, joined_deltas
from llmsock_widget.server.websocket import WebSocketHandler, _frames_of
from llmsock_widget.wire import protocol

SID = "s"


class _Server:
    """The part of a ServerThread the outbox uses: frames (encoded once per event), the limit."""

    outbound_limit = 1 << 30

    def __init__(self) -> None:
        self.encoded = 0

    def frames(self, event: Event, dialect: protocol.Dialect) -> tuple[str, ...]:
        self.encoded += 1
        return protocol.frames(event, dialect)


def _outbox(dialect: protocol.Dialect) -> Any:
    """Return a handler with only its outbox set up, whose flush never runs (it is 'flushing')."""
    handler: Any = WebSocketHandler.__new__(WebSocketHandler)
    handler.server = _Server()
    handler.dialect = dialect
    handler._outbox, handler._outbox_size = [], 0
    handler._lone_frame, handler._lone_turn_id = None, None
    handler._lone_text = handler._lone_message_id = ""
    handler._closing, handler._flushing = False, True
    return handler


def _queued_frames(handler: Any) -> list[str]:
    return [frame for item in handler._outbox for frame in _frames_of(item, handler.dialect)]


def _reference(events: list[Event], dialect: protocol.Dialect) -> tuple[list[str], int]:
    """Return the frames the events must leave as (runs of deltas of one message joined, the rest
    as they are) and the size the outbox counts for them (a run: its first frame and the text
    of the others).
    """
    out: list[str] = []
    size = 0
    run: list[ModelDelta] = []
    for event in [*events, None]:
        if run and not (
            type(event) is ModelDelta
            and event.message_id == run[-1].message_id
            and event.turn_id == run[-1].turn_id
        ):
            out += protocol.frames(joined_deltas(run), dialect)
            size += sum(map(len, protocol.frames(run[0], dialect))) + sum(len(d.text) for d in run[1:])
            run = []
        if type(event) is ModelDelta:
            run.append(event)
        elif event is not None:
            out += protocol.frames(event, dialect)
            size += sum(map(len, protocol.frames(event, dialect)))
    return out, size


def _events(pattern: str) -> list[Event]:
    """Return events from letters: ``a``/``b`` a delta of message a/b, ``t`` of turn 2, ``s`` a status."""
    events: list[Event] = []
    for seq, letter in enumerate(pattern, 1):
        if letter == "s":
            events.append(StatusChanged(session_id=SID, seq=seq, ts=seq, turn_id="t1", status="generating"))
        else:
            turn = "t2" if letter == "t" else "t1"
            message = "m-a" if letter in "at" else "m-b"
            text = f" w{seq}é" if seq % 3 == 0 else f" w{seq}"  # some not ASCII
            events.append(
                ModelDelta(session_id=SID, seq=seq, ts=seq, turn_id=turn, message_id=message, text=text)
            )
    return events


PATTERNS = ["".join(p) for n in range(1, 5) for p in itertools.product("abst", repeat=n)]


@pytest.mark.parametrize("dialect", ["envelope", "typed", "llmcore"])
def test_every_order_of_events_leaves_as_the_reference_frames(dialect: protocol.Dialect) -> None:
    """Every sequence of up to four deltas and statuses: the queued frames are the reference ones."""
    for pattern in [*PATTERNS, "aaaaaaaa", "aaasaaab", "abababab"]:
        handler = _outbox(dialect)
        events = _events(pattern)
        for event in events:
            handler._send_event(event)
        frames, size = _reference(events, dialect)
        assert _queued_frames(handler) == frames, pattern
        assert handler._outbox_size == size, pattern  # what the slow-consumer limit is checked against


def test_a_delta_alone_is_queued_as_its_frame_and_a_second_one_makes_a_run() -> None:
    """A client that keeps up: each delta is queued as the frame every connection shares."""
    handler = _outbox("envelope")
    first, second = _events("aa")
    handler._send_event(first)
    assert list(handler._outbox) == list(protocol.frames(first, "envelope"))
    handler._send_event(second)
    assert _queued_frames(handler) == list(protocol.frames(joined_deltas([first, second]), "envelope"))
    assert handler.server.encoded == 1  # the second delta joined without an encoding of its own


def test_after_a_flush_a_delta_starts_afresh() -> None:
    """What left in a flush is never joined again: the next delta is alone."""
    handler = _outbox("envelope")
    first, second = _events("aa")
    handler._send_event(first)
    handler._clear()
    handler._send_event(second)
    assert _queued_frames(handler) == list(protocol.frames(second, "envelope"))
