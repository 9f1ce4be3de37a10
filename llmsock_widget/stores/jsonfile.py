"""JsonFileStore: one atomically written JSON snapshot per session, in one directory.

Layout::

    <directory>/<key>.json                 snapshot.dumps(state)
    <directory>/.<key>.<random>.tmp        a save in progress (removed if it fails)
    <directory>/<key>.json.corrupt-<n>     a snapshot that could not be read, kept for inspection

A save writes the temp file, fsyncs it, renames it over ``<key>.json`` and
fsyncs the directory, so after a crash the file holds the old snapshot or the
new one, never part of one.  Keys use only ``A-Za-z0-9_-~``, so names cannot
escape the directory; a key too long for a file name (over 200 characters, e.g.
two 128-character ids) is shortened to a prefix, ``=`` and its SHA-256, and
``=`` never occurs in a key, so shortened and plain names cannot collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import stat
import tempfile
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

from .. import snapshot
from ..durable import fsync_directory
from ..errors import CorruptSnapshot, StoreConflict, StoreError
from ..session import InteractionState
from .base import SessionId, session_key

_log = logging.getLogger("llmsock.stores")  # under "llmsock": in a kernel its lines go to the console

# NAME_MAX is 255 bytes on common file systems; the temp and corrupt names add
# up to about 20 characters to the stem.
_MAX_STEM = 200

# O_NOFOLLOW makes the symlink refusal race-free; O_NONBLOCK keeps a FIFO
# planted at the path from blocking the open (it is then refused by fstat).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_READ_FLAGS = (
    os.O_RDONLY
    | _NOFOLLOW
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


class JsonFileStore:
    """An asynchronous :class:`~llmsock_widget.stores.base.SessionStore` writing JSON files.

    ``load``/``save``/``delete`` run their ``*_sync`` twin in a worker thread,
    so the server's event loop never waits on the disk.  Cancelling the await
    does not stop a save that has started; it still completes or fails whole.
    Saves and loads of one key are serialised by a lock, which covers one store
    object: give each directory a single store per process.

    Args:
        directory: where the snapshots live; created (mode 0o700) on the first save.
        fsync: flush each save to the disk before returning; turn off only for
            throwaway data such as tests, where speed matters more than a power cut.
    """

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self._fsync = fsync
        # Weak values: a key's lock lives only while some call holds it, so
        # many short-lived sessions do not pile up locks.
        self._locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()

    def __repr__(self) -> str:
        return f"JsonFileStore({str(self.directory)!r}, fsync={self._fsync})"

    async def load(self, session_id: SessionId) -> InteractionState | None:
        """Return the stored state of ``session_id``, or None; see :meth:`load_sync`."""
        return await asyncio.to_thread(self.load_sync, session_id)

    async def save(self, session_id: SessionId, state: InteractionState) -> bool:
        """Store ``state`` under ``session_id``; see :meth:`save_sync`."""
        return await asyncio.to_thread(self.save_sync, session_id, state)

    async def delete(self, session_id: SessionId) -> bool:
        """Remove the snapshot of ``session_id``; see :meth:`delete_sync`."""
        return await asyncio.to_thread(self.delete_sync, session_id)

    def load_sync(self, session_id: SessionId) -> InteractionState | None:
        """Return the stored state of ``session_id``, or None if it has no file.

        Raises:
            CorruptSnapshot: the file could not be decoded; it was moved to ``moved_to``.
            SnapshotVersionError: a newer llmsock wrote the file; it is left in place.
            StoreError: the file is a symlink or not a regular file, or could not be read.
        """
        key = session_key(session_id)
        with self._key_lock(key), _os_errors("load", key):
            return self._read(key)

    def save_sync(self, session_id: SessionId, state: InteractionState) -> bool:
        """Write ``state`` atomically as ``<key>.json``; return True.

        Raises:
            StoreConflict: ``state.revision`` is not newer than the stored snapshot's.
            SnapshotVersionError: the stored snapshot is from a newer llmsock (never overwritten).
            StoreError: the write failed (read-only, disk full, symlink); the old file is intact.
        """
        key = session_key(session_id)
        data = snapshot.dumps(state).encode("utf-8")
        with self._key_lock(key), _os_errors("save", key):
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._check_revision(key, state)
            self._write(key, data)
        return True

    def delete_sync(self, session_id: SessionId) -> bool:
        """Remove ``<key>.json``; return whether it existed (a symlink there is refused)."""
        key = session_key(session_id)
        path = self._path(key)
        with self._key_lock(key), _os_errors("delete", key):
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                return False
            if stat.S_ISLNK(mode):
                raise _symlink_error(key, path)
            os.unlink(path)
            return True

    # -- internals ------------------------------------------------------------------

    def _key_lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock

    def _path(self, key: str) -> Path:
        return self.directory / f"{_stem(key)}.json"

    def _read(self, key: str) -> InteractionState | None:
        path = self._path(key)
        data = _read_regular(key, path)
        if data is None:
            return None
        try:
            return snapshot.loads(data)
        except CorruptSnapshot as exc:
            raise _quarantine(key, path, exc) from exc

    def _check_revision(self, key: str, state: InteractionState) -> None:
        try:
            stored = self._read(key)
        except CorruptSnapshot as exc:
            # Moved aside, so nothing is lost by writing; if it could not be
            # moved, writing would destroy the only copy.
            if exc.moved_to is None:
                raise
            _log.warning("%s; saving the new state in its place", exc.message)
            return
        if stored is not None and state.revision <= stored.revision:
            raise StoreConflict(
                f"session {key}: revision {state.revision} is not newer than stored {stored.revision}"
            )

    def _write(self, key: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{_stem(key)}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                if self._fsync:
                    os.fsync(file.fileno())
            # os.replace swaps the directory entry and never follows a symlink there.
            os.replace(tmp, self._path(key))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self._fsync:
            fsync_directory(self.directory)


def _stem(key: str) -> str:
    if len(key) <= _MAX_STEM:
        return key
    digest = hashlib.sha256(key.encode("ascii")).hexdigest()
    return f"{key[: _MAX_STEM - len(digest) - 1]}={digest}"


def _read_regular(key: str, path: Path) -> bytes | None:
    """Return the bytes of ``path``, None if it does not exist; refuse symlinks and non-files."""
    if not _NOFOLLOW and os.path.islink(path):
        raise _symlink_error(key, path)
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError:
        # O_NOFOLLOW reports a symlink as ELOOP (EMLINK on some BSDs).
        if os.path.islink(path):
            raise _symlink_error(key, path) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StoreError(f"session {key}: {path.name} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as file:
            return file.read()
    finally:
        os.close(fd)


def _quarantine(key: str, path: Path, exc: CorruptSnapshot) -> CorruptSnapshot:
    """Move a corrupt snapshot aside and return the error to raise."""
    try:
        moved = _move_aside(path)
    except OSError as err:
        _log.warning("could not move corrupt snapshot %s aside: %s", path, err)
        reason = err.strerror or type(err).__name__
        return CorruptSnapshot(f"session {key}: {exc.message}; could not move it aside: {reason}")
    # Only the file name goes in the message: it may reach the client.
    return CorruptSnapshot(f"session {key}: {exc.message}; moved aside to {moved.name}", moved_to=str(moved))


def _move_aside(path: Path) -> Path:
    # The key lock makes the first free number ours within this process.
    n = 1
    while os.path.lexists(target := path.with_name(f"{path.name}.corrupt-{n}")):
        n += 1
    os.rename(path, target)
    return target


def _symlink_error(key: str, path: Path) -> StoreError:
    return StoreError(f"session {key}: {path.name} is a symlink; refusing to follow it")


@contextlib.contextmanager
def _os_errors(action: str, key: str) -> Iterator[None]:
    """Turn an OSError into a StoreError whose message names no directory."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StoreError(f"could not {action} session {key}: {reason}") from exc
