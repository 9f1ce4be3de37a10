"""llmsock: a real-time LLM chat inside Jupyter, served from the kernel over WebSocket."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "ServerThread",
    "__version__",
    "load_ipython_extension",
    "start_server",
    "unload_ipython_extension",
]

if TYPE_CHECKING:
    from .server import ServerThread, start_server


def __getattr__(name: str) -> Any:
    # Import the server (and Tornado) only when asked for, so `import llmsock_widget` stays light.
    if name in ("ServerThread", "start_server"):
        from . import server

        return getattr(server, name)
    raise AttributeError(name)


def load_ipython_extension(ipython: Any) -> None:
    """Start llmsock in this kernel (``%load_ext llmsock``)."""
    from .extension import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Stop llmsock in this kernel (``%unload_ext llmsock``)."""
    from .extension import unload_ipython_extension as unload

    unload(ipython)
