"""The SessionStore port, session keys, and the helper that awaits either kind of store."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast, runtime_checkable

from ..core.session import InteractionState
from ..errors import InvalidSessionId

SessionId = str | Mapping[str, str]
"""A session id: ``"abc"``, or ``{"sessionId": "abc", "userId": "ann"}`` (``userId`` optional)."""

MAX_COMPONENT = 128

# Only these characters, so a key can never name a path (no dot, slash, NUL or
# drive letter) and is safe as a file name, a Redis key or a metadata key.
_COMPONENT = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_COMPONENT}}}")

_T = TypeVar("_T")


@runtime_checkable
class SessionStore(Protocol):
    """Where session states live between kernel restarts or page reloads.

    Each method may be a plain function or a coroutine function; the hub calls
    them through :func:`resolve`, so a store picks whichever suits its I/O.
    Every method validates its id with :func:`session_key` and raises
    :class:`~llmsock_widget.errors.InvalidSessionId` for a bad one.

    Revisions: ``save`` refuses a state whose ``revision`` is not greater than
    the revision of the state already stored under that id, raising
    :class:`~llmsock_widget.errors.StoreConflict`; the caller bumps ``revision``
    before each save.  This is how two writers (two kernels on one directory, the
    Redis store shared by servers) notice a stale write instead of
    silently losing the newer transcript.  With nothing stored, any revision
    is accepted.

    A store shared by several processes may instead merge such a save with the stored
    copy, keeping both writers' messages, and answer :class:`Merged` (which is true)
    so the chat can be told; the caller keeps its own ``revision`` counter.

    Failures are :class:`~llmsock_widget.errors.StoreError` (or a subclass);
    a snapshot from a newer llmsock is
    :class:`~llmsock_widget.errors.SnapshotVersionError`.
    """

    def load(self, session_id: SessionId) -> InteractionState | Awaitable[InteractionState | None] | None:
        """Return the stored state of ``session_id``, or None if there is none."""
        ...

    def save(
        self, session_id: SessionId, state: InteractionState
    ) -> bool | Merged | Awaitable[bool] | Awaitable[bool | Merged]:
        """Store ``state`` under ``session_id``; return True (or :class:`Merged`) once it is stored."""
        ...

    def delete(self, session_id: SessionId) -> bool | Awaitable[bool]:
        """Forget ``session_id``; return whether anything was stored."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Merged:
    """A save stored together with another writer's copy; ``message`` says so, for the chat."""

    message: str

    def __bool__(self) -> bool:
        return True


def session_key(session_id: SessionId) -> str:
    """Return the normalised key of ``session_id``: ``sessionId`` or ``userId~sessionId``.

    Raises:
        InvalidSessionId: a component is not 1-128 of ``A-Z a-z 0-9 _ -``, or
            the id is neither a string nor a mapping with a ``sessionId``.
    """
    if isinstance(session_id, str):
        return _component(session_id, "sessionId")
    if isinstance(session_id, Mapping):
        if "sessionId" not in session_id:
            raise InvalidSessionId("a session id object needs a 'sessionId'")
        session = _component(session_id["sessionId"], "sessionId")
        # JSON null counts as absent, since clients often send {"userId": null}.
        user = session_id.get("userId")
        if user is None:
            return session
        return f"{_component(user, 'userId')}~{session}"
    raise InvalidSessionId(f"a session id must be a string or an object, not {type(session_id).__name__}")


async def resolve(result: _T | Awaitable[_T]) -> _T:
    """Return ``result``, awaiting it first if it is awaitable (a sync or async store's answer)."""
    if inspect.isawaitable(result):
        return cast("_T", await result)
    return result


def _component(value: object, name: str) -> str:
    # fullmatch, not ``^...$``: ``$`` also matches before a trailing newline.
    if not isinstance(value, str) or not _COMPONENT.fullmatch(value):
        raise InvalidSessionId(
            f"invalid {name} {_show(value)}: use 1-{MAX_COMPONENT} characters from A-Z, a-z, 0-9, '_' and '-'"
        )
    return value


def _show(value: object) -> str:
    # The message goes back to the client; keep a hostile id from filling it.
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
