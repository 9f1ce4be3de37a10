"""Fixtures for integration tests: a real server on 127.0.0.1:0 and real websockets clients."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread
from tests.conftest import TIMEOUT

ORIGIN = "http://localhost:8888"


MakeServer = Callable[..., ServerThread]


@pytest.fixture
def make_server() -> Iterator[MakeServer]:
    """Return ``make(**options) -> ServerThread``: a started server, stopped after the test.

    The options are ServerThread's own (127.0.0.1 and port 0 unless given).  Every server made
    is stopped at teardown, in reverse order, whatever the test did; a test may stop one itself
    (stop is idempotent).
    """
    with ExitStack() as stops:

        def make(**options: Any) -> ServerThread:
            srv = ServerThread(**options)
            stops.callback(srv.stop)  # before start(): a start that fails half-way is cleaned up too
            return srv.start()

        yield make


@pytest.fixture
def server(make_server: MakeServer) -> ServerThread:
    """A server with the builtin model at full speed, stopped after the test."""
    return make_server(model=BuiltinModel(tokens_per_second=None), allowed_origins=[ORIGIN])


def auth(server: ServerThread) -> dict[str, str]:
    """Return the Authorization header for ``server``."""
    return {"Authorization": f"Bearer {server.token}"}


def ws_url(server: ServerThread, session: str | None = None) -> str:
    """Return the WebSocket URL, naming ``session`` if given."""
    return server.url + (f"?session={session}" if session else "")


class Client:
    """A thin test client: send frames, receive decoded JSON with a timeout."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, frame: str | dict[str, Any]) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        message = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
        self.seen.append(message)
        return message

    async def recv_until(self, predicate: Any) -> list[dict[str, Any]]:
        """Receive messages until one matches ``predicate``; return them all, in order."""
        out = []
        while True:
            message = await self.recv()
            out.append(message)
            if predicate(message):
                return out


async def open_client(
    server: ServerThread, *, session: str | None = None, dialect: str | None = None, **kwargs: Any
) -> Client:
    """Connect a client with the token in the Authorization header."""
    subprotocols = [f"llmsock.{dialect}.v1"] if dialect else None
    ws = await connect(
        ws_url(server, session),
        additional_headers=auth(server),
        subprotocols=subprotocols,  # type: ignore[arg-type]
        open_timeout=TIMEOUT,
        **kwargs,
    )
    return Client(ws)


def is_model(kind: str) -> Any:
    """Return a predicate for an envelope ``interaction.model`` event of ``kind``."""
    return lambda m: m.get("name") == "interaction.model" and m["data"]["event"]["type"] == kind


def is_turn_end(m: dict[str, Any]) -> bool:
    """Whether an envelope ends a turn (end or error)."""
    return m.get("name") == "interaction.model" and m["data"]["event"]["type"] in ("end", "error")


def assert_no_event_lost(events: list[tuple[int, str]]) -> None:
    """Assert ``(sequence, event type)`` pairs go up by one, or jump to a delta.

    The server merges deltas that wait together into one delta with the last one's sequence
    (docs/protocol.md, section 5.1), so a gap is allowed only before a delta; anything else
    missing or repeated fails.
    """
    for (before, _), (seq, kind) in itertools.pairwise(events):
        assert seq > before and (seq == before + 1 or kind == "delta"), (before, seq, kind)


@pytest.fixture
def run() -> Iterator[Any]:
    """Run a coroutine to completion on a fresh event loop, bounded by the scaled timeout."""

    def runner(coro: Any) -> Any:
        return asyncio.run(asyncio.wait_for(coro, TIMEOUT * 3))

    yield runner


async def aclose(*clients: Client) -> AsyncIterator[None] | None:
    for client in clients:
        await client.ws.close()
    return None


# -- raw frames, for clients that must not answer pings (every WebSocket library does) --


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """Return one final masked client frame (RFC 6455 5.2) of ``opcode``; the payload is under 126 bytes."""
    assert len(payload) < 126
    mask = secrets.token_bytes(4)
    return (
        bytes((0x80 | opcode, 0x80 | len(payload)))
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one unmasked server frame; return its opcode and payload."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return first & 0x0F, await reader.readexactly(length)
