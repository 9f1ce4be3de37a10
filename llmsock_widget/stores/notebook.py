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

A notebook keeps at most ``max_chars`` of each chat (256 KiB, :func:`snapshot.fit`).
When a chat is larger, the whole of it is written to its file next to the notebook
(the same file as without the plugin) and the notebook's cut copy links it
(``fullCopy``); a later load restores the whole chat from that file.  What this store
did about a chat's size is said to the chat by :meth:`NotebookStore.take_notes`.

Revisions: this store keeps the latest state of every session in memory, and
that copy is the one whose revision counts; the front end and the files follow it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

from ..core import snapshot
from ..core.events import Level
from ..core.session import InteractionState
from ..errors import CorruptSnapshot, LlmsockError, SnapshotVersionError, StoreConflict
from .base import SessionId, session_key
from .jsonfile import JsonFileStore, save_over_older
from .memory import MemoryStore

log = logging.getLogger("llmsock")

Sink = Callable[[str, "dict[str, Any] | None"], None]
"""Called with (session id, snapshot dict or None for "removed"); must not block."""

DiskReader = Callable[[str], "InteractionState | None"]


class Note(NamedTuple):
    """A diagnostic for a session's chat: its ``level``, ``code`` and ``message``."""

    level: Level
    code: str
    message: str


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
        self._links: dict[str, snapshot.FullCopy] = {}  # the fullCopy links of offered snapshots
        # key -> (revision in memory, revision in the file): the file holds that state whole.
        self._whole: dict[str, tuple[int, int]] = {}
        self._told: set[str] = set()  # sessions whose chat was told it is kept whole in a file
        self._failing: set[str] = set()  # sessions whose whole copy could not be written last time
        self._notes: dict[str, list[Note]] = {}
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
                # No file is written here (this runs on the caller's thread): a chat over the
                # cap links its file when the file holds this very state, else its next save does.
                self._push(key, state, [sink], self._whole_copy(key, state))

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
        link = snapshot.full_copy_of(data)
        with self._lock:
            if key in self._offered or self._memory.load(key) is not None:
                return "ignored"
            self._offered[key] = state
            if link is not None:
                self._links[key] = link
        return "kept"

    def take_notes(self, session_id: SessionId) -> list[Note]:
        """Return, and forget, what the chat of ``session_id`` should be told since last asked.

        The server asks when a chat attaches and after each save, and shows each note as a
        diagnostic: a chat that passed the notebook's cap and is kept whole in its file
        (``history_kept_in_file``, warning, once per kernel), a chat restored whole from that
        file (``history_restored``, info), and older turns that could not be kept or restored
        (``history_truncated``, warning).
        """
        key = session_key(session_id)
        with self._lock:
            return self._notes.pop(key, [])

    # -- SessionStore -----------------------------------------------------------------

    async def load(self, session_id: SessionId) -> InteractionState | None:
        """Return the session: this kernel's copy, else what a view offered from the notebook's
        metadata, else the newer of its file and the saved ``.ipynb``."""
        key = session_key(session_id)
        state = self._memory.load(key)
        if state is not None:
            return state
        with self._lock:
            offered, link = self._offered.get(key), self._links.get(key)
        # The newest of: what a view offered, the file next to the notebook, the saved .ipynb
        # (a chat continued in a front end without the plugin is newer in the file).
        problem: CorruptSnapshot | None = None
        in_file: InteractionState | None = None
        try:
            in_file = await self.fallback.load(key)
        except CorruptSnapshot as exc:  # a file that cannot be read (or a planted link) spoils no other copy
            problem = exc
        saved = await asyncio.to_thread(self._from_disk, key) if self.read_saved is not None else None
        states = [state for state in (offered, in_file, saved) if state is not None]
        if problem is not None:
            if not states:
                raise problem
            log.warning("llmsock: session %s: its file was not used: %s", key, problem.message)
        if not states:
            return None
        # Of copies saved at the same moment, the whole one (snapshot.recency).
        newest = max(states, key=snapshot.recency)
        found = _Found(offered=offered, link=link, in_file=in_file, saved=saved, problem=problem)
        note = self._restore_note(key, newest, found)
        # From now on this kernel has the session: later offers are ignored (the kernel's copy wins).
        with self._lock:
            self._offered.pop(key, None)
            self._links.pop(key, None)
            if self._memory.load(key) is None:
                self._memory.save(key, newest)
                if newest is in_file:
                    self._whole[key] = (newest.revision, newest.revision)
            if note is not None:
                self._notes.setdefault(key, []).append(note)
                if note.code == "history_restored":
                    self._told.add(key)  # the chat knows where it is kept: not told again at its next save
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
            self._links.pop(key, None)
            sinks = list(self._sinks.values()) if key not in self._protected else []
        if not sinks:
            await asyncio.to_thread(self._save_file, key, state)
            return True
        copy = None
        if snapshot.fit(state, max_chars=self.max_chars).dropped_turns > state.dropped_turns:
            # Larger than the notebook keeps: the whole chat goes to its file first, so the
            # notebook's cut copy never links a file that does not hold it yet.
            copy = await asyncio.to_thread(self._keep_whole, key, state)
        self._push(key, state, sinks, copy)
        return True

    async def delete(self, session_id: SessionId) -> bool:
        """Forget the session here, in the notebook's metadata and in its file."""
        key = session_key(session_id)
        found = self._memory.delete(key)
        with self._lock:
            found = self._offered.pop(key, None) is not None or found
            sinks = list(self._sinks.values())
            for kept in (self._links, self._whole, self._notes):
                kept.pop(key, None)
            self._told.discard(key)
            self._failing.discard(key)
        for sink in sinks:
            _call(sink, key, None)
        return await self.fallback.delete(key) or found

    def keys(self) -> list[str]:
        """Return the sessions this kernel holds."""
        return self._memory.keys()

    # -- helpers -------------------------------------------------------------------------

    def _push(
        self, key: str, state: InteractionState, sinks: list[Sink], copy: snapshot.FullCopy | None = None
    ) -> None:
        fitted = snapshot.fit(state, max_chars=self.max_chars)
        if copy is not None and fitted.dropped_turns > state.dropped_turns:
            data = snapshot.encode_linked(state, copy, max_chars=self.max_chars)
        else:
            data = snapshot.encode(fitted)
        for sink in sinks:
            _call(sink, key, data)

    def _save_file(self, key: str, state: InteractionState) -> int:
        """Write ``state`` whole to the session's file; return the revision the file now has."""
        written = save_over_older(self.fallback.save_sync, self.fallback.load_sync, key, state)
        with self._lock:
            self._whole[key] = (state.revision, written)
        return written

    def _keep_whole(self, key: str, state: InteractionState) -> snapshot.FullCopy | None:
        """Write the whole chat to its file (it is over the notebook's cap); return the link to it."""
        try:
            revision = self._save_file(key, state)
        except LlmsockError as exc:  # a read-only folder, a planted link, a file not ours
            log.warning("llmsock: session %s: its whole copy could not be saved: %s", key, exc.message)
            note = Note(
                level="warning",
                code="history_truncated",
                message=f"this chat is larger than the notebook keeps ({self._cap}) and its whole copy"
                f" could not be saved ({exc.message}): after a restart only its latest turns come back",
            )
            with self._lock:
                if key not in self._failing:  # once, until a save succeeds again
                    self._failing.add(key)
                    self._notes.setdefault(key, []).append(note)
            return None
        where = self._shown_path(key)
        with self._lock:
            self._failing.discard(key)
            if key not in self._told:
                self._told.add(key)
                self._notes.setdefault(key, []).append(
                    # A warning: the notebook alone no longer holds the chat (shared without its
                    # file, it comes back cut), which the user must know.
                    Note(
                        level="warning",
                        code="history_kept_in_file",
                        message=f"this chat is larger than the notebook keeps ({self._cap}); the whole chat"
                        f" is kept in {where}",
                    )
                )
        return snapshot.FullCopy(path=self._link_path(key), revision=revision)

    def _whole_copy(self, key: str, state: InteractionState) -> snapshot.FullCopy | None:
        """Return the link to the session's file when it holds ``state`` whole, else None."""
        with self._lock:
            whole = self._whole.get(key)
        if whole is None or whole[0] != state.revision:
            return None
        return snapshot.FullCopy(path=self._link_path(key), revision=whole[1])

    def _restore_note(self, key: str, chosen: InteractionState, found: _Found) -> Note | None:
        """Return what to tell a chat restored as ``chosen`` about turns its copies lack."""
        cut = [
            s
            for s in (found.offered, found.saved)
            if s is not None and s.dropped_turns > chosen.dropped_turns
        ]
        if chosen is found.in_file and cut:
            return Note(
                level="info",
                code="history_restored",
                message=f"this chat is larger than the notebook keeps ({self._cap}): all"
                f" {len(chosen.messages)} messages were restored from {self._shown_path(key)}",
            )
        if chosen.dropped_turns == 0:
            return None
        return Note(
            level="warning",
            code="history_truncated",
            message=f"{chosen.dropped_turns} older turn(s) of this chat could not be restored"
            f" ({self._why_cut(key, chosen, found)}); it goes on from its latest {len(chosen.messages)}"
            " message(s)",
        )

    def _why_cut(self, key: str, chosen: InteractionState, found: _Found) -> str:
        where = found.link.path if found.link is not None else self._link_path(key)
        if chosen is found.in_file:
            return "they were already missing when the chat was last saved"
        if found.problem is not None:
            return f"its whole copy could not be read: {found.problem.message}"
        if found.in_file is not None:
            return f"its whole copy, {where}, is older than the notebook's"
        if found.link is not None:
            return f"its whole copy, {where}, is missing"
        return "the notebook kept only its latest turns, and no whole copy was found"

    @property
    def _cap(self) -> str:
        kib, rest = divmod(self.max_chars, 1024)
        return f"{kib} KiB" if kib and not rest else f"{self.max_chars:,} characters"

    def _link_path(self, key: str) -> str:
        """Return the session file's path from the notebook's folder (absolute when it is elsewhere)."""
        path = self.fallback.path_of(key)
        parts = path.parts
        if _SIDECAR in parts:
            return "/".join(parts[parts.index(_SIDECAR) :])
        return str(path)

    def _shown_path(self, key: str) -> str:
        path = self._link_path(key)
        return f"{path} beside the notebook" if path.startswith(_SIDECAR + "/") else path

    def _from_disk(self, key: str) -> InteractionState | None:
        assert self.read_saved is not None
        try:
            return self.read_saved(key)
        except (LlmsockError, OSError) as exc:
            log.warning("llmsock: could not read session %s from the saved notebook: %s", key, exc)
            return None


_SIDECAR = ".llmsock"  # the notebook's sidecar folder


def sidecar_dir(notebook: Path | None) -> Path:
    """Return where sessions are kept next to ``notebook`` (``.llmsock/<its name>/``)."""
    if notebook is None:
        return Path.cwd() / _SIDECAR / "sessions"
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", notebook.stem)
    if stem.strip(".") == "":  # "", ".", "..": never a path out of .llmsock/
        stem = "notebook"
    return notebook.parent / _SIDECAR / stem


@dataclass(frozen=True, kw_only=True, slots=True)
class _Found:
    """The copies of a session a load found, and what it learnt about them."""

    offered: InteractionState | None  # from the notebook's metadata, offered by a view
    link: snapshot.FullCopy | None  # the offered copy's link to its whole copy
    in_file: InteractionState | None  # the session's file next to the notebook
    saved: InteractionState | None  # from the saved .ipynb on disk
    problem: CorruptSnapshot | None  # why the file could not be read


def _call(sink: Sink, key: str, data: dict[str, Any] | None) -> None:
    try:
        sink(key, data)
    except Exception:  # a view that went away must not stop the save
        log.warning("llmsock: could not send a snapshot to the notebook", exc_info=True)
