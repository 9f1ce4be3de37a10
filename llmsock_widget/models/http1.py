"""An HTTP/1.1 response body's framing: bytes off the socket in, the body's bytes out.  Pure.

:class:`ChunkedBody` decodes ``Transfer-Encoding: chunked`` (RFC 9112 section 7.1) in whatever
pieces the socket gives, joining the data of every chunk one piece holds into one ``bytes``:
a fast server sends one chunk per server-sent event, and a per-chunk parser (h11's, under
httpx) was half the cost of reading an answer.  :class:`LengthBody` reads ``Content-Length``
bytes, :class:`ClosedBody` everything up to the end of the connection.  :func:`framing` picks
one from a response's status and headers.

Each reader's ``feed`` returns the body bytes a piece completes; :attr:`done` says the body
ended (what follows belongs to the next response, :attr:`rest`).  Malformed framing raises
:class:`FramingError`.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ChunkedBody", "ClosedBody", "FramingError", "LengthBody", "framing"]

MAX_LINE = 4096  # bytes of a chunk-size line or a trailer line, at most


class FramingError(ValueError):
    """The body's framing is malformed (a bad chunk size, a missing CRLF, a line too long)."""


class ChunkedBody:
    """Decode a chunked body.  Pure: no I/O."""

    __slots__ = ("_buffer", "_crlf", "_left", "_trailer", "done", "rest")

    def __init__(self) -> None:
        self._buffer = b""  # bytes received and not yet decoded: a size line or a CRLF cut in two
        self._left = 0  # data bytes of the current chunk still to come
        self._crlf = False  # a chunk's data was read: its CRLF comes next
        self._trailer = False  # the last chunk was read: trailer lines until an empty one
        self.done = False
        self.rest = b""  # bytes after the body's end

    def feed(self, data: bytes) -> bytes:
        """Return the body bytes that ``data`` (the next bytes off the socket) holds."""
        if self.done:
            self.rest += data
            return b""
        buffer = self._buffer + data if self._buffer else data
        out: list[bytes] = []
        at = 0
        end = len(buffer)
        while at < end:
            if self._left:  # inside a chunk's data
                take = min(self._left, end - at)
                out.append(buffer[at : at + take])
                at += take
                self._left -= take
                if self._left:
                    break
                self._crlf = True
            if self._crlf:
                if end - at < 2:
                    break
                if buffer[at : at + 2] != b"\r\n":
                    raise FramingError("a chunk's data does not end with CRLF")
                at += 2
                self._crlf = False
                continue
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                if end - at > MAX_LINE:
                    raise FramingError("a chunk-size or trailer line is too long")
                break
            if line_end - at > MAX_LINE:
                raise FramingError("a chunk-size or trailer line is too long")
            line = buffer[at:line_end]
            at = line_end + 2
            if self._trailer:
                if not line:  # the empty line after the trailers: the body ends here
                    self.done = True
                    self.rest = buffer[at:]
                    at = end
                    break
                continue
            self._left = _chunk_size(line)
            if self._left == 0:
                self._trailer = True
        self._buffer = buffer[at:] if at < end else b""
        return out[0] if len(out) == 1 else b"".join(out)


class LengthBody:
    """Read a body of ``Content-Length`` bytes.  Pure: no I/O."""

    __slots__ = ("_left", "done", "rest")

    def __init__(self, length: int) -> None:
        self._left = length
        self.done = length == 0
        self.rest = b""

    def feed(self, data: bytes) -> bytes:
        """Return the body bytes that ``data`` holds."""
        if self.done:
            self.rest += data
            return b""
        body = data[: self._left]
        self._left -= len(body)
        if self._left == 0:
            self.done = True
            self.rest = data[len(body) :]
        return body


class ClosedBody:
    """Read a body that ends when the connection does.  Pure: no I/O."""

    __slots__ = ("done", "rest")

    def __init__(self) -> None:
        self.done = False
        self.rest = b""

    def feed(self, data: bytes) -> bytes:
        """Return ``data``: all of it is body."""
        return data


Body = ChunkedBody | LengthBody | ClosedBody


def framing(status: int, headers: Sequence[tuple[bytes, bytes]], *, head: bool = False) -> Body:
    """Return the reader of a response's body, from its status and (lower-case) headers.

    Raises:
        FramingError: a transfer coding other than chunked, or a bad ``Content-Length``.
    """
    if head or status in (204, 304) or 100 <= status < 200:
        return LengthBody(0)
    codings = [
        v.strip().lower() for k, value in headers if k == b"transfer-encoding" for v in value.split(b",")
    ]
    if codings:
        if codings != [b"chunked"]:  # as h11: no server sends another transfer coding
            raise FramingError(f"unsupported transfer coding: {b', '.join(codings).decode('latin-1')}")
        return ChunkedBody()
    lengths = {value.strip() for k, value in headers if k == b"content-length"}
    if not lengths:
        return ClosedBody()
    if len(lengths) != 1 or not next(iter(lengths)).isdigit():
        raise FramingError("a bad Content-Length")
    return LengthBody(int(next(iter(lengths))))


def _chunk_size(line: bytes) -> int:
    size = line.split(b";", 1)[0].strip(b" \t")  # chunk extensions are ignored
    if not size or len(size) > 16 or size.strip(_HEX):  # int() alone would take "0x1f", "+1", "1_0"
        raise FramingError(f"a bad chunk size: {line[:40]!r}")
    return int(size, 16)


_HEX = b"0123456789abcdefABCDEF"
