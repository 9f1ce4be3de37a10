"""The HTTP transport under the ``openai`` client for plain-HTTP servers: each body read in blocks.

Local servers (llama.cpp, vLLM, Ollama, LiteLLM) speak plain HTTP on a local port and stream
thousands of tokens a second, one HTTP chunk per server-sent event.  Under ``httpx`` every
chunk goes through h11's parser and four async generators, which was half of what reading an
answer cost.  :class:`Http1Transport` sends the request and reads the response head with h11
(as httpx does) but reads the body itself, one socket read at a time, with the pure framing
readers of :mod:`.http1`: one ``bytes`` per read, however many chunks it holds.

It is mounted for ``http://`` URLs only, and only when no proxy is configured for them
(:func:`mounts`): https and proxied requests keep httpx's own transport.  The ``openai`` client
above it still builds the request, authenticates, retries, times out and reads errors; this
transport raises httpx's exceptions (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``,
``ReadError``, ``WriteError``, ``RemoteProtocolError``) so that the client sees what it would
see from httpx.  Connections are kept for :data:`KEEPALIVE` seconds after a body was read to
its end; a request that finds a kept connection closed by the server is sent again on a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import h11
import openai

from ..aio import within
from .http1 import Body, ClosedBody, FramingError, framing

__all__ = ["KEEPALIVE", "Http1Transport", "mounts"]

# The httpx the installed openai is built on: httpx, or its successor httpx2 (same API).
httpx: Any = importlib.import_module(openai.DefaultAsyncHttpxClient.__mro__[1].__module__.partition(".")[0])


READ_SIZE = 16384  # bytes asked of the socket per read: about 80 chunks, a fraction of a millisecond to parse
KEEPALIVE = 5.0  # seconds an idle connection is kept (httpx's default too)
MAX_IDLE = 8  # idle connections kept per server


def mounts() -> dict[str, Any]:
    """Return the ``mounts`` of the model's HTTP client: this transport for ``http://``, unless proxied."""
    proxies = urllib.request.getproxies()  # what httpx reads from the environment, too
    if "http" in proxies or "all" in proxies:
        return {}
    return {"http://": Http1Transport()}


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def close(self) -> None:
        self.writer.close()


class _Stale(Exception):
    """A kept connection turned out closed before any byte of the response: send on a new one."""


