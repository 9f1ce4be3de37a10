"""Keepalive: one timer sweeps every connection each interval, in slices, whatever one of them does."""

from __future__ import annotations

import asyncio
import math

import pytest

from llmsock_widget.server.keepalive import SLICE, Keepalive
from tests.conftest import TIMEOUT


class Loop:
    """Counts the loop's turns: ``turn`` goes up by one in each (a callback that calls itself soon)."""

    def __init__(self) -> None:
        self.turn = 0
        self._running = True
        asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        if self._running:
            self.turn += 1
            asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        self._running = False


class Member:
    """A connection as the keepalive sees it: it notes each sweep's loop turn (and may fail on it)."""

    def __init__(self, seen: list[tuple[int, int]], index: int, loop: Loop, broken: bool = False) -> None:
        self.seen, self.index, self.loop, self.broken = seen, index, loop, broken
        self.swept = asyncio.Event()

    def keepalive(self) -> None:
        self.seen.append((self.index, self.loop.turn))
        self.swept.set()
        if self.broken:
            raise RuntimeError("this connection is broken")


def test_a_sweep_reaches_every_member_in_slices_and_a_broken_one_spares_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """600 members, one that raises: each sweep reaches all 600 in order, SLICE of them per loop turn."""

    async def main() -> list[tuple[int, int]]:
        seen: list[tuple[int, int]] = []
        loop = Loop()
        members = [Member(seen, i, loop, broken=(i == 3)) for i in range(600)]
        alive = Keepalive(0.01, lambda: members)
        alive.start()
        await asyncio.wait_for(members[-1].swept.wait(), TIMEOUT)
        alive.stop()
        loop.stop()
        return seen

    seen = asyncio.run(main())
    assert [index for index, _ in seen] == list(range(600))
    turns = [turn for _, turn in seen]
    slices = [turns[start : start + SLICE] for start in range(0, 600, SLICE)]
    assert len(slices) == math.ceil(600 / SLICE) > 1
    assert all(len(set(s)) == 1 for s in slices), "a slice runs in one turn of the loop"
    assert len({s[0] for s in slices}) == len(slices), "each slice in a turn of its own"
    assert "pinging a connection failed" in caplog.text


def test_a_stopped_keepalive_sweeps_no_more() -> None:
    """Stopped after its first sweep, a keepalive sweeps no more while another one sweeps five times."""

    async def main() -> tuple[int, int]:
        loop = Loop()
        stopped_seen: list[tuple[int, int]] = []
        running_seen: list[tuple[int, int]] = []
        stopped_member = Member(stopped_seen, 0, loop)
        stopped = Keepalive(0.01, lambda: [stopped_member])
        stopped.start()
        await asyncio.wait_for(stopped_member.swept.wait(), TIMEOUT)
        stopped.stop()
        running_member = Member(running_seen, 0, loop)
        running = Keepalive(0.01, lambda: [running_member])
        running.start()
        while len(running_seen) < 5:
            running_member.swept.clear()
            await asyncio.wait_for(running_member.swept.wait(), TIMEOUT)
        running.stop()
        loop.stop()
        return len(stopped_seen), len(running_seen)

    assert asyncio.run(main()) == (1, 5)


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Keepalive(0, list)
