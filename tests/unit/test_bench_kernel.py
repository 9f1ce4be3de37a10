"""The kernel benchmark's pure helpers: which chunks count, the loop's cost, the figures' summaries."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks.common import BenchFailure
from benchmarks.kernel import (
    Threads,
    Timeline,
    busy_cell,
    chunks_within,
    event_of,
    figures,
    gil_wait_percent,
    loop_cost,
    quantiles_ms,
    queued_percent,
    spread,
)


def test_only_chunks_wholly_inside_a_window_count() -> None:
    """A chunk that straddles a window's edge was timed partly outside it, so it is left out."""
    chunks = [
        0, 10, 9,  # before the window
        95, 105, 10,  # straddles its start
        100, 120, 19,  # inside the first window
        150, 200, 48,  # inside, touching its end
        300, 310, 10,  # inside the second window
    ]  # fmt: skip
    assert chunks_within(chunks, [(100, 200), (300, 400)]) == [(20, 19), (50, 48), (10, 10)]
    assert chunks_within(chunks, []) == []


def test_loop_cost_compares_streaming_chunks_with_quiet_ones() -> None:
    """Chunks 10% slower while streaming cost 10%; their CPU time tells wall from work."""
    quiet = [(10_000_000, 9_000_000)] * 5
    streaming = [(11_000_000, 9_000_000)] * 4
    cost = loop_cost(quiet, streaming)
    assert cost["quiet_ms"] == pytest.approx(10.0)
    assert cost["streaming_ms"] == pytest.approx(11.0)
    assert cost["cost_percent"] == pytest.approx(10.0)
    assert cost["mean_cost_percent"] == pytest.approx(10.0)
    assert cost["cpu_cost_percent"] == pytest.approx(0.0)
    assert cost["quiet_cpu_ms"] == cost["streaming_cpu_ms"] == pytest.approx(9.0)
    assert (cost["quiet_chunks"], cost["streaming_chunks"]) == (5, 4)


def test_loop_cost_median_ignores_one_preempted_chunk_the_mean_does_not() -> None:
    """One chunk stretched by other work on the machine moves the mean, not the median."""
    quiet = [(10_000_000, 10_000_000)] * 5
    streaming = [(10_000_000, 10_000_000)] * 4 + [(60_000_000, 10_000_000)]
    cost = loop_cost(quiet, streaming)
    assert cost["cost_percent"] == pytest.approx(0.0)
    assert cost["mean_cost_percent"] == pytest.approx(100.0)


def test_loop_cost_needs_chunks_on_both_sides() -> None:
    with pytest.raises(BenchFailure, match="too few timed chunks"):
        loop_cost([], [(1, 1)])


def test_spread_and_quantiles() -> None:
    assert spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}
    assert all(math.isnan(v) for v in spread([]).values())
    figures = quantiles_ms([i * 1_000_000 for i in range(1, 101)])  # 1 ms .. 100 ms
    assert figures == {"p50": 50.0, "p99": 99.0, "max": 100.0}
    assert math.isnan(quantiles_ms([])["p50"])


def test_event_of_reads_the_envelope() -> None:
    frame = json.dumps({"type": "event", "data": {"event": {"type": "end", "finishReason": "aborted"}}})
    assert event_of(frame) == {"type": "end", "finishReason": "aborted"}
    assert event_of(frame.encode()) == {"type": "end", "finishReason": "aborted"}
    assert event_of(json.dumps({"type": "control_response", "data": {"ok": True}})) is None
    assert event_of("[]") is None


def test_busy_cell_stops_at_its_flag(tmp_path: Path) -> None:
    """The cell's code is Python that ends at once when its flag is there from the start."""
    flag = tmp_path / "release"
    flag.touch()
    scope: dict[str, object] = {"print": lambda *args, **kwargs: None}
    exec(busy_cell(flag), scope)
    assert list(scope["_bench_chunks"]) == []  # type: ignore[call-overload]


def test_thread_counters_subtract_and_add() -> None:
    """A window's counters are its end minus its start; windows of one kind add up."""
    start, end = Threads(10, 1, 100, 5, 2), Threads(40, 4, 180, 25, 3)
    assert end - start == Threads(30, 3, 80, 20, 1)
    assert (end - start) + Threads(1, 1, 1, 1, 1) == Threads(31, 4, 81, 21, 2)


def test_gil_wait_leaves_out_time_spent_waiting_for_a_cpu() -> None:
    """Of 100 ms, 10 queued for a CPU and 85 computing: the thread slept 5 of the 90 it could run."""
    threads = Threads(main_cpu=85_000_000, main_queued=10_000_000)
    assert gil_wait_percent(threads, 100_000_000) == pytest.approx(100 * 5 / 90)
    assert queued_percent(threads, 100_000_000) == pytest.approx(10.0)
    assert gil_wait_percent(Threads(main_cpu=90), 100) == pytest.approx(10.0)
    assert gil_wait_percent(Threads(main_cpu=120), 100) == 0.0  # counters read a moment apart
    assert math.isnan(gil_wait_percent(Threads(), 0))
    assert math.isnan(queued_percent(Threads(), 0))


def test_figures_of_a_timeline() -> None:
    """Lateness and Stop in ms, the server thread's CPU over the streams, sleeps per delta."""
    ms = 1_000_000
    timeline = Timeline(
        probe=Threads,
        streaming=[(0, 500 * ms), (1000 * ms, 1500 * ms)],  # 1 s of streaming
        quiet=[(600 * ms, 900 * ms)],
        late=[1 * ms, 2 * ms, 3 * ms, 4 * ms],
        arrival=[2 * ms, 3 * ms, 4 * ms, 5 * ms],
        stops=[5 * ms, 7 * ms],
        streaming_threads=Threads(server_cpu=20 * ms, server_sleeps=8, main_sleeps=2),
        quiet_threads=Threads(main_cpu=300 * ms, main_wall=300 * ms),
    )
    out = figures(timeline)
    assert out["deltas"] == 4
    assert out["late_ms"] == {"p50": 2.0, "p99": 4.0, "max": 4.0}
    assert out["arrival_ms"]["p50"] == 3.0
    assert out["stop_ms"]["max"] == 7.0 and out["stops"] == 2
    assert out["server_cpu_percent"] == pytest.approx(2.0)
    assert (out["server_sleeps_per_delta"], out["main_sleeps_per_delta"]) == (2.0, 0.5)
    assert out["quiet_wait_percent"] == 0.0 and out["quiet_server_cpu_percent"] == 0.0
