"""The benchmark's pure parts: the IOPub limiter copy, windows, percentiles, tables, the command line."""

from __future__ import annotations

import math

import pytest

from benchmarks import cli
from benchmarks.comm import jupyter_rate_limit, peak_per_second
from benchmarks.common import percentile, table
from benchmarks.connections import kib_per_connection, ratio, steps


def test_the_limiter_passes_3000_of_a_burst_then_drops_until_the_window_empties() -> None:
    """5,000 messages in one second: the 3-second window takes 3,000 (1,000/s), the rest are dropped."""
    burst = [i / 5000 for i in range(5000)]
    passed = jupyter_rate_limit(burst)
    assert sum(passed) == 3000 and all(passed[:3000]) and not any(passed[3000:])


def test_the_limiter_resumes_once_the_rate_falls_below_80_percent() -> None:
    """After a burst, messages pass again once the window's count is under 800 a second."""
    times = [i / 5000 for i in range(5000)] + [3.0 + i * 0.01 for i in range(100)]
    passed = jupyter_rate_limit(times)[5000:]
    # The 3,000 counted left the window from 3.0 to 3.6 s: under 2,400 (800/s) from 3.12 s on.
    assert passed == [False] * 13 + [True] * 87


def test_the_limiter_passes_a_steady_900_a_second() -> None:
    times = [i / 900 for i in range(9000)]
    assert all(jupyter_rate_limit(times))


def test_peak_per_second_counts_the_busiest_window() -> None:
    assert peak_per_second([]) == 0
    assert peak_per_second([0.0, 0.5, 0.99, 1.0, 1.5, 1.6, 1.7]) == 5  # 0.99 to 1.7
    assert peak_per_second([0.0, 2.0, 4.0]) == 1


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50, 99, 100)
    assert percentile([7], 99) == 7


def test_table_aligns_columns() -> None:
    text = table(["name", "n"], [["a", 1_000], ["bb", 2.5]])
    assert text.splitlines() == ["name      n", "----  -----", "a     1,000", "bb     2.50"]


def test_connection_steps_end_at_the_count() -> None:
    assert steps(1) == [1]
    assert steps(2000) == [1, 500, 1000, 2000]
    assert steps(750) == [1, 500, 750]


def test_memory_per_connection_is_growth_from_the_first_step_to_the_last() -> None:
    rows = [{"connections": 1, "rss_mib": 30.0}, {"connections": 500, "rss_mib": 35.0}]
    rows.append({"connections": 2001, "rss_mib": 60.0})
    assert kib_per_connection(rows) == 30 * 1024 / 2000
    assert math.isnan(kib_per_connection(rows[:1])) and math.isnan(kib_per_connection([]))


def test_the_ratio_needs_two_positive_figures() -> None:
    assert ratio(23.0, 14.0) == 23.0 / 14.0
    assert math.isnan(ratio(23.0, 0.0)) and math.isnan(ratio(math.nan, 14.0))


@pytest.mark.parametrize(
    ("argv", "suite"),
    [
        ([], "all"),
        (["--json"], "all"),
        (["--deltas", "2000", "--repeat", "1"], "throughput"),
        (["--repeat=1"], "throughput"),
        (["latency", "--sessions", "1,10"], "latency"),
        (["comm"], "comm"),
        (["peer", "--url", "ws://127.0.0.1:1/ws"], "peer"),
    ],
)
def test_the_command_line_names_a_suite(argv: list[str], suite: str) -> None:
    """No suite runs them all; the older flag-only form runs the throughput suite."""
    args = cli._parser().parse_args(cli._argv(argv))
    assert args.suite == suite
    if suite == "latency":
        assert args.sessions == [1, 10]
