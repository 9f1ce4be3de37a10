"""Commands: what a client asks for, whatever dialect it spoke.  Both dialects decode to these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(frozen=True, kw_only=True, slots=True)
class SendPrompt:
    """Run a turn with this user text."""

    text: str
    message_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class Control:
    """One of :data:`CONTROL_ACTIONS`."""

    action: str
    request_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Ping:
    """Ask for a ``pong``."""

    request_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


Command = Union[SendPrompt, Control, Ping]
