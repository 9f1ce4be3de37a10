"""Shared test settings: one scaled time unit for every wait."""

from __future__ import annotations

import os

# Every wait in the suite is bounded by TIMEOUT; slow machines raise the factor.
TIMEOUT = 10.0 * float(os.environ.get("LLMSOCK_TEST_TIMEOUT_FACTOR", "1"))
