"""Reducer: the CPU cost of one delta in the session's state, by the length of the answer.

No sockets and no loop: one answer of N deltas (``" word"``-sized, like the builtin model's
tokens) is fed, event by event, to

* ``session.apply``, the pure reducer, which appends each delta's text to the answer so far
  (a copy of the whole answer: O(answer length) per delta, plus two ``dataclasses.replace``);
* ``LiveSession.emit``, which keeps the deltas' text in a list and joins it when the state is
  read (amortised O(1) per delta); the state is read once, at the end, and checked equal;
* ``LiveSession.emit`` with a ``LocalFanout`` and one subscriber that encodes every event
  (``protocol.frames``): what a delta costs the server before the connection's outbox.

Each figure is the best of ``repeat`` runs (fewer once one path and length took 3 s), in
microseconds per delta.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from llmsock_widget.core.events import Event, ModelDelta, ModelStart, UserMessage
from llmsock_widget.core.session import InteractionState, apply, new_state
from llmsock_widget.runtime.fanout import LocalFanout
from llmsock_widget.runtime.live import LiveSession
from llmsock_widget.wire import protocol

from .common import BenchFailure, table

SID = "bench"
BUDGET = 3.0  # seconds: no more runs of one path and length once they took this long


def _streaming() -> InteractionState:
    state = new_state(SID, ts=1)
    state = apply(state, UserMessage(session_id=SID, seq=1, ts=1, turn_id="t", text="hi", message_id="m"))
    return apply(state, ModelStart(session_id=SID, seq=2, ts=1, turn_id="t", model="b", message_id="m"))


def _deltas(count: int) -> list[ModelDelta]:
    return [
        ModelDelta(session_id=SID, seq=3 + i, ts=2, turn_id="t", text=f" w{i % 1000:03d}", message_id="m")
        for i in range(count)
    ]


def _reduce(events: list[ModelDelta]) -> InteractionState:
    state = _streaming()
    for event in events:
        state = apply(state, event)
    return state


def _emit(events: list[ModelDelta]) -> InteractionState:
    live = LiveSession(key=SID, state=_streaming(), publish=lambda key, event: None, clock=lambda: 0)
    for event in events:
        live.emit(event)
    return live.state


def _emit_and_encode(events: list[ModelDelta]) -> InteractionState:
    fanout = LocalFanout()
    frames: list[str] = []

    def deliver(event: Event) -> None:
        frames.extend(protocol.frames(event, "envelope"))

    asyncio.run(fanout.subscribe(SID, deliver))
    live = LiveSession(key=SID, state=_streaming(), publish=fanout.publish, clock=lambda: 0)
    for event in events:
        live.emit(event)
    if len(frames) != len(events):
        raise BenchFailure("the subscriber missed events")
    return live.state


def _best_us(
    action: Callable[[list[ModelDelta]], InteractionState], events: list[ModelDelta], repeat: int
) -> float:
    best, spent = float("inf"), 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        action(events)
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
        if spent > BUDGET:
            break
    return best / len(events) * 1e6


def run(*, lengths: list[int], repeat: int = 3) -> dict[str, Any]:
    """Time the three paths for answers of each length; return the report."""
    rows = []
    for count in lengths:
        events = _deltas(count)
        reference = _reduce(events)
        if _emit(events) != reference or _emit_and_encode(events) != reference:
            raise BenchFailure("LiveSession.emit did not give the reducer's state")
        text = reference.current.text if reference.current else ""
        rows.append(
            {
                "deltas": count,
                "answer_chars": len(text),
                "apply_us": _best_us(_reduce, events, repeat),
                "emit_us": _best_us(_emit, events, repeat),
                "emit_encode_us": _best_us(_emit_and_encode, events, repeat),
            }
        )
    return {"repeat": repeat, "results": rows}


def render(report: dict[str, Any]) -> str:
    """Return the report as a table."""
    rows = [
        [r["deltas"], r["answer_chars"], r["apply_us"], r["emit_us"], r["emit_encode_us"]]
        for r in report["results"]
    ]
    headers = ["deltas", "answer chars", "apply µs/d", "emit µs/d", "emit+encode µs/d"]
    return "\n".join(
        [
            f"reducer: CPU per delta, best of {report['repeat']} runs "
            "(apply: the pure reducer; emit: LiveSession)",
            table(headers, rows),
        ]
    )
