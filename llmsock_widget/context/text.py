"""Bounded, exception-safe text for values: cuts, a safe repr, and containers rendered inline.

Everything here reads the value and never changes it.  What runs of the user's code is what a
repr runs: ``__repr__``/``__str__`` of the user's classes, ``__len__``/``__iter__`` of their
container subclasses.  Exceptions from that code are caught and shown; its time cannot be
capped from inside the same thread, so a ``__repr__`` that loops forever blocks the caller.
"""

from __future__ import annotations

import itertools
import string
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from .secrets import VALUE_MASK, looks_secret, mask_text

T = TypeVar("T")

CUT = "…[cut]"
LEAF_CHARS = 80  # a string or repr inside a container
MAX_DEPTH = 3  # containers inside containers shown; deeper ones by type and length only
TOP_ITEMS = 10  # items of the summarized container itself
NESTED_ITEMS = 5  # items of a container inside it
READ_RETRIES = 3  # a dict or set that another thread resizes while it is read

# What a credential is made of: the token a cut prefix ends in is dropped up to this many
# characters (a longer run is data, not a credential, and is kept up to there).
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_.+/="
TOKEN_CHARS = 4096

CONTAINERS = (list, tuple, dict, set, frozenset, deque)


@dataclass
class Reading:
    """What summarizing one value found: whether it left something out or masked something."""

    truncated: bool = False
    masked: bool = False
    active: set[int] = field(default_factory=set)  # ids of the containers being rendered: cycles

    def mask(self, text: str) -> str:
        """Return ``text`` with secret-looking values masked, noting whether any were."""
        masked, changed = mask_text(text)
        self.masked = self.masked or changed
        return masked


def fit(text: str, limit: int) -> tuple[str, bool]:
    """Return ``text`` cut to at most ``limit`` characters (marked as cut), and whether it was cut."""
    if len(text) <= limit:
        return text, False
    if limit <= len(CUT):
        return text[:limit], True
    return text[: limit - len(CUT)] + CUT, True


def head(text: str, limit: int, reading: Reading) -> str:
    """Return the start of ``text`` masked and cut to ``limit`` characters.

    Masking runs on a prefix four times the limit (so a 10 MB string costs little); the token
    the prefix cuts through is dropped first, so a secret cut in two cannot escape the mask.
    """
    prefix = text[: limit * 4 + 1]
    if len(prefix) < len(text):
        prefix = prefix[:-TOKEN_CHARS] + prefix[-TOKEN_CHARS:].rstrip(TOKEN_ALPHABET)
        reading.truncated = True
    cut, was_cut = fit(reading.mask(prefix), limit)
    reading.truncated = reading.truncated or was_cut
    return cut


def safe_repr(value: object, limit: int, reading: Reading) -> str:
    """Return ``repr(value)``, masked and cut; a repr that raises is named instead of raised."""
    try:
        text = repr(value)
    except Exception as exc:  # the user's __repr__: anything may come out of it
        return f"<{type_name(value)} object: repr raised {type(exc).__name__}>"
    return head(text, limit, reading)


def safe_str(value: object, limit: int, reading: Reading) -> str:
    """Return ``str(value)``, masked and cut; a ``__str__`` that raises is named instead."""
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception as exc:  # the user's __str__
        return f"<{type_name(value)} object: str raised {type(exc).__name__}>"
    return head(text, limit, reading)


def type_name(value: object) -> str:
    """Return the qualified name of the value's type: ``int``, ``collections.deque``, ``mod.Cls``."""
    kind = type(value)
    module = getattr(kind, "__module__", None)
    name = getattr(kind, "__qualname__", kind.__name__)
    return name if module in (None, "builtins") else f"{module}.{name}"


def take(items: Callable[[], Iterable[T]], count: int) -> list[T] | None:
    """Return the first ``count`` of ``items()``; None if another thread kept changing its size."""
    for _ in range(READ_RETRIES):
        try:
            return list(itertools.islice(items(), count))
        except RuntimeError:  # "changed size during iteration": read it again
            continue
    return None


def safe_len(value: object) -> int | None:
    """Return ``len(value)``, or None if it raises."""
    try:
        return len(value)  # type: ignore[arg-type]
    except Exception:  # a container subclass's __len__
        return None


def inline(value: object, reading: Reading, *, depth: int = 0, budget: int = 4000) -> str:
    """Return a one-line, repr-like rendering of ``value`` of about ``budget`` characters at most."""
    if isinstance(value, str):
        return repr(head(value, LEAF_CHARS, reading))
    if isinstance(value, (bytes, bytearray)):
        if len(value) > LEAF_CHARS:
            reading.truncated = True
        return head(repr(bytes(value[:LEAF_CHARS])), LEAF_CHARS + 20, reading)
    if not isinstance(value, CONTAINERS):
        return safe_repr(value, LEAF_CHARS, reading)
    size = safe_len(value)
    if id(value) in reading.active:
        return f"<cycle: the same {type_name(value)}>"
    if depth >= MAX_DEPTH:
        reading.truncated = True
        return f"<{type_name(value)} len {size}>"
    reading.active.add(id(value))
    try:
        return _container(value, size, reading, depth=depth, budget=budget)
    finally:
        reading.active.discard(id(value))


def _container(value: object, size: int | None, reading: Reading, *, depth: int, budget: int) -> str:
    count = TOP_ITEMS if depth == 0 else NESTED_ITEMS
    if isinstance(value, dict):
        pairs = take(value.items, count)
        shown = None if pairs is None else [_pair(k, v, reading, depth, budget) for k, v in pairs]
        opening, closing = "{", "}"
    else:
        items = take(lambda: iter(value), count)  # type: ignore[call-overload]
        shown = None if items is None else [inline(i, reading, depth=depth + 1, budget=budget) for i in items]
        opening, closing = _brackets(value)
    if shown is None:
        reading.truncated = True
        return f"<{type_name(value)}: changed while it was read>"
    parts: list[str] = []
    used = len(opening) + len(closing)
    for part in shown:
        if used + len(part) + 2 > budget:
            break
        parts.append(part)
        used += len(part) + 2
    left = (size if size is not None else len(shown)) - len(parts)
    if left > 0:
        reading.truncated = True
        parts.append(f"... {left:,} more")
    if isinstance(value, tuple) and len(parts) == 1 and left <= 0:
        closing = ",)"  # (x,) is a tuple, (x) is not
    return opening + ", ".join(parts) + closing


def _pair(key: object, value: object, reading: Reading, depth: int, budget: int) -> str:
    shown_key = inline(key, reading, depth=depth + 1, budget=budget)
    if isinstance(key, str) and looks_secret(key):
        reading.masked = True
        return f"{shown_key}: {VALUE_MASK}"
    return f"{shown_key}: {inline(value, reading, depth=depth + 1, budget=budget)}"


def _brackets(value: object) -> tuple[str, str]:
    if isinstance(value, list):
        return "[", "]"
    if isinstance(value, tuple):
        return "(", ")"
    if isinstance(value, (set, frozenset)):
        return "{", "}"
    return f"{type_name(value)}([", "])"
