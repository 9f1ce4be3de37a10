"""The callbacks of a :class:`~.chat.Chat` handle: a session's events, called off the server's loop.

A handle with callbacks is attached to its session like a chat view: the hub hands
it every event of the session, whoever caused it (a view, a cell, a client).  The
loop only puts an event on a queue; one thread ("llmsock-chat-events", shared by
every handle of the process) calls the callbacks, one at a time, in event order,
so a slow callback holds up no view, and one that raises is logged and the
others still run.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from ..core.events import (
    Event,
    ModelDelta,
    ModelEnd,
    ModelError,
    ToolApproval,
    ToolApproved,
    ToolCall,
    ToolResult,
    UserMessage,
)
from ..server.thread import ServerThread

log = logging.getLogger("llmsock")

Callback = Callable[[Any], object]

EVENTS: dict[str, tuple[type, ...]] = {
    "message": (UserMessage,),
    "delta": (ModelDelta,),
    "end": (ModelEnd,),
    "error": (ModelError,),
    "tool_call": (ToolCall,),
    "tool_result": (ToolResult,),
    "approval": (ToolApproval, ToolApproved),
}
"""The event names of ``Chat.on`` and the session events each one gets."""

_NAME_OF = {cls: name for name, classes in EVENTS.items() for cls in classes}

ATTACH_TIMEOUT = 30.0  # seconds to load a session and attach to it


class ChatEvents:
    """The callbacks of one handle on session ``name``, and its attachment to the session."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._callbacks: dict[str, tuple[Callback, ...]] = {}
        self._server: ServerThread | None = None  # the server attached to, while callbacks exist
        self._detach: Callable[[], Any] | None = None

    def add(self, event: str, callback: Callback, server: ServerThread) -> Callable[[], None]:
        """Call ``callback(event)`` for each session event named ``event``; return the unsubscribe.

        Raises:
            ValueError: an unknown event name.
            TypeError: ``callback`` is not callable.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown chat event {event!r}; use one of: {', '.join(EVENTS)}")
        if not callable(callback):
            raise TypeError("the callback must be callable")
        with self._lock:
            self._callbacks[event] = (*self._callbacks.get(event, ()), callback)
            attached = self._server is server
        if not attached:
            self.attach(server)
        done = threading.Event()

        def unsubscribe() -> None:
            if not done.is_set():
                done.set()
                self._remove(event, callback)

        return unsubscribe

    def attach(self, server: ServerThread) -> None:
        """Attach to the session on ``server`` (leaving the one on another server), if callbacks exist."""
        with self._lock:
            if not self._callbacks or self._server is server:
                return
        detach = _wait(server, _attach(server, self.name, self.deliver))
        with self._lock:
            old_server, old_detach = self._server, self._detach
            self._server, self._detach = server, detach
        _leave(old_server, old_detach)

    def server_started(self, server: ServerThread) -> None:
        """Follow the kernel's new server (the old one was stopped), if callbacks exist."""
        try:
            self.attach(server)
        except Exception:  # the next on() tries again; the cell that started the server goes on
            log.exception("llmsock: chat %r could not follow the new server", self.name)

    def deliver(self, event: Event) -> None:
        """Queue ``event`` for the callbacks that want it (on the server's loop: never blocks)."""
        name = _NAME_OF.get(type(event))
        callbacks = self._callbacks.get(name) if name is not None else None
        if callbacks:
            _dispatcher().put((callbacks, event))

    def _remove(self, event: str, callback: Callback) -> None:
        with self._lock:
            left = list(self._callbacks.get(event, ()))
            if callback in left:
                left.remove(callback)
            if left:
                self._callbacks[event] = tuple(left)
            else:
                self._callbacks.pop(event, None)
            if self._callbacks:
                return
            server, detach = self._server, self._detach
            self._server = self._detach = None
        _leave(server, detach)


async def _attach(server: ServerThread, name: str, deliver: Callable[[Event], None]) -> Any:
    _, detach, _ = await server.hub.attach(name, deliver)
    return detach


def _leave(server: ServerThread | None, detach: Callable[[], Any] | None) -> None:
    """Detach from a session without waiting (a stopped server has detached everyone already)."""
    if server is None or detach is None or not server.running:
        return
    try:
        server.submit(detach())
    except RuntimeError:  # stopped meanwhile
        pass


def _wait(server: ServerThread, coro: Any, timeout: float = ATTACH_TIMEOUT) -> Any:
    """Run ``coro`` on the server's loop and return its result, from any other thread."""
    on_loop(server)
    return server.submit(coro).result(timeout)


def on_loop(server: ServerThread) -> None:
    """Refuse to wait for the server's loop on that loop (it would wait for itself forever).

    Raises:
        RuntimeError: called on the server's loop (an async tool, for one).
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return
    if running is server.loop:
        raise RuntimeError(
            "a Chat cannot wait for the server on the server's own loop; call it from a cell, a script "
            "or a plain (not async) tool"
        )


class _Dispatcher:
    """One daemon thread that calls the callbacks of every handle, in the order events came."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[tuple[Callback, ...], Any]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="llmsock-chat-events", daemon=True)
        self._thread.start()

    def put(self, item: tuple[tuple[Callback, ...], Any]) -> None:
        self._queue.put(item)

    def _run(self) -> None:
        while True:
            callbacks, event = self._queue.get()
            for callback in callbacks:
                try:
                    callback(event)
                except Exception:  # the user's code: say it, and call the next one
                    log.exception("llmsock: a Chat callback failed on %s", type(event).__name__)


_lock = threading.Lock()
_the_dispatcher: _Dispatcher | None = None


def _dispatcher() -> _Dispatcher:
    global _the_dispatcher
    with _lock:
        if _the_dispatcher is None:
            _the_dispatcher = _Dispatcher()
        return _the_dispatcher
