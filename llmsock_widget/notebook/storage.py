"""Where this kernel keeps chats: the notebook it runs for, its sidecar folder, store specs.

The functions hold no state: the kernel's runtime (``kernel.py``) makes its store with
:func:`make_store` from :func:`default_spec`, and ``%llmsock store`` and
``llmsock_widget.set_store`` name stores with the same specs.  :class:`HeldFiles` is the
notebook store's folder of files, which the runtime holds shut while a chat view may still
connect the notebook (docs/persistence.md, section 7).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

from ..core.session import InteractionState
from ..errors import LlmsockError
from ..stores import JsonFileStore, MemoryStore, SessionStore
from ..stores.base import Merged, SessionId, session_key
from ..stores.jsonfile import save_over_older
from ..stores.notebook import NotebookStore, sidecar_dir
from ..stores.redis import SCHEMES, RedisStore, shown_url
from .settings import Settings

log = logging.getLogger("llmsock")

WAITING = "notebook metadata (waiting for the notebook plugin)"
# The store specs, as an unknown one is answered.
USAGE = (
    "notebook, memory, file, file:<directory>, redis://[:password@]host:port/db, rediss://...,"
    " or redis+cluster://... (any node of a Redis Cluster)"
)


def notebook_path() -> Path | None:
    """Return the ``.ipynb`` this kernel runs for, when the front end said which.

    Jupyter Server gives the kernel ``JPY_SESSION_NAME`` (the notebook's path under
    the server's root; the kernel starts in the notebook's directory); VS Code sets
    ``__vsc_ipynb_file__``.  Colab, nbclient and papermill say nothing: None.
    """
    shell = _shell()
    vscode = shell.user_ns.get("__vsc_ipynb_file__") if shell is not None else None
    for candidate in (vscode, Settings.current().jupyter_notebook):
        if isinstance(candidate, str) and candidate.endswith(".ipynb"):
            path = Path(candidate)
            if not path.is_absolute():
                path = Path.cwd() / path.name
            return path
    return None


def in_notebook_kernel() -> bool:
    """Say whether this process is a notebook's kernel (ipykernel), not a script or a terminal."""
    shell = _shell()
    return shell is not None and getattr(shell, "kernel", None) is not None


def default_spec() -> str:
    """Return the spec of the store a kernel starts with: ``$LLMSOCK_STORE``, else the default.

    The default is ``redis`` when ``$LLMSOCK_REDIS_URL`` is set, else ``notebook`` in a
    notebook's kernel and ``memory`` anywhere else: a script has no notebook, and files in
    its working directory would let unrelated scripts run there continue each other's chat.
    """
    settings = Settings.current()
    if settings.store_chosen:
        return settings.store.strip()
    if settings.redis_url is not None:
        return "redis"
    return "notebook" if in_notebook_kernel() else "memory"


def make_store(spec: str, *, check: bool = True) -> SessionStore:
    """Return the store ``spec`` names.

    The specs: ``notebook``, ``memory``, ``file``, ``file:<directory>``, ``redis`` (the
    URL of ``$LLMSOCK_REDIS_URL``) and ``redis://...`` / ``rediss://...``.  ``notebook``
    keeps sessions in the notebook's metadata through the front-end plugin, falling back
    to files in ``.llmsock/<notebook name>/`` next to the notebook; ``file`` uses that
    same directory (or the one given).  A Redis store is asked for a PING first unless
    ``check`` is false, so a Redis that cannot be reached is said at once.

    Raises:
        ValueError: an unknown spec, a Redis URL that is not one (shown without its password),
            or a Redis store without the ``redis`` package.
        StoreError: Redis does not answer (the URL without its password, and why).
    """
    redis_url = _redis_url(spec)
    if redis_url is not None:
        try:
            redis = RedisStore(redis_url)
        except ImportError as exc:  # said in one line, like a model whose package is missing
            raise ValueError(str(exc)) from None
        if check:
            redis.ping_sync()
        return redis
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
        store = NotebookStore(sidecar_dir(notebook), read_saved=reader)
        store.fallback = HeldFiles(store.fallback.directory)
        return store
    raise ValueError(f"unknown llmsock store {_shown(spec)}; use {USAGE}")


def _redis_url(spec: str) -> str | None:
    """Return the Redis URL ``spec`` means (``redis``: ``$LLMSOCK_REDIS_URL``), or None if not Redis."""
    text = spec.strip()
    if text.lower() == "redis":
        url = Settings.current().redis_url
        if url is None:
            raise ValueError(f"unknown llmsock store 'redis' (LLMSOCK_REDIS_URL is not set); use {USAGE}")
        return url
    scheme = text.partition("://")[0].lower()
    return text if scheme in SCHEMES and "://" in text else None


def _shown(spec: str) -> str:
    # A spec with "://" or "@" may carry a password.
    return repr(shown_url(spec) if "://" in spec or "@" in spec else spec)


