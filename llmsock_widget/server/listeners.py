"""What a notebook cell may ask the server: the records of its sessions and the events of its clients.

:class:`SessionInfo` and :class:`ServerEvent` are frozen values, safe to keep on any
thread.  :class:`Listeners` holds the callbacks of :meth:`ServerThread.on
<llmsock_widget.server.thread.ServerThread.on>` and calls them, in the order the
events happened, on a thread of its own ("llmsock-events"): never on the server's
loop, so a slow or blocking callback (a print, a call back into the server) holds up
no client, and a callback that raises is logged and the next one still runs.
No Tornado here.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Literal, get_args

log = logging.getLogger("llmsock")

EventKind = Literal["started", "stopped", "client_connected", "client_disconnected", "client_error"]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)


def utc(ms: int) -> datetime:
    """Return the time ``ms`` milliseconds after the epoch, in UTC."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def now() -> datetime:
    """Return the time now, in UTC."""
    return datetime.now(tz=timezone.utc)


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionInfo:
    """A session the server holds open (``ServerThread.active_sessions()``)."""

    id: str
    """The session id (in the seed-004 dialect, the conversation's ``convId``)."""
    created_at: datetime
    last_activity: datetime
    """When the session's last event happened (a prompt, a delta, a status, a notice)."""
    message_count: int
    """Messages in the transcript (prompts and answers; the one streaming now not counted)."""
    connections: int
    """Clients attached to it now: WebSockets, SSE streams and chat views' comm links."""
    status: str
    """``idle``, ``generating`` or ``paused``."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerEvent:
    """What a listener of :meth:`ServerThread.on` is called with."""

    kind: EventKind
    session: str | None = None
    """The session a client attached to or left (``client_*``), when known."""
    transport: str | None = None
    """``websocket``, ``sse`` or ``comm`` (``client_connected``, ``client_disconnected``)."""
    error_code: str | None = None
    """``client_error``: the code of the error reply the client got (docs/protocol.md, "Error codes")."""
    message: str = ""
    close_code: int | None = None
    """``client_disconnected`` of a WebSocket: the close code the client sent, if it sent one."""
    request_id: str | None = None
    """``client_error``: the id of the client message that was refused, if it had one."""
    at: datetime = field(default_factory=now)


Listener = Callable[[ServerEvent], object]


class Listeners:
    """The callbacks of each event kind, called in event order on the "llmsock-events" thread."""

    def __init__(self) -> None:
        self._callbacks: dict[str, tuple[Listener, ...]] = {}
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[tuple[Listener, ...], ServerEvent] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def add(self, kind: str, callback: Listener) -> None:
        """Call ``callback(event)`` for every event of ``kind`` from now on.

        Raises:
            ValueError: ``kind`` is not one of :data:`EVENT_KINDS` (a misspelt name would never fire).
            TypeError: ``callback`` is not callable.
        """
        _check_kind(kind)
        if not callable(callback):
            raise TypeError(f"a listener must be callable, not {type(callback).__name__}")
        with self._lock:  # tuples, replaced: emit reads them on the server's loop without a lock
            self._callbacks[kind] = (*self._callbacks.get(kind, ()), callback)

    def remove(self, kind: str, callback: Listener) -> bool:
        """Stop calling ``callback`` for ``kind``; return whether it was registered."""
        _check_kind(kind)
        with self._lock:
            callbacks = list(self._callbacks.get(kind, ()))
            if callback not in callbacks:
                return False
            callbacks.remove(callback)
            self._callbacks[kind] = tuple(callbacks)
            return True

    def wanted(self, kind: str) -> bool:
        """Whether some callback listens to ``kind`` (so the event is worth making)."""
        return bool(self._callbacks.get(kind))

    def emit(self, event: ServerEvent) -> None:
        """Queue ``event`` for its listeners; never blocks and never raises (safe on the server's loop)."""
        callbacks = self._callbacks.get(event.kind, ())
        if not callbacks:
            return
        with self._lock:
            self._queue.put((callbacks, event))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=_dispatch, args=(self._queue,), name="llmsock-events", daemon=True
                )
                self._thread.start()

    def drain(self, timeout: float) -> None:
        """Let the events queued so far reach their listeners (up to ``timeout`` s), then end the thread.

        A later event starts a new thread.  Called from a listener, it does not wait (it cannot).
        """
        with self._lock:
            thread, events = self._thread, self._queue
            if thread is None:
                return
            self._thread, self._queue = None, queue.SimpleQueue()
            events.put(None)
        if thread is not threading.current_thread():
            thread.join(timeout)


def _dispatch(events: queue.SimpleQueue[tuple[tuple[Listener, ...], ServerEvent] | None]) -> None:
    """Call the listeners of each queued event, in order, until the end mark."""
    while True:
        item = events.get()
        if item is None:
            return
        callbacks, event = item
        for callback in callbacks:
            try:
                callback(event)
            except Exception:  # a broken listener must not silence the others, nor the server
                log.exception("llmsock: a listener of %r failed", event.kind)


def _check_kind(kind: str) -> None:
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown server event {kind!r}; use one of {', '.join(EVENT_KINDS)}")
