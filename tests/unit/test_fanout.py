"""LocalFanout: every subscriber gets each event in order; deltas as fields to those that ask."""

from __future__ import annotations

import asyncio
import logging

import pytest

from llmsock_widget.core.events import Event, ModelDelta, StatusChanged
from llmsock_widget.runtime.fanout import LocalFanout, ObservedFanout

SID = "s1"


def test_publish_delta_gives_fields_to_those_that_ask_and_one_event_to_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        fanout = LocalFanout()
        fields: list[tuple[object, ...]] = []
        plain_a: list[Event] = []
        plain_b: list[Event] = []

        def broken(event: Event) -> None:
            raise RuntimeError("this connection is broken")

        await fanout.subscribe(SID, plain_a.append)
        await fanout.subscribe(SID, broken)
        await fanout.subscribe(SID, lambda event: None, lambda *delta: fields.append(delta))
        unsubscribe_b = await fanout.subscribe(SID, plain_b.append)
        await fanout.subscribe("other", plain_b.append)

        fanout.publish_delta(SID, 7, 3, "t1", "m1", "Hello")
        fanout.publish(SID, StatusChanged(session_id=SID, seq=8, ts=4, status="idle"))
        await unsubscribe_b()
        fanout.publish_delta(SID, 9, 5, "t2", "m2", " again")

        expected = ModelDelta(session_id=SID, seq=7, ts=3, turn_id="t1", message_id="m1", text="Hello")
        assert fields == [(SID, 7, 3, "t1", "m1", "Hello"), (SID, 9, 5, "t2", "m2", " again")]
        assert plain_a[0] == expected and plain_a[0] is plain_b[0]  # one event made for both
        assert [type(e).__name__ for e in plain_a] == ["ModelDelta", "StatusChanged", "ModelDelta"]
        assert len(plain_b) == 2  # unsubscribed before the last delta; nothing from "other"
        assert fanout.count(SID) == 3

    with caplog.at_level(logging.ERROR, logger="llmsock"):
        asyncio.run(main())
    assert sum("a subscriber of session s1 failed" in r.getMessage() for r in caplog.records) == 3


def test_an_observed_subscriber_is_told_gone_once_and_all_left_tells_the_rest_in_order() -> None:
    """Unsubscribing twice tells the observer once; all_left (a stopping server) tells each
    subscriber not yet gone, in the order they came, and only them."""

    async def main() -> list[tuple[str, bool]]:
        told: list[tuple[str, bool]] = []
        names: dict[object, str] = {}
        fanout = ObservedFanout(lambda sid, deliver, attached: told.append((names[deliver], attached)))
        delivers = {name: (lambda event: None) for name in ("a", "b", "c")}
        names.update({deliver: name for name, deliver in delivers.items()})
        leave_a = await fanout.subscribe(SID, delivers["a"])
        await fanout.subscribe(SID, delivers["b"])
        await fanout.subscribe("other", delivers["c"])
        await leave_a()
        await leave_a()  # a second detach: nothing more to tell, and b stays subscribed
        assert fanout.count(SID) == 1
        fanout.all_left()
        fanout.all_left()  # told once
        return told

    assert asyncio.run(main()) == [
        ("a", True),
        ("b", True),
        ("c", True),
        ("a", False),
        ("b", False),
        ("c", False),
    ]