def describe_store(store: SessionStore) -> str:
    """Say in words where ``store`` keeps sessions."""
    if isinstance(store, NotebookStore):
        if waiting_files(store) is not None:
            return WAITING
        return store.where
    if isinstance(store, JsonFileStore):
        return f"files in {store.directory}"
    if isinstance(store, MemoryStore):
        return "memory (lost when the kernel stops)"
    if isinstance(store, RedisStore):
        return f"Redis at {store.shown_url} (keys {store.prefix}:{{<session>}}:snapshot)"
    return type(store).__name__


def held_files(store: SessionStore | None) -> HeldFiles | None:
    """Return the files of a notebook store that no front end writes into yet, if ``store`` is one."""
    if isinstance(store, NotebookStore) and not store.in_metadata and isinstance(store.fallback, HeldFiles):
        return store.fallback
    return None


def waiting_files(store: SessionStore | None) -> HeldFiles | None:
    """Return the notebook store's files if they are held for a chat view's hello, else None."""
    files = held_files(store)
    return files if files is not None and files.holding else None


class HeldFiles(JsonFileStore):
    """A notebook store's files next to the notebook, which can be held shut for a while.

    While held, a save keeps the latest state of its session here instead of writing it:
    a chat view that says hello with the notebook plugin gets every chat from the store
    (:meth:`NotebookStore.add_sink`), and what was held is dropped (:meth:`drop`); otherwise
    it is written by :meth:`release`.  Saves that come while held states are being written
    wait in the same queue, so a session's file never goes back to an older state.
    """

    def __init__(self, directory: str | Path, **options: Any) -> None:
        super().__init__(directory, **options)
        self._held_lock = threading.Lock()
        self._holding = False
        self._queue: dict[str, InteractionState] | None = None  # None: saves are written at once

    @property
    def holding(self) -> bool:
        """Say whether saves are held back for a chat view that may connect the notebook."""
        return self._holding

    def hold(self) -> None:
        """Keep saves in memory from now on, until :meth:`release` or :meth:`drop`."""
        with self._held_lock:
            self._holding = True
            if self._queue is None:
                self._queue = {}

    def stop_holding(self) -> None:
        """Stop holding (what is held still waits for :meth:`write_held`); never blocks."""
        with self._held_lock:
            self._holding = False

    def release(self) -> None:
        """Stop holding and write every held session to its file (blocks; never on a loop)."""
        self.stop_holding()
        self.write_held()

    def drop(self, keep: Callable[[InteractionState], bool] | None = None) -> None:
        """Stop holding and forget what was held (a front end takes it into the notebook).

        The held states for which ``keep`` is true are written (blocks while it does) rather
        than forgotten: a chat larger than the notebook keeps is kept whole in its file.
        """
        with self._held_lock:
            self._holding = False
            if self._queue is not None:
                kept = {key: state for key, state in self._queue.items() if keep is not None and keep(state)}
                self._queue = kept or None
        self.write_held()

    def write_held(self) -> None:
        """Write the held sessions to their files, then let saves through (unless held again)."""
        while True:
            with self._held_lock:
                if not self._queue:
                    if not self._holding:
                        self._queue = None
                    return
                key, state = self._queue.popitem()
            try:
                self._write_own(key, state)
            except LlmsockError as exc:  # one session that cannot be written must not stop the others
                log.warning("llmsock: session %s not saved to %s: %s", key, self.directory, exc.message)

    def save_sync(
        self, session_id: SessionId, state: InteractionState, *, merge: bool = True
    ) -> bool | Merged:
        """Write ``state``, or keep it while held; see :meth:`JsonFileStore.save_sync`."""
        key = session_key(session_id)
        with self._held_lock:
            if self._queue is not None:
                self._queue[key] = state
                return True
        return super().save_sync(key, state, merge=merge)

    def load_sync(self, session_id: SessionId) -> InteractionState | None:
        """Return the held state of ``session_id``, else its file's; see :meth:`JsonFileStore.load_sync`."""
        key = session_key(session_id)
        with self._held_lock:
            held = self._queue.get(key) if self._queue is not None else None
        return held if held is not None else super().load_sync(key)

    def delete_sync(self, session_id: SessionId) -> bool:
        """Forget the held state of ``session_id`` and remove its file; say whether either was there."""
        key = session_key(session_id)
        with self._held_lock:
            held = self._queue.pop(key, None) if self._queue is not None else None
        return super().delete_sync(key) or held is not None

    def _write_own(self, key: str, state: InteractionState) -> None:
        # The base class's save and load: a held state goes to the file, not back to the queue.
        save_over_older(super().save_sync, super().load_sync, key, state)


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    return get_ipython()


def _saved_session_reader(notebook: Path) -> Any:
    def read(key: str) -> Any:
        if not notebook.is_file():
            return None
        from .notebookfile import read_sessions  # nbformat loads only when a saved notebook is read

        # The notebook's own copy: the store reads the whole copy next to it by itself.
        return read_sessions(notebook, whole=False).sessions.get(key)

    return read
