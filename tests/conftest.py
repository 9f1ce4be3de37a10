"""Shared test settings: one scaled time unit for every wait."""

from __future__ import annotations

import os

# Every wait in the suite is bounded by TIMEOUT; slow machines raise the factor.
TIMEOUT = 10.0 * float(os.environ.get("LLMSOCK_TEST_TIMEOUT_FACTOR", "1"))

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


def pytest_collection_modifyitems(items: list[object]) -> None:
    """Run the browser tests last: Playwright's sync API keeps an event loop running on the main
    thread until the session ends, and tests that call asyncio.run() cannot run after it starts."""
    items.sort(key=lambda item: "browser" in getattr(item, "keywords", {}))
