"""The adapter's own reading of the stream: a fast provider starves no other session, and errors
sent inside the stream read as they did through the ``openai`` client's stream."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from llmsock_widget.errors import ModelFailure
from llmsock_widget.models.base import ModelChunk, ModelRequest, TextChunk
from llmsock_widget.models.openai_compat import OpenAICompatModel
from tests import fakeopenai
from tests.conftest import TIMEOUT
from tests.fakeopenai import FakeOpenAI

from .conftest import MakeServer, is_turn_end, open_client

CHUNKS = 4000  # per stream: about 260 KB, which the socket buffers hold whole
RUN_LIMIT = 256  # deltas in a row of one session while the other has some waiting


def _event(data: str) -> bytes:
    line = f"data: {data}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(line), line)


def _body(chunks: int) -> bytes:
    delta = json.dumps({"choices": [{"index": 0, "delta": {"content": "x"}}]})
    finish = json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        + _event(delta) * chunks
        + _event(finish)
        + _event("[DONE]")
        + b"0\r\n\r\n"
    )


class BurstProvider:
    """Answer chat completions with the whole stream in one write, once ``parties`` requests wait.

    So every answer's bytes sit in the socket buffers before the server reads any: the server,
    not the provider, sets the pace, as with a local GPU server that outruns it.
    """

    def __init__(self, chunks: int, parties: int) -> None:
        self.response = _body(chunks)
        self.barrier = threading.Barrier(parties, timeout=TIMEOUT)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.threads: list[threading.Thread] = []
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, name="burst-provider", daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
                thread = threading.Thread(target=self._answer, args=(conn,), daemon=True)
                thread.start()
                self.threads.append(thread)

    def _answer(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError, threading.BrokenBarrierError):
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(65536) or b"\r\n\r\n"
            headers, _, body = head.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in headers.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            while len(body) < length:
                body += conn.recv(65536)
            self.barrier.wait()
            conn.sendall(self.response)
            while conn.recv(65536):  # keep the connection until the client closes it
                pass

    def close(self) -> None:
        self.barrier.abort()
        self.sock.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        for thread in self.threads:
            thread.join(TIMEOUT)


class Recording:
    """The OpenAI-compatible model, noting which session each provider chunk it passes on belongs to.

    Every provider chunk here is one ``x``; chunks that arrived together come out as one text
    chunk, so each character is noted.
    """

    def __init__(self, model: OpenAICompatModel) -> None:
        self.model = model
        self.name = model.name
        self.order: list[str] = []  # appended on the server's loop only

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        async for chunk in self.model.stream(request):
            if isinstance(chunk, TextChunk):
                self.order.extend([request.session_id] * len(chunk.text))
            yield chunk


@pytest.fixture
def provider() -> Iterator[BurstProvider]:
    burst = BurstProvider(CHUNKS, parties=2)
    yield burst
    burst.close()


def longest_run_while_both_stream(order: list[str]) -> int:
    """Return the most deltas of one session in a row, from when both have begun until one ends."""
    first = {key: order.index(key) for key in set(order)}
    last = {key: len(order) - 1 - order[::-1].index(key) for key in set(order)}
    window = order[max(first.values()) : min(last.values()) + 1]
    longest = run = 0
    for index, key in enumerate(window):
        run = run + 1 if index and window[index - 1] == key else 1
        longest = max(longest, run)
    return longest


def test_a_fast_stream_leaves_room_for_another_session(
    provider: BurstProvider, make_server: MakeServer, run
) -> None:
    """Two sessions whose providers answer at once: each session's deltas keep coming while the other streams.

    Before the model yielded its loop, a session's every read of the provider (64 KiB, about
    a thousand chunks here) went out before any other session was served.
    """
    model = Recording(OpenAICompatModel(model="fast", base_url=provider.base_url, max_retries=0))
    server = make_server(model=model)

    async def both() -> list[list[dict]]:
        clients = [await open_client(server, dialect="envelope") for _ in range(2)]
        for index, client in enumerate(clients):
            await client.recv()  # the hello
            await client.send({"type": "user_message", "id": f"u{index}", "data": {"text": "go"}})
        turns = [await client.recv_until(is_turn_end) for client in clients]
        for client in clients:
            await client.ws.close()
        return turns

    turns = run(both())
    for messages in turns:
        events = [m["data"]["event"] for m in messages if m.get("name") == "interaction.model"]
        assert events[-1]["type"] == "end" and events[-1]["text"] == "x" * CHUNKS
        assert "".join(e["text"] for e in events if e["type"] == "delta") == "x" * CHUNKS
    assert len(set(model.order)) == 2 and len(model.order) == 2 * CHUNKS
    assert longest_run_while_both_stream(model.order) <= RUN_LIMIT


# -- errors inside the stream -------------------------------------------------------------------


async def answer(model: OpenAICompatModel) -> tuple[str, ModelFailure | None]:
    """Return the text ``model`` streams for one prompt and the failure that ended it, if any."""
    pieces: list[str] = []
    try:
        async for chunk in model.stream(ModelRequest(messages=({"role": "user", "content": "hi"},))):
            if isinstance(chunk, TextChunk):
                pieces.append(chunk.text)
    except ModelFailure as failure:
        return "".join(pieces), failure
    return "".join(pieces), None


@pytest.mark.parametrize(
    ("data", "said"),
    [
        # OpenAI's shape: the words are the provider's (what the openai client's APIError said).
        (
            {"error": {"message": "The server is overloaded", "type": "server_error"}},
            "The server is overloaded",
        ),
        # Ollama's shape has no message member: the openai client's own words stood in.
        ({"error": "model crashed"}, "An error occurred during streaming"),
    ],
)
def test_an_error_object_in_the_stream_keeps_its_message(data: object, said: str, run) -> None:
    """It ends the answer as the openai client's stream did: provider_error, the same words."""
    with FakeOpenAI() as fake:
        fake.enqueue(fakeopenai.raw(json.dumps(data), then=fakeopenai.text(["never"])))
        fake.enqueue(fakeopenai.text(["Hel"]) + fakeopenai.raw(json.dumps(data)))
        model = OpenAICompatModel(model="m", base_url=fake.base_url, max_retries=0, timeout=TIMEOUT)
        for before in ("", "Hel"):
            text, failure = run(answer(model))
            assert failure is not None and text == before
            assert (failure.code, failure.message) == (
                "provider_error",
                f"the provider reported an error: {said}",
            )


def test_an_error_event_in_the_stream_is_the_providers_error(run) -> None:
    """``event: error`` (some proxies send it with their own ``message``) is an error, not a bad chunk."""
    with FakeOpenAI() as fake:
        # raw() writes one data line; a blank line and an event line inside it make a second event.
        error_event = '{"choices": []}\n\nevent: error\ndata: {"message": "upstream timed out"}'
        fake.enqueue(fakeopenai.text(["Hel"]) + fakeopenai.raw(error_event))
        model = OpenAICompatModel(model="m", base_url=fake.base_url, max_retries=0, timeout=TIMEOUT)
        text, failure = run(answer(model))
    assert text == "Hel" and failure is not None
    assert (failure.code, failure.message) == (
        "provider_error",
        "the provider reported an error: upstream timed out",
    )
