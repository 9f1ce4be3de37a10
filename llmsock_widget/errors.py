"""One error tree for llmsock.

::

    LlmsockError
    ├── ClientError          the peer's fault; reported on the wire, connection stays open
    │   ├── InvalidFrame         malformed JSON, wrong types, missing fields   code "invalid_message"
    │   ├── UnknownType          a ``type`` this dialect does not know         code "unknown_type"
    │   ├── InvalidSessionId     a session id that is not ``[A-Za-z0-9_-]{1,128}``  code "invalid_session_id"
    │   ├── InvalidRequest       well-formed but not possible now              code "invalid_request"
    │   └── QueueFull            too many prompts waiting on one session       code "queue_full"
    └── LocalError           our side's fault (model, store, server); the log gets the traceback
        ├── ModelFailure         the model failed mid-turn                     code "model_error" (or its own)
        ├── StoreError           a SessionStore could not load or save         code "store_error"
        │   ├── CorruptSnapshot      a stored snapshot could not be read; moved aside
        │   └── StoreConflict        a save older than what is stored (revision check)
        ├── SnapshotVersionError a snapshot from a newer llmsock               code "snapshot_version"
        └── ServerStartError     the server could not start (port in use, bad host)

Every error has a ``code`` (stable, documented in docs/protocol.md), a readable
message, and ``recoverable`` (whether the session can go on).  Tracebacks never
go on the wire: :func:`wire_error` builds the ``(code, message, recoverable)``
triple that the protocol encodes.
"""

from __future__ import annotations


class LlmsockError(Exception):
    """Base of every error llmsock raises on purpose."""

    code = "internal_error"
    recoverable = True
    request_id: str | None = None  # the id of the client message that caused it, when known

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ClientError(LlmsockError):
    """The peer sent something we cannot act on; it can fix it and retry."""

    code = "invalid_request"


class InvalidFrame(ClientError):
    """A frame that is not valid for its dialect (bad JSON, wrong field types)."""

    code = "invalid_message"


class UnknownType(ClientError):
    """A message ``type`` or control action this dialect does not define."""

    code = "unknown_type"


class InvalidSessionId(ClientError):
    """A session id that could name a path or is otherwise not allowed."""

    code = "invalid_session_id"


class InvalidRequest(ClientError):
    """A well-formed request that is not possible in the session's state."""

    code = "invalid_request"


class QueueFull(ClientError):
    """Too many prompts are already waiting on this session."""

    code = "queue_full"


class LocalError(LlmsockError):
    """Something on our side failed; not the peer's fault."""


class ModelFailure(LocalError):
    """The model (builtin or remote) failed; ``code`` says how."""

    code = "model_error"


class StoreError(LocalError):
    """A SessionStore could not load, save or delete."""

    code = "store_error"


class CorruptSnapshot(StoreError):
    """A stored snapshot could not be decoded; the store moved it aside."""

    code = "corrupt_snapshot"

    def __init__(self, message: str, *, moved_to: str | None = None) -> None:
        super().__init__(message)
        self.moved_to = moved_to


class StoreConflict(StoreError):
    """A save whose revision is not newer than the stored one."""

    code = "store_conflict"


class SnapshotVersionError(LocalError):
    """A snapshot written by a newer llmsock (unknown schema version)."""

    code = "snapshot_version"
    recoverable = False


class ServerStartError(LocalError):
    """The server thread could not start listening."""

    code = "server_start"
    recoverable = False


def wire_error(exc: BaseException) -> tuple[str, str, bool]:
    """Return ``(code, message, recoverable)`` safe to put on the wire.

    Our own errors keep their message; anything else is reported without
    detail, since its text may hold paths, keys or user data.
    """
    if isinstance(exc, LlmsockError) and exc.code != "internal_error":
        return exc.code, exc.message, exc.recoverable
    # Our bugs and foreign exceptions: their text may hold paths, keys or user data.
    return "internal_error", "internal error (see the kernel log)", True
