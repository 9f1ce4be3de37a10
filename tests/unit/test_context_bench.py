"""The context benchmark: its command line and a small run of every case."""

from __future__ import annotations

import importlib.util

from benchmarks import cli, context


def test_the_context_suite_is_on_the_command_line() -> None:
    args = cli._parser().parse_args(cli._argv(["context", "--rows", "1000", "--repeat", "2"]))
    assert (args.suite, args.rows, args.repeat) == ("context", 1000, 2)
    assert "context" in cli.SUITES and cli._RENDER["context"] is context.render


def test_a_small_run_times_every_case_with_the_load() -> None:
    report = context.run(rows=1000, repeat=2)
    cases = [r["case"] for r in report["results"]]
    has_pandas = importlib.util.find_spec("pandas") is not None
    assert ("DataFrame 1,000 x 8" in cases) == has_pandas
    assert "list of 1,000 ints" in cases and "dict 10,000 levels deep" in cases
    for result in report["results"]:
        assert 0 <= result["min_ms"] <= result["median_ms"] <= result["max_ms"]
        assert result["load_1m"] >= 0
    assert "median ms" in context.render(report) and "load 1m" in context.render(report)
