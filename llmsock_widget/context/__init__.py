"""Live objects as text for a model: summaries of values and of a traceback's frames.

Used by mentions (``@name`` in the composer) and post-mortem help ("explain the last error").
It reads live objects and changes none of them; its only I/O is reading source files, through
``inspect`` and ``linecache``.  See docs/architecture.md and docs/security.md.
"""

from __future__ import annotations

from .frames import traceback_context
from .secrets import looks_secret, mask_text
from .summary import Summary, summarize

__all__ = ["Summary", "looks_secret", "mask_text", "summarize", "traceback_context"]
