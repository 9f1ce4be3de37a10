"""This kernel's one llmsock server: started on demand, stopped on unload, watched by widgets.

``%load_ext llmsock``, ``ChatWidget()`` and ``get_server()`` all use the server
kept here, so reloading the extension or re-running cells never starts a
second one.  Widgets register a callback to learn a new address when the
server is restarted.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import weakref
from pathlib import Path
from typing import Any

from ..server.thread import ServerThread
from ..stores import JsonFileStore, MemoryStore, SessionStore
from ..stores.notebook import NotebookStore

log = logging.getLogger("llmsock")

_lock = threading.RLock()
_server: ServerThread | None = None
_options: dict[str, Any] = {}
_listeners: weakref.WeakSet[Any] = weakref.WeakSet()
# Widgets whose views run on a page with the llmsock-notebook plugin: they write snapshots
# into the notebook.  Value: the handle of their sink in the current NotebookStore.
_front_ends: weakref.WeakKeyDictionary[Any, tuple[NotebookStore, int]] = weakref.WeakKeyDictionary()
_plugin_widgets: weakref.WeakSet[Any] = weakref.WeakSet()  # whatever the store, for set_store()

TRANSPORTS = ("auto", "proxy", "direct", "comm")
# The kernel's store outlives its servers (``%llmsock stop`` then a new one keeps the chats).
_store: SessionStore | None = None
# (origin, Host) of the pages whose chat views said hello through the widget's comm.
_pages: set[tuple[str, str | None]] = set()

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
        start = dict(options)
        if start.get("store") is None:
            start["store"] = kernel_store()
        # Pages that showed a chat before are allowed by the new server too.
        start["allowed_origins"] = [*start.get("allowed_origins", ()), *(origin for origin, _ in _pages)]
        start["allowed_hosts"] = [*start.get("allowed_hosts", ()), *(host for _, host in _pages if host)]
        _server = ServerThread(**start).start()
        server = _server
    for listener in list(_listeners):
        listener.server_started(server)
    return server


def kernel_store() -> SessionStore:
    """Return the store this kernel's servers use (``$LLMSOCK_STORE``, default ``notebook``)."""
    global _store
    with _lock:
        if _store is None:
            _store = make_store(os.environ.get("LLMSOCK_STORE", "notebook"))
        return _store


def allow_page(origin: str, host: str | None) -> None:
    """Let the page at ``origin`` (its requests carry ``host``) reach this kernel's servers."""
    with _lock:
        _pages.add((origin, host))
        server = _server if _server is not None and _server.running else None
    if server is not None:
        server.allow_origin(origin)
        if host:
            server.allow_host(host)


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


def notebook_path() -> Path | None:
    """Return the ``.ipynb`` this kernel runs for, when the front end said which.

    Jupyter Server gives the kernel ``JPY_SESSION_NAME`` (the notebook's path under
    the server's root; the kernel starts in the notebook's directory); VS Code sets
    ``__vsc_ipynb_file__``.  Colab, nbclient and papermill say nothing: None.
    """
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython is a dependency
        shell = None
    vscode = shell.user_ns.get("__vsc_ipynb_file__") if shell is not None else None
    for candidate in (vscode, os.environ.get("JPY_SESSION_NAME")):
        if isinstance(candidate, str) and candidate.endswith(".ipynb"):
            path = Path(candidate)
            if not path.is_absolute():
                path = Path.cwd() / path.name
            return path
    return None


def make_store(spec: str) -> SessionStore:
    """Return the store ``spec`` names: ``notebook``, ``memory``, ``file`` or ``file:<directory>``.

    ``notebook`` keeps sessions in the notebook's metadata through the front-end
    plugin, falling back to files in ``.llmsock/<notebook name>/`` next to the
    notebook; ``file`` uses that same directory (or the one given).
    """
    kind, _, arg = spec.strip().partition(":")
    kind = kind.lower()
    notebook = notebook_path()
    if kind == "memory" and not arg:
        return MemoryStore()
    if kind == "file":
        return JsonFileStore(Path(arg).expanduser() if arg else sidecar_dir(notebook))
    if kind == "notebook" and not arg:
        reader = None
        if notebook is not None:
            reader = _saved_session_reader(notebook)
        return NotebookStore(sidecar_dir(notebook), read_saved=reader)
    raise ValueError(f"unknown llmsock store {spec!r}; use notebook, memory, file or file:<directory>")


