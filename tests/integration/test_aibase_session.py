"""Seed 004's client (Cantika23/aibase's WSClient) as it connects: ``/api/ws``, ``?convId=``, a token
frame, ``get_history`` at once; a second tab and a reconnect see the same conversation."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from typing import Any
from urllib.parse import quote

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from llmsock_widget.server.thread import ServerThread
from tests.conftest import TIMEOUT

from .conftest import Client, auth

CONV = "conv_1796582303770_rk1rgbyi5"  # the form of the client's ids (ConvIdManager.generateConvId)


def api_url(server: ServerThread, conv: str | None = CONV, path: str = "/api/ws") -> str:
    """Return the URL the client builds: its base URL with ``convId`` appended."""
    base = f"ws://127.0.0.1:{server.port}{path}"
    return base + (f"?convId={conv}" if conv is not None else "")


async def open_page(server: ServerThread, conv: str | None = CONV, token: str | None = None) -> Client:
    """Connect as the page does with the documented recipe: no subprotocol, no header, the token
    as the first frame, then ``get_history`` without waiting for anything."""
    ws = await connect(api_url(server, conv), open_timeout=TIMEOUT)
    client = Client(ws)
    await client.send({"type": "auth", "token": token or server.token})
    await client.send({"type": "control", "id": "msg_1_1", "data": {"type": "get_history"}})
    return client


def is_history(m: dict[str, Any]) -> bool:
    return m.get("type") == "control_response" and m["data"].get("status") == "history"


async def history_of(client: Client) -> list[dict[str, Any]]:
    """Return the ``history`` of the next history reply."""
    return (await client.recv_until(is_history))[-1]["data"]["history"]


async def ask(client: Client, text: str, msg_id: str) -> str:
    """Send a prompt as the client's sendMessage does; return the llm_complete fullText."""
    await client.send({"type": "user_message", "id": msg_id, "data": {"text": text}})
    done = await client.recv_until(lambda m: m.get("type") == "llm_complete" and m["id"] == msg_id)
    return str(done[-1]["data"]["fullText"])


def test_welcome_and_history_right_after_the_auth_frame(server: ServerThread, run) -> None:
    """On /api/ws with no subprotocol the first frame is seed 004's welcome, and a get_history sent
    right behind the auth frame (before the session is attached) is answered, not dropped."""

    async def scenario() -> list[dict[str, Any]]:
        client = await open_page(server)
        out = await client.recv_until(is_history)
        await client.ws.close()
        return out

    out = run(scenario())
    welcome = out[0]
    assert welcome["type"] == "status"
    assert welcome["data"]["status"] == "connected" and welcome["data"]["message"]
    assert welcome["data"]["convId"] == welcome["data"]["sessionId"] == CONV
    assert out[-1]["id"] == "msg_1_1" and out[-1]["data"]["history"] == []


