"""The benchmarks' controls: the best plain handlers and servers beside llmsock, each figure with its load."""

from __future__ import annotations

from benchmarks import latency, throughput
from tests.conftest import TIMEOUT


def test_throughput_also_measures_merged_frames_and_gives_each_row_its_load() -> None:
    report = throughput.run(deltas=300, repeat=1, client="process", timeout=TIMEOUT)
    merged = report["ceiling"]["bare_merged"]
    assert merged["deltas"] == 300  # every delta, in 5 frames of up to 64
    assert report["ratio_full_over_bare_merged"] > 0
    rows = [*report["results"].values(), merged]
    assert all(0 <= r["load_min"] <= r["load_max"] for r in rows)
    text = throughput.render(report)
    assert "bare merged" in text and "load 1m" in text


def test_latency_runs_a_plain_websockets_server_beside_llmsock_and_a_burst_on_each() -> None:
    report = latency.run(sessions=[3], rate=50, seconds=0.2, busy=False, timeout=TIMEOUT)
    [ours], [plain] = report["results"], report["controls"]
    assert (ours["server"], plain["server"]) == ("llmsock", "websockets")
    assert ours["deltas"] == plain["deltas"] == 30  # none lost on either
    assert 0 < plain["latency_ms"]["p50"] <= plain["latency_ms"]["max"]
    bursts = {b["server"]: b for b in report["bursts"]}
    assert set(bursts) == {"llmsock", "websockets"}
    assert all(b["sessions"] == 3 and b["deltas"] == 100 and b["seconds"] > 0 for b in bursts.values())
    assert all(b["load"] >= 0 for b in [ours, plain, *bursts.values()])
    text = latency.render(report)
    assert "websockets" in text and "burst" in text and "load 1m" in text
