"""Shared test settings: one scaled time unit for every wait."""

from __future__ import annotations

import os

# Every wait in the suite is bounded by TIMEOUT; slow machines raise the factor.
TIMEOUT = 10.0 * float(os.environ.get("LLMSOCK_TEST_TIMEOUT_FACTOR", "1"))


def pytest_collection_modifyitems(items: list[object]) -> None:
    """Run the browser tests last: Playwright's sync API keeps an event loop running on the main
    thread until the session ends, and tests that call asyncio.run() cannot run after it starts."""
    items.sort(key=lambda item: "browser" in getattr(item, "keywords", {}))
