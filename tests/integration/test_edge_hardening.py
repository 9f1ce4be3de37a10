"""The network edge under abuse: weak tokens, token guessing, a history storm, descriptor exhaustion.

Each case runs a real server on 127.0.0.1:0 and checks what a user of the server
would notice: a clear refusal at start, a refusal with Retry-After, another
session that keeps answering, a server that still serves after the abuse ends.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import secrets
import selectors
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from llmsock_widget.core.events import ControlResult
from llmsock_widget.core.session import InteractionState, Message
from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.guard import FailureBudget, check_token
from llmsock_widget.server.historyframes import HistoryFrames
from llmsock_widget.server.thread import CLOSE_TOO_MANY_ATTEMPTS, CLOSE_UNAUTHORIZED, ServerThread
from llmsock_widget.stores.memory import MemoryStore
from llmsock_widget.wire import protocol
from tests.conftest import TIMEOUT

from .conftest import MakeServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def start(make_server: MakeServer) -> MakeServer:
    """Return ``start(**options)``: a server with the builtin model at full speed, stopped after the test."""

    def start_fast(**options: Any) -> ServerThread:
        return make_server(model=BuiltinModel(tokens_per_second=None), **options)

    return start_fast


def upgrade(server: ServerThread, token: str) -> tuple[int, dict[str, str], bytes]:
    """Send one WebSocket upgrade with ``token`` as Bearer; return status, headers and body."""
    return upgrade_with(server, {"Authorization": f"Bearer {token}"})


# -- B8: weak tokens and guessing ------------------------------------------------------------


@pytest.mark.parametrize(
    "weak",
    ["abc", "x" * 31, "a" * 64, "0123" * 10, "a-valid-looking token with spaces!!"],
    ids=["3-chars", "31-chars", "one-symbol", "four-symbols", "bad-characters"],
)
def test_a_weak_custom_token_is_refused_at_construction(weak: str) -> None:
    """A short, repetitive or unsendable custom token stops the server from being made (B8)."""
    with pytest.raises(ValueError, match="token") as refused:
        ServerThread(token=weak)
    assert weak not in str(refused.value)


def test_a_strong_custom_token_and_the_default_token_are_accepted() -> None:
    """A 32-character random token is taken as it is; with none the server makes a strong one."""
    strong = secrets.token_hex(16)
    assert ServerThread(token=strong).token == strong
    assert check_token(ServerThread().token)


def test_failure_budget_refills_at_its_rate() -> None:
    """After the burst of wrong tokens, one more may be tried per 1/rate seconds."""
    now = [0.0]
    budget = FailureBudget(rate=0.5, burst=2, clock=lambda: now[0])
    assert budget.retry_after() == 0.0
    budget.fail()
    budget.fail()
    assert budget.retry_after() == pytest.approx(2.0) and budget.retry_after_header() == "2"
    now[0] += 2.0
    assert budget.retry_after() == 0.0


def test_guessing_the_token_is_cut_off_with_429_even_for_the_right_token(start: MakeServer) -> None:
    """After the burst of wrong tokens every attempt gets 429 with Retry-After, the right one too."""
    server = start(auth_failure_burst=5, auth_failures_per_second=0.01)
    answers = [upgrade(server, secrets.token_urlsafe(32))[0] for _ in range(5)]
    status, headers, body = upgrade(server, secrets.token_urlsafe(32))
    right_status, right_headers, _ = upgrade(server, server.token)
    counters = server.status()
    assert answers == [401] * 5
    assert status == 429 and json.loads(body)["error"]["code"] == "too_many_attempts"
    assert int(headers["retry-after"]) >= 1
    assert right_status == 429, "the right token must not stand out while guessing is cut off"
    assert int(right_headers["retry-after"]) >= 1
    assert counters["authFailures"] == 5 and counters["authThrottled"] == 2


# -- B10: a get_history storm ------------------------------------------------------------------

TYPED = ["llmsock.typed.v1"]


def transcript(key: str, *, messages: int = 8000, size: int = 150) -> InteractionState:
    """Return a session of ``messages`` messages of ``size`` characters (about 2 MB as JSON)."""
    return InteractionState(
        session_id=key,
        seq=messages,
        created_at=1,
        updated_at=1,
        messages=tuple(
            Message(
                id=f"m{i}",
                role="user" if i % 2 == 0 else "assistant",
                text=f"{i} " + "x" * size,
                turn_id=f"t{i // 2}",
                ts=1,
                usage=None if i % 2 == 0 else {"inputTokens": 1, "outputTokens": 2},
            )
            for i in range(messages)
        ),
    )


def test_a_get_history_storm_does_not_stall_another_session(start: MakeServer) -> None:
    """20 clients asking for a 2 MB transcript over and over: another session's ping stays prompt (B10)."""
    store = MemoryStore()
    store.save("big", transcript("big"))
    server = start(store=store, max_connections=50)
    headers = {"Authorization": f"Bearer {server.token}"}
    replies: list[int] = []
    enough = asyncio.Event()

    async def open_ws(session: str) -> Any:
        ws = await connect(
            f"{server.url}?session={session}",
            additional_headers=headers,
            subprotocols=TYPED,  # type: ignore[arg-type]
            max_size=None,
            open_timeout=TIMEOUT,
        )
        await asyncio.wait_for(ws.recv(), TIMEOUT)  # ready
        return ws

    async def storm(ws: Any, name: str) -> None:
        n = 0
        while not enough.is_set():
            for _ in range(3):  # a few in flight, as a reconnecting page would have
                n += 1
                await ws.send(
                    json.dumps({"type": "control", "id": f"{name}-{n}", "data": {"type": "get_history"}})
                )
            for _ in range(3):
                frame = await asyncio.wait_for(ws.recv(), TIMEOUT)
                replies.append(frame.count('"role":'))
            if len(replies) >= 400:
                enough.set()

    async def scenario() -> tuple[float, dict[str, Any]]:
        other = await open_ws("other")
        clients = [await open_ws("big") for _ in range(20)]
        tasks = [asyncio.create_task(storm(ws, f"c{i}")) for i, ws in enumerate(clients)]
        pings: list[float] = []
        while not enough.is_set() or len(pings) < 2:
            sent = time.perf_counter()
            await other.send(json.dumps({"type": "ping", "id": f"p{len(pings)}"}))
            assert json.loads(await asyncio.wait_for(other.recv(), TIMEOUT))["type"] == "pong"
            pings.append(time.perf_counter() - sent)
        await asyncio.gather(*tasks)
        await clients[0].send(json.dumps({"type": "control", "id": "last", "data": {"type": "get_history"}}))
        last = json.loads(await asyncio.wait_for(clients[0].recv(), TIMEOUT))
        for ws in [other, *clients]:
            await ws.close()
        # The second slowest: one hiccup of a shared machine is not a stall of the server.
        return sorted(pings)[-2], last

    worst, last = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT * 6))
    assert replies and set(replies) == {8000}, "every get_history carries the whole transcript"
    assert [m["id"] for m in last["data"]["messages"]] == [f"m{i}" for i in range(8000)]
    assert last["data"]["sequence"] == 8000 and last["id"] == "last"
    bound = 0.03 * TIMEOUT  # 0.3 s, scaled: a stall of seconds is what must not happen
    assert worst < bound, f"another session's ping took {worst:.2f} s during the storm"


