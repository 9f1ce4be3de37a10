"""Run one tool call the model asked for and report how it went, never raising for the tool's faults.

Where a tool runs:

* an ``async def`` tool is awaited on the calling loop (the server thread),
  bounded by ``asyncio.wait_for``; on timeout it is cancelled.  A tool that
  swallows the cancellation keeps the call waiting: do not do that.
* a plain function runs on a worker thread, so neither the server's loop nor
  the kernel's main thread ever runs user code.  The workers belong to one
  shared pool (:data:`MAX_WORKERS` threads named ``llmsock-tool-*``, created on
  first use) unless the caller passes its own executor.

A timed-out plain function cannot be stopped: Python has no way to kill a
thread.  Its call is reported as ``timeout`` at once, its thread runs on until
the function returns, and its result is then discarded.  The pool's bound
means at most :data:`MAX_WORKERS` such stragglers; calls made while all workers
are busy wait in the pool's queue, and that wait counts toward their timeout
(a call that times out while queued never runs).  Interpreter exit waits for
running workers, so a tool that never returns also delays the kernel's shutdown.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from ..aio import within
from ..context import summarize
from ..errors import InvalidFrame
from ..wire.protocol import parse_arguments
from .registry import ToolRegistry, check_timeout
from .schema import InvalidArgument

MAX_WORKERS = 4
"""Threads in the shared pool for plain-function tools."""

THREAD_NAME_PREFIX = "llmsock-tool"
MAX_ERROR_CHARS = 500
"""An exception's message is cut to this many characters in ``tool_error``."""

ERROR_CODES = ("unknown_tool", "invalid_arguments", "tool_error", "timeout", "denied")

log = logging.getLogger("llmsock.tools")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


class LiveResult:
    """What a tool returns to hand the user a live object: ``value``, and what the model also sees.

    The model gets ``{**extra, "summary": <value's summary>}`` (just ``extra`` when ``value`` is
    None); the object itself is kept for the user by the call's id (``Hub.results``), never sent.

    >>> def load(path: str) -> LiveResult:
    ...     frame = read_table(path)
    ...     return LiveResult(frame, rows=len(frame))
    """

    __slots__ = ("extra", "value")

    def __init__(self, value: Any, **extra: Any) -> None:
        self.value = value
        self.extra = extra

    def __repr__(self) -> str:
        return f"LiveResult({type(self.value).__name__}, extra={sorted(self.extra)})"


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolOutcome:
    """How one tool call went: its JSON result, or an error ``{"code", "message"}``.

    ``code`` is one of :data:`ERROR_CODES`.  ``result`` is a JSON value, what the model reads.
    A tool that returned an object that is not plain JSON (a data frame, a model, a datetime)
    has that object in ``value`` and its summary in ``result`` (``{"summary": ...}``); ``value``
    is None for a plain JSON result.
    """

    ok: bool
    result: Any = None
    error: dict[str, str] | None = None
    duration_ms: float = 0.0
    value: Any = None

    def __post_init__(self) -> None:
        if self.ok != (self.error is None):
            raise ValueError("an outcome is ok exactly when it has no error")
        error = self.error
        if error is not None and (set(error) != {"code", "message"} or error["code"] not in ERROR_CODES):
            raise ValueError(f"an error is {{'code', 'message'}} with a known code, not {error!r}")

    def content(self) -> str:
        """Return the text of the ``{"role": "tool"}`` message: a string result as is, else JSON."""
        if self.ok and isinstance(self.result, str):
            return self.result
        return json.dumps(self.result if self.ok else {"error": self.error}, ensure_ascii=False)


async def call_tool(
    registry: ToolRegistry,
    name: str,
    arguments_json: str,
    *,
    timeout: float,
    executor: Executor | None = None,
) -> ToolOutcome:
    """Run the tool ``name`` of ``registry`` with the model's ``arguments_json`` and return the outcome.

    Every fault of the model or the tool becomes an outcome: ``unknown_tool``,
    ``invalid_arguments`` (not strict JSON as :func:`~llmsock_widget.protocol.parse_arguments`
    reads it, not an object, or not matching the schema),
    ``tool_error`` (``"<ExceptionType>: <message>"``) or ``timeout``.  Blank
    arguments count as ``{}``, since some providers send ``""`` for a call
    without parameters.

    Args:
        registry: Where ``name`` is looked up; nothing else is ever resolved.
        name: The tool's name as the model wrote it.
        arguments_json: The arguments as the model wrote them, a JSON object.
        timeout: Seconds the tool may run, unless it was registered with its own timeout.
        executor: Where a plain function runs; the shared ``llmsock-tool`` pool when None.

    Raises:
        ValueError: ``timeout`` is not a positive number (the caller's bug, not the tool's).
        asyncio.CancelledError: the call itself was cancelled (a plain function's thread runs on).
    """
    check_timeout(timeout)
    started = time.perf_counter()
    tool = registry.get(name)
    if tool is None:
        return _failed("unknown_tool", f"unknown tool {_short(repr(name))}", started)
    try:
        args, kwargs = tool.spec.bind(_decode(arguments_json))
    except InvalidArgument as exc:
        return _failed("invalid_arguments", str(exc), started)
    limit = tool.timeout if tool.timeout is not None else timeout
    try:
        if tool.is_async:
            raised, value = await within(_run_async(tool.fn, args, kwargs), limit)
        else:
            loop = asyncio.get_running_loop()
            pending = loop.run_in_executor(executor or _shared_pool(), _run_sync, tool.fn, args, kwargs)
            raised, value = await within(pending, limit)
    except asyncio.TimeoutError:
        # Only wait_for raises it here: the runners return the tool's own exceptions as values.
        straggler = "" if tool.is_async else "; if it started, its thread runs on and its result is discarded"
        log.warning("tool %r timed out after %g s%s", tool.name, limit, straggler)
        return _failed("timeout", f"tool {tool.name!r} did not finish within {limit:g} s", started)
    if raised:
        log.info("tool %r failed", tool.name, exc_info=value)
        return _failed("tool_error", _describe_exception(value), started)
    result, live = value
    return ToolOutcome(ok=True, result=result, value=live, duration_ms=_since(started))


