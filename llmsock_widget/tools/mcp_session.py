"""One MCP server's client session, kept open by one task on the llmsock server's loop.

The official ``mcp`` package (imported here, and only when an MCP server is added) runs
on anyio: a transport's context must be entered and left by the same task.  So one
runner task per MCP server enters the transport and the ``ClientSession``, reports the
server's tools, and waits until it is told to close; calls come from other tasks of the
same loop (the turns) through :meth:`McpSession.call`.

Stopping the llmsock server cancels every task on its loop: the runner then still leaves
its contexts in order, so a stdio server's process is stopped, not left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import tempfile
from dataclasses import dataclass, field
from typing import IO, Any, Callable

START_TIMEOUT = 30.0
"""Seconds an MCP server may take to start, answer ``initialize`` and list its tools."""

STDERR_TAIL_CHARS = 600
"""How much of a stdio server's stderr a start failure quotes."""


class McpToolError(Exception):
    """An MCP server refused or failed a call, or is not running; the message says which."""


@dataclass(frozen=True, kw_only=True, slots=True)
class McpTransport:
    """How to reach an MCP server: a command line (stdio) or a ``url`` (streamable HTTP)."""

    command: tuple[str, ...] = ()
    url: str | None = None
    env: dict[str, str] | None = field(default=None, hash=False)
    cwd: str | None = None

    @classmethod
    def of(
        cls,
        *,
        command: str | list[str] | tuple[str, ...] | None = None,
        url: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> McpTransport:
        """Return the transport for exactly one of ``command`` (a list, or a shell-like string) and ``url``.

        Raises:
            ValueError: both or neither given, an empty command, or a URL that is not http(s).
        """
        if (command is None) == (url is None):
            raise ValueError("give an MCP server either command=[...] (stdio) or url=... (streamable HTTP)")
        if url is not None:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ValueError(f"an MCP server's url must start with http:// or https://, not {url!r}")
            return cls(url=url, env=env, cwd=cwd)
        parts = tuple(shlex.split(command) if isinstance(command, str) else command or ())
        if not parts or not all(isinstance(part, str) and part for part in parts):
            raise ValueError(f"an MCP server's command must be a program and its arguments, not {command!r}")
        return cls(command=parts, env=None if env is None else dict(env), cwd=cwd)

    def describe(self) -> str:
        """Return the command line or the URL, as the user gave it."""
        return self.url if self.url is not None else shlex.join(self.command)


class McpSession:
    """A running MCP server: its tools as listed, and calls to them (on the loop that opened it)."""

    def __init__(self, name: str, transport: McpTransport) -> None:
        self.name = name
        self.transport = transport
        self.tools: list[Any] = []  # mcp.types.Tool, as the server listed them
        self.failure: str | None = None  # why calls fail now (the connection closed), or None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._session: Any = None
        self._closing: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stderr: IO[str] | None = None
        self.on_close: Callable[[], None] | None = None  # called once the session has closed

    async def open(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server (or connect to it), initialize the session and list its tools.

        Raises:
            McpToolError: the server could not be started or reached, or did not answer in time.
        """
        self.loop = asyncio.get_running_loop()
        self._closing = asyncio.Event()
        ready: asyncio.Future[None] = self.loop.create_future()
        self._runner = asyncio.create_task(self._run(ready, timeout), name=f"llmsock-mcp-{self.name}")
        await ready

    async def close(self) -> None:
        """Close the session (a stdio server's process is stopped); calling it again does nothing."""
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner

    @property
    def running(self) -> bool:
        """Whether the session is open and its connection has not closed."""
        return self._session is not None and self.failure is None

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        """Call the MCP tool ``tool``; return its result (see :func:`result_value`).

        Raises:
            McpToolError: the server answered with an error, or is not running.
        """
        loop = asyncio.get_running_loop()
        if self.loop is not None and loop is not self.loop:  # the session belongs to its own loop
            future = asyncio.run_coroutine_threadsafe(self.call(tool, arguments), self.loop)
            return await asyncio.wrap_future(future)
        from mcp import MCPError
        from mcp_types import CONNECTION_CLOSED

        session = self._session
        if session is None or self.failure is not None:
            raise McpToolError(self._not_running())
        try:
            result = await session.call_tool(tool, arguments)
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                self.failure = "its connection closed"
                raise McpToolError(self._not_running()) from None
            raise McpToolError(f"MCP server {self.name!r} refused the call: {exc.message}") from None
        if result.is_error:
            raise McpToolError(
                f"MCP server {self.name!r} says: {_text_of(result.content) or 'the call failed'}"
            )
        return result_value(result)

    def _not_running(self) -> str:
        why = f" ({self.failure})" if self.failure else ""
        return (
            f"MCP server {self.name!r} is not running{why}; "
            f"remove it and add it again: %llmsock mcp remove {self.name}"
        )

    async def _run(self, ready: asyncio.Future[None], timeout: float) -> None:
        """Hold the transport and the session open until :meth:`close` (or the loop's shutdown)."""
        assert self._closing is not None
        try:
            async with contextlib.AsyncExitStack() as stack:
                session = await self._connect(stack, timeout)
                self._session = session
                ready.set_result(None)
                try:
                    await self._closing.wait()
                except asyncio.CancelledError:
                    # The llmsock server is stopping: leave the contexts in order all the same.
                    uncancel = getattr(asyncio.current_task(), "uncancel", None)
                    if uncancel is not None:  # 3.11+: or the awaits below would be cancelled too
                        uncancel()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(McpToolError(self._start_failure(exc)))
            elif not isinstance(exc, asyncio.CancelledError):
                self.failure = f"it failed: {_short(exc)}"
        finally:
            self._session = None
            if self.failure is None:
                self.failure = "it was closed"
            if self._stderr is not None:
                self._stderr.close()
            if self.on_close is not None:
                self.on_close()

    async def _connect(self, stack: contextlib.AsyncExitStack, timeout: float) -> Any:
        """Enter the transport and the session on ``stack``; return the initialized session."""
        import anyio
        from mcp import ClientSession

        streams = await stack.enter_async_context(self._transport_context())
        session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
        with anyio.fail_after(timeout):
            await session.initialize()
            self.tools = await _list_tools(session)
        return session

    def _transport_context(self) -> contextlib.AbstractAsyncContextManager[Any]:
        transport = self.transport
        if transport.url is not None:
            from mcp.client.streamable_http import streamable_http_client

            return streamable_http_client(transport.url)
        from mcp import StdioServerParameters, stdio_client

        # The server's stderr is kept (not shown in a cell) so that a start failure can quote it.
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
        command, *args = transport.command
        parameters = StdioServerParameters(command=command, args=args, env=transport.env, cwd=transport.cwd)
        return stdio_client(parameters, errlog=self._stderr)

    def _start_failure(self, exc: BaseException) -> str:
        late = isinstance(_innermost(exc), TimeoutError)
        failed = "could not start" if self.transport.url is None else "could not be reached"
        what = "did not answer in time" if late else f"{failed}: {_short(exc)}"
        message = f"MCP server {self.name!r} ({self.transport.describe()}) {what}"
        tail = self._stderr_tail()
        return f"{message}; its stderr ends: {tail}" if tail else message

    def _stderr_tail(self) -> str:
        stderr = self._stderr
        if stderr is None or stderr.closed:
            return ""
        try:
            stderr.seek(0)
            text = stderr.read()
        except (OSError, ValueError):
            return ""
        return " ".join(text.split())[-STDERR_TAIL_CHARS:]


async def _list_tools(session: Any) -> list[Any]:
    """Return every tool the server lists, following its pages."""
    from mcp.types import PaginatedRequestParams

    tools: list[Any] = []
    cursor: str | None = None
    while True:
        params = None if cursor is None else PaginatedRequestParams(cursor=cursor)
        page = await session.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools


def result_value(result: Any) -> Any:
    """Return a call's result for the model: its structured content when given, else its text.

    Text parts are joined by newlines; other parts (images, audio, resources) are named, not sent.
    """
    if result.structured_content is not None:
        return result.structured_content
    return _text_of(result.content)


def _text_of(content: list[Any]) -> str:
    parts = []
    for block in content:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource" and isinstance(getattr(block.resource, "text", None), str):
            parts.append(block.resource.text)
        else:
            mime = getattr(block, "mime_type", None) or getattr(
                getattr(block, "resource", None), "mime_type", ""
            )
            parts.append(f"[{kind or 'content'}{f' {mime}' if mime else ''} not shown]")
    return "\n".join(parts)


def _innermost(exc: BaseException) -> BaseException:
    """Return the first exception of ``exc``'s (nested) exception groups, or ``exc``.

    An anyio task group wraps the cause in an ExceptionGroup: the user is told the cause.
    """
    inner = getattr(exc, "exceptions", None)
    while isinstance(inner, tuple) and inner and isinstance(inner[0], BaseException):
        exc = inner[0]
        inner = getattr(exc, "exceptions", None)
    return exc


def _short(exc: BaseException, limit: int = 300) -> str:
    exc = _innermost(exc)
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
