"""Context: how long a summary of a live object takes (``llmsock_widget.context.summarize``).

What a mention (``@df``) or "explain the last error" costs the kernel before anything is sent:

* a pandas DataFrame of ``--rows`` rows (default 1,000,000) and 8 columns of mixed dtypes
  (int64, float64, str, bool, datetime64, category, int8, float32), when pandas is installed;
* a list of ``--rows`` ints;
* a dict nested 10,000 levels deep;
* the traceback of a failing call whose frame holds the DataFrame (or the list) as a local.

Each object is built once; each summary is then timed ``--repeat`` times (after one warm-up)
and reported as median, min and max in milliseconds, with the 1-minute load average read
right after that case's runs (the machine may be shared: quote the load with the figure).
"""

from __future__ import annotations

import importlib
import importlib.util
import statistics
import time
from typing import Any, Callable

from llmsock_widget.context import summarize, traceback_context

from .common import BenchFailure, load_1m, table

DEEP_LEVELS = 10_000


def _frame(rows: int) -> Any | None:
    """Return a DataFrame of ``rows`` rows and 8 mixed columns, or None without pandas."""
    try:
        pd = importlib.import_module("pandas")
        np = importlib.import_module("numpy")
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "price": rng.random(rows),
            "city": np.array(["Oslo", "Lima", "Pune", "Kyiv"])[np.arange(rows) % 4],
            "paid": np.arange(rows) % 2 == 0,
            "at": pd.date_range("2026-01-01", periods=rows, freq="s"),
            "kind": pd.Categorical(np.array(["a", "b", "c"])[np.arange(rows) % 3]),
            "small": (np.arange(rows) % 100).astype(np.int8),
            "ratio": rng.random(rows).astype(np.float32),
        }
    )


def _deep() -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(DEEP_LEVELS):
        node["next"] = node = {}
    return root


def _failing(value: object) -> BaseException:
    def fail(data: object) -> None:
        raise ValueError(f"cannot use {type(data).__name__}")

    try:
        fail(value)
    except ValueError as exc:
        return exc
    raise BenchFailure("the failing call did not fail")


def _time(action: Callable[[], object], repeat: int) -> dict[str, float]:
    action()  # warm-up: imports, caches
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        runs.append((time.perf_counter() - start) * 1000)
    return {
        "median_ms": statistics.median(runs),
        "min_ms": min(runs),
        "max_ms": max(runs),
        "load_1m": load_1m(),
    }


def _cases(rows: int) -> list[tuple[str, Callable[[], object]]]:
    cases: list[tuple[str, Callable[[], object]]] = []
    frame = _frame(rows)
    big = frame if frame is not None else list(range(rows))
    if frame is not None:
        cases.append((f"DataFrame {rows:,} x 8", lambda: _checked(summarize("df", frame))))
    numbers = list(range(rows))
    cases.append((f"list of {rows:,} ints", lambda: _checked(summarize("xs", numbers))))
    deep = _deep()
    cases.append((f"dict {DEEP_LEVELS:,} levels deep", lambda: _checked(summarize("tree", deep))))
    error = _failing(big)
    cases.append((f"traceback, local {type(big).__name__}", lambda: traceback_context(error)))
    return cases


def _checked(summary: Any) -> Any:
    if len(summary.text) > 4000:
        raise BenchFailure(f"a summary of {len(summary.text)} chars is over its cap")
    return summary


def run(*, rows: int = 1_000_000, repeat: int = 20) -> dict[str, Any]:
    """Time each summary; return the report."""
    results = [{"case": name, **_time(action, repeat)} for name, action in _cases(rows)]
    pandas = importlib.util.find_spec("pandas") is not None
    return {"rows": rows, "repeat": repeat, "pandas": pandas, "results": results}


def render(report: dict[str, Any]) -> str:
    """Return the report as a table."""
    rows = [[r["case"], r["median_ms"], r["min_ms"], r["max_ms"], r["load_1m"]] for r in report["results"]]
    note = "" if report["pandas"] else " (pandas is not installed: no DataFrame row)"
    return "\n".join(
        [
            f"context: time to build one summary, {report['repeat']} runs after a warm-up{note}",
            table(["object", "median ms", "min ms", "max ms", "load 1m"], rows),
        ]
    )
