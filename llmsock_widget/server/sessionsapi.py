"""Seed 004's ``WSServer`` API on :class:`~llmsock_widget.server.thread.ServerThread`, safe from any thread.

``send_to_session``, ``broadcast``, ``active_sessions``, ``connection_count`` and the
listeners (``on``/``off``) of docs/api.md.  Each call does its work on the server's loop and
waits for it (at once when called on the loop's own thread); listeners run on their own
thread (:mod:`.listeners`).  A mixin: the server provides ``hub``, ``listeners``, ``loop``,
``running`` and ``_thread``.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..core.events import ErrorReply, Level
from ..runtime.fanout import Deliver
from .listeners import EventKind, Listener, Listeners, ServerEvent, SessionInfo, utc

if TYPE_CHECKING:
    import asyncio

    from ..runtime.hub import Hub


class SessionsApi:
    """The seed-004 server API, for :class:`ServerThread` (docs/api.md)."""

    hub: Hub
    listeners: Listeners
    loop: asyncio.AbstractEventLoop | None
    _thread: threading.Thread | None

    @property
    def running(self) -> bool:
        """Whether the server serves (the server's own, fuller test overrides this one)."""
        return self.loop is not None and self._thread is not None

    def on(self, kind: EventKind, callback: Listener | None = None) -> Any:
        """Call ``callback(event)`` for each server event of ``kind``; return ``callback``.

        ``kind`` is ``started``, ``stopped``, ``client_connected``, ``client_disconnected``
        or ``client_error``; ``event`` is a :class:`ServerEvent`.  Without ``callback``, return
        a decorator.  Callbacks run on a thread of their own ("llmsock-events"), one at a
        time in event order, never on the server's loop: they may block or call back into
        the server; one that raises is logged and the others still run.

        Raises:
            ValueError: an unknown ``kind``.
        """
        if callback is None:

            def register(fn: Listener) -> Listener:
                self.listeners.add(kind, fn)
                return fn

            return register
        self.listeners.add(kind, callback)
        return callback

    def off(self, kind: EventKind, callback: Listener) -> bool:
        """Stop calling ``callback`` for ``kind``; return whether it was registered."""
        return self.listeners.remove(kind, callback)

    def send_to_session(
        self,
        session: str,
        text: str,
        *,
        level: Level = "info",
        code: str = "notice",
        timeout: float = 10.0,
    ) -> int:
        """Post a notice into an open session; return how many connections it reached.

        The notice is a ``diagnostic`` session event (``level``, ``code``, ``message=text``)
        with the session's next sequence, so every connection of the session gets it in
        order, in its own dialect, and a client that resumes gets it again; it is not
        part of the transcript.  The chat widget shows an ``info`` notice as a note under
        the chat until the next prompt, a ``warning`` or ``error`` as a line of the chat.
        Returns 0, and posts nothing, if the session is not open (nobody attached and no
        turn running) or the server is not running.

        Raises:
            ValueError: an empty ``text`` or ``code``, or an unknown ``level``.
            TimeoutError: the server's loop did not take it within ``timeout`` seconds.
        """
        _check_notice(text, level, code)
        reached = self._on_loop(self._notify, (session,), level, code, text, timeout=timeout)
        return reached or 0

    def broadcast(
        self,
        text: str,
        *,
        exclude: str | Iterable[str] | None = None,
        level: Level = "info",
        code: str = "notice",
        timeout: float = 10.0,
    ) -> int:
        """Post a notice into every session that has a connection, except ``exclude``.

        Returns how many connections it reached.  ``exclude`` is a session id or several.
        Each session gets the notice as :meth:`send_to_session` posts it.
        """
        _check_notice(text, level, code)
        skip = {exclude} if isinstance(exclude, str) else set(exclude or ())
        reached = self._on_loop(self._notify_all, skip, level, code, text, timeout=timeout)
        return reached or 0

    def active_sessions(self, timeout: float = 10.0) -> list[SessionInfo]:
        """Return a record of each session the server holds open now (an empty list if it is not running).

        A session is open while a client is attached to it or a turn of it runs or waits;
        its record (:class:`SessionInfo`) is a copy, taken on the server's loop.
        """
        return self._on_loop(self._session_infos, timeout=timeout) or []

    def connection_count(self, timeout: float = 10.0) -> int:
        """Return how many clients are attached to a session now (WebSockets, SSE streams, comm links)."""
        return self._on_loop(self._attached_count, timeout=timeout) or 0

    def _on_loop(self, fn: Callable[..., Any], *args: Any, timeout: float) -> Any:
        """Return ``fn(*args)`` run on the server's loop (at once if called there); None if it is stopped."""
        loop, thread = self.loop, self._thread
        if loop is None or thread is None or not self.running:
            return None
        if thread is threading.current_thread():
            return fn(*args)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed to the caller's thread
                    future.set_exception(exc)

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:  # the loop closed meanwhile: the server stopped
            return None
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the server's loop did not answer within {timeout} s") from None

    def _notify(self, keys: Iterable[str], level: Level, code: str, text: str) -> int:
        """Post a diagnostic into each open session of ``keys``; return the connections it reached."""
        return sum(self.hub.notify(key, level, code, text) for key in keys)

    def _notify_all(self, skip: set[str], level: Level, code: str, text: str) -> int:
        keys = [key for key, live in self.hub.sessions.items() if live.subscribers > 0 and key not in skip]
        return self._notify(keys, level, code, text)

    def _session_infos(self) -> list[SessionInfo]:
        infos = []
        for key, live in list(self.hub.sessions.items()):
            state = live.state
            infos.append(
                SessionInfo(
                    id=key,
                    created_at=utc(state.created_at),
                    last_activity=utc(state.updated_at),
                    message_count=len(state.messages),
                    connections=max(live.subscribers, 0),
                    status=state.status,
                )
            )
        return infos

    def _attached_count(self) -> int:
        return sum(max(live.subscribers, 0) for live in self.hub.sessions.values())

    def _attached(self, session: str, deliver: Deliver, attached: bool) -> None:
        """Tell the listeners that a client attached to ``session`` or left it (the fan-out's observer)."""
        kind: EventKind = "client_connected" if attached else "client_disconnected"
        if not self.listeners.wanted(kind):
            return
        client = getattr(deliver, "__self__", None)  # the connection whose method receives the events
        close_code = getattr(client, "close_code", None) if not attached else None
        self.listeners.emit(
            ServerEvent(
                kind=kind,
                session=session,
                transport=getattr(client, "transport", None),
                close_code=close_code if isinstance(close_code, int) else None,
            )
        )

    def _refused(self, reply: ErrorReply) -> None:
        if self.listeners.wanted("client_error"):
            self.listeners.emit(
                ServerEvent(
                    kind="client_error",
                    error_code=reply.code,
                    message=reply.message,
                    request_id=reply.request_id,
                )
            )


def _check_notice(text: str, level: str, code: str) -> None:
    if not isinstance(text, str) or not text:
        raise ValueError("a notice needs a non-empty text")
    if level not in ("info", "warning", "error"):
        raise ValueError(f"level must be 'info', 'warning' or 'error', not {level!r}")
    if not isinstance(code, str) or not code:
        raise ValueError("a notice needs a non-empty code")
