"""The kernel's server keeps answering behind a CPU-bound cell: the GIL is handed over every 1 ms
while it runs, and the kernel's own setting comes back when it stops.

The user-visible half (a whole answer and a Stop while a cell burns CPU) is
tests/kernel/test_extension.py::test_reply_streams_and_stops_while_a_cell_burns_cpu.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from llmsock_widget.notebook.kernel import SWITCH_INTERVAL, KernelRuntime
from llmsock_widget.stores import MemoryStore


@pytest.fixture
def interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield
    sys.setswitchinterval(before)


def test_server_lowers_the_switch_interval_and_gives_it_back(interval: None) -> None:
    """While the kernel's server runs the interval is 1 ms; stopping it restores the kernel's 5 ms."""
    runtime = KernelRuntime()
    try:
        runtime.get_server(store=MemoryStore())
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    finally:
        runtime.stop_server()
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_a_setting_made_meanwhile_is_kept(interval: None) -> None:
    """A switch interval the user sets while the server runs is not overwritten when it stops."""
    runtime = KernelRuntime()
    try:
        runtime.get_server(store=MemoryStore())
        sys.setswitchinterval(0.0005)
    finally:
        runtime.stop_server()
    assert sys.getswitchinterval() == pytest.approx(0.0005)


def test_a_lower_setting_is_left_alone(interval: None) -> None:
    """A kernel that already switches more often than 1 ms keeps its own interval."""
    sys.setswitchinterval(0.0002)
    runtime = KernelRuntime()
    try:
        runtime.get_server(store=MemoryStore())
        assert sys.getswitchinterval() == pytest.approx(0.0002)
    finally:
        runtime.stop_server()
    assert sys.getswitchinterval() == pytest.approx(0.0002)
