"""Where llmsock's log lines go in a kernel: the kernel's own console, never a notebook cell.

In a kernel, ``sys.stderr`` (and file descriptor 2) is the output of whichever
cell runs now, so a line logged by the server thread would land in a random
cell and be saved with the notebook.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

SERVER_THREAD = "llmsock-server"  # ServerThread's thread name
_DIVERTED = ("tornado.access", "tornado.application", "tornado.general", "asyncio")


def isolate_logging() -> None:
    """Send llmsock's log lines to the kernel's own stderr, never into a notebook cell.

    Records of the server thread from Tornado and asyncio are diverted the same
    way.  Calling it again does nothing.
    """
    ours = logging.getLogger("llmsock")
    if any(getattr(h, "_llmsock", False) for h in ours.handlers):
        return
    handler = logging.StreamHandler(_console())
    handler.setFormatter(logging.Formatter("[llmsock %(levelname)s %(asctime)s] %(message)s"))
    handler._llmsock = True  # type: ignore[attr-defined]
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    divert = _ThreadDivert(handler)
    for name in _DIVERTED:
        logging.getLogger(name).addFilter(divert)


def _console() -> Any:
    """Return a stream to the kernel's own console (the terminal that runs Jupyter).

    ipykernel captures file descriptor 2 and forwards what is written there to the
    running cell, so even ``sys.__stderr__`` lands in the notebook; it keeps the
    console's original descriptor on its stderr stream, and that is where we write.
    """
    original = getattr(sys.stderr, "_original_stdstream_copy", None)
    if isinstance(original, int):
        try:
            return os.fdopen(os.dup(original), "w", buffering=1, encoding="utf-8", errors="replace")
        except OSError:
            pass
    return sys.__stderr__ if sys.__stderr__ is not None else sys.stderr


class _ThreadDivert(logging.Filter):
    """A logger filter: records made on the server thread go to our handler only."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        if record.threadName == SERVER_THREAD:
            if record.levelno >= logging.WARNING:
                self.handler.handle(record)
            return False
        return True