def test_two_tabs_with_one_conv_id_share_the_conversation(server: ServerThread, run) -> None:
    """A second connection with the same convId sees the history and the first one's answers live."""

    async def scenario() -> tuple[str, list[dict[str, Any]], str, list[dict[str, Any]]]:
        a = await open_page(server)
        await history_of(a)
        first = await ask(a, "hello there", "msg_1_2")
        b = await open_page(server)
        seen_by_b = await history_of(b)
        second = await ask(a, "and again", "msg_1_3")
        live = await b.recv_until(lambda m: m.get("type") == "llm_complete" and m["id"] == "msg_1_3")
        await a.ws.close()
        await b.ws.close()
        return first, seen_by_b, second, live

    first, seen_by_b, second, live = run(scenario())
    assert seen_by_b == [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": first}]
    assert live[-1]["data"]["fullText"] == second
    chunks = "".join(m["data"]["chunk"] for m in live if m["type"] == "llm_chunk" and m["id"] == "msg_1_3")
    assert chunks == second


def test_reconnect_after_a_drop_sees_the_history(server: ServerThread, run) -> None:
    """A connection that drops (no close frame) and comes back with its convId gets the conversation."""

    async def scenario() -> tuple[str, list[dict[str, Any]]]:
        a = await open_page(server)
        await history_of(a)
        answer = await ask(a, "remember me", "msg_1_2")
        a.ws.transport.abort()  # the network drops: no close handshake
        again = await open_page(server)
        history = await history_of(again)
        await again.ws.close()
        return answer, history

    answer, history = run(scenario())
    assert history == [{"role": "user", "content": "remember me"}, {"role": "assistant", "content": answer}]


def test_other_conv_ids_and_no_conv_id_get_their_own_conversation(server: ServerThread, run) -> None:
    """Another convId is another session; without one (and without session) a connection gets a new one."""

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
        a = await open_page(server)
        await history_of(a)
        await ask(a, "mine", "msg_1_2")
        other = await open_page(server, conv="conv_2_other")
        none = await open_page(server, conv=None)
        ready = await none.recv()
        out = (await history_of(other), await history_of(none), ready["data"]["convId"])
        for c in (a, other, none):
            await c.ws.close()
        return out

    other, none, new_id = run(scenario())
    assert other == [] and none == [] and new_id not in (CONV, "conv_2_other")


def test_session_parameter_wins_over_conv_id(server: ServerThread, run) -> None:
    """With both parameters the session is the one ``session`` names (llmsock's own clients)."""

    async def scenario() -> dict[str, Any]:
        ws = await connect(api_url(server) + "&session=named", additional_headers=auth(server))
        ready = json.loads(await ws.recv())
        await ws.close()
        return ready

    ready = run(scenario())
    assert ready["data"]["sessionId"] == ready["data"]["convId"] == "named"


@pytest.mark.parametrize("conv", ["bad id", "x" * 129, "a/b", "é"])
def test_a_bad_conv_id_is_refused_like_a_bad_session(server: ServerThread, run, conv: str) -> None:
    """A convId that is not a valid session id closes the connection with 4400 after the auth frame."""

    async def scenario() -> int | None:
        client = await open_page(server, conv=quote(conv, safe=""))
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        return closed.value.rcvd.code if closed.value.rcvd else None

    assert run(scenario()) == 4400


def test_api_ws_needs_the_token(server: ServerThread, run) -> None:
    """/api/ws is /ws: no token, a wrong one (frame or header), or one in the URL are refused."""

    async def first_frame(frame: dict[str, Any]) -> int | None:
        ws = await connect(api_url(server), open_timeout=TIMEOUT)
        await ws.send(json.dumps(frame))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        return closed.value.rcvd.code if closed.value.rcvd else None

    async def upgrade(url: str, headers: dict[str, str]) -> int:
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, additional_headers=headers, open_timeout=TIMEOUT)
        return refused.value.response.status_code

    async def scenario() -> list[Any]:
        wrong = secrets.token_urlsafe(32)
        return [
            await first_frame({"type": "control", "id": "c", "data": {"type": "get_history"}}),
            await first_frame({"type": "auth", "token": wrong}),
            await upgrade(api_url(server), {"Authorization": f"Bearer {wrong}"}),
            await upgrade(api_url(server) + f"&token={server.token}", {}),
            await upgrade(api_url(server), {"Origin": "http://evil.example"}),
        ]

    assert run(scenario()) == [4401, 4401, 401, 401, 403]


def test_api_ws_with_a_subprotocol_keeps_llmsocks_rules(server: ServerThread, run) -> None:
    """A client that names a dialect on /api/ws gets it: the path only sets the default."""

    async def scenario() -> dict[str, Any]:
        offer = [Subprotocol("llmsock.envelope.v1")]
        ws = await connect(api_url(server), additional_headers=auth(server), subprotocols=offer)
        ready: dict[str, Any] = json.loads(await ws.recv())
        await ws.close()
        return ready

    assert run(scenario())["name"] == "interaction.session"


def test_serve_keeps_its_token_from_an_environment_variable() -> None:
    """`serve --token-env VAR` uses VAR's token (so a page reconnects after a restart); a weak one exits 2."""
    token = secrets.token_urlsafe(32)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PAGE_TOKEN": token}
    command = [sys.executable, "-m", "llmsock_widget", "serve", "--token-env", "PAGE_TOKEN"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        info = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        assert info["token"] == token
        proc.send_signal(signal.SIGINT)
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for value in ("short", ""):
        weak = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT, env={**env, "PAGE_TOKEN": value}
        )
        assert weak.returncode == 2 and weak.stdout == "" and "token" in weak.stderr.lower()


def test_conv_id_on_ws_also_gets_the_plain_history(server: ServerThread, run) -> None:
    """The client pointed at /ws (with the typed subprotocol) is known by its convId: history comes too."""

    async def scenario() -> dict[str, Any]:
        offer = [Subprotocol("llmsock.typed.v1")]
        ws = await connect(api_url(server, path="/ws"), additional_headers=auth(server), subprotocols=offer)
        client = Client(ws)
        await ask(client, "hello there", "msg_1_2")
        await client.send({"type": "control", "id": "msg_1_3", "data": {"type": "get_history"}})
        reply = (await client.recv_until(is_history))[-1]
        await ws.close()
        return reply["data"]

    data = run(scenario())
    assert [m["role"] for m in data["history"]] == ["user", "assistant"]
    assert data["history"][1]["content"] == data["messages"][1]["text"]
