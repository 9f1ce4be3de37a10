"""This kernel's one llmsock server: started on demand, stopped on unload, watched by widgets.

``%load_ext llmsock``, ``ChatWidget()`` and ``get_server()`` all use the server
kept here, so reloading the extension or re-running cells never starts a
second one.  Widgets register a callback to learn a new address when the
server is restarted.

Everything the kernel keeps (the server, the store, the pages and front ends
that outlive a server) is one :class:`KernelRuntime`, :data:`runtime`; the
module functions are its methods, for the widget, the magics and the package.
"""

from __future__ import annotations

import logging
import sys
import threading
import weakref
from typing import Any, Protocol

from ..server.thread import ServerThread
from ..stores import SessionStore
from ..stores.notebook import NotebookStore
from .logs import isolate_logging
from .settings import TRANSPORTS, Settings
from .storage import describe_store, make_store, notebook_path, sidecar_dir

__all__ = [
    "DEFAULT_SESSION",
    "TRANSPORTS",
    "KernelRuntime",
    "add_front_end",
    "allow_page",
    "current_server",
    "describe_store",
    "forced_transport",
    "get_server",
    "kernel_store",
    "make_store",
    "notebook_path",
    "proxy_url_template",
    "remove_front_end",
    "runtime",
    "set_store",
    "sidecar_dir",
    "stop_server",
    "watch",
]

log = logging.getLogger("llmsock")

DEFAULT_SESSION = "default"

# While a cell computes, the main thread holds the GIL; each time the server thread comes back
# from a socket call it waits up to the switch interval for it, and one streamed delta makes
# dozens of such calls.  At CPython's 5 ms a 120-word answer took 9-70 s behind a busy cell (some
# frames over 3 s apart); at 1 ms, 0.4 s.  With no thread waiting the interval costs nothing.
SWITCH_INTERVAL = 0.001


class ServerWatcher(Protocol):
    """What wants to know when a new server starts (a widget: its views need the new address)."""

    def server_started(self, server: ServerThread) -> None: ...


class FrontEnd(Protocol):
    """A widget whose views write snapshots into the notebook (they have the notebook plugin)."""

    def send_snapshot(self, session_id: str, data: Any) -> None: ...


class KernelRuntime:
    """What one kernel keeps for llmsock: its one server, its store, the pages and front ends.

    The store, the pages and the front ends outlive a server (``%llmsock stop`` then a
    new one keeps the chats and the allowed pages).  Every method may be called from
    any thread, but those that wait for a server (:meth:`get_server` when it starts
    one, :meth:`set_store`, :meth:`stop_server`, :meth:`reset`) never from the server's
    own.  A new ``KernelRuntime()`` is a kernel that has run nothing yet; :meth:`reset`
    makes this one so.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._server: ServerThread | None = None
        self._options: dict[str, Any] = {}  # what the running server was started with
        self._store: SessionStore | None = None
        # (origin, Host) of the pages whose chat views said hello through the widget's comm.
        self._pages: set[tuple[str, str | None]] = set()
        self._watchers: weakref.WeakSet[ServerWatcher] = weakref.WeakSet()
        # Front ends and the handle of their sink in the current NotebookStore.
        self._front_ends: weakref.WeakKeyDictionary[FrontEnd, tuple[NotebookStore, int]] = (
            weakref.WeakKeyDictionary()
        )
        self._plugin_widgets: weakref.WeakSet[FrontEnd] = weakref.WeakSet()  # whatever the store
        self._switch_before: float | None = None  # the switch interval before the server started

    # -- the server ------------------------------------------------------------------------------

    def get_server(self, **options: Any) -> ServerThread:
        """Return the running server, starting it with ``options`` if none runs.

        Options given while a server already runs are not applied to it (a warning
        says so); stop it first, or use ``%llmsock model ...`` for the model.
        """
        with self._lock:
            if self._server is not None and self._server.running:
                if options and options != self._options:
                    log.warning(
                        "llmsock: a server is already running; new options are ignored (stop it first)"
                    )
                return self._server
            isolate_logging()
            self._quicken_switching()
            self._options = dict(options)
            start = dict(options)
            if start.get("store") is None:
                start["store"] = self.kernel_store()
            # Pages that showed a chat before are allowed by the new server too.
            pages = self._pages
            start["allowed_origins"] = [*start.get("allowed_origins", ()), *(origin for origin, _ in pages)]
            start["allowed_hosts"] = [*start.get("allowed_hosts", ()), *(host for _, host in pages if host)]
            server = self._server = ServerThread(**start).start()
        for watcher in list(self._watchers):
            watcher.server_started(server)
        return server

    def current_server(self) -> ServerThread | None:
        """Return the running server, or None (never starts one)."""
        with self._lock:
            return self._server if self._server is not None and self._server.running else None

    def stop_server(self) -> None:
        """Stop the server if one runs, and free its port."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop()
        self._restore_switching()

    def _quicken_switching(self) -> None:
        """Lower the interpreter's thread switch interval to SWITCH_INTERVAL while a server runs."""
        current = sys.getswitchinterval()
        if current > SWITCH_INTERVAL:
            self._switch_before = current
            sys.setswitchinterval(SWITCH_INTERVAL)

    def _restore_switching(self) -> None:
        """Put back the switch interval the kernel had, unless someone changed it since."""
        before, self._switch_before = self._switch_before, None
        if before is not None and abs(sys.getswitchinterval() - SWITCH_INTERVAL) < 1e-7:
            sys.setswitchinterval(before)

    def watch(self, watcher: ServerWatcher) -> None:
        """Call ``watcher.server_started(server)`` whenever a new server starts (held weakly)."""
        self._watchers.add(watcher)

    def allow_page(self, origin: str, host: str | None) -> None:
        """Let the page at ``origin`` (its requests carry ``host``) reach this kernel's servers."""
        with self._lock:
            self._pages.add((origin, host))
        server = self.current_server()
        if server is not None:
            server.allow_origin(origin)
            if host:
                server.allow_host(host)

    # -- the store and the front ends that write into the notebook --------------------------------

    def kernel_store(self) -> SessionStore:
        """Return the store this kernel's servers use (``$LLMSOCK_STORE``, default ``notebook``)."""
        with self._lock:
            if self._store is None:
                self._store = make_store(Settings.current().store)
            return self._store

    def set_store(self, store: SessionStore) -> int:
        """Keep this kernel's sessions in ``store`` from now on (starting the server if needed).

        Returns how many sessions were copied from the previous store.
        """
        server = self.get_server()
        with self._lock:
            self._store = store
        copied = server.set_store(store)
        with self._lock:
            widgets = list(self._plugin_widgets)
        for widget in widgets:
            self.add_front_end(widget)
        return copied

    def add_front_end(self, widget: FrontEnd) -> None:
        """Let ``widget`` (its views have the notebook plugin) write snapshots into the notebook.

        Called on every hello of such a view: registering sends the latest snapshot of every
        chat at once (:meth:`NotebookStore.add_sink`), so a reopened tab gets them too.
        """
        server = self.current_server()
        store = server.store if server is not None else None
        ref = weakref.ref(widget)

        def sink(key: str, data: Any) -> None:
            target = ref()
            if target is not None:
                target.send_snapshot(key, data)

        with self._lock:
            self._plugin_widgets.add(widget)
            held = self._front_ends.pop(widget, None)
            # The new sink first, then the old one goes: a save in between never finds no sink
            # (it would go to a file instead of the notebook).
            if isinstance(store, NotebookStore):
                self._front_ends[widget] = (store, store.add_sink(sink))
            if held is not None:
                held[0].remove_sink(held[1])

    def remove_front_end(self, widget: FrontEnd) -> None:
        """Stop sending snapshots to ``widget`` (it is closing)."""
        with self._lock:
            held = self._front_ends.pop(widget, None)
            self._plugin_widgets.discard(widget)
        if held is not None:
            held[0].remove_sink(held[1])

    # -- a fresh start ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Stop the server and forget everything kept, as in a kernel that has run nothing yet."""
        self.stop_server()
        with self._lock:
            held = list(self._front_ends.values())
            self._front_ends.clear()
            self._plugin_widgets.clear()
            self._watchers.clear()
            self._pages.clear()
            self._options = {}
            self._store = None
        for store, handle in held:
            store.remove_sink(handle)


