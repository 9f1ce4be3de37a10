"""NotebookStore: sessions kept with the notebook, in its metadata or in files next to it.

The kernel cannot edit the open document, so this store works through the front
end.  Chat views on a page with the ``llmsock-notebook`` plugin (JupyterLab 4,
Notebook 7) register as *sinks*: every save sends the snapshot to them, and the
plugin writes it into the notebook model under ``metadata.llmsock``; the user's
save (or autosave) puts it in the ``.ipynb``.  The same views *offer* the
snapshots they find in the metadata when they start, and a session the kernel
does not know yet is loaded from them (see :meth:`NotebookStore.offer`).

Where no view with the plugin is connected (VS Code, Colab, nbclient or
papermill runs, a chat used only through ``%%llmsock``), saves go to a
:class:`~.jsonfile.JsonFileStore` next to the notebook instead, and a session is
also looked for in the saved ``.ipynb`` on disk (read only, never written).
:attr:`NotebookStore.where` says which is in use.

Revisions: this store keeps the latest state of every session in memory, and
that copy is the one whose revision counts; the front end and the files follow it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from ..core import snapshot
from ..core.session import InteractionState
from ..errors import CorruptSnapshot, LlmsockError, SnapshotVersionError, StoreConflict
from .base import SessionId, session_key
from .jsonfile import JsonFileStore
from .memory import MemoryStore

log = logging.getLogger("llmsock")

Sink = Callable[[str, "dict[str, Any] | None"], None]
"""Called with (session id, snapshot dict or None for "removed"); must not block."""

DiskReader = Callable[[str], "InteractionState | None"]


class NotebookStore:
    """A :class:`~.base.SessionStore` whose snapshots live with the notebook.

    Args:
        fallback_dir: where to keep sessions when no plugin view is connected
            (``.llmsock/<notebook name>/`` next to the notebook, say).
        read_saved: reads a session from the saved ``.ipynb`` on disk (its
            ``metadata.llmsock``; never written), used when a session is not found
            elsewhere; None when the notebook's path is not known.
        max_chars: the size cap of one snapshot in the notebook (:func:`snapshot.fit`).
    """

    def __init__(
        self,
        fallback_dir: str | Path,
        *,
        read_saved: DiskReader | None = None,
        max_chars: int = snapshot.DEFAULT_MAX_CHARS,
    ) -> None:
        self.fallback = JsonFileStore(fallback_dir)
        self.read_saved = read_saved
        self.max_chars = max_chars
        self._memory = MemoryStore()
        self._offered: dict[str, InteractionState] = {}
        # Sessions whose copy in the notebook this llmsock cannot read (a newer schema): never
        # overwritten there; their saves go to the files instead.
        self._protected: set[str] = set()
        self._sinks: dict[int, Sink] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NotebookStore(fallback={str(self.fallback.directory)!r})"

    # -- the front end -----------------------------------------------------------------

    def add_sink(self, sink: Sink) -> int:
        """Register a front end that writes snapshots into the notebook; return its handle.

        It is sent the latest snapshot of every session this store holds at once
        (:meth:`push_all`), so chats saved before it connected reach the notebook too.
        """
        with self._lock:
            handle = id(sink)
            self._sinks[handle] = sink
        self.push_all(sink)
        return handle

    def push_all(self, sink: Sink) -> None:
        """Send ``sink`` the latest snapshot of every session this kernel holds."""
        with self._lock:
            protected = set(self._protected)
        for key in self._memory.keys():
            state = self._memory.load(key)
            if state is not None and key not in protected:
                self._push(key, state, [sink])

    def remove_sink(self, handle: int) -> None:
        with self._lock:
            self._sinks.pop(handle, None)

    @property
    def where(self) -> str:
        """Say where saves go now, in words for the user."""
        if self._sinks:
            return "notebook metadata (metadata.llmsock; saved with the notebook)"
        if self.read_saved is None:
            unknown = "no notebook plugin connected; the notebook's name is unknown"
            return f"files in {self.fallback.directory} ({unknown})"
        return f"files next to the notebook in {self.fallback.directory} (no notebook plugin connected)"

    @property
    def in_metadata(self) -> bool:
        return bool(self._sinks)

    def offer(self, session_id: SessionId, data: Any) -> str:
        """Take a snapshot found in the notebook's metadata; return what became of it.

        The rule: the kernel's own copy of a session wins.  An offer is kept only
        for a session this store has not loaded or saved in this kernel, and the
        first offer of a session wins over later ones (another view, another notebook).
        Returns ``"kept"``, ``"ignored"`` (the kernel has it already) or an error text.
        """
        key = session_key(session_id)
        try:
            state = snapshot.decode(data)
        except SnapshotVersionError as exc:
            with self._lock:
                self._protected.add(key)
            log.warning(
                "llmsock: session %s in the notebook is from a newer llmsock; saving it to files", key
            )
            return f"not restored: {exc.message}; the notebook's copy is left as it is"
        except CorruptSnapshot as exc:
            return f"not restored: {exc.message}"
        if state.session_id != key:
            return f"not restored: the snapshot belongs to session {state.session_id!r}"
        with self._lock:
            if key in self._offered or self._memory.load(key) is not None:
                return "ignored"
            self._offered[key] = state
        return "kept"

    # -- SessionStore -----------------------------------------------------------------

    async def load(self, session_id: SessionId) -> InteractionState | None:
        """Return the session: this kernel's copy, else what a view offered from the notebook's
        metadata, else the newer of its file and the saved ``.ipynb``."""
        key = session_key(session_id)
        state = self._memory.load(key)
        if state is not None:
            return state
        with self._lock:
            found = [self._offered.get(key)]
        # The newest of: what a view offered, the file next to the notebook, the saved .ipynb
        # (a chat continued in a front end without the plugin is newer in the file).
        problem: CorruptSnapshot | None = None
        try:
            found.append(await self.fallback.load(key))
        except CorruptSnapshot as exc:  # a file that cannot be read (or a planted link) spoils no other copy
            problem = exc
        if self.read_saved is not None:
            found.append(await asyncio.to_thread(self._from_disk, key))
        states = [state for state in found if state is not None]
        if problem is not None:
            if not states:
                raise problem
            log.warning("llmsock: session %s: its file was not used: %s", key, problem.message)
        if not states:
            return None
        newest = max(states, key=lambda state: state.updated_at)
        # From now on this kernel has the session: later offers are ignored (the kernel's copy wins).
        with self._lock:
            self._offered.pop(key, None)
            if self._memory.load(key) is None:
                self._memory.save(key, newest)
        return newest

    async def save(self, session_id: SessionId, state: InteractionState) -> bool:
        """Keep ``state``, then send it to the notebook (or, with no plugin, to a file).

        Raises:
            StoreConflict: ``state.revision`` is not newer than the one kept.
            StoreError: no plugin is connected and the file could not be written.
        """
        key = session_key(session_id)
        offered = self._offered.get(key)
        if self._memory.load(key) is None and offered is not None and state.revision <= offered.revision:
            raise StoreConflict(
                f"session {key}: revision {state.revision} is not newer than stored {offered.revision}"
            )
        self._memory.save(key, state)
        with self._lock:
            self._offered.pop(key, None)
            sinks = list(self._sinks.values()) if key not in self._protected else []
        if sinks:
            self._push(key, state, sinks)
        else:
            await asyncio.to_thread(self._save_file, key, state)
        return True

    async def delete(self, session_id: SessionId) -> bool:
        """Forget the session here, in the notebook's metadata and in its file."""
        key = session_key(session_id)
        found = self._memory.delete(key)
        with self._lock:
            found = self._offered.pop(key, None) is not None or found
            sinks = list(self._sinks.values())
        for sink in sinks:
            _call(sink, key, None)
        return await self.fallback.delete(key) or found

    def keys(self) -> list[str]:
        """Return the sessions this kernel holds."""
        return self._memory.keys()

    # -- helpers -------------------------------------------------------------------------

    def _push(self, key: str, state: InteractionState, sinks: list[Sink]) -> None:
        data = snapshot.encode(snapshot.fit(state, max_chars=self.max_chars))
        for sink in sinks:
            _call(sink, key, data)

    def _save_file(self, key: str, state: InteractionState) -> None:
        try:
            self.fallback.save_sync(key, state, merge=False)
        except StoreConflict:
            # The file is older than this kernel's copy of the session (it was restored from
            # the notebook, which another front end kept): this kernel's copy wins.
            stored = self.fallback.load_sync(key)
            bumped = stored.revision + 1 if stored is not None else state.revision
            self.fallback.save_sync(key, _with_revision(state, max(bumped, state.revision)), merge=False)

    def _from_disk(self, key: str) -> InteractionState | None:
        assert self.read_saved is not None
        try:
            return self.read_saved(key)
        except (LlmsockError, OSError) as exc:
            log.warning("llmsock: could not read session %s from the saved notebook: %s", key, exc)
            return None


def _with_revision(state: InteractionState, revision: int) -> InteractionState:
    return replace(state, revision=revision)


def _call(sink: Sink, key: str, data: dict[str, Any] | None) -> None:
    try:
        sink(key, data)
    except Exception:  # a view that went away must not stop the save
        log.warning("llmsock: could not send a snapshot to the notebook", exc_info=True)