class Http1Transport(httpx.AsyncBaseTransport):  # type: ignore[misc]  # httpx is resolved at import
    """An ``httpx`` transport for plain HTTP/1.1 that reads response bodies in blocks."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def handle_async_request(self, request: Any) -> Any:
        """Send ``request``; return the response as soon as its head arrived (the body streams)."""
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"this transport reads http:// only, not {url.scheme}://")
        timeouts = request.extensions.get("timeout", {})
        origin = (url.host, url.port or 80)
        content = await request.aread()
        connection = self._kept(origin)
        while True:
            reused = connection is not None
            if connection is None:
                connection = await _connect(request, origin, timeouts.get("connect"))
            try:
                response, rest = await _exchange(request, content, connection, timeouts, reused=reused)
            except _Stale:
                connection.close()
                connection = self._kept(origin)
                continue
            except BaseException:
                connection.close()
                raise
            break
        headers = [(name.lower(), value) for name, value in response.headers.raw_items()]
        try:
            body = framing(response.status_code, headers, head=request.method == "HEAD")
        except FramingError as exc:
            connection.close()
            raise httpx.RemoteProtocolError(str(exc), request=request) from None
        keep = (
            response.http_version == b"1.1" and not _says_close(headers) and not isinstance(body, ClosedBody)
        )
        stream = _BodyStream(self, origin, connection, body, rest, request, timeouts.get("read"), keep)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers.raw_items(),
            stream=stream,
            extensions={"http_version": b"HTTP/" + response.http_version, "reason_phrase": response.reason},
        )

    async def aclose(self) -> None:
        """Close the kept connections."""
        kept = [connection for connections in self._idle.values() for connection in connections]
        self._idle.clear()
        for connection in kept:
            connection.close()
        for connection in kept:
            with contextlib.suppress(OSError):
                await connection.writer.wait_closed()

    def _kept(self, origin: tuple[str, int]) -> _Connection | None:
        kept = self._idle.get(origin)
        now = time.monotonic()
        while kept:
            connection = kept.pop()
            if now - connection.idle_since < KEEPALIVE and not connection.reader.at_eof():
                return connection
            connection.close()
        return None

    def keep(self, origin: tuple[str, int], connection: _Connection) -> None:
        """Keep a connection whose response was read to its end, for the next request."""
        kept = self._idle.setdefault(origin, [])
        if len(kept) >= MAX_IDLE:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        kept.append(connection)


class _BodyStream(httpx.AsyncByteStream):  # type: ignore[misc]  # httpx is resolved at import
    """A response body, read from the socket in blocks; the connection is kept when read to its end."""

    def __init__(
        self,
        transport: Http1Transport,
        origin: tuple[str, int],
        connection: _Connection,
        body: Body,
        rest: bytes,
        request: Any,
        timeout: float | None,
        keep: bool,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection: _Connection | None = connection
        self._body = body
        self._rest = rest
        self._request = request
        self._timeout = timeout
        self._keep = keep

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            raise httpx.StreamClosed()
        body = self._body
        if self._rest:
            data, self._rest = self._rest, b""
            piece = _feed(body, data, self._request)
            if piece:
                yield piece
        while not body.done:
            data = await _read(self._request, connection, self._timeout)
            if not data:
                if isinstance(body, ClosedBody):
                    break
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body", request=self._request
                )
            piece = _feed(body, data, self._request)
            if piece:
                yield piece
        self._connection = None
        if self._keep and body.done and not body.rest:
            self._transport.keep(self._origin, connection)
        else:
            connection.close()

    async def aclose(self) -> None:
        """Close the connection unless the body was read to its end (then it is kept)."""
        if self._connection is not None:
            self._connection.close()  # the server sees the client leave: it stops generating
            self._connection = None


def _feed(body: Body, data: bytes, request: Any) -> bytes:
    try:
        return body.feed(data)
    except FramingError as exc:
        raise httpx.RemoteProtocolError(str(exc), request=request) from None


def _request_bytes(request: Any, content: bytes) -> tuple[h11.Connection, bytes]:
    """Return the request as sent on the wire (h11 writes it, as under httpx), and h11 to read the answer."""
    parser = h11.Connection(our_role=h11.CLIENT)
    target = request.url.raw_path
    try:
        data = parser.send(h11.Request(method=request.method, target=target, headers=request.headers.raw))
        if content:
            data += parser.send(h11.Data(data=content))
        data += parser.send(h11.EndOfMessage())
    except h11.LocalProtocolError as exc:
        raise httpx.LocalProtocolError(str(exc), request=request) from None
    return parser, data


async def _connect(request: Any, origin: tuple[str, int], timeout: float | None) -> _Connection:
    try:
        reader, writer = await within(asyncio.open_connection(*origin, limit=2 * READ_SIZE), timeout)
    except asyncio.TimeoutError:
        raise httpx.ConnectTimeout("timed out connecting", request=request) from None
    except OSError as exc:
        raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from None
    return _Connection(reader, writer)


async def _exchange(
    request: Any, content: bytes, connection: _Connection, timeouts: dict[str, Any], *, reused: bool
) -> tuple[Any, bytes]:
    """Send the request; return the response's head (an ``h11.Response``) and the bytes read after it.

    Raises:
        _Stale: a kept connection was closed by the server before any byte of the response.
    """
    parser, message = _request_bytes(request, content)
    writer = connection.writer
    try:
        writer.write(message)
        await within(writer.drain(), timeouts.get("write"))
    except asyncio.TimeoutError:
        raise httpx.WriteTimeout("timed out sending the request", request=request) from None
    except OSError as exc:
        if reused:
            raise _Stale() from None
        raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from None
    received = False
    while True:
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from None
        if event is h11.NEED_DATA:
            try:
                data = await _read(request, connection, timeouts.get("read"))
            except httpx.ReadError:
                if reused and not received:
                    raise _Stale() from None
                raise
            if not data and not received:
                if reused:
                    raise _Stale()
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                )
            received = received or bool(data)
            parser.receive_data(data)  # b"": the server closed; h11 says what that means here
        elif isinstance(event, h11.Response):
            return event, parser.trailing_data[0]
        elif isinstance(event, h11.ConnectionClosed):
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        # an informational (1xx) response: the real one follows


async def _read(request: Any, connection: _Connection, timeout: float | None) -> bytes:
    try:
        # A stream that comes token by token reads once per token: within() (asyncio.timeout)
        # costs about 7 µs a read, asyncio.wait_for (which wraps the read in a task) about 21 µs.
        return await within(connection.reader.read(READ_SIZE), timeout)
    except asyncio.TimeoutError:
        raise httpx.ReadTimeout("timed out reading", request=request) from None
    except OSError as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from None


def _says_close(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        token.strip().lower() == b"close"
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
    )
