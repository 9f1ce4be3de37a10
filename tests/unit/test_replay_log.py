"""The replay log keeps exactly what a bounded deque of the events would, without an object per delta."""

from __future__ import annotations

import gc
import random
from collections import deque

from llmsock_widget.core.events import (
    ModelDelta,
    ModelReasoning,
    ModelStart,
    SessionEvent,
    StatusChanged,
)
from llmsock_widget.runtime.replay import ReplayLog

SID = "s"


def _stream(rng: random.Random, count: int) -> list[SessionEvent]:
    """Return ``count`` events: deltas and reasoning of a few messages and turns, other events between."""
    events: list[SessionEvent] = []
    for seq in range(1, count + 1):
        roll = rng.random()
        turn = rng.choice(["t1", "t2", None]) if rng.random() < 0.05 else "t1"
        message = "m2" if rng.random() < 0.05 else "m1"
        if roll < 0.08:
            events.append(StatusChanged(session_id=SID, seq=seq, ts=seq, turn_id=turn, status="generating"))
        elif roll < 0.1:
            events.append(ModelStart(session_id=SID, seq=seq, ts=seq, turn_id=turn, model="m"))
        else:
            kind = ModelReasoning if roll < 0.2 else ModelDelta
            text = rng.choice(["", " a", " é", "\n", " word"])
            ts = seq * 10 + rng.randrange(3)
            events.append(kind(session_id=SID, seq=seq, ts=ts, turn_id=turn, message_id=message, text=text))
    if count > 50:  # a gap in the numbering (not expected, but kept as it came)
        gapped = events[40]
        events[40] = ModelDelta(
            session_id=SID, seq=gapped.seq + 5, ts=1, turn_id="t1", message_id="m1", text="g"
        )
    return events


def test_the_log_reads_as_a_bounded_deque_of_the_same_events() -> None:
    """Every prefix of random streams, for several bounds: the same events, first and last seq, misses."""
    rng = random.Random(7)
    for maxlen in (1, 2, 3, 10, 100, 4096):
        events = _stream(rng, 400 if maxlen < 4096 else 9000)
        log, reference = ReplayLog(maxlen), deque[SessionEvent](maxlen=maxlen)
        for index, event in enumerate(events):
            log.append(event)
            reference.append(event)
            assert len(log) == len(reference) and bool(log)
            if index % 37 == 0 or index == len(events) - 1:
                assert list(log) == list(reference), (maxlen, index)
                assert log.first_seq == reference[0].seq and log.last_seq == reference[-1].seq
                for after in {reference[0].seq - 1, reference[len(reference) // 2].seq, reference[-1].seq}:
                    assert log.after(after) == [e for e in reference if e.seq > after]


def test_an_empty_log_is_false() -> None:
    assert not ReplayLog() and len(ReplayLog()) == 0 and list(ReplayLog()) == []


def test_a_streamed_answer_adds_no_object_per_delta() -> None:
    """10,000 deltas of one answer: the log reads as the last 4096 and holds no object per delta."""
    log = ReplayLog()
    for seq in range(1, 10_001):
        log.append(_delta(seq))
        if seq % 999 == 0:  # as the oldest ones go, one at a time
            kept = [_delta(s) for s in range(max(1, seq - 4095), seq + 1)]
            assert list(log) == kept and log.first_seq == kept[0].seq
            assert log.after(seq - 10) == kept[-10:]
            del kept
    gc.collect()
    assert sum(type(o) is ModelDelta for o in gc.get_objects()) == 0
    assert list(log) == [_delta(s) for s in range(10_000 - 4095, 10_001)]


def _delta(seq: int) -> ModelDelta:
    return ModelDelta(session_id=SID, seq=seq, ts=seq * 7, turn_id="t", message_id="m", text=f" w{seq}")


def test_empty_logs_share_nothing_once_one_is_written() -> None:
    """Empty logs hold no deque of their own; the first event gives a log its own, seen by no other."""
    first, second = ReplayLog(), ReplayLog()
    assert first.after(0) == [] and not first.extend_run(ModelDelta, SID, 1, 1, "t1", "m1", "x")
    first.append(_delta(1))
    first.append(_delta(2))
    assert [e.seq for e in first] == [1, 2]
    assert len(second) == 0 and list(second) == [] and second.after(0) == []
    second.append(_delta(5))
    assert [e.seq for e in second] == [5] and [e.seq for e in first] == [1, 2]
