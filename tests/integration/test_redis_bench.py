"""The redis benchmark: its command line, and a tiny run against the redis-server it starts itself."""

from __future__ import annotations

from benchmarks import cli
from benchmarks import redis as redis_suite
from tests.conftest import TIMEOUT


def test_the_redis_suite_is_named_only() -> None:
    """It needs a redis-server, so it runs when named, not in the default run."""
    args = cli._parser().parse_args(cli._argv(["redis", "--sessions", "1,4", "--seconds", "0.5"]))
    assert (args.suite, args.sessions, args.seconds, args.prompts) == ("redis", [1, 4], 0.5, 100)
    assert "redis" in cli.EXTRA_SUITES and "redis" not in cli.SUITES
    assert cli._RENDER["redis"] is redis_suite.render


def test_a_tiny_run_reports_every_figure_with_the_load() -> None:
    report = redis_suite.run(
        sessions=[1, 4], seconds=0.2, rounds=20, memory_sessions=50, prompts=5, timeout=TIMEOUT
    )
    trips = [(r["operation"], r["sessions"]) for r in report["round_trips"]]
    assert trips == [("save", 1), ("load", 1), ("save", 4), ("load", 4)]
    assert all(r["ops"] > 0 and r["load_1m"] >= 0 for r in report["round_trips"])

    blind, race = report["cas"]
    # Each store saves its own copy in turn: the second is refused every time, never stored over.
    assert (blind["stored"], blind["conflicts"], blind["revision"]) == (20, 20, 20)
    assert race["revision"] == race["stored"] > 0  # every save stored moved the revision once

    memory = report["memory"]
    assert memory["per_session"] > memory["snapshot_bytes"] > 20 * 500
    assert memory["memory_usage_key"] > memory["snapshot_bytes"]

    redis_row, memory_row = report["server"]
    assert (redis_row["store"], memory_row["store"]) == ("RedisStore", "MemoryStore")
    assert all(row["turns_per_second"] > 0 and row["saves"] >= 2 * 5 - 1 for row in report["server"])
    assert redis_row["snapshot_bytes"] > 0  # the chat the server saved is in Redis

    text = redis_suite.render(report)
    assert "load 1m" in text and "per session" in text and "against MemoryStore" in text
