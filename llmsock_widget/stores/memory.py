"""MemoryStore: session states in a dict, for tests and for sessions that need not outlive the kernel."""

from __future__ import annotations

import threading

from ..core.session import InteractionState
from ..errors import StoreConflict
from .base import SessionId, session_key


class MemoryStore:
    """A synchronous :class:`~llmsock_widget.stores.base.SessionStore` kept in memory.

    States are frozen values, so the store keeps the objects themselves, not copies.
    """

    def __init__(self) -> None:
        self._states: dict[str, InteractionState] = {}
        # The revision check and the write must be one step even if a store is
        # shared with another thread (e.g. a test driving the hub from outside).
        self._lock = threading.Lock()

    def load(self, session_id: SessionId) -> InteractionState | None:
        """Return the stored state of ``session_id``, or None."""
        key = session_key(session_id)
        with self._lock:
            return self._states.get(key)

    def save(self, session_id: SessionId, state: InteractionState) -> bool:
        """Store ``state``; raise StoreConflict unless its revision is newer than the stored one."""
        key = session_key(session_id)
        with self._lock:
            stored = self._states.get(key)
            if stored is not None and state.revision <= stored.revision:
                raise StoreConflict(
                    f"session {key}: revision {state.revision} is not newer than stored {stored.revision}"
                )
            self._states[key] = state
        return True

    def delete(self, session_id: SessionId) -> bool:
        """Forget ``session_id``; return whether it was stored."""
        key = session_key(session_id)
        with self._lock:
            return self._states.pop(key, None) is not None

    def keys(self) -> list[str]:
        """Return the keys of the stored sessions, sorted."""
        with self._lock:
            return sorted(self._states)
