"""A live object as a short, size-capped, secret-masked text for a model: ``summarize``.

The summary reads the object and never changes it.  It runs no more of the user's code than a
repr, ``.head()``, ``.dtypes`` or ``.shape`` does: ``__repr__``, ``__str__`` and container
methods of the user's classes do run, inside ``try``; the time they take cannot be capped from
the same thread (there is no safe way to interrupt a thread in Python), so a ``__repr__`` that
never returns blocks the caller.  Read while another thread changes it, an object may show a
mix of before and after; a dict or set resized under the reader is read again, then reported.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from types import ModuleType

from . import tables
from .secrets import NAME_MASK, looks_secret
from .text import CONTAINERS, Reading, fit, head, inline, safe_len, safe_repr, type_name

DEFAULT_MAX_CHARS = 4000
DOC_CHARS = 200  # the docstring's first line
REPR_CHARS = 2000  # the repr of an object of no known kind, before the overall cap
METHODS = 20  # public names of a class listed


@dataclass(frozen=True)
class Summary:
    """What the model gets for one object, and what the summary did to get there."""

    name: str
    kind: str
    text: str
    truncated: bool
    masked: bool


def summarize(name: str, value: object, *, max_chars: int = DEFAULT_MAX_CHARS) -> Summary:
    """Return a summary of ``value`` (known as ``name``) of at most ``max_chars`` characters."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, not {max_chars}")
    try:
        kind = kind_of(value)
    except Exception:  # isinstance() reads __class__, which a user's class may make raise
        kind = "object"
    if looks_secret(name):
        return Summary(name=name, kind=kind, text=fit(NAME_MASK, max_chars)[0], truncated=False, masked=True)
    reading = Reading()
    try:
        body = _body(value, kind, reading, max_chars)
    except Exception as exc:  # a library's method or the user's code failed: say so, never raise
        body = f"{type_name(value)} (could not be summarized: {type(exc).__name__})"
    text = head(f"{name}: {body}", max_chars, reading)
    return Summary(name=name, kind=kind, text=text, truncated=reading.truncated, masked=reading.masked)


def kind_of(value: object) -> str:
    """Return the summary's kind for ``value``: ``DataFrame``, ``list``, ``function``, ``object``..."""
    known = tables.family(value)
    if known is not None:
        return tables.FAMILIES[known]
    if isinstance(value, ModuleType):
        return "module"
    if isinstance(value, type):
        return "class"
    if inspect.isroutine(value):
        return "function"
    for base in (str, bytes, bytearray, bool, int, float, complex, *CONTAINERS):
        if isinstance(value, base):
            return base.__name__
    return "None" if value is None else "object"


def _body(value: object, kind: str, reading: Reading, max_chars: int) -> str:
    known = tables.family(value) if kind in ("DataFrame", "Series", "ndarray") else None
    if known is not None:
        return tables.describe(*known, value, reading)
    if kind == "module":
        return _module(value, reading)  # type: ignore[arg-type]
    if kind in ("class", "function"):
        return _code(value, kind, reading)
    if kind == "str":
        return f"str, {len(value):,} chars\n{head(value, max_chars, reading)}"  # type: ignore[arg-type]
    if kind in ("bytes", "bytearray"):
        return f"{type_name(value)}, {len(value):,} bytes\n{inline(value, reading)}"  # type: ignore[arg-type]
    if kind in {c.__name__ for c in CONTAINERS}:
        size = safe_len(value)
        length = "None" if size is None else f"{size:,}"
        return f"{type_name(value)}, len {length}\n{inline(value, reading, budget=max_chars)}"
    return f"{type_name(value)}\n{safe_repr(value, min(max_chars, REPR_CHARS), reading)}"


def _first_line(value: object, reading: Reading) -> str | None:
    try:
        doc = inspect.getdoc(value)
    except Exception:  # a __doc__ property of the user's
        return None
    lines = [line for line in (doc or "").splitlines() if line.strip()]
    return head(lines[0], DOC_CHARS, reading) if lines else None


def _module(module: ModuleType, reading: Reading) -> str:
    lines = [f"module {module.__name__}"]
    where = getattr(module, "__file__", None)
    lines.append(f"file: {where}" if isinstance(where, str) else "file: none (built in or namespace)")
    doc = _first_line(module, reading)
    if doc:
        lines.append(f"doc: {doc}")
    return "\n".join(lines)


def _signature(value: object) -> str:
    try:
        return str(inspect.signature(value))  # type: ignore[arg-type]
    except Exception:  # builtins without text signatures, a metaclass's or descriptor's own code
        return "(...)"


def _code(value: object, kind: str, reading: Reading) -> str:
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None) or getattr(value, "__name__", "?")
    title = f"{kind} {module + '.' if isinstance(module, str) and module != 'builtins' else ''}{qualname}"
    lines = [f"{title}{_signature(value)}"]
    if isinstance(value, type):
        bases = ", ".join(b.__qualname__ for b in value.__bases__)
        names = [n for n in vars(value) if not n.startswith("_")]
        lines.append(f"bases: {bases}")
        if names:
            more = f", ... {len(names) - METHODS} more" if len(names) > METHODS else ""
            lines.append(f"defines: {', '.join(names[:METHODS])}{more}")
    doc = _first_line(value, reading)
    if doc:
        lines.append(f"doc: {doc}")
    source = _source(value)
    if source is not None:
        # The overall cap cuts the source last: it comes last.
        lines.append(f"source:\n{reading.mask(source.rstrip())}")
    return "\n".join(lines)


def _source(value: object) -> str | None:
    try:
        return inspect.getsource(value)  # type: ignore[arg-type]
    except Exception:  # built in, defined in a string, its file gone (OSError, TypeError, others)
        return None
