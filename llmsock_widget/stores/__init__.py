"""Session stores: the SessionStore port, an in-memory store and an atomic JSON file store."""

from __future__ import annotations

from .base import SessionId, SessionStore, resolve, session_key
from .jsonfile import JsonFileStore
from .memory import MemoryStore

__all__ = ["JsonFileStore", "MemoryStore", "SessionId", "SessionStore", "resolve", "session_key"]
