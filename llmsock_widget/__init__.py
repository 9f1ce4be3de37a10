"""llmsock: a real-time LLM chat inside Jupyter, served from the kernel over WebSocket.

Public names are imported on first use, so ``import llmsock_widget`` stays light
(no Tornado, no widgets) until something is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._moved import install as _install_moved_paths
from ._version import __version__

_install_moved_paths()

__all__ = [
    "Answer",
    "Chat",
    "ChatWidget",
    "Client",
    "ServerThread",
    "__version__",
    "add_mcp",
    "ask",
    "explain",
    "get_server",
    "load_ipython_extension",
    "remove_mcp",
    "results",
    "set_store",
    "start_server",
    "stop_server",
    "tool",
    "unload_ipython_extension",
]

if TYPE_CHECKING:
    from .client import Client
    from .notebook.answer import Answer
    from .notebook.chat import Chat
    from .notebook.kernel import get_server, stop_server
    from .notebook.widget import ChatWidget
    from .server.thread import ServerThread, start_server

_LAZY = {
    "Answer": "notebook.answer",
    "Chat": "notebook.chat",
    "Client": "client",
    "ChatWidget": "notebook.widget",
    "ServerThread": "server.thread",
    "start_server": "server.thread",
    "get_server": "notebook.kernel",
    "stop_server": "notebook.kernel",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)


def ask(
    prompt: str,
    *,
    session: str = "default",
    display: bool = True,
    timeout: float | None = None,
    tools: bool | list[str] | None = None,
    model_timeout: float | None = None,
    retries: int | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    system: str | None = None,
    model: str | None = None,
) -> Any:
    """Send ``prompt`` to the kernel's server (starting it if needed); stream and return the Answer.

    ``timeout`` is how long to wait for the whole answer (then it is aborted).  The others are
    this prompt's options: ``tools`` (True every registered tool, False none, a list those
    named, None the model's setting), ``model_timeout`` (seconds the model waits for the
    provider's next byte), ``retries`` (of a failed request), ``temperature``, ``max_tokens``,
    ``system`` (the system prompt) and ``model`` (a model set up with ``%llmsock model``; None:
    the kernel's default).

    Outside a notebook, chats are kept in memory unless a store was chosen (``set_store``,
    ``$LLMSOCK_STORE``); the first call says on stderr where they are kept.
    """
    import sys

    from .notebook.answer import ask as _ask
    from .notebook.answer import options_of
    from .notebook.kernel import get_server, runtime

    server = get_server()
    note = runtime.announce_store(server.store)
    if note is not None:
        print(note, file=sys.stderr)
    options = options_of(
        tools=tools,
        model_timeout=model_timeout,
        retries=retries,
        temperature=temperature,
        max_tokens=max_tokens,
        system=system,
        model=model,
    )
    return _ask(prompt, session=session, server=server, display=display, timeout=timeout, options=options)


def explain(*, session: str = "default", display: bool = True, timeout: float | None = None) -> Any:
    """Ask ``session`` to explain this kernel's last error (``%llmsock explain``); return the Answer.

    The prompt holds the traceback's frames of the user's code, their source lines and their
    local variables, summarized and masked (names that look secret).  ``timeout`` is how long to
    wait for the whole answer.

    Raises:
        ValueError: no cell has failed yet ("no error to explain yet").
    """
    from .notebook.explain import explain_prompt, last_error

    # Read before ask() starts anything: the error is the user's, not one of ours on the way.
    prompt = explain_prompt(last_error())
    return ask(prompt, session=session, display=display, timeout=timeout)


def results() -> Any:
    """Return the live objects the kernel's server's tools returned, by tool call id (read-only).

    ``results()[call_id]`` is the object itself, for the next cell; the model saw its summary.
    ``Chat(name).results`` is the same mapping.
    """
    from .notebook.chat import results as _results

    return _results()


def set_store(store: Any) -> str:
    """Keep this kernel's chats in ``store`` from now on; return where, in words.

    ``store`` is a SessionStore (``MemoryStore()``, ``JsonFileStore(dir)``, your own) or a
    spec: ``"notebook"`` (the notebook's metadata; files next to it without the plugin),
    ``"memory"``, ``"file"``, ``"file:<directory>"``, ``"redis"`` (``LLMSOCK_REDIS_URL``) or
    ``"redis://..."``.  Chats the old store holds are copied.
    """
    from .notebook import kernel

    chosen = kernel.make_store(store) if isinstance(store, str) else store
    kernel.set_store(chosen)
    return kernel.describe_store(chosen)


def tool(fn: Any = None, **options: Any) -> Any:
    """Register a Python function as a tool of the kernel's server (``@llmsock_widget.tool``)."""
    from .notebook.kernel import get_server

    return get_server().tool(fn, **options)


def add_mcp(
    name: str,
    command: str | list[str] | None = None,
    *,
    url: str | None = None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 30.0,
    approval: bool | list[str] = False,
) -> list[str]:
    """Make an MCP server's tools tools of the kernel's server; return their names (``NAME__tool``).

    ``command`` (a list, or one string split like a shell's) starts the server over stdio;
    ``url`` reaches one over streamable HTTP.  ``env`` adds to the few variables a stdio
    server inherits.  ``approval``: True, every call of its tools waits for the user's
    approval in the chat; a list of the server's tool names, calls of those.  Adding ``name``
    again replaces it.  Needs the ``mcp`` extra.
    """
    from .notebook.kernel import get_server

    server = get_server()
    return list(server.add_mcp(name, command, url=url, env=env, cwd=cwd, timeout=timeout, approval=approval))


def remove_mcp(name: str) -> list[str]:
    """Close the MCP server ``name`` and unregister its tools; return their names."""
    from .notebook.kernel import get_server

    return list(get_server().remove_mcp(name))


def load_ipython_extension(ipython: Any) -> None:
    """Start llmsock in this kernel (``%load_ext llmsock``)."""
    from .notebook.extension import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Stop llmsock in this kernel (``%unload_ext llmsock``)."""
    from .notebook.extension import unload_ipython_extension as unload

    unload(ipython)
