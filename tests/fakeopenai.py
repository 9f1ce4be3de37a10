"""A local OpenAI-compatible chat server for tests: real HTTP, real SSE, scripted replies.

::

    with FakeOpenAI() as server:
        server.enqueue(text(["Hel", "lo"]), error(status=429, headers={"Retry-After": "7"}))
        model = OpenAICompatModel(model="gpt-test", base_url=server.base_url, api_key="sk-test")
        ...
        assert server.requests[0].body["model"] == "gpt-test"

Each ``POST /v1/chat/completions`` takes the next queued :class:`Script` (or the default one)
and answers in the wire format of the OpenAI API: ``data: {chunk}\\n\\n`` server-sent events
over chunked transfer encoding, a last chunk with ``finish_reason``, a usage chunk with
``"choices": []`` when the request set ``stream_options.include_usage``, then ``data: [DONE]``.
A request without ``stream: true`` gets the whole ``chat.completion`` object instead.
``GET /v1/models`` lists the model names seen so far.  ``FakeOpenAI(strict_roles=True)``
refuses, as llama.cpp does with Gemma's chat template, a conversation whose roles do not
alternate (:func:`gemma_refusal`): HTTP 400, and the queued script is kept for the next request.

Scripts compose with ``+``: the steps run in order and the right-hand script decides how the
stream ends, e.g. ``reasoning(["Think"]) + text(["Answer"])`` or
``text(["Let me check."]) + tool_calls([...])``.

Holding scripts (:func:`hang_after`, :func:`stall`) park until :meth:`FakeOpenAI.release` is
called, the client disconnects, or the server stops.  A response cut short by the client sets
:attr:`FakeOpenAI.disconnected`, which tests wait on to prove an abort closed the connection.
The server runs in a background thread on 127.0.0.1, port 0; :meth:`FakeOpenAI.stop` is
idempotent and releases every held response.
"""

from __future__ import annotations

import itertools
import json
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Union

__all__ = [
    "FakeOpenAI",
    "RecordedRequest",
    "Script",
    "SilentServer",
    "cut_tool_call",
    "dropped",
    "error",
    "gemma_refusal",
    "hang_after",
    "malformed",
    "page",
    "raw",
    "reasoning",
    "slow",
    "stall",
    "text",
    "tool_calls",
    "truncated",
]

# How often a parked response looks at its socket and its events.  This is the server's own
# polling; tests never wait on it, they wait on events.
_POLL = 0.005


# --- scripts -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Delta:
    """Send one chunk whose ``choices[0].delta`` is ``delta``."""

    delta: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Raw:
    """Send ``data: <data>`` verbatim (not necessarily JSON)."""

    data: str


@dataclass(frozen=True, slots=True)
class _Hold:
    """Park until released, the client disconnects or the server stops."""


@dataclass(frozen=True, slots=True)
class _Pause:
    """Wait ``seconds`` (ended early by a disconnect or the server stopping)."""

    seconds: float


Step = Union[_Delta, _Raw, _Hold, _Pause]
Ending = Literal["finish", "close", "eof", "drop"]


@dataclass(frozen=True, slots=True)
class Script:
    """How the server answers one request.

    Attributes:
        steps: what to send after the headers, in order.
        ending: ``"finish"`` (finish chunk, usage, ``[DONE]``), ``"close"`` (drop the TCP
            connection mid-body), ``"eof"`` (end the HTTP body cleanly with no finish chunk
            and no ``[DONE]``) or ``"drop"`` (close the connection on the request, sending
            nothing: what a server does to a kept connection it timed out as the request came).
        finish_reason: the last chunk's ``finish_reason`` when ``ending == "finish"``.
        usage: ``(prompt_tokens, completion_tokens)``; None counts words and chunks.
        status, body, headers: an HTTP error response instead of a stream, when ``status`` is set.
        before: steps run before any byte of the response (e.g. to provoke a client timeout).
    """

    steps: tuple[Step, ...] = ()
    ending: Ending = "finish"
    finish_reason: str = "stop"
    usage: tuple[int, int] | None = None
    status: int | None = None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    before: tuple[Step, ...] = ()

    def __add__(self, other: Script) -> Script:
        """Run ``self``'s steps then ``other``'s; ``other`` decides the ending."""
        if self.status is not None or other.status is not None:
            raise ValueError("an error script answers alone; it cannot be combined")
        return replace(other, steps=self.steps + other.steps, before=self.before + other.before)

    def finishing(self, reason: str) -> Script:
        """Return this script ending with ``finish_reason=reason`` (e.g. ``"length"``)."""
        return replace(self, ending="finish", finish_reason=reason)

    def with_usage(self, prompt_tokens: int, completion_tokens: int) -> Script:
        """Return this script reporting exactly these token counts."""
        return replace(self, usage=(prompt_tokens, completion_tokens))