@pytest.mark.parametrize("dialect", ["envelope", "typed"])
def test_a_cached_history_frame_is_the_frame_encoded_afresh(dialect: str) -> None:
    """A get_history reply built from the cached transcript is byte for byte the plain encoding."""
    messages = [{"id": "m1", "role": "user", "text": 'say "hi" \u202e \x00 ✓'}]
    event = ControlResult(
        action="get_history",
        ok=True,
        ts=5,
        request_id="r1",
        message="",
        data={"messages": messages, "current": None, "sequence": 3, "status": "idle"},
    )
    cache = HistoryFrames()
    first = cache.frames(event, dialect)  # type: ignore[arg-type]
    again = cache.frames(replace(event, request_id="r2"), dialect)  # type: ignore[arg-type]
    assert first == protocol.frames(event, dialect)  # type: ignore[arg-type]
    assert again == protocol.frames(replace(event, request_id="r2"), dialect)  # type: ignore[arg-type]
    assert cache.encoded == 1


# -- B9: idle sockets and running out of descriptors ----------------------------------------

SERVE_WITH_FEW_DESCRIPTORS = """
import json, logging, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), hard))
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread
server = ServerThread(
    model=BuiltinModel(tokens_per_second=None),
    handshake_timeout=float(sys.argv[2]),
    max_pending_connections=int(sys.argv[3]),
).start()
print(json.dumps({"port": server.port, "token": server.token}), flush=True)
sys.stdin.read()
server.stop()
"""