def shutdown_pool(*, wait: bool = False) -> None:
    """Shut the shared pool down (queued calls are cancelled); the next call makes a new one."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=wait, cancel_futures=True)


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix=THREAD_NAME_PREFIX)
        return _pool


def _decode(arguments_json: str) -> dict[str, Any]:
    if not isinstance(arguments_json, str):
        raise InvalidArgument(f"arguments must be JSON text, not {type(arguments_json).__name__}")
    if not arguments_json.strip():
        return {}
    try:
        # The one strict parser of untrusted JSON: no NaN/Infinity, no duplicate keys, bounded depth
        # and integers, no lone surrogates; the same rules as a client's frames.
        arguments = parse_arguments(arguments_json)
    except InvalidFrame as exc:
        raise InvalidArgument(f"arguments are not valid JSON: {_short(exc.message, 200)}") from None
    if not isinstance(arguments, dict):
        raise InvalidArgument(f"arguments must be a JSON object, not {type(arguments).__name__}")
    return arguments


def _run_sync(fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> tuple[bool, Any]:
    """Call ``fn`` on this worker thread; return ``(raised, exception or (json result, live object))``.

    A live object is summarized here too, so a slow summary never runs on the server's loop.
    """
    try:
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()  # never awaited: no "was never awaited" warning
            raise TypeError("the tool returned an awaitable; register an async def function instead")
        return False, returned(result)
    except BaseException as exc:  # on a worker thread even SystemExit is only this tool's failure
        return True, exc


async def _run_async(fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> tuple[bool, Any]:
    """Await ``fn`` on this loop; return ``(raised, exception or (json result, live object))``.

    CancelledError (the timeout, or the call being cancelled) passes through.
    """
    try:
        return False, returned(await fn(*args, **kwargs))
    except (Exception, SystemExit) as exc:
        return True, exc


def returned(value: Any) -> tuple[Any, Any]:
    """Return what a tool returned as ``(the JSON result the model reads, the live object or None)``.

    Plain JSON (dict with string keys, list, str, int, float, bool, None all the way down) is
    the result itself, copied; anything else is a live object, which the model sees as its
    summary; a :class:`LiveResult` says both.
    """
    if isinstance(value, LiveResult):
        extra = _plain_copy(value.extra)
        if not isinstance(extra, dict):  # an extra that is not plain JSON is said in words
            extra = {"extra": summarize("extra", value.extra).text}
        if value.value is None:
            return extra, None
        return {**extra, "summary": summarize("result", value.value).text}, value.value
    plain = _plain_copy(value)
    if plain is not _NOT_PLAIN:
        return plain, None
    return {"summary": summarize("result", value).text}, value


_NOT_PLAIN = object()


def _plain_copy(value: Any, depth: int = 0) -> Any:
    """Return a fresh copy of ``value`` if it is plain JSON all the way down, else :data:`_NOT_PLAIN`.

    Plain: None, str, int, bool, a finite float, and lists and string-keyed dicts of those (exact
    types, at most :data:`MAX_PLAIN_DEPTH` deep), checked and copied in one walk.
    """
    kind = type(value)
    if value is None or kind in (str, int, bool):
        return value
    if kind is float:
        return value if math.isfinite(value) else _NOT_PLAIN
    if depth > MAX_PLAIN_DEPTH:
        return _NOT_PLAIN
    if kind is list:
        items = []
        for item in value:
            copied = _plain_copy(item, depth + 1)
            if copied is _NOT_PLAIN:
                return _NOT_PLAIN
            items.append(copied)
        return items
    if kind is dict:
        entries = {}
        for key, item in value.items():
            copied = _plain_copy(item, depth + 1) if type(key) is str else _NOT_PLAIN
            if copied is _NOT_PLAIN:
                return _NOT_PLAIN
            entries[key] = copied
        return entries
    return _NOT_PLAIN


MAX_PLAIN_DEPTH = 64
"""Deeper results are live objects: their summary, not their nesting, goes to the model."""


def _describe_exception(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:
        message = "(its message could not be read)"
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 1] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _failed(code: str, message: str, started: float) -> ToolOutcome:
    return ToolOutcome(ok=False, error={"code": code, "message": message}, duration_ms=_since(started))


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
