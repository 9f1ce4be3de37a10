"""This kernel's one llmsock server: started on demand, stopped on unload, watched by widgets.

``%load_ext llmsock``, ``ChatWidget()`` and ``get_server()`` all use the server
kept here, so reloading the extension or re-running cells never starts a
second one.  Widgets register a callback to learn a new address when the
server is restarted.

Everything the kernel keeps (the server, the store, the pages and front ends
that outlive a server) is one :class:`KernelRuntime`, :data:`runtime`; the
module functions are its methods, for the widget, the magics and the package.

Until a chat view says hello, the kernel cannot know whether the notebook plugin will
take its chats: Run All runs every cell before the hello of the chat made in the
second one is handled.  So from the moment a chat widget is made, the notebook store
holds its files shut (:class:`~.storage.HeldFiles`): a hello with the plugin takes
every chat into the notebook's metadata, and the files are written only after a hello
without the plugin, when the kernel exits, or when it has been idle :data:`HELLO_WAIT`
seconds with no hello (a run with no front end: nbclient, papermill).
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import weakref
from typing import Any, Protocol

from ..core import snapshot
from ..core.session import InteractionState
from ..server.thread import ServerThread
from ..stores import MemoryStore, SessionStore
from ..stores.notebook import NotebookStore, sidecar_dir
from ..tools import ToolRegistry
from . import kerneltools
from .logs import isolate_logging
from .settings import TRANSPORTS, Settings
from .storage import (
    default_spec,
    describe_store,
    held_files,
    in_notebook_kernel,
    make_store,
    notebook_path,
    waiting_files,
)

__all__ = [
    "DEFAULT_SESSION",
    "TRANSPORTS",
    "KernelRuntime",
    "add_front_end",
    "allow_page",
    "current_server",
    "describe_store",
    "expect_front_end",
    "forced_transport",
    "front_end_without_plugin",
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

# How long the kernel waits, idle (no cell running), for a chat view's hello before it writes
# the chats it holds to files next to the notebook.  A view says hello a few seconds after it
# is shown, but only once the cells queued before its hello have run.
HELLO_WAIT = 30.0


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
        # Waiting for a chat view's hello: the idle timer, the shell whose cells pause it.
        self._hello_timer: threading.Timer | None = None
        self._shell: Any = None
        self._exit_hooked = False
        self._announced: SessionStore | None = None  # the store ask() last said it keeps chats in

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
        if not isinstance(options.get("tools"), ToolRegistry):  # a registry given is used as it is
            kerneltools.install(server.tools, _ipython())
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
        """Return the store this kernel's servers use (``$LLMSOCK_STORE``, else the default).

        The default is ``notebook`` in a notebook's kernel and ``memory`` in a script
        (:func:`~.storage.default_spec`).
        """
        with self._lock:
            if self._store is None:
                # Not pinged: a kernel must start while a configured Redis is down (chats say so).
                self._store = make_store(default_spec(), check=False)
            return self._store

    def set_store(self, store: SessionStore) -> int:
        """Keep this kernel's sessions in ``store`` from now on (starting the server if needed).

        Returns how many sessions were copied from the previous store.
        """
        server = self.get_server()
        old = server.store
        with self._lock:
            self._store = store
        if waiting_files(old) is not None and (files := held_files(store)) is not None:
            files.hold()  # a view that has not said hello yet may still connect the new one
        copied = server.set_store(store)
        old_files = held_files(old)
        if old_files is not None and old_files is not held_files(store):
            old_files.drop()  # what it held was copied to the new store
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
            files = held_files(store)
            if isinstance(store, NotebookStore) and files is not None:
                # Every chat the store holds goes to the notebook with the sink's first push, so
                # the held files are not written, but for a chat larger than the notebook keeps,
                # which is kept whole in its file.  Before the sink is added: the store's own
                # writes from then on go to the files.
                files.drop(keep=lambda state: _over_cap(state, store.max_chars))
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

    def announce_store(self, store: SessionStore) -> str | None:
        """Return the line that tells a script where ``store`` keeps its chats, the first time only.

        Outside a notebook's kernel nothing else says it (no chat view, no ``%llmsock``).
        None in a notebook's kernel, and for a store already announced.
        """
        if in_notebook_kernel():
            return None
        with self._lock:
            if self._announced is store:
                return None
            self._announced = store
        where = describe_store(store)
        if isinstance(store, MemoryStore):
            where = "memory (lost when this process ends); to keep them, call"
            where += ' llmsock_widget.set_store("file:<directory>") or set LLMSOCK_STORE=file:<directory>'
        return f"llmsock: chats are kept in {where}"

    # -- chats held until a chat view says hello -----------------------------------------------

    def expect_front_end(self) -> None:
        """Hold the notebook store's files: a chat widget was made, and its views may connect the plugin.

        The chats stay in the kernel until a view says hello (with the plugin they go to the
        notebook's metadata, without it to the files), the kernel exits, or it has been
        idle :data:`HELLO_WAIT` seconds.
        """
        files = held_files(self._current_store())
        if files is None:
            return  # another store, or a view with the plugin is connected already
        files.hold()
        with self._lock:
            if not self._exit_hooked:
                atexit.register(self._write_held)
                self._exit_hooked = True
            shell = _ipython()
            if shell is not None and shell is not self._shell:
                self._unwatch_cells()
                shell.events.register("pre_run_cell", self._cell_starts)
                shell.events.register("post_run_cell", self._cell_ended)
                self._shell = shell
        if shell is None:
            self._count_idle()
        # In IPython the widget is made by a running cell: the idle time counts from its end.

    def view_pending(self) -> bool:
        """Return whether a chat widget was made and none of its views has said hello yet."""
        return waiting_files(self._current_store()) is not None

    def front_end_without_plugin(self) -> None:
        """A view said hello without the notebook plugin: write the held chats to files now.

        Never blocks (the files are written on a thread of their own), so the server's
        loop may call it; the store is described as files from the moment it returns.
        """
        files = waiting_files(self._current_store())
        if files is None:
            return
        self._stop_counting()
        files.stop_holding()
        threading.Thread(target=files.write_held, name="llmsock-held-files", daemon=True).start()

    def _current_store(self) -> SessionStore | None:
        server = self.current_server()
        if server is not None:
            return server.store
        with self._lock:
            return self._store

    def _cell_starts(self, info: Any = None) -> None:
        self._stop_counting()

    def _cell_ended(self, result: Any = None) -> None:
        if waiting_files(self._current_store()) is not None:
            self._count_idle()

    def _count_idle(self) -> None:
        """Write the held chats once HELLO_WAIT seconds pass without a hello (or a cell)."""
        timer = threading.Timer(HELLO_WAIT, self._hello_timed_out)
        timer.daemon = True
        timer.name = "llmsock-hello-wait"
        with self._lock:
            previous, self._hello_timer = self._hello_timer, timer
        if previous is not None:
            previous.cancel()
        timer.start()

    def _stop_counting(self) -> None:
        with self._lock:
            timer, self._hello_timer = self._hello_timer, None
        if timer is not None:
            timer.cancel()

    def _hello_timed_out(self) -> None:
        files = waiting_files(self._current_store())
        if files is not None:
            log.info(
                "llmsock: no chat view said hello within %g s; chats are saved to files in %s",
                HELLO_WAIT,
                files.directory,
            )
            files.release()

    def _write_held(self) -> None:
        """Write what the notebook store holds to its files (the kernel is exiting)."""
        self._stop_counting()
        files = held_files(self._current_store())
        if files is not None:
            files.release()

    def _unwatch_cells(self) -> None:
        shell, self._shell = self._shell, None
        if shell is not None:
            for event, callback in (("pre_run_cell", self._cell_starts), ("post_run_cell", self._cell_ended)):
                try:
                    shell.events.unregister(event, callback)
                except ValueError:  # not registered (any more)
                    pass

    # -- a fresh start ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Stop the server and forget everything kept, as in a kernel that has run nothing yet."""
        store = self._current_store()
        self._stop_counting()
        with self._lock:
            self._unwatch_cells()
        files = held_files(store)
        if files is not None:
            files.drop()
        self.stop_server()
        with self._lock:
            held = list(self._front_ends.values())
            self._front_ends.clear()
            self._plugin_widgets.clear()
            self._watchers.clear()
            self._pages.clear()
            self._options = {}
            self._store = None
            self._announced = None
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
    """Return the store this kernel's servers use (``$LLMSOCK_STORE``, else the default)."""
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


def expect_front_end() -> None:
    """Hold the notebook store's files: a chat widget was made, and its views may connect the plugin."""
    runtime.expect_front_end()


def view_pending() -> bool:
    """See :meth:`KernelRuntime.view_pending`."""
    return runtime.view_pending()


def front_end_without_plugin() -> None:
    """A view said hello without the notebook plugin: write the held chats to files now."""
    runtime.front_end_without_plugin()


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


def _ipython() -> Any:
    """Return the running IPython shell, or None (a script)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    return get_ipython()


def _over_cap(state: InteractionState, max_chars: int) -> bool:
    """Say whether the notebook keeps only part of ``state`` (:func:`snapshot.fit` drops turns)."""
    return snapshot.fit(state, max_chars=max_chars).dropped_turns > state.dropped_turns
