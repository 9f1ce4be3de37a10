"""The turn lifecycle: one table ``(phase, status) + event kind -> next (phase, status)``.  Pure.

Everything that decides whether a session event may happen now, and what phase and
status the session has after it, lives here (as h11's ``_state.py`` does for HTTP):
the reducer (:func:`.session.apply`) takes its next phase and status from
:data:`TRANSITIONS` (through :func:`.session.check`, which a live session also calls
for the deltas it joins lazily), and the runtime asks :func:`allows` before it pauses,
resumes or aborts.  An event whose kind is not listed for the session's stage cannot
happen; the reducer refuses it.

A turn goes ``idle -> turn -> streaming -> idle``; ``status`` says what users are
told: ``generating`` once the prompt is in, ``paused`` while the answer is held, and
``idle`` again once the answer has ended.  So a pause happens only inside a turn,
and a turn that ends while paused (an abort, or a pause that timed out) is followed by
``StatusChanged(idle)`` and nothing else.  A stage whose status is ``idle`` inside a
turn is the moment between the prompt and its ``StatusChanged(generating)``.
"""

from __future__ import annotations

from typing import Literal

from .events import SessionEvent, Status, StatusChanged

Phase = Literal["idle", "turn", "streaming"]
Stage = tuple[Phase, Status]

# Event kinds the runtime asks about (a status change's kind names the status it sets).
PAUSE = "StatusChanged(paused)"
RESUME = "StatusChanged(generating)"
END = "ModelEnd"

_STEP_EVENTS = (
    "ModelDelta",
    "ModelReasoning",
    "ModelUsage",
    "ToolCall",
    "ToolApproval",
    "ToolApproved",
    "ToolResult",
)


def _in_answer(status: Status) -> dict[str, Stage]:
    """Return the rows of a streaming answer whose status is ``status``."""
    return {kind: ("streaming", status) for kind in _STEP_EVENTS}


# stage -> {event kind -> next stage}; a Diagnostic is added to every stage below.
_TABLE: dict[Stage, dict[str, Stage]] = {
    # At rest: a prompt starts a turn; the history may be cleared.
    ("idle", "idle"): {
        "UserMessage": ("turn", "idle"),
        "HistoryCleared": ("idle", "idle"),
    },
    # The prompt is in; its status follows.  The model may also start, or the turn end, first.
    ("turn", "idle"): {
        "StatusChanged(generating)": ("turn", "generating"),
        "StatusChanged(paused)": ("turn", "paused"),
        "ModelStart": ("streaming", "idle"),
        "ModelEnd": ("idle", "idle"),
        "ModelError": ("idle", "idle"),
    },
    # Waiting for the model (the prompt is being saved).
    ("turn", "generating"): {
        "StatusChanged(paused)": ("turn", "paused"),
        "ModelStart": ("streaming", "generating"),
        "ModelEnd": ("idle", "generating"),
        "ModelError": ("idle", "generating"),
    },
    # Paused before the model started: it starts, and is held at its first chunk.
    ("turn", "paused"): {
        "StatusChanged(generating)": ("turn", "generating"),
        "ModelStart": ("streaming", "paused"),
        "ModelEnd": ("idle", "paused"),
        "ModelError": ("idle", "paused"),
    },
    # Streaming before the turn's status was told (events applied without the runtime).
    ("streaming", "idle"): {
        **_in_answer("idle"),
        "StatusChanged(generating)": ("streaming", "generating"),
        "StatusChanged(paused)": ("streaming", "paused"),
        "ModelEnd": ("idle", "idle"),
        "ModelError": ("idle", "idle"),
    },
    # Streaming: deltas, reasoning, usage, tool calls and their results.
    ("streaming", "generating"): {
        **_in_answer("generating"),
        "StatusChanged(paused)": ("streaming", "paused"),
        "ModelEnd": ("idle", "generating"),
        "ModelError": ("idle", "generating"),
    },
    # Paused: the model is held, so nothing of it comes; a tool already running still finishes,
    # and a call waiting for the user's approval may still be answered.
    ("streaming", "paused"): {
        "ToolApproval": ("streaming", "paused"),
        "ToolApproved": ("streaming", "paused"),
        "ToolResult": ("streaming", "paused"),
        "StatusChanged(generating)": ("streaming", "generating"),
        "ModelEnd": ("idle", "paused"),
        "ModelError": ("idle", "paused"),
    },
    # The answer has ended (or was aborted while paused): only its StatusChanged(idle) follows.
    ("idle", "generating"): {"StatusChanged(idle)": ("idle", "idle")},
    ("idle", "paused"): {"StatusChanged(idle)": ("idle", "idle")},
}

# A diagnostic may be told at any moment and changes nothing.
TRANSITIONS: dict[Stage, dict[str, Stage]] = {
    stage: {**row, "Diagnostic": stage} for stage, row in _TABLE.items()
}


def kind(event: SessionEvent) -> str:
    """Return the table's name for ``event``: its class name, with the status a status change sets."""
    if type(event) is StatusChanged:
        return f"StatusChanged({event.status})"
    return type(event).__name__


def next_stage(phase: Phase, status: Status, event_kind: str) -> Stage | None:
    """Return the phase and status after an event of ``event_kind``, or None if it cannot happen now."""
    row = TRANSITIONS.get((phase, status))
    return None if row is None else row.get(event_kind)


def allows(phase: Phase, status: Status, event_kind: str) -> bool:
    """Return whether an event of ``event_kind`` may happen in this phase and status."""
    return next_stage(phase, status, event_kind) is not None
