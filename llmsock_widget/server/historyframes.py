"""Frames of ``get_history`` results, with the transcript encoded once per transcript.

A transcript can be megabytes; encoding it anew for every ``get_history`` lets a few
clients asking in a loop hold the server's one loop for seconds, and every other
session's frames wait behind them.  The hub hands out the same ``messages`` list for
as long as the transcript is unchanged; here that list is turned into JSON text once,
and each reply encodes only its small envelope around a placeholder that the cached
text then replaces.
"""

from __future__ import annotations

import json
import secrets
from collections import OrderedDict
from dataclasses import replace
from typing import Any, TypeGuard

from ..core.events import ControlResult
from ..wire import protocol

__all__ = ["HistoryFrames", "is_history"]

# Unguessable, so no value a client or a model can put in a frame is ever taken for it.
_PLACEHOLDER = f"llmsock-history-{secrets.token_hex(16)}"


def is_history(event: object) -> TypeGuard[ControlResult]:
    """Whether ``event`` is a successful ``get_history`` result (the one reply worth caching)."""
    return (
        isinstance(event, ControlResult)
        and event.action == "get_history"
        and event.ok
        and isinstance(event.data.get("messages"), list)
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)


class HistoryFrames:
    """Encode ``get_history`` results, reusing the JSON of a transcript seen before."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        # id(messages) -> (the list itself, so its id stays its own; its JSON text)
        self._texts: OrderedDict[int, tuple[list[Any], str]] = OrderedDict()
        self.encoded = 0  # transcripts turned into JSON (a hit costs none)

    def frames(self, event: ControlResult, dialect: protocol.Dialect) -> tuple[str, ...]:
        """Return ``event``'s frames in ``dialect``, as :func:`protocol.frames` would."""
        messages = event.data["messages"]
        text = self._text(messages)
        skeleton = replace(event, data={**event.data, "messages": _PLACEHOLDER})
        needle = f'"{_PLACEHOLDER}"'
        return tuple(frame.replace(needle, text, 1) for frame in protocol.frames(skeleton, dialect))

    def _text(self, messages: list[Any]) -> str:
        key = id(messages)
        cached = self._texts.get(key)
        if cached is not None and cached[0] is messages:
            self._texts.move_to_end(key)
            return cached[1]
        text = _dumps(messages)
        self.encoded += 1
        self._texts[key] = (messages, text)
        while len(self._texts) > self.size:
            self._texts.popitem(last=False)
        return text
