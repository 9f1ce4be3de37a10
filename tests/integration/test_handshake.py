"""Who may connect: token, Origin and Host checks happen before any WebSocket opens."""

from __future__ import annotations

import base64
import http.client
import json
import os

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from llmsock_widget.server.thread import ServerThread
from tests.conftest import TIMEOUT

from .conftest import ORIGIN, MakeServer


def handshake(
    server: ServerThread,
    path: str = "/ws",
    *,
    host: str | None = None,
    headers: dict[str, str] | None = None,
    upgrade: bool = True,
) -> tuple[int, bytes]:
    """Send one raw HTTP request (a WebSocket upgrade by default); return status and body."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host if host is not None else f"127.0.0.1:{server.port}")
        if upgrade:
            conn.putheader("Upgrade", "websocket")
            conn.putheader("Connection", "Upgrade")
            conn.putheader("Sec-WebSocket-Key", base64.b64encode(os.urandom(16)).decode())
            conn.putheader("Sec-WebSocket-Version", "13")
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read() if response.status != 101 else b""
    finally:
        conn.close()


def bearer(server: ServerThread) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


def test_valid_token_upgrades(server: ServerThread) -> None:
    """The right token in the Authorization header gets 101 Switching Protocols."""
    assert handshake(server, headers=bearer(server))[0] == 101


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong"},
        {"Sec-WebSocket-Protocol": "llmsock.v1, llmsock.token.wrong"},
    ],
    ids=["wrong", "wrong-subprotocol"],
)
def test_bad_token_is_401_before_upgrade(server: ServerThread, headers: dict[str, str]) -> None:
    """A wrong token is refused with 401 and a JSON reason, and no socket opens."""
    status, body = handshake(server, headers=headers)
    assert status == 401
    assert json.loads(body)["error"]["code"] == "unauthorized"


def test_old_server_token_is_refused(server: ServerThread, make_server: MakeServer) -> None:
    """The token of a previous server is not valid for a new one."""
    old = make_server()
    old_token = old.token
    old.stop()
    assert old_token != server.token
    assert handshake(server, headers={"Authorization": f"Bearer {old_token}"})[0] == 401


def test_token_in_url_is_refused_even_when_right(server: ServerThread) -> None:
    """A token in the query string is refused, even the right one, so it never lands in logs or history."""
    status, body = handshake(server, path=f"/ws?token={server.token}")
    assert status == 401
    assert b"URL" in body
    assert server.token.encode() not in body


def test_token_in_first_frame_for_browsers(server: ServerThread, run) -> None:
    """A browser sends the token as its first frame; the server selects llmsock.v1 and then says ready."""

    async def scenario() -> str | None:
        ws = await connect(
            server.url,
            subprotocols=["llmsock.v1"],  # type: ignore[list-item]
            origin=ORIGIN,
            open_timeout=TIMEOUT,  # type: ignore[arg-type]
        )
        await ws.send(json.dumps({"type": "auth", "token": server.token}))
        await ws.recv()
        chosen = ws.subprotocol
        await ws.close()
        return chosen

    assert run(scenario()) == "llmsock.v1"


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:8888.evil.com",
        "http://evil.example",
        "null",
        "https://localhost:8888",
        "http://localhost:8889",
        "http://LOCALHOST:8888.evil.com",
    ],
)
def test_origin_must_match_exactly(server: ServerThread, origin: str) -> None:
    """Only an exact allowed Origin passes; lookalikes, null and other schemes/ports get 403."""
    status, body = handshake(server, headers={**bearer(server), "Origin": origin})
    assert status == 403
    assert json.loads(body)["error"]["message"] == "origin not allowed"


def test_allowed_origin_passes(server: ServerThread) -> None:
    """The configured origin is accepted (with the token)."""
    assert handshake(server, headers={**bearer(server), "Origin": ORIGIN})[0] == 101


def test_allowed_origin_without_token_is_still_refused(server: ServerThread) -> None:
    """A right Origin does not replace the token (a WebSocket upgrade then waits for the auth frame)."""
    assert handshake(server, path="/status", headers={"Origin": ORIGIN}, upgrade=False)[0] == 401


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",
        "127.1:{port}",
        "0x7f.1:{port}",
        "localhost.:{port}",
        "127.0.0.1",
        "127.0.0.1:1",
        "",
    ],
)
def test_host_allow_list_blocks_dns_rebinding(server: ServerThread, host: str) -> None:
    """A Host header that is not a loopback name with the server's port gets 403, token or not."""
    status, _ = handshake(server, host=host.format(port=server.port), headers=bearer(server))
    assert status == 403


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}"])
def test_loopback_hosts_pass(server: ServerThread, host: str) -> None:
    """The loopback names with the right port are accepted."""
    assert handshake(server, host=host.format(port=server.port), headers=bearer(server))[0] == 101


@pytest.mark.parametrize("path", ["/sse", "/status"])
def test_every_route_refuses_without_auth(server: ServerThread, path: str) -> None:
    """No HTTP route answers without the token (/ws takes it in the first frame: test_edge_hardening)."""
    assert handshake(server, path=path, upgrade=False)[0] == 401


def test_status_route_with_token_has_no_secrets(server: ServerThread) -> None:
    """/status answers counters as JSON and never the token."""
    status, body = handshake(server, path="/status", headers=bearer(server), upgrade=False)
    assert status == 200
    data = json.loads(body)
    assert data["model"] == "builtin" and "connections" in data
    assert server.token.encode() not in body


def test_rejections_are_counted(server: ServerThread) -> None:
    """Refused handshakes show up in the server's counters."""
    handshake(server, headers={"Authorization": "Bearer nope"})
    assert server.status()["rejected"] >= 1


def test_websockets_client_sees_http_status(server: ServerThread, run) -> None:
    """A real websockets client gets an InvalidStatus with 401 for a wrong token."""

    async def scenario() -> int:
        try:
            await connect(
                server.url, additional_headers={"Authorization": "Bearer nope"}, open_timeout=TIMEOUT
            )
        except InvalidStatus as exc:
            return exc.response.status_code
        return 101

    assert run(scenario()) == 401


@pytest.mark.parametrize("session", ["..%2Fetc", "a.b", "x" * 129, "%00", "%C3%A9" * 100])
def test_bad_session_id_closes_with_4400(server: ServerThread, run, session: str) -> None:
    """A session id that could name a path is refused with close code 4400 and a reason."""

    async def scenario() -> tuple[int | None, str | None]:
        ws = await connect(
            f"{server.url}?session={session}",
            additional_headers={"Authorization": f"Bearer {server.token}"},
            open_timeout=TIMEOUT,
        )
        await ws.wait_closed()
        return ws.close_code, ws.close_reason

    code, reason = run(scenario())
    assert code == 4400
    assert reason and "session" in reason.lower()


def test_bearer_scheme_is_case_insensitive(server: ServerThread) -> None:
    """`bearer <token>` works like `Bearer <token>` (HTTP auth schemes are case-insensitive)."""
    assert handshake(server, headers={"Authorization": f"bearer {server.token}"})[0] == 101


@pytest.mark.parametrize("name", ["access_token", "Token", "api_token"])
def test_any_token_like_query_parameter_is_refused(server: ServerThread, name: str) -> None:
    """A query parameter that looks like a token is refused, so no token-bearing URL is ever accepted."""
    status, _ = handshake(server, path=f"/ws?{name}={server.token}", headers=bearer(server))
    assert status == 401