def idle_sockets(port: int, count: int) -> list[socket.socket]:
    """Open ``count`` TCP connections to ``port`` that never send a byte."""
    out = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        out.append(sock)
    return out


def wait_all_closed_by_server(sockets: list[socket.socket]) -> None:
    """Wait until the server has ended every one of ``sockets`` (EOF or reset on each)."""
    deadline = time.monotonic() + 3 * TIMEOUT
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            assert left > 0, f"{len(selector.get_map())} idle sockets still open"
            for key, _ in selector.select(left):
                idler = key.fileobj
                assert isinstance(idler, socket.socket)
                try:
                    data = idler.recv(1)
                except BlockingIOError:
                    continue
                except OSError:  # reset
                    data = b""
                assert data == b"", "the server sent something to a socket that never asked"
                selector.unregister(idler)


def ping_with_token(port: int, token: str) -> str:
    """Connect a real client with ``token``, ping, and return the reply's type."""
    from websockets.sync.client import connect as sync_connect

    with sync_connect(
        f"ws://127.0.0.1:{port}/ws",
        additional_headers={"Authorization": f"Bearer {token}"},
        subprotocols=TYPED,  # type: ignore[arg-type]
        open_timeout=TIMEOUT,
    ) as ws:
        json.loads(ws.recv(TIMEOUT))  # ready
        ws.send(json.dumps({"type": "ping", "id": "p"}))
        return str(json.loads(ws.recv(TIMEOUT))["type"])


@pytest.mark.parametrize(
    ("pending_cap", "idlers"),
    [(10_000, 200), (16, 200)],
    ids=["out-of-descriptors", "pending-cap"],
)
def test_idle_sockets_past_the_descriptor_limit_leave_a_quiet_log_and_a_working_server(
    tmp_path: Any, pending_cap: int, idlers: int
) -> None:
    """200 idle sockets against a 128-descriptor server: a few log lines, and it serves afterwards (B9)."""
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE_WITH_FEW_DESCRIPTORS, "128", str(0.1 * TIMEOUT), str(pending_cap)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            cwd=ROOT,
        )
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            sockets = idle_sockets(info["port"], idlers)
            try:
                wait_all_closed_by_server(sockets)
            finally:
                for sock in sockets:
                    sock.close()
            reply = ping_with_token(info["port"], info["token"])
        finally:
            proc.communicate("", timeout=TIMEOUT)
    lines = log_path.read_text().splitlines()
    assert reply == "pong"
    assert len(lines) <= 6, f"{len(lines)} log lines, first: {lines[:3]}"
    assert not any("Traceback" in line for line in lines)
    if pending_cap < 128:  # the cap gives up the oldest idlers before descriptors run out
        assert not any("cannot accept" in line for line in lines), lines


# -- B7: the browser's token travels in the first frame, never in a subprotocol ---------------


