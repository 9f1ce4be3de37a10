"""Shared test settings: one scaled time unit for every wait, and a time limit for every test."""

from __future__ import annotations

import os

import pytest

# Slow machines (CI sets 3) raise the factor; it scales every wait and every test's time limit.
TIMEOUT_FACTOR = float(os.environ.get("LLMSOCK_TEST_TIMEOUT_FACTOR", "1"))

# Every wait in the suite is bounded by TIMEOUT.
TIMEOUT = 10.0 * TIMEOUT_FACTOR

# The most a whole test (setup, call, teardown) may take before pytest-timeout fails it, in
# seconds before scaling: above the longest honest test (a sixty-second answer plus its waits), so
# only a hang reaches it.  A browser test's setup may include starting JupyterLab and chromium.
TEST_TIME_LIMIT = 120.0
BROWSER_TEST_TIME_LIMIT = 300.0

# A CPU-bound cell: pure Python, no sleep, no I/O, the kernel's main thread busy until it ends by
# itself, long after a test has its answer.  It prints "busy" when it starts and "done" at the end.
BUSY_SECONDS = TIMEOUT * 3
BUSY_CELL = (
    "import time\n"
    'print("busy", flush=True)\n'
    f"end = time.monotonic() + {BUSY_SECONDS}\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
    'print("done")'
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the browser tests last and give each test without a ``timeout`` marker its time limit.

    Playwright's sync API keeps an event loop running on the main thread until the session ends,
    and tests that call asyncio.run() cannot run after it starts.
    """
    items.sort(key=lambda item: "browser" in item.keywords)
    if _time_limit_given(config):
        return
    for item in items:
        if item.get_closest_marker("timeout") is None:
            base = BROWSER_TEST_TIME_LIMIT if "browser" in item.keywords else TEST_TIME_LIMIT
            item.add_marker(pytest.mark.timeout(base * TIMEOUT_FACTOR))


def pytest_report_header(config: pytest.Config) -> str:
    """Say in the run's header how long each test may take, so a CI log shows the limit in force."""
    if _time_limit_given(config):
        return "llmsock: every test limited by --timeout / PYTEST_TIMEOUT"
    return (
        f"llmsock: each test limited to {TEST_TIME_LIMIT * TIMEOUT_FACTOR:g} s, a browser test to "
        f"{BROWSER_TEST_TIME_LIMIT * TIMEOUT_FACTOR:g} s (LLMSOCK_TEST_TIMEOUT_FACTOR={TIMEOUT_FACTOR:g})"
    )


def _time_limit_given(config: pytest.Config) -> bool:
    """Whether ``--timeout`` or PYTEST_TIMEOUT was given, which then applies to every test."""
    return config.getoption("timeout", None) is not None or "PYTEST_TIMEOUT" in os.environ


# The real redis-server of the Redis tests (a fixture module: imported last, it needs TIMEOUT above).
from tests.redisserver import redis_cluster, redis_prefix, redis_server  # noqa: E402, F401
