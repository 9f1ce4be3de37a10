"""JsonFileStore: one atomically written JSON snapshot per session, in one directory.

Layout::

    <directory>/<key>.json                 snapshot.dumps(state)
    <directory>/.<key>.<random>.tmp        a save in progress (removed if it fails)
    <directory>/<key>.json.corrupt-<n>     a snapshot of ours that could not be read, kept for inspection

A save writes the temp file, fsyncs it, renames it over ``<key>.json`` and
fsyncs the directory, so after a crash the file holds the old snapshot or the
new one, never part of one.  Keys use only ``A-Za-z0-9_-~``, so names cannot
escape the directory; a key too long for a file name (over 200 characters, e.g.
two 128-character ids) is shortened to a prefix, ``=`` and its SHA-256, and
``=`` never occurs in a key, so shortened and plain names cannot collide.

Planted links: the folders from :attr:`JsonFileStore.root` down to the directory are
opened one at a time without following a symlink (``O_NOFOLLOW | O_DIRECTORY``, each
relative to the one before), and every file is opened, created, renamed and removed
relative to the directory so verified (:mod:`.folder`); a symlink on the way is a
:class:`~llmsock_widget.errors.StoreError` (a load says it as a ``CorruptSnapshot``
left in place, so the chat starts empty and is told) and nothing is written.  The
root is the folder holding a ``.llmsock`` folder on the path (the notebook's
folder), else the directory itself, which the user named.

Foreign files: only a file that starts as our snapshots do (``{"schema":``) is
ever moved aside; anything else at ``<key>.json`` is left as it is, and the session
is neither loaded from it nor saved over it.

Several processes: a load, save or delete holds an exclusive ``flock`` on the
directory, so two processes never interleave a read-compare-write.  A save that finds a
copy another writer stored since (its revision is not below ours) is merged with
it (:func:`~llmsock_widget.snapshot.merge`), so neither side's turns are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import stat
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..core import snapshot
from ..core.session import InteractionState
from ..errors import CorruptSnapshot, InvalidSessionId, StoreConflict, StoreError
from .base import Merged, SessionId, session_key
from .durable import write_atomically
from .folder import Folder, Refused, is_planted, open_folder

_log = logging.getLogger("llmsock.stores")  # under "llmsock": in a kernel its lines go to the console

# NAME_MAX is 255 bytes on common file systems; the temp and corrupt names add
# up to about 20 characters to the stem.
_MAX_STEM = 200

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)
# O_NOFOLLOW makes the symlink refusal race-free; O_NONBLOCK keeps a FIFO
# planted at the path from blocking the open (it is then refused by fstat).
_READ_FLAGS = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC | _BINARY

# How every snapshot.dumps text begins: a file that does not is not ours to move.
_OURS = re.compile(rb'\s*\{\s*"schema"\s*:')

_SIDECAR = ".llmsock"


class JsonFileStore:
    """An asynchronous :class:`~llmsock_widget.stores.base.SessionStore` writing JSON files.

    ``load``/``save``/``delete`` run their ``*_sync`` twin in a worker thread,
    so the server's event loop never waits on the disk.  Cancelling the await
    does not stop a save that has started; it still completes or fails whole.
    Saves of one key are serialised by a lock within the process and by ``flock``
    across processes, so several processes may share a directory (where the system
    has ``flock``; see :meth:`save_sync` for how their saves are merged).

    Args:
        directory: where the snapshots live; created (mode 0o700) on the first save.
        fsync: flush each save to the disk before returning; turn off only for
            throwaway data such as tests, where speed matters more than a power cut.
        root: the folder trusted as it is; every folder below it down to
            ``directory`` must be a real folder, not a symlink.  By default the
            folder holding the first ``.llmsock`` on the path, else ``directory``.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        fsync: bool = True,
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.root = Path(root) if root is not None else default_root(self.directory)
        self._below = _components(self.root, self.directory)
        self._fsync = fsync
        # Weak values: a key's lock lives only while some call holds it, so
        # many short-lived sessions do not pile up locks.
        self._locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()
        self._foreign_told: dict[str, int] = {}  # key -> messages of other writers already announced

    def __repr__(self) -> str:
        return f"JsonFileStore({str(self.directory)!r}, fsync={self._fsync})"

    async def load(self, session_id: SessionId) -> InteractionState | None:
        """Return the stored state of ``session_id``, or None; see :meth:`load_sync`."""
        return await asyncio.to_thread(self.load_sync, session_id)

    async def save(self, session_id: SessionId, state: InteractionState) -> bool | Merged:
        """Store ``state`` under ``session_id``; see :meth:`save_sync`."""
        return await asyncio.to_thread(self.save_sync, session_id, state)

    async def delete(self, session_id: SessionId) -> bool:
        """Remove the snapshot of ``session_id``; see :meth:`delete_sync`."""
        return await asyncio.to_thread(self.delete_sync, session_id)

    def path_of(self, session_id: SessionId) -> Path:
        """Return the path of the file that holds ``session_id`` (it may not exist)."""
        return self.directory / _name(session_key(session_id))

    def keys(self) -> list[str]:
        """Return the ids of the sessions that have a file here, sorted (none without the directory).

        Read from the file names: only plain session ids are listed, not ``userId~sessionId``
        keys nor any other name.
        """
        try:
            names = os.listdir(self.directory)
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = []
        for name in names:
            stem = name[: -len(".json")] if name.endswith(".json") else ""
            with contextlib.suppress(InvalidSessionId):
                if stem and _name(session_key(stem)) == name:
                    found.append(stem)
        return sorted(found)

    def load_sync(self, session_id: SessionId) -> InteractionState | None:
        """Return the stored state of ``session_id``, or None if it has no file.

        Raises:
            CorruptSnapshot: the file could not be decoded; ``moved_to`` says where it was
                moved, or is None when it was left in place (not a file of ours, or a
                symlink or something other than a file or folder on the way).
            SnapshotVersionError: a newer llmsock wrote the file; it is left in place.
            StoreError: it could not be read (permissions, I/O).
        """
        key = session_key(session_id)
        try:
            with self._key_lock(key), _os_errors("load", key), self._open_directory(create=False) as folder:
                if folder is None:
                    return None
                with folder.lock():  # a corrupt file is moved aside: one process at a time
                    return self._read(folder, key)
        except Refused as exc:
            # Like a snapshot that cannot be read and stays where it is: the chat starts
            # empty and is told, and its saves fail with the same reason.
            raise CorruptSnapshot(exc.message) from None

    def peek_sync(self, session_id: SessionId) -> InteractionState | None:
        """Return the stored state of ``session_id`` like :meth:`load_sync`, but only read.

        For readers that must change nothing (the offline ``sessions`` tools): a file that
        cannot be decoded raises :class:`~llmsock_widget.errors.CorruptSnapshot` and stays
        where it is.
        """
        key = session_key(session_id)
        try:
            with _os_errors("load", key), self._open_directory(create=False) as folder:
                data = None if folder is None else _read_regular(folder, key, _name(key))
        except Refused as exc:
            raise CorruptSnapshot(exc.message) from None
        return None if data is None else snapshot.loads(data)

    def save_sync(
        self, session_id: SessionId, state: InteractionState, *, merge: bool = True
    ) -> bool | Merged:
        """Write ``state`` atomically as ``<key>.json``; return True, or :class:`Merged`.

        When the stored snapshot's revision is not below ``state.revision``, another
        writer saved since: both are kept (:func:`snapshot.merge`), and the answer is
        :class:`Merged` when that brought in messages not announced before.  With
        ``merge=False`` such a save raises :class:`~llmsock_widget.errors.StoreConflict`.

        Raises:
            StoreConflict: ``merge`` is false and the stored revision is not below ours.
            SnapshotVersionError: the stored snapshot is from a newer llmsock (never overwritten).
            CorruptSnapshot: the file there is not ours and cannot be read (left as it is).
            StoreError: the write failed (read-only, disk full, symlink); the old file is intact.
        """
        key = session_key(session_id)
        with self._key_lock(key), _os_errors("save", key), self._open_directory(create=True) as folder:
            assert folder is not None  # made if missing
            with folder.lock():
                state, answer = self._reconcile(folder, key, state, merge=merge)
                self._write(folder, key, snapshot.dumps(state).encode("utf-8"))
        return answer

    def delete_sync(self, session_id: SessionId) -> bool:
        """Remove ``<key>.json``; return whether it existed (a symlink there is refused)."""
        key = session_key(session_id)
        name = _name(key)
        with self._key_lock(key), _os_errors("delete", key), self._open_directory(create=False) as folder:
            if folder is None:
                return False
            with folder.lock():
                try:
                    mode = folder.lstat(name).st_mode
                except FileNotFoundError:
                    return False
                if stat.S_ISLNK(mode):
                    raise _symlink_error(key, name)
                folder.unlink(name)
                return True

    # -- internals ------------------------------------------------------------------

    def _key_lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock

    def _open_directory(self, *, create: bool) -> contextlib.AbstractContextManager[Folder | None]:
        """Open the directory, refusing a symlink below the root (None: it does not exist)."""
        return open_folder(self.root, self._below, create=create)

    def _read(self, folder: Folder, key: str) -> InteractionState | None:
        name = _name(key)
        data = _read_regular(folder, key, name)
        if data is None:
            return None
        try:
            return snapshot.loads(data)
        except CorruptSnapshot as exc:
            if not _OURS.match(data[:64]):
                raise CorruptSnapshot(
                    f"session {key}: {name} is not an llmsock snapshot; left as it is,"
                    " and this session is not saved over it"
                ) from None
            raise _quarantine(folder, key, name, exc, shown=self.directory) from exc

    def _reconcile(
        self, folder: Folder, key: str, state: InteractionState, *, merge: bool
    ) -> tuple[InteractionState, bool | Merged]:
        """Return what to write for ``state``, merged with another writer's newer copy if there is one."""
        try:
            stored = self._read(folder, key)
        except CorruptSnapshot as exc:
            # Moved aside, so nothing is lost by writing; if it stayed (not ours, or it could
            # not be moved), writing would destroy it.
            if exc.moved_to is None:
                raise
            _log.warning("%s; saving the new state in its place", exc.message)
            return state, True
        if stored is None or state.revision > stored.revision:
            return state, True
        if not merge:
            raise StoreConflict(
                f"session {key}: revision {state.revision} is not newer than stored {stored.revision}"
            )
        merged, foreign = snapshot.merge(stored, state)
        told = self._foreign_told.get(key, 0)
        self._foreign_told[key] = foreign
        if foreign <= told:
            return merged, True
        _log.warning("llmsock: session %s was also saved by another process; keeping both", key)
        return merged, Merged(
            message=f"session {key} was also saved by another process: its {foreign} message(s)"
            " are kept in the store with this chat's; reload the session to see them"
        )

    def _write(self, folder: Folder, key: str, data: bytes) -> None:
        # The rename swaps the directory entry and never follows a symlink there.
        write_atomically(
            folder.path, _name(key), data, dir_fd=folder.fd, temp_prefix=_stem(key), fsync=self._fsync
        )


