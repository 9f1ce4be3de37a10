"""Events that follow a state, for tests of the session reducer (test_session, test_approval)."""

from __future__ import annotations

from typing import Any

from llmsock_widget.core.session import InteractionState, apply


def ev(state: InteractionState, cls: type, **fields: Any) -> Any:
    """Return an event of ``cls`` that follows ``state`` (next seq, same session and turn)."""
    fields.setdefault("session_id", state.session_id)
    fields.setdefault("seq", state.seq + 1)
    fields.setdefault("ts", 1000 + state.seq + 1)
    if "turn_id" not in fields and state.turn_id is not None:
        fields["turn_id"] = state.turn_id
    return cls(**fields)


def step(state: InteractionState, cls: type, **fields: Any) -> InteractionState:
    """Return ``state`` after an event of ``cls`` that follows it."""
    return apply(state, ev(state, cls, **fields))
