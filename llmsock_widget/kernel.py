"""This kernel's one llmsock server: started on demand, stopped on unload, watched by widgets.

``%load_ext llmsock``, ``ChatWidget()`` and ``get_server()`` all use the server
kept here, so reloading the extension or re-running cells never starts a
second one.  Widgets register a callback to learn a new address when the
server is restarted.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import weakref
from typing import Any

from .server import ServerThread

log = logging.getLogger("llmsock")

_lock = threading.RLock()
_server: ServerThread | None = None
_options: dict[str, Any] = {}
_listeners: weakref.WeakSet[Any] = weakref.WeakSet()

DEFAULT_SESSION = "default"


def get_server(**options: Any) -> ServerThread:
    """Return this kernel's running server, starting it with ``options`` if none runs.

    Options given while a server already runs are not applied to it (a warning
    says so); stop it first, or use ``%llmsock model ...`` for the model.
    """
    global _server
    with _lock:
        if _server is not None and _server.running:
            if options and options != _options:
                log.warning("llmsock: a server is already running; new options are ignored (stop it first)")
            return _server
        _isolate_logging()
        _options.clear()
        _options.update(options)
        _server = ServerThread(**options).start()
        server = _server
    for listener in list(_listeners):
        listener.server_started(server)
    return server


def current_server() -> ServerThread | None:
    """Return the running server, or None (never starts one)."""
    with _lock:
        return _server if _server is not None and _server.running else None


def stop_server() -> None:
    """Stop this kernel's server if one runs, and free its port."""
    global _server
    with _lock:
        server, _server = _server, None
    if server is not None:
        server.stop()


def watch(listener: Any) -> None:
    """Call ``listener.server_started(server)`` whenever a new server starts (held weakly)."""
    _listeners.add(listener)


def _isolate_logging() -> None:
    """Send llmsock's log lines to the kernel's own stderr, never into a notebook cell.

    In a kernel, ``sys.stderr`` (and file descriptor 2) is the output of whichever
    cell runs now, so a line logged by the server thread would land in a random
    cell.  Records of the server thread from Tornado and asyncio are diverted the
    same way.
    """
    ours = logging.getLogger("llmsock")
    if any(getattr(h, "_llmsock", False) for h in ours.handlers):
        return
    handler = logging.StreamHandler(_console())
    handler.setFormatter(logging.Formatter("[llmsock %(levelname)s %(asctime)s] %(message)s"))
    handler._llmsock = True  # type: ignore[attr-defined]
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    divert = _ThreadDivert(handler)
    for name in ("tornado.access", "tornado.application", "tornado.general", "asyncio"):
        logging.getLogger(name).addFilter(divert)


def _console() -> Any:
    """Return a stream to the kernel's own console (the terminal that runs Jupyter).

    ipykernel captures file descriptor 2 and forwards what is written there to the
    running cell, so even ``sys.__stderr__`` lands in the notebook; it keeps the
    console's original descriptor on its stderr stream, and that is where we write.
    """
    original = getattr(sys.stderr, "_original_stdstream_copy", None)
    if isinstance(original, int):
        try:
            return os.fdopen(os.dup(original), "w", buffering=1, encoding="utf-8", errors="replace")
        except OSError:
            pass
    return sys.__stderr__ if sys.__stderr__ is not None else sys.stderr


class _ThreadDivert(logging.Filter):
    """A logger filter: records made on the server thread go to our handler only."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        if record.threadName == "llmsock-server":
            if record.levelno >= logging.WARNING:
                self.handler.handle(record)
            return False
        return True