def default_root(directory: Path) -> Path:
    """Return the folder trusted as it is for ``directory``: the one holding its first ``.llmsock``.

    ``.llmsock`` and everything below it are llmsock's own, so none of it may be a
    symlink; a directory without one on its path is trusted as the user named it.
    """
    parts = directory.parts
    if _SIDECAR in parts:
        return Path(*parts[: parts.index(_SIDECAR)]) if parts.index(_SIDECAR) else Path(".")
    return directory


def _components(root: Path, directory: Path) -> tuple[str, ...]:
    try:
        below = directory.relative_to(root).parts
    except ValueError:
        raise ValueError(f"store directory {directory} is not inside its root {root}") from None
    if any(part in ("..", ".") for part in below):
        raise ValueError(f"store directory {directory} must not climb out of {root} with '..'")
    return below


def _stem(key: str) -> str:
    if len(key) <= _MAX_STEM:
        return key
    digest = hashlib.sha256(key.encode("ascii")).hexdigest()
    return f"{key[: _MAX_STEM - len(digest) - 1]}={digest}"


def _name(key: str) -> str:
    return f"{_stem(key)}.json"


def _read_regular(folder: Folder, key: str, name: str) -> bytes | None:
    """Return the bytes of ``name`` in ``folder``, None if it is absent; refuse symlinks and non-files."""
    try:
        if not _NOFOLLOW and stat.S_ISLNK(folder.lstat(name).st_mode):
            raise _symlink_error(key, name)
        fd = folder.open(name, _READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if is_planted(exc):
            raise _symlink_error(key, name) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused(f"session {key}: {name} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as file:
            return file.read()
    finally:
        os.close(fd)


def _quarantine(folder: Folder, key: str, name: str, exc: CorruptSnapshot, *, shown: Path) -> CorruptSnapshot:
    """Move a corrupt snapshot of ours aside and return the error to raise."""
    try:
        moved = _move_aside(folder, name)
    except OSError as err:
        _log.warning("could not move corrupt snapshot %s aside: %s", name, err)
        reason = err.strerror or type(err).__name__
        return CorruptSnapshot(f"session {key}: {exc.message}; could not move it aside: {reason}")
    # Only the file name goes in the message: it may reach the client.
    return CorruptSnapshot(
        f"session {key}: {exc.message}; moved aside to {moved}", moved_to=str(shown / moved)
    )


def _move_aside(folder: Folder, name: str) -> str:
    # The key lock and the directory's flock make the first free number ours.
    n = 1
    while folder.exists(target := f"{name}.corrupt-{n}"):
        n += 1
    folder.rename(name, target)
    return target


def _symlink_error(key: str, name: str) -> StoreError:
    return Refused(f"session {key}: {name} is a symlink; refusing to follow it")


@contextlib.contextmanager
def _os_errors(action: str, key: str) -> Iterator[None]:
    """Turn an OSError into a StoreError whose message names no directory."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StoreError(f"could not {action} session {key}: {reason}") from exc


def save_over_older(
    save: Callable[..., Any],
    load: Callable[[str], InteractionState | None],
    key: str,
    state: InteractionState,
) -> int:
    """Write ``state`` with ``save``; if the file is as new or newer, write it one revision above.

    The rule of a kernel's own copy of a session kept beside a notebook: the file may be older
    than the copy (written before the session was restored from the notebook, which another
    front end kept), and the kernel's copy wins.  ``save``/``load`` are a file store's
    ``save_sync``/``load_sync`` (or its base class's, to bypass a subclass).  Returns the
    revision the file now has.
    """
    try:
        save(key, state, merge=False)
        return state.revision
    except StoreConflict:
        stored = load(key)
        revision = max(stored.revision + 1 if stored is not None else state.revision, state.revision)
        save(key, replace(state, revision=revision), merge=False)
        return revision