runtime = KernelRuntime()
"""This kernel's runtime; the functions below are its methods."""


def get_server(**options: Any) -> ServerThread:
    """Return this kernel's running server, starting it with ``options`` if none runs."""
    return runtime.get_server(**options)


def current_server() -> ServerThread | None:
    """Return this kernel's running server, or None (never starts one)."""
    return runtime.current_server()


def stop_server() -> None:
    """Stop this kernel's server if one runs, and free its port."""
    runtime.stop_server()


def watch(listener: ServerWatcher) -> None:
    """Call ``listener.server_started(server)`` whenever a new server starts (held weakly)."""
    runtime.watch(listener)


def allow_page(origin: str, host: str | None) -> None:
    """Let the page at ``origin`` (its requests carry ``host``) reach this kernel's servers."""
    runtime.allow_page(origin, host)


def kernel_store() -> SessionStore:
    """Return the store this kernel's servers use (``$LLMSOCK_STORE``, default ``notebook``)."""
    return runtime.kernel_store()


def set_store(store: SessionStore) -> int:
    """Keep this kernel's sessions in ``store`` from now on; return how many were copied."""
    return runtime.set_store(store)


def add_front_end(widget: FrontEnd) -> None:
    """Let ``widget`` (its views have the notebook plugin) write snapshots into the notebook."""
    runtime.add_front_end(widget)


def remove_front_end(widget: FrontEnd) -> None:
    """Stop sending snapshots to ``widget`` (it is closing)."""
    runtime.remove_front_end(widget)


def forced_transport() -> str:
    """Return the transport the views must use (``$LLMSOCK_TRANSPORT``), or ``auto``.

    A value that names no transport is logged as a warning, each time it is read.
    """
    settings = Settings.current()
    if settings.transport_warning is not None:
        log.warning("%s", settings.transport_warning)
    return settings.transport


def proxy_url_template() -> str | None:
    """Return ``$LLMSOCK_PROXY_URL`` with the kernel's environment variables filled in.

    ``{NAME}`` with an upper-case NAME is taken from the kernel's environment
    (``{JUPYTERHUB_SERVICE_PREFIX}``); ``{port}`` and ``{base_url}`` are left for
    the browser, which knows the page.
    """
    return Settings.current().proxy_url
