"""The built-in ``get_current_time`` tool."""

from __future__ import annotations

import datetime as dt
import zoneinfo

MAX_ZONE_CHARS = 64


def get_current_time(timezone: str = "UTC") -> str:
    """Return the current date and time as ISO 8601 text, in the given time zone.

    Args:
        timezone: An IANA time zone name such as "Europe/Paris", "America/New_York" or "UTC".

    Raises:
        ValueError: no time zone has that name.
    """
    return dt.datetime.now(_zone(timezone)).isoformat(timespec="seconds")


def _zone(name: str) -> dt.tzinfo:
    if name in ("UTC", "Z"):
        return dt.timezone.utc  # needs no time zone database (Windows without tzdata)
    if isinstance(name, str) and 0 < len(name) <= MAX_ZONE_CHARS:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass  # ValueError: a path-like name such as "../x"; OSError: an unreadable file
    shown = repr(name) if len(repr(name)) <= MAX_ZONE_CHARS + 2 else repr(name)[:MAX_ZONE_CHARS] + "..."
    raise ValueError(f"unknown time zone {shown}; use an IANA name such as 'Europe/Paris' or 'UTC'")
