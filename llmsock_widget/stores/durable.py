"""Durable file replacement shared by the stores and the notebook file tools.

:func:`write_atomically` is the one atomic write: a new temp file beside the
target, fsync, ``os.replace`` over the target, fsync of the folder.  After a crash
the target holds the old bytes or the new ones, never a mix.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import Callable

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)
# O_EXCL | O_NOFOLLOW: the temp file is always a new file of ours, never a link planted in its place.
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | _BINARY


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Flush a directory's entries to disk, making a rename in it durable.

    Best effort: some platforms and file systems cannot open or fsync a directory.
    """
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomically(
    directory: str | os.PathLike[str],
    name: str,
    data: bytes,
    *,
    dir_fd: int | None = None,
    temp_prefix: str | None = None,
    mode: int | None = None,
    fsync: bool = True,
    check: Callable[[], None] | None = None,
) -> None:
    """Replace the file ``name`` in ``directory`` with ``data``, all or nothing.

    Args:
        directory: the folder of the target; names are joined to it unless ``dir_fd`` is given.
        name: the target's name in the folder (a rename never follows a symlink there).
        data: the new contents.
        dir_fd: an open descriptor of the folder: every call is relative to it, never by path.
        temp_prefix: the temp file is ``.<temp_prefix>.<random>.tmp`` (default: ``name``).
        mode: the exact permission bits of the new file (default: 0o600 less the umask).
        fsync: flush the file and the folder to the disk; off only for throwaway data.
        check: called after the write, just before the rename; what it raises cancels the write.

    Raises:
        OSError: the write or the rename failed; the temp file is removed, the target untouched.
    """
    tmp = f".{temp_prefix or name}.{secrets.token_hex(6)}.tmp"

    def at(entry: str) -> str:
        return entry if dir_fd is not None else os.path.join(directory, entry)

    fd = os.open(at(tmp), _NEW_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            if fsync:
                os.fsync(file.fileno())
        if mode is not None:
            os.chmod(at(tmp), mode, dir_fd=dir_fd)
        if check is not None:
            check()
        if dir_fd is None:
            os.replace(at(tmp), at(name))
        else:
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(at(tmp), dir_fd=dir_fd)
        raise
    if fsync:
        _fsync_folder(directory, dir_fd)


def _fsync_folder(directory: str | os.PathLike[str], dir_fd: int | None) -> None:
    if dir_fd is None:
        fsync_directory(directory)
        return
    with contextlib.suppress(OSError):
        os.fsync(dir_fd)
