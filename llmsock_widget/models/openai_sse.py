"""Reading a chat-completion stream's server-sent events: bytes in, decoded chunks out.  Pure.

:class:`EventReader` takes the HTTP body in whatever pieces it arrives (a line may be split
anywhere, also between the CR and LF of a CRLF) and returns each event's data, parsed as JSON,
in order.  It follows the event-stream format of the HTML standard: lines end in LF, CRLF or
CR; a blank line ends an event; ``data:`` lines of one event are joined with LF; lines starting
with ``:`` are comments (``: keep-alive``); ``event:`` names the event; ``id:``, ``retry:`` and
unknown fields are ignored; an event whose data is empty, or cut off by the end of the body before
its blank line, is not dispatched; a UTF-8 byte order mark at the start is skipped.

Three things end the stream, after which the reader returns nothing more; :attr:`EventReader.end`
says which:

* ``data: [DONE]`` (OpenAI's last event): ``StreamEnd("done")``.
* An error the server sends inside the stream, as the ``openai`` package reads one: a data
  object with a truthy ``"error"`` member, or any event named ``error``.  ``StreamEnd("error",
  message)`` carries the text the ``openai`` package would raise as ``APIError.message``:
  ``error.message`` when it is a non-empty string, otherwise ``"An error occurred during
  streaming"`` (an ``error`` event without an ``"error"`` member gives its own ``"message"``,
  or its data if that is not JSON).
* Data that is not UTF-8 JSON: ``StreamEnd("not_json")``.

The data of other events (any JSON value) is returned as it is: the caller checks its shape.
JSON is parsed by ``orjson`` when it is installed (the ``openai`` extra brings it: three times
as fast on a chunk), with the standard library's parser for what ``orjson`` refuses (``NaN``,
lone surrogates), so what is accepted is exactly what ``json.loads`` accepts; only integers
past 64 bits come as floats (no field of a chunk holds one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

try:
    import orjson
except ImportError:  # pragma: no cover - the openai extra brings it
    orjson = None  # type: ignore[assignment]

__all__ = ["DEFAULT_ERROR_MESSAGE", "EventReader", "StreamEnd"]

DEFAULT_ERROR_MESSAGE = "An error occurred during streaming"
"""The message of an in-stream error that gives none (the ``openai`` package's words)."""

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """Why the stream ended before the body did: ``[DONE]``, an error event, or data that is not JSON."""

    kind: Literal["done", "error", "not_json"]
    message: str = ""  # for "error": the provider's own words, as the openai package reads them
    body: Any = None  # for "error": the error object (or the event's data)


class EventReader:
    """Split a chat-completion event stream into decoded data payloads.  Pure: no I/O, no clock."""

    __slots__ = ("_after_cr", "_data", "_event", "_partial", "_started", "end")

    def __init__(self) -> None:
        self.end: StreamEnd | None = None
        self._partial: list[bytes] = []  # the pieces of a line not yet ended
        self._after_cr = False  # the last piece ended in CR: an LF starting the next one is its pair
        self._started = False  # the first byte was seen (a byte order mark may only come first)
        self._data: list[bytes] = []  # the data lines of the event being read
        self._event = b""  # its event name

    def feed(self, chunk: bytes) -> list[Any]:
        """Return the data of every event that ``chunk`` completes, parsed as JSON, in order.

        Nothing is returned once :attr:`end` is set: events after ``[DONE]`` or an error are
        not read, like the ``openai`` package's stream.
        """
        if not chunk or self.end is not None:
            return []
        chunk = self._normalized(chunk)
        if b"\n" not in chunk:
            self._partial.append(chunk)
            return []
        if self._partial:
            self._partial.append(chunk)
            chunk = b"".join(self._partial)
            self._partial = []
        lines = chunk.split(b"\n")
        rest = lines.pop()
        if rest:
            self._partial.append(rest)
        return self._read(lines)

    def _normalized(self, chunk: bytes) -> bytes:
        """Return ``chunk`` with every line end as LF (a CRLF split between pieces is one line end)."""
        if not self._started:
            self._started = True
            if chunk.startswith(_BOM):  # a BOM split across pieces is not worth the code: servers send none
                chunk = chunk[len(_BOM) :]
        if b"\r" not in chunk:
            if self._after_cr and chunk.startswith(b"\n"):
                chunk = chunk[1:]
            self._after_cr = False
            return chunk
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._after_cr = chunk.endswith(b"\r")
        return chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

    def _read(self, lines: list[bytes]) -> list[Any]:
        out: list[Any] = []
        data = self._data
        for line in lines:
            if line.startswith(b"data:"):  # the hot path: one test per line
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif not line:
                joined = b"\n".join(data)
                data.clear()
                if joined:  # an event whose data is empty is not dispatched (the standard says so)
                    payload = self._dispatch(joined)
                    if self.end is not None:
                        break
                    out.append(payload)
                self._event = b""
            elif not line.startswith(b":"):  # not a comment: a field
                name, _, value = line.partition(b":")
                if name == b"data":  # "data" alone: an empty data line
                    data.append(b"")
                elif name == b"event":
                    self._event = value[1:] if value.startswith(b" ") else value
        return out

    def _dispatch(self, data: bytes) -> Any:
        """Return the event's decoded data, or set :attr:`end` (and return None) if the stream ends here."""
        if data.startswith(b"[DONE]"):
            self.end = StreamEnd("done")
            return None
        failed = self._event == b"error"
        try:
            payload = loads(data)
        except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors
            if failed:
                text = data.decode("utf-8", "replace").strip()
                self.end = StreamEnd("error", text or DEFAULT_ERROR_MESSAGE, text)
            else:
                self.end = StreamEnd("not_json")
            return None
        if isinstance(payload, dict) and payload.get("error"):
            self.end = StreamEnd("error", _message(payload["error"]), payload["error"])
        elif failed:
            own = payload.get("message") if isinstance(payload, dict) else None
            message = own if isinstance(own, str) and own else DEFAULT_ERROR_MESSAGE
            self.end = StreamEnd("error", message, payload)
        return payload


def loads(data: bytes) -> Any:
    """Return ``data`` (UTF-8 JSON) decoded, as ``json.loads`` would.

    Raises:
        ValueError: not UTF-8, or not JSON.
    """
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:  # stricter than json (NaN, lone surrogates): json decides
            pass
    return json.loads(data.decode("utf-8"))


def _message(error: object) -> str:
    """Return an error object's message as the ``openai`` package reads it."""
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) and message else DEFAULT_ERROR_MESSAGE