def text(texts: Iterable[str], *, finish_reason: str = "stop") -> Script:
    """Stream ``texts`` as ``delta.content`` pieces, then finish."""
    return Script(steps=tuple(_Delta({"content": piece}) for piece in texts), finish_reason=finish_reason)


def reasoning(texts: Iterable[str], *, key: str = "reasoning_content") -> Script:
    """Stream ``texts`` as reasoning deltas (``reasoning_content`` like vLLM/DeepSeek, or ``reasoning``)."""
    return Script(steps=tuple(_Delta({key: piece}) for piece in texts))


def tool_calls(calls: Sequence[Mapping[str, str]], *, split_into: int = 1) -> Script:
    """Stream tool calls (``{"id", "name", "arguments"}``) the way OpenAI does, then finish "tool_calls".

    Each call's first fragment carries its index, id, type and name with empty arguments; the
    arguments JSON then follows in ``split_into`` pieces.
    """
    steps: list[Step] = []
    for index, call in enumerate(calls):
        head = {"index": index, "id": call["id"], "type": "function"}
        steps.append(_Delta({"tool_calls": [{**head, "function": {"name": call["name"], "arguments": ""}}]}))
        for piece in _split(call["arguments"], split_into):
            steps.append(_Delta({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    return Script(steps=tuple(steps), finish_reason="tool_calls")


def cut_tool_call(name: str, arguments: str, *, call_id: str = "call_cut") -> Script:
    """Stream the start of a tool call whose arguments the token limit cut off: finish "length"."""
    return tool_calls([{"id": call_id, "name": name, "arguments": arguments}], split_into=2).finishing(
        "length"
    )


def gemma_refusal(messages: object) -> str | None:
    """Return why Gemma's chat template refuses ``messages`` (as llama.cpp renders it), or None.

    After an optional first system message, message ``i`` must be a user message exactly
    when ``i`` is even, and every content must be a string (or a list of parts).
    """
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return "messages must be a list of objects"
    rest = messages[1:] if messages and messages[0].get("role") == "system" else messages
    for index, message in enumerate(rest):
        if (message.get("role") == "user") != (index % 2 == 0):
            return "Conversation roles must alternate user/assistant/user/assistant/..."
        if not isinstance(message.get("content"), (str, list)):
            return "Invalid content type"
    return None


def error(
    status: int, body: Any = None, *, headers: Mapping[str, str] | None = None, message: str | None = None
) -> Script:
    """Answer with HTTP ``status`` and a JSON error body (OpenAI's shape unless ``body`` is given)."""
    if body is None:
        body = {
            "error": {
                "message": message or f"fake error {status}",
                "type": "fake_error",
                "param": None,
                "code": None,
            }
        }
    return Script(status=status, body=body, headers=dict(headers or {}))


def page(status: int, body: str, *, content_type: str = "text/html; charset=utf-8") -> Script:
    """Answer with HTTP ``status`` and a body that is not JSON (a proxy's error page, plain text)."""
    return Script(status=status, body=body.encode(), headers={"Content-Type": content_type})


def raw(data: str, *, then: Script | None = None) -> Script:
    """Send the data line ``data: <data>`` verbatim, then ``then``'s steps and ending."""
    return Script(steps=(_Raw(data),)) + (then or Script())


def malformed(before: Iterable[str] = ()) -> Script:
    """Stream ``before`` as text, then a data line that is not JSON."""
    return text(before) + raw('{"id": "broken", "choices": [')


def truncated(n: int, *, clean: bool = False) -> Script:
    """Stream ``n`` text chunks, then drop the connection (or, if ``clean``, end the body) with no finish."""
    return Script(
        steps=tuple(_Delta({"content": f"tok{i} "}) for i in range(n)), ending="eof" if clean else "close"
    )


def dropped() -> Script:
    """Close the connection as the request arrives, before any byte of a response."""
    return Script(ending="drop")


def slow(texts: Iterable[str], delay: float) -> Script:
    """Stream ``texts`` with ``delay`` seconds before each piece (server-side)."""
    steps: list[Step] = []
    for piece in texts:
        steps += [_Pause(delay), _Delta({"content": piece})]
    return Script(steps=tuple(steps))


def hang_after(n: int, *, then: Iterable[str] = ()) -> Script:
    """Stream ``n`` text chunks, park until released (or disconnected), then stream ``then`` and finish."""
    steps: list[Step] = [_Delta({"content": f"tok{i} "}) for i in range(n)]
    steps.append(_Hold())
    steps += [_Delta({"content": piece}) for piece in then]
    return Script(steps=tuple(steps))


def stall(then: Script | None = None) -> Script:
    """Send nothing at all (not even headers) until released or disconnected, then answer with ``then``."""
    inner = then or text(["ok"])
    return replace(inner, before=(_Hold(), *inner.before))


def _split(text_: str, parts: int) -> list[str]:
    """Split ``text_`` into ``parts`` contiguous pieces (fewer if it is shorter)."""
    parts = max(1, min(parts, len(text_)))
    size, extra = divmod(len(text_), parts)
    pieces, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text_[start:end])
        start = end
    return pieces


# --- the server ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]  # names lowercased
    body: Any  # parsed JSON, or None if the body was empty or not JSON
    raw: bytes
    peer: int = 0  # the client's port: requests on one kept connection share it


class _Disconnected(Exception):
    """The client closed the connection while we were answering."""


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1:0 in a background thread, answering from a script queue."""

    def __init__(
        self, *, default: Script | None = None, host: str = "127.0.0.1", strict_roles: bool = False
    ) -> None:
        """Prepare the server; ``default`` answers when no script is queued (a short greeting).

        With ``strict_roles`` it refuses what Gemma's chat template refuses (:func:`gemma_refusal`).
        """
        self.default = default or text(["Hello", " from", " the", " fake", " server."])
        self.host = host
        self.strict_roles = strict_roles
        self.requests: list[RecordedRequest] = []
        self.disconnected = threading.Event()
        self.disconnects = 0
        self._scripts: deque[Script] = deque()
        self._lock = threading.Condition()
        self._released = threading.Event()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)

    # lifecycle

    def start(self) -> FakeOpenAI:
        """Start listening (idempotent) and return self."""
        if self._httpd is not None:
            return self
        httpd = ThreadingHTTPServer((self.host, 0), _handler_class(self))
        httpd.daemon_threads = True
        self._httpd = httpd
        self._stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": _POLL * 10}, name="fakeopenai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release held responses, stop listening and free the port (idempotent)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._httpd is None:
            raise RuntimeError("the fake OpenAI server is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The ``base_url`` to give an OpenAI client (ends in ``/v1``)."""
        return f"http://{self.host}:{self.port}/v1"

    # scripting and assertions

    def enqueue(self, *scripts: Script) -> None:
        """Answer the next requests with ``scripts``, in order."""
        with self._lock:
            self._scripts.extend(scripts)

    def release(self) -> None:
        """Let every held response (now and later) go on."""
        self._released.set()

    def hold(self) -> None:
        """Make later holding scripts park again (undo :meth:`release`)."""
        self._released.clear()

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` requests have arrived; return whether they did."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.requests) >= count, timeout)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The chat completion requests received so far."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # internals used by the handler

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)
            self._lock.notify_all()

    def _next_script(self) -> Script:
        with self._lock:
            return self._scripts.popleft() if self._scripts else self.default

    def _mark_disconnected(self) -> None:
        with self._lock:
            self.disconnects += 1
        self.disconnected.set()

    def _next_id(self) -> str:
        return f"chatcmpl-fake{next(self._ids)}"


def _handler_class(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        fake = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeOpenAI

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self._record(b"")
        if self.path.rstrip("/").endswith("/models"):
            names = sorted({r.body["model"] for r in self.fake.chat_requests if isinstance(r.body, dict)})
            data = [{"id": name, "object": "model", "created": 0, "owned_by": "fake"} for name in names]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        raw_body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = self._record(raw_body)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        messages = body.get("messages") if isinstance(body, dict) else None
        refusal = gemma_refusal(messages) if self.fake.strict_roles else None
        if refusal is not None:  # llama.cpp's answer when the chat template raises
            self._send_json(
                400, {"error": {"code": 400, "message": refusal, "type": "invalid_request_error"}}
            )
            return
        script = self.fake._next_script()
        try:
            self._answer(script, body if isinstance(body, dict) else {})
        except (_Disconnected, BrokenPipeError, ConnectionResetError):
            self.fake._mark_disconnected()
            self.close_connection = True

    def _record(self, raw_body: bytes) -> Any:
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        path = self.path.split("?", 1)[0]
        self.fake._record(
            RecordedRequest(
                method=self.command,
                path=path,
                headers=headers,
                body=body,
                raw=raw_body,
                peer=self.client_address[1],
            )
        )
        return body

    # answering

    def _answer(self, script: Script, body: dict[str, Any]) -> None:
        if script.ending == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        for step in script.before:
            self._run_quiet(step)
        if script.status is not None:
            self._send_json(script.status, script.body, script.headers)
            return
        if not body.get("stream"):
            self._send_json(200, _completion(script, body, self.fake._next_id()))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in script.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self._stream(script, body)

    def _stream(self, script: Script, body: dict[str, Any]) -> None:
        chunk_id, model = self.fake._next_id(), str(body.get("model", "fake-model"))
        created = int(time.time())

        def event(choices: list[dict[str, Any]], **extra: Any) -> str:
            payload = {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model}
            return json.dumps({**payload, "choices": choices, **extra})

        self._event(
            event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        )
        sent = 0
        for step in script.steps:
            if isinstance(step, _Delta):
                self._event(event([{"index": 0, "delta": step.delta, "finish_reason": None}]))
                sent += 1
            elif isinstance(step, _Raw):
                self._event(step.data)
            else:
                self._run_quiet(step)
        if script.ending == "close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if script.ending == "finish":
            final = {"index": 0, "delta": {}, "finish_reason": script.finish_reason}
            self._event(event([final]))
            if (body.get("stream_options") or {}).get("include_usage"):
                prompt, completion = script.usage or (_count_words(body), sent)
                usage = {"prompt_tokens": prompt, "completion_tokens": completion}
                self._event(event([], usage={**usage, "total_tokens": prompt + completion}))
            self._event("[DONE]")
        self._write_chunk(b"")  # the terminating chunk: the HTTP body ends cleanly

    def _run_quiet(self, step: Step) -> None:
        """Run a step that sends nothing: hold or pause, watching for the client leaving."""
        if isinstance(step, _Hold):
            self._wait(lambda: self.fake._released.is_set(), deadline=None)
        elif isinstance(step, _Pause):
            self._wait(lambda: False, deadline=time.monotonic() + step.seconds)

    def _wait(self, done: Any, *, deadline: float | None) -> None:
        while not done() and not self.fake._stopping.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return
            readable, _, _ = select.select([self.connection], [], [], _POLL)
            if readable and _peer_closed(self.connection):
                raise _Disconnected()

    def _event(self, data: str) -> None:
        self._write_chunk(f"data: {data}\n\n".encode())

    def _write_chunk(self, payload: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
        self.wfile.flush()

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = dict(headers or {})
        self.send_response(status)
        self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


class SilentServer:
    """A TCP server on 127.0.0.1:0 that accepts connections, reads, and never answers.

    What a plain HTTP server does with a TLS handshake it cannot parse as a request line
    (llama.cpp's server waits for one): an ``https://`` client hangs until its connect timeout.
    :attr:`connections` counts the accepted connections (one per attempt).
    """

    def __init__(self) -> None:
        """Prepare the listener; :meth:`start` (or ``with``) opens it."""
        self.connections = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._peers: list[socket.socket] = []

    def start(self) -> SilentServer:
        """Start listening and return self."""
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(_POLL * 10)
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every connection and the listener (idempotent)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for peer in self._peers:
            peer.close()
        self._peers.clear()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SilentServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def url(self, scheme: str = "https") -> str:
        """The ``base_url`` of this server for ``scheme``."""
        assert self._sock is not None, "the silent server is not running"
        return f"{scheme}://127.0.0.1:{self._sock.getsockname()[1]}/v1"

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                peer, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            self._peers.append(peer)  # kept open, never read from or written to


def _peer_closed(sock: socket.socket) -> bool:
    """Whether a readable socket's peer has closed it (EOF or reset)."""
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except BlockingIOError:
        return False


def _count_words(body: Mapping[str, Any]) -> int:
    """Return the number of whitespace-separated words in the request's message contents."""
    messages = body.get("messages") or []
    return sum(len(str(m.get("content") or "").split()) for m in messages if isinstance(m, dict))


def _completion(script: Script, body: Mapping[str, Any], completion_id: str) -> dict[str, Any]:
    """Return the non-streaming ``chat.completion`` object the script's deltas add up to."""
    content = "".join(_deltas(script, "content"))
    calls: dict[int, dict[str, Any]] = {}
    for fragments in _deltas(script, "tool_calls"):
        for fragment in fragments:
            call = calls.setdefault(
                fragment["index"], {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            )
            call["id"] = fragment.get("id") or call["id"]
            function = fragment.get("function") or {}
            call["function"]["name"] = function.get("name") or call["function"]["name"]
            call["function"]["arguments"] += function.get("arguments") or ""
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    completion_tokens = sum(1 for step in script.steps if isinstance(step, _Delta))
    prompt, completion = script.usage or (_count_words(body), completion_tokens)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model", "fake-model")),
        "choices": [{"index": 0, "message": message, "finish_reason": script.finish_reason}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _deltas(script: Script, key: str) -> Iterator[Any]:
    for step in script.steps:
        if isinstance(step, _Delta) and key in step.delta:
            yield step.delta[key]