def sidecar_dir(notebook: Path | None) -> Path:
    """Return where sessions are kept next to ``notebook`` (``.llmsock/<its name>/``)."""
    if notebook is None:
        return Path.cwd() / ".llmsock" / "sessions"
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", notebook.stem)
    if stem.strip(".") == "":  # "", ".", "..": never a path out of .llmsock/
        stem = "notebook"
    return notebook.parent / ".llmsock" / stem


def describe_store(store: SessionStore) -> str:
    """Say in words where ``store`` keeps sessions."""
    if isinstance(store, NotebookStore):
        return store.where
    if isinstance(store, JsonFileStore):
        return f"files in {store.directory}"
    if isinstance(store, MemoryStore):
        return "memory (lost when the kernel stops)"
    return type(store).__name__


def _saved_session_reader(notebook: Path) -> Any:
    def read(key: str) -> Any:
        if not notebook.is_file():
            return None
        from .notebookfile import read_sessions  # nbformat loads only when a saved notebook is read

        return read_sessions(notebook).sessions.get(key)

    return read


def add_front_end(widget: Any) -> None:
    """Let ``widget`` (its views have the notebook plugin) write snapshots into the notebook.

    Called on every hello of such a view: registering sends the latest snapshot of every
    chat at once (:meth:`NotebookStore.add_sink`), so a reopened tab gets them too.
    """
    server = current_server()
    store = server.store if server is not None else None
    ref = weakref.ref(widget)

    def sink(key: str, data: Any) -> None:
        target = ref()
        if target is not None:
            target.send_snapshot(key, data)

    with _lock:
        _plugin_widgets.add(widget)
        held = _front_ends.pop(widget, None)
        # The new sink first, then the old one goes: a save in between never finds no sink
        # (it would go to a file instead of the notebook).
        if isinstance(store, NotebookStore):
            _front_ends[widget] = (store, store.add_sink(sink))
        if held is not None:
            held[0].remove_sink(held[1])


def remove_front_end(widget: Any) -> None:
    """Stop sending snapshots to ``widget`` (it is closing)."""
    with _lock:
        held = _front_ends.pop(widget, None)
        _plugin_widgets.discard(widget)
    if held is not None:
        held[0].remove_sink(held[1])


def set_store(store: SessionStore) -> int:
    """Keep this kernel's sessions in ``store`` from now on (starting the server if needed).

    Returns how many sessions were copied from the previous store.
    """
    global _store
    server = get_server()
    with _lock:
        _store = store
    copied = server.set_store(store)
    with _lock:
        widgets = list(_plugin_widgets)
    for widget in widgets:
        add_front_end(widget)
    return copied


def forced_transport() -> str:
    """Return the transport the views must use (``$LLMSOCK_TRANSPORT``), or ``auto``."""
    value = os.environ.get("LLMSOCK_TRANSPORT", "auto").strip().lower() or "auto"
    if value not in TRANSPORTS:
        log.warning(
            "llmsock: LLMSOCK_TRANSPORT=%r is not one of %s; using auto", value, ", ".join(TRANSPORTS)
        )
        return "auto"
    return value


def proxy_url_template() -> str | None:
    """Return ``$LLMSOCK_PROXY_URL`` with the kernel's environment variables filled in.

    ``{NAME}`` with an upper-case NAME is taken from the kernel's environment
    (``{JUPYTERHUB_SERVICE_PREFIX}``); ``{port}`` and ``{base_url}`` are left for
    the browser, which knows the page.
    """
    template = os.environ.get("LLMSOCK_PROXY_URL")
    if not template:
        return None
    return re.sub(r"\{([A-Z][A-Z0-9_]*)\}", lambda m: os.environ.get(m.group(1), m.group(0)), template)


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
