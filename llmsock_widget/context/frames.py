"""A traceback as text for a model: ``traceback_context``, for "explain the last error".

Each frame of the user's code (innermost last) with its file, line and function, the source
lines around the failing one, and its local variables summarized by ``summarize`` (so masked
the same way).  Frames of llmsock, IPython, ipykernel and the modules they run in are left out:
the user did not write them and they would crowd out the frames that matter.
"""

from __future__ import annotations

import linecache
import traceback
from types import FrameType

from .secrets import looks_secret
from .summary import summarize
from .text import Reading, fit, head

INTERNAL = ("llmsock_widget", "llmsock", "IPython", "ipykernel", "traitlets", "tornado", "zmq", "runpy")
LINES_BEFORE = 2
LINES_AFTER = 2
LOCAL_CHARS = 400  # one local variable's summary
LOCALS = 20  # local variables shown per frame
MESSAGE_CHARS = 1000  # the exception's message


def traceback_context(exc: BaseException, *, max_frames: int = 8, max_chars: int = 8000) -> str:
    """Return the user's frames of ``exc``'s traceback with source and locals, in ``max_chars``."""
    if max_chars < 1 or max_frames < 1:
        raise ValueError("max_chars and max_frames must be at least 1")
    reading = Reading()
    frames = [(f, n) for f, n in traceback.walk_tb(exc.__traceback__) if not _internal(f)]
    left_out = max(0, len(frames) - max_frames)
    blocks = [_frame(frame, lineno) for frame, lineno in frames[-max_frames:]]
    ending = _exception_line(exc, reading)
    earlier = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if earlier is not None:
        how = "caused by" if exc.__cause__ is not None else "raised while handling"
        ending = f"{ending}\n({how} {_exception_line(earlier, reading)})"
    # The innermost frames matter most: drop outer ones until the rest fits with the ending.
    while len(blocks) > 1 and len(_join(blocks, left_out, ending)) > max_chars:
        blocks.pop(0)
        left_out += 1
    excess = len(_join(blocks, left_out, ending)) - max_chars
    if blocks and excess > 0:  # the innermost frame alone is too long: cut it, keep the error
        blocks[-1] = fit(blocks[-1], max(0, len(blocks[-1]) - excess))[0]
    return fit(_join(blocks, left_out, ending), max_chars)[0]


def _join(blocks: list[str], left_out: int, ending: str) -> str:
    shown = f"{len(blocks)} frame{'s' if len(blocks) != 1 else ''} of the user's code"
    more = f", {left_out} outer frame{'s' if left_out != 1 else ''} left out" if left_out else ""
    return "\n\n".join([f"Traceback (most recent call last; {shown}{more}):", *blocks, ending])


def _internal(frame: FrameType) -> bool:
    module = frame.f_globals.get("__name__")
    return isinstance(module, str) and module.split(".")[0] in INTERNAL


def _exception_line(exc: BaseException, reading: Reading) -> str:
    try:
        message = str(exc)
    except Exception:  # an exception class of the user's with a broken __str__
        message = "<str raised>"
    line = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
    return f"{line}: {head(message, MESSAGE_CHARS, reading)}" if message else line


def _frame(frame: FrameType, lineno: int) -> str:
    code = frame.f_code
    lines = [f'File "{code.co_filename}", line {lineno}, in {code.co_name}', *_source(frame, lineno)]
    if code.co_name == "<module>":  # a cell's or a script's frame: its locals are the whole namespace
        lines.append("locals: (module level: the namespace, not listed)")
        return "\n".join(lines)
    names = list(frame.f_locals.items())
    if names:
        lines.append("locals:")
        for name, value in names[:LOCALS]:
            summary = summarize(name, value, max_chars=LOCAL_CHARS)
            text = f"{name}: {summary.text}" if looks_secret(name) else summary.text
            lines.append("  " + text.replace("\n", "\n    "))
        if len(names) > LOCALS:
            lines.append(f"  ... {len(names) - LOCALS} more")
    return "\n".join(lines)


def _source(frame: FrameType, lineno: int) -> list[str]:
    """Return the lines around ``lineno``, numbered, the failing one marked with ``->``."""
    lines = linecache.getlines(frame.f_code.co_filename, frame.f_globals)
    if not lines:
        return ["    (source not available)"]
    first = max(1, lineno - LINES_BEFORE)
    last = min(len(lines), lineno + LINES_AFTER)
    reading = Reading()
    return [
        f"{'->' if n == lineno else '  '} {n:>4} | {head(lines[n - 1].rstrip(), 200, reading)}"
        for n in range(first, last + 1)
    ]
