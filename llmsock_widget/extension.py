"""``%load_ext llmsock``: one server per kernel, started on load and stopped on unload."""

from __future__ import annotations

import threading
from typing import Any

from .server import ServerThread

_lock = threading.Lock()
_server: ServerThread | None = None


def get_server(**options: Any) -> ServerThread:
    """Return this kernel's running server, starting it (with ``options``) if needed."""
    global _server
    with _lock:
        if _server is None or not _server.running:
            _server = ServerThread(**options).start()
        return _server


def stop_server() -> None:
    """Stop this kernel's server if one runs; free its port."""
    global _server
    with _lock:
        server, _server = _server, None
    if server is not None:
        server.stop()


def load_ipython_extension(ipython: Any) -> None:
    """Start (or reuse) the kernel's server."""
    get_server()


def unload_ipython_extension(ipython: Any) -> None:
    """Stop the kernel's server."""
    stop_server()
