"""Durable file replacement helpers shared by the stores and the notebook file tools."""

from __future__ import annotations

import contextlib
import os


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
