"""A store's folder reached without following a link, and the file operations done inside it.

:func:`open_folder` opens the trusted root as it is named, then each folder below it
with ``O_NOFOLLOW | O_DIRECTORY`` relative to the one before, so a symlink planted
anywhere on the way is refused, race-free; a :class:`Folder` then opens, makes,
renames and removes files relative to that descriptor, never by path again
(``durable.write_atomically`` writes in it through ``Folder.fd`` the same way).

Where ``dir_fd`` is not available (Windows), the same calls act on paths and each
folder is checked with ``lstat`` first: the same refusals, without the race-freedom,
and :meth:`Folder.lock` locks nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from ..errors import StoreError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_AT = os.open in os.supports_dir_fd and os.rename in os.supports_dir_fd and _NOFOLLOW != 0
_DIR_FLAGS = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC
# O_NOFOLLOW reports a symlink as ELOOP (EMLINK on some BSDs); ENOTDIR: not a folder.
_PLANTED = (errno.ELOOP, errno.EMLINK, errno.ENOTDIR)


class Refused(StoreError):
    """Something planted on the way (a symlink, a folder that is not one); nothing was touched."""


class Folder:
    """An open, verified folder: every file operation is relative to it."""

    def __init__(self, fd: int | None, path: Path) -> None:
        self.fd = fd  # None where dir_fd is not available: act on paths
        self.path = path

    def _at(self, name: str) -> str:
        return name if self.fd is not None else os.fspath(self.path / name)

    def open(self, name: str, flags: int, mode: int = 0o777) -> int:
        """Open ``name`` in this folder (``O_NOFOLLOW`` is the caller's to add)."""
        if self.fd is None:
            return os.open(self._at(name), flags, mode)
        return os.open(name, flags, mode, dir_fd=self.fd)

    def lstat(self, name: str) -> os.stat_result:
        if self.fd is None:
            return os.lstat(self._at(name))
        return os.lstat(name, dir_fd=self.fd)

    def exists(self, name: str) -> bool:
        try:
            self.lstat(name)
        except FileNotFoundError:
            return False
        return True

    def rename(self, source: str, target: str) -> None:
        if self.fd is None:
            os.rename(self._at(source), self._at(target))
        else:
            os.rename(source, target, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def unlink(self, name: str) -> None:
        if self.fd is None:
            os.unlink(self._at(name))
        else:
            os.unlink(name, dir_fd=self.fd)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive ``flock`` on the folder itself for the block.

        Locking the folder needs no lock file: nothing is left behind, and nothing
        planted can stand in for it.  The lock belongs to a new open description of
        the folder, so threads of one process wait for each other as processes do.
        """
        if self.fd is None or fcntl is None:
            yield
            return
        fd = os.open(".", os.O_RDONLY | _DIRECTORY | _CLOEXEC, dir_fd=self.fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing it releases the lock


@contextlib.contextmanager
def open_folder(root: Path, below: tuple[str, ...], *, create: bool) -> Iterator[Folder | None]:
    """Yield ``root/below...`` opened without following a link below ``root`` (None: absent).

    ``create`` makes what is missing (mode 0o700).  Raises :class:`Refused` for a
    symlink or a non-folder below ``root``; the message names only the part below it.
    """
    if create:  # the root is trusted as named: made the plain way, links and all
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not _AT:
        yield _open_by_path(root, below, create=create)
        return
    try:
        fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    except FileNotFoundError:
        yield None
        return
    try:
        for depth, name in enumerate(below):
            child = _open_child(fd, name, "/".join(below[: depth + 1]), create=create)
            os.close(fd)
            fd = child
            if fd < 0:
                break
        yield Folder(fd, root.joinpath(*below)) if fd >= 0 else None
    finally:
        if fd >= 0:
            os.close(fd)


def _open_child(parent: int, name: str, shown: str, *, create: bool) -> int:
    """Return a descriptor of folder ``name`` in ``parent`` (-1 if absent and not ``create``)."""
    for _ in range(2):
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return -1
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.mkdir(name, 0o700, dir_fd=parent)
        except OSError as exc:
            if exc.errno not in _PLANTED:
                raise
            raise _refusal(os.lstat(name, dir_fd=parent), shown) from None
    return os.open(name, _DIR_FLAGS, dir_fd=parent)


def _open_by_path(root: Path, below: tuple[str, ...], *, create: bool) -> Folder | None:
    path = root
    for depth, name in enumerate(below):
        path = path / name
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            if not create:
                return None
            path.mkdir(mode=0o700, exist_ok=True)
            info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode):
            raise _refusal(info, "/".join(below[: depth + 1]))
    return Folder(None, path) if path.is_dir() else None


def _refusal(info: os.stat_result, shown: str) -> Refused:
    if stat.S_ISLNK(info.st_mode):
        return Refused(f"{shown} is a symlink; refusing to follow it")
    return Refused(f"{shown} is not a folder")


def is_planted(exc: OSError) -> bool:
    """Whether opening a file with ``O_NOFOLLOW`` failed because it is a symlink."""
    return exc.errno in (errno.ELOOP, errno.EMLINK)