def test_a_token_offered_as_a_subprotocol_is_refused_even_when_right(start: MakeServer) -> None:
    """A proxy logs the subprotocols it forwards, so a token there is refused with 401 (B7)."""
    server = start()
    status, _, body = upgrade_with(
        server, {"Sec-WebSocket-Protocol": f"llmsock.v1, llmsock.token.{server.token}"}
    )
    assert status == 401 and b"subprotocol" in body and server.token.encode() not in body


def upgrade_with(server: ServerThread, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """Send one WebSocket upgrade with ``headers`` added; return status, headers and body."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        conn.putrequest("GET", "/ws", skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", f"127.0.0.1:{server.port}")
        conn.putheader("Upgrade", "websocket")
        conn.putheader("Connection", "Upgrade")
        conn.putheader("Sec-WebSocket-Key", base64.b64encode(os.urandom(16)).decode())
        conn.putheader("Sec-WebSocket-Version", "13")
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read() if response.status != 101 else b""
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


async def first_frame_outcome(server: ServerThread, first: str | None) -> tuple[int | None, str, list[str]]:
    """Open /ws without a token, send ``first`` (or nothing); return the close code, reason, frames."""
    ws = await connect(f"{server.url}?session=s1", subprotocols=TYPED, open_timeout=TIMEOUT)  # type: ignore[arg-type]
    if first is not None:
        await ws.send(first)
    frames: list[str] = []
    try:
        while True:
            frames.append(str(await asyncio.wait_for(ws.recv(), TIMEOUT)))
    except ConnectionClosed:
        pass
    return ws.close_code, ws.close_reason or "", frames


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        (None, "no auth frame in time"),
        ('{"type": "ping", "id": "p"}', "the first frame must be an auth frame"),
        ('{"type": "auth", "token": "guess"}', "invalid token"),
        ('{"type": "auth", "token": "a", "token": "b"}', "the first frame must be an auth frame"),
    ],
    ids=["silent", "not-auth", "wrong-token", "duplicate-keys"],
)
def test_without_the_right_auth_frame_a_socket_gets_nothing_and_closes_4401(
    first: str | None, reason: str, start: MakeServer
) -> None:
    """A browser socket that does not send the right token first sees no frame and closes with 4401."""
    server = start(handshake_timeout=0.05 * TIMEOUT)
    code, said, frames = asyncio.run(asyncio.wait_for(first_frame_outcome(server, first), 3 * TIMEOUT))
    sessions = dict(server.hub.sessions)
    assert (code, said, frames) == (CLOSE_UNAUTHORIZED, reason, [])
    assert not sessions


def test_the_right_auth_frame_opens_the_session_and_guessing_closes_4429(start: MakeServer) -> None:
    """The right token as the first frame gets ready; once guessing is cut off even it gets 4429."""
    server = start(auth_failure_burst=1, auth_failures_per_second=0.01)

    async def scenario() -> tuple[
        list[str], tuple[int | None, str, list[str]], tuple[int | None, str, list[str]]
    ]:
        ws = await connect(f"{server.url}?session=s1", subprotocols=TYPED, open_timeout=TIMEOUT)  # type: ignore[arg-type]
        await ws.send(json.dumps({"type": "auth", "token": server.token}))
        ready = [str(await asyncio.wait_for(ws.recv(), TIMEOUT))]
        await ws.close()
        wrong = await first_frame_outcome(server, json.dumps({"type": "auth", "token": "guess"}))
        right = await first_frame_outcome(server, json.dumps({"type": "auth", "token": server.token}))
        return ready, wrong, right

    ready, wrong, right = asyncio.run(asyncio.wait_for(scenario(), 3 * TIMEOUT))
    assert json.loads(ready[0])["data"]["sessionId"] == "s1"
    assert wrong[0] == CLOSE_UNAUTHORIZED
    assert right == (CLOSE_TOO_MANY_ATTEMPTS, "too many wrong tokens; try again later", [])
