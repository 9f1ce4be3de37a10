"""Session events, commands and replies as plain JSON values, and back: how servers pass them.

Servers that share a session (docs/deployment.md, "Teams: shared sessions on Redis") hand
each other its events, the commands of their clients and the replies to them. This is not a
wire dialect (clients never see it): a value is ``{"k": <its class name>, <field>: <value>...}``
with the dataclass's own field names, so one rule covers every event and a new field needs no
code here. Decoding builds the value with its class, which checks it as it would anywhere.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ..errors import InvalidFrame
from . import commands, events

# Every class a shared session passes on, by name.
_CLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        events.UserMessage,
        events.ModelStart,
        events.ModelDelta,
        events.ModelReasoning,
        events.ToolCall,
        events.ToolResult,
        events.ToolApproval,
        events.ToolApproved,
        events.ModelUsage,
        events.ModelEnd,
        events.ModelError,
        events.Diagnostic,
        events.StatusChanged,
        events.HistoryCleared,
        events.ControlResult,
        events.ErrorReply,
        events.Pong,
        commands.SendPrompt,
        commands.Control,
        commands.Approve,
        commands.Ping,
        commands.Notice,
    )
}
_FIELDS: dict[type, tuple[str, ...]] = {cls: tuple(f.name for f in fields(cls)) for cls in _CLASSES.values()}


def encode(value: Any) -> dict[str, Any]:
    """Return ``value`` (an event, command or reply) as a JSON-ready dict."""
    cls = type(value)
    names = _FIELDS.get(cls)
    if names is None:
        raise TypeError(f"{cls.__name__} is not passed between servers")
    out: dict[str, Any] = {"k": cls.__name__}
    for name in names:
        out[name] = getattr(value, name)
    return out


def decode(data: Any) -> Any:
    """Return the event, command or reply that :func:`encode` gave ``data`` for.

    Raises:
        InvalidFrame: ``data`` is not such a value (unknown kind, missing or wrong fields).
    """
    if not isinstance(data, dict):
        raise InvalidFrame("a shared value must be an object")
    cls = _CLASSES.get(data.get("k"))  # type: ignore[arg-type]
    if cls is None:
        raise InvalidFrame(f"unknown shared value kind {data.get('k')!r}")
    names = _FIELDS[cls]
    try:
        return cls(**{name: data[name] for name in names if name in data})
    except (TypeError, ValueError) as exc:
        raise InvalidFrame(f"bad {cls.__name__}: {exc}") from None
