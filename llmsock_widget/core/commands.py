"""Commands: what a client asks for, whatever dialect it spoke.  Both dialects decode to these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Union


@dataclass(frozen=True, kw_only=True, slots=True)
class SendPrompt:
    """Run a turn with this user text (in place of the user message ``replaces`` and all after it)."""

    kind: ClassVar[str] = "user_message"  # the client message type, named in an error reply
    text: str
    message_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    replaces: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Control:
    """One of :data:`CONTROL_ACTIONS`."""

    kind: ClassVar[str] = "control"
    action: str
    request_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Ping:
    """Ask for a ``pong``."""

    kind: ClassVar[str] = "ping"
    request_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class Approve:
    """Answer a tool call that waits for the user's approval: run it (``approved``) or not."""

    kind: ClassVar[str] = "approval"
    call_id: str
    approved: bool
    request_id: str | None = None


Command = Union[SendPrompt, Control, Ping, Approve]


@dataclass(frozen=True, kw_only=True, slots=True)
class Notice:
    """Tell a session's users something (a diagnostic); the server's own, never a client's."""

    kind: ClassVar[str] = "notice"
    level: str
    code: str
    message: str
