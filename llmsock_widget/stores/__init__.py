"""Session stores: the SessionStore port, in-memory, atomic JSON file and Redis stores."""

from __future__ import annotations

from .base import SessionId, SessionStore, resolve, session_key
from .jsonfile import JsonFileStore
from .memory import MemoryStore
from .redis import RedisStore  # the module only; the redis package loads when a client is made

__all__ = [
    "JsonFileStore",
    "MemoryStore",
    "RedisStore",
    "SessionId",
    "SessionStore",
    "resolve",
    "session_key",
]
