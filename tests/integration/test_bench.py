"""Each benchmark suite runs end to end at a tiny size and reports what it promises (no timing checked)."""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks import comm, connections, latency, openai_path, reducer, snapshots, throughput
from tests.conftest import TIMEOUT


def test_throughput_with_the_client_in_a_process_and_in_a_thread() -> None:
    for client in ("process", "thread"):
        report = throughput.run(deltas=300, repeat=1, client=client, timeout=TIMEOUT)  # type: ignore[arg-type]
        assert set(report["results"]) == {"full_stack", "bare_tornado", "bare_batched"}
        assert all(r["deltas"] == 300 for r in report["results"].values())
        assert report["ratio_full_over_bare"] > 0
        assert "full stack / bare tornado" in throughput.render(report)


def test_latency_counts_every_delta_of_every_session() -> None:
    report = latency.run(sessions=[3], rate=50, seconds=0.2, busy=True, timeout=TIMEOUT)
    loads = [(r["sessions"], r["busy"], r["deltas"]) for r in report["results"]]
    assert loads == [(3, False, 30), (1, True, 10)]
    first = report["results"][0]
    assert 0 < first["latency_ms"]["p50"] <= first["latency_ms"]["max"]
    assert first["from_due_ms"]["p50"] >= first["latency_ms"]["p50"] - 1  # due comes before made
    assert "busy thread" in latency.render(report)


def test_connections_holds_what_it_opens() -> None:
    report = connections.run(connections=30, timeout=TIMEOUT)
    assert report["held"] == 30 and report["stopped"].startswith("held all")
    assert [s["connections"] for s in report["steps"]] == [1, 30]
    assert [s["sessions"] for s in report["steps"]] == [1, 30]
    assert "per idle connection" in connections.render(report)


def test_snapshot_of_a_short_session_fits_whole(tmp_path: object) -> None:
    report = snapshots.run(turns=20, repeat=1, reply_chars=200, directory=str(tmp_path))
    assert report["messages"] == 40 and report["fitted_turns"] == 20
    assert report["snapshot_bytes"] == report["fitted_bytes"] > 20 * 200
    assert len(report["results"]) == 6
    assert "keeps 20 of 20 turns" in snapshots.render(report)


def test_comm_batches_where_one_per_frame_does_not() -> None:
    report = comm.run(deltas=400, paces=[0.0], timeout=TIMEOUT)
    batched, naive = report["results"][0]["links"]
    assert naive["messages"] >= 400 > batched["messages"]
    assert batched["delivered_text_share"] == 1.0
    assert "simulated" in comm.render(report)


def test_reducer_figures_for_each_length() -> None:
    report = reducer.run(lengths=[50, 200], repeat=1)
    assert [r["deltas"] for r in report["results"]] == [50, 200]
    assert all(r["emit_us"] > 0 for r in report["results"])


def test_the_smoke_form_of_the_command_prints_json() -> None:
    """``--deltas N --repeat N`` without a suite runs the throughput suite, as scripts/test.sh does."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--deltas", "200", "--repeat", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 6,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"machine", "throughput"}
    assert report["throughput"]["deltas"] == 200
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
    assert report["machine"]["commit"].startswith(head.stdout.strip())  # figures name their commit


def test_openai_path_reads_every_chunk_with_each_reader() -> None:
    """Every reader streams the same provider; node's row is there, or says why it is not."""
    report = openai_path.run(chunks=300, repeat=1, timeout=TIMEOUT)
    names = set(report["results"]) | set(report["skipped"])
    llmsock = {openai_path.CLIENT_ROW, openai_path.BARE_ROW}
    assert names == {openai_path.NODE_ROW, openai_path.SDK_ROW, openai_path.MODEL_ROW} | llmsock
    assert all(r["chunks"] == 300 and r["first_ms"] > 0 for r in report["results"].values())
    assert all(report["results"][name]["stall_ms"] > 0 for name in llmsock)
    assert "over the node openai SDK" in openai_path.render(report) or report["skipped"]
