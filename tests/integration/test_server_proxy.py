"""The llmsock server reached through jupyter-server-proxy, at ``{base_url}proxy/{port}/ws``.

A real Jupyter server (with the proxy extension, base_url ``/user/tester/`` as on JupyterHub)
runs in a subprocess; the llmsock server runs in this process. What the proxy (4.x) does to
a WebSocket, as these tests pin it down:

* It forwards the request's own headers: ``Host`` stays the Jupyter server's
  (``127.0.0.1:<jupyter port>`` here, the hub's public host on JupyterHub), ``Origin`` stays
  the page's, ``Authorization``/``Cookie`` (the Jupyter credentials) reach llmsock too, and it
  adds no ``X-Forwarded-*`` header. The path loses its prefix (llmsock sees ``/ws``); the query
  string arrives byte for byte.
* It forwards the whole ``Sec-WebSocket-Protocol`` list in order, but answers the browser with
  the *first* offered subprotocol itself (jupyter-server-proxy issue #459), so the dialect must
  come first. It logs that list (at ``--debug``, and in a warning when the two choices differ),
  so the widget never puts its token there: it sends it as its first frame.
* It completes the browser's handshake (101) before it connects to llmsock. A refusal by llmsock
  (Host, Origin, token) therefore reaches the browser as an open socket that drops with 1006.
  Close codes from llmsock (4400, 1009, ...) are not relayed: the browser sees 1005.
* WebSocket pings from llmsock are answered by the proxy, not by the browser.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import secrets
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import CLOSE_SESSION_REFUSED, ServerThread
from llmsock_widget.server.websocket import WebSocketHandler
from tests.browser.jupyter_process import REMOTE_HOST, JupyterServer
from tests.conftest import TIMEOUT

from .conftest import (
    Client,
    MakeServer,
    assert_no_event_lost,
    is_model,
    is_turn_end,
    masked_frame,
    read_frame,
)

pytest.importorskip("jupyter_server_proxy")

DIALECT = "llmsock.envelope.v1"
BASE_PATH = "/user/tester/"  # a JupyterHub-style base_url: the proxy must strip it
# A page host that is not loopback-looking (a remote JupyterHub); the base command lets
# Jupyter's own DNS-rebinding guard accept it (ServerApp.local_hostnames).
REMOTE_NAME = REMOTE_HOST


class ProxyJupyter(JupyterServer):
    """JupyterLab under ``BASE_PATH``, also answering to ``REMOTE_NAME`` as a local host name."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{BASE_PATH.rstrip('/')}"

    @property
    def host(self) -> str:
        """The ``Host`` header of a page served from 127.0.0.1."""
        return f"127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        return [
            *super()._command(),
            f"--ServerApp.base_url={BASE_PATH}",
            "--debug",  # the proxy logs the subprotocols it forwards at this level
        ]

    def proxy_url(self, llmsock_port: int, query: str = "session=s1", host: str | None = None) -> str:
        return f"ws://{host or self.host}{BASE_PATH}proxy/{llmsock_port}/ws?{query}"


@dataclass
class Seen:
    """One request as the llmsock server saw it, and its Guard's verdict."""

    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    refusal: tuple[int, str] | None

    @property
    def protocols(self) -> list[str]:
        return [p.strip() for p in self.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]


def record_requests(server: ServerThread) -> list[Seen]:
    """Record every request the server's Guard checks (it runs on the server's thread)."""
    seen: list[Seen] = []
    check = server.guard.check

    def recording(request: Any, **options: Any) -> tuple[int, str] | None:
        refusal = check(request, **options)
        headers = {name.lower(): value for name, value in request.headers.get_all()}
        seen.append(Seen(request.path, request.query, headers, refusal))
        return refusal

    server.guard.check = recording  # type: ignore[method-assign]
    return seen


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyJupyter]:
    """One JupyterLab with jupyter-server-proxy for the whole module."""
    tmp: Path = tmp_path_factory.mktemp("proxy-jupyter")
    server = ProxyJupyter(
        frontend="lab", root_dir=tmp / "root", home=tmp / "home", log_path=tmp / "jupyter.log"
    )
    server.start(TIMEOUT * 3)
    try:
        yield server
    finally:
        server.stop(TIMEOUT)


@pytest.fixture
def llmsock(make_server: MakeServer) -> Callable[..., tuple[ServerThread, list[Seen]]]:
    """Start llmsock servers (builtin model at full speed) that record their requests."""

    def start(**options: Any) -> tuple[ServerThread, list[Seen]]:
        options.setdefault("model", BuiltinModel(tokens_per_second=None))
        server = make_server(**options)
        return server, record_requests(server)

    return start


async def open_proxied(
    jupyter: ProxyJupyter,
    server: ServerThread,
    *,
    origin: str | None,
    query: str = "session=s1",
    host: str | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> ClientConnection:
    """Connect through the proxy like the widget: the dialect subprotocol, page Origin, then the
    llmsock token as the first frame.

    ``headers`` replaces the Jupyter credential (default: ``Authorization: token <jupyter token>``);
    ``host`` is the name in the URL (and so the Host header); the TCP connection always goes to
    127.0.0.1, as chromium's ``--host-resolver-rules`` would do.
    """
    sent = dict(headers) if headers is not None else {"Authorization": f"token {jupyter.token}"}
    if origin is not None:
        sent["Origin"] = origin
    ws = await connect(
        jupyter.proxy_url(server.port, query, host),
        additional_headers=sent,
        subprotocols=[DIALECT],  # type: ignore[list-item]
        open_timeout=TIMEOUT,
        max_size=None,
        proxy=None,
        host="127.0.0.1",
        port=jupyter.port,
    )
    try:
        await ws.send(json.dumps({"type": "auth", "token": token or server.token}))
    except ConnectionClosed:
        pass  # refused already: the caller reads the close
    return ws


async def ask(ws: ClientConnection, prompt: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read the ready, send ``prompt``, return the ready and every frame up to the turn's end."""
    client = Client(ws)
    ready = await client.recv()
    await client.send(prompt)
    return ready, await client.recv_until(is_turn_end)


def reply_text(frames: list[dict[str, Any]]) -> tuple[str, str]:
    """Return the concatenated deltas and the ``end`` event's text."""
    deltas = "".join(f["data"]["event"]["text"] for f in frames if is_model("delta")(f))
    end = frames[-1]["data"]["event"]
    assert end["type"] == "end", end
    return deltas, end["text"]


def test_prompt_streams_a_complete_reply_through_the_proxy(jupyter: ProxyJupyter, llmsock, run) -> None:
    """With the page origin allowed (as the widget's hello does) and the Jupyter host allowed,
    a prompt streams a whole reply; the dialect subprotocol comes back; pings are answered."""
    page_origin = f"http://{jupyter.host}"
    server, _ = llmsock(allowed_hosts=[jupyter.host])
    server.allow_origin(page_origin)

    async def scenario() -> tuple[str | None, dict[str, Any], list[dict[str, Any]]]:
        ws = await open_proxied(jupyter, server, origin=page_origin)
        ready, frames = await ask(ws, "/echo hello")
        pong = await ws.ping()  # answered by the proxy itself (see the heartbeat test)
        await asyncio.wait_for(pong, TIMEOUT)
        await ws.close()
        return ws.subprotocol, ready, frames

    subprotocol, ready, frames = run(scenario())
    assert subprotocol == DIALECT
    assert ready["data"]["event"]["type"] == "ready" and ready["data"]["event"]["sessionId"] == "s1"
    assert reply_text(frames) == ("hello", "hello")


def test_what_the_llmsock_server_sees_through_the_proxy(jupyter: ProxyJupyter, llmsock, run) -> None:
    """Host is Jupyter's, Origin the page's, the subprotocol list and the query arrive unchanged,
    the prefix is gone, the Jupyter credential is forwarded and no X-Forwarded-* is added."""
    page_origin = f"http://{jupyter.host}"
    server, seen = llmsock(allowed_hosts=[jupyter.host])
    server.allow_origin(page_origin)

    async def scenario() -> None:
        ws = await open_proxied(jupyter, server, origin=page_origin)
        await Client(ws).recv()
        await ws.close()

    run(scenario())
    [request] = seen
    assert request.refusal is None
    assert request.path == "/ws" and request.query == "session=s1"
    assert request.headers["host"] == jupyter.host != f"127.0.0.1:{server.port}"
    assert request.headers["origin"] == page_origin
    assert request.protocols == [DIALECT]
    assert request.headers["authorization"] == f"token {jupyter.token}"
    assert not [name for name in request.headers if name.startswith(("x-forwarded", "x-proxycontext"))]


def test_the_token_is_in_no_line_of_the_jupyter_log_at_debug(jupyter: ProxyJupyter, llmsock, run) -> None:
    """A chat through the proxy of a Jupyter at --debug leaves the llmsock token out of its log (B7)."""
    page_origin = f"http://{jupyter.host}"
    server, _ = llmsock(allowed_hosts=[jupyter.host])
    server.allow_origin(page_origin)

    async def scenario() -> list[dict[str, Any]]:
        ws = await open_proxied(jupyter, server, origin=page_origin, query="session=logged")
        _, frames = await ask(ws, "/echo quiet")
        await ws.close()
        return frames

    assert reply_text(run(scenario())) == ("quiet", "quiet")
    log = jupyter.log_path.read_text(errors="replace")
    assert f"/proxy/{server.port}/ws" in log and "Client sent subprotocols" in log  # it did log them
    assert server.token not in log


def test_a_wrong_token_in_the_auth_frame_ends_the_socket(jupyter: ProxyJupyter, llmsock, run) -> None:
    """Through the proxy a wrong token in the first frame closes the socket; no session is attached."""
    page_origin = f"http://{jupyter.host}"
    server, seen = llmsock(allowed_hosts=[jupyter.host])
    server.allow_origin(page_origin)

    async def scenario() -> int | None:
        ws = await open_proxied(jupyter, server, origin=page_origin, token="wrong")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        return ws.close_code

    assert run(scenario()) == 1005  # llmsock's 4401, without its code (see the close-code test)
    assert [r.refusal for r in seen] == [None]  # the upgrade passed; the frame did not
    assert server.stats.rejected == 1 and not server.hub.sessions


def test_non_loopback_page_origin_works_once_allowed(jupyter: ProxyJupyter, llmsock, run) -> None:
    """A page at http://<REMOTE_HOST>:<port> (a remote hub): its Host and Origin reach llmsock as
    they are; with both allowed a prompt streams through the proxy."""
    page_host = f"{REMOTE_NAME}:{jupyter.port}"
    page_origin = f"http://{page_host}"
    server, seen = llmsock(allowed_hosts=[page_host])
    server.allow_origin(page_origin)

    async def scenario() -> tuple[str | None, list[dict[str, Any]]]:
        ws = await open_proxied(jupyter, server, origin=page_origin, host=page_host)
        _, frames = await ask(ws, "/echo hello from afar")
        await ws.close()
        return ws.subprotocol, frames

    subprotocol, frames = run(scenario())
    assert subprotocol == DIALECT
    assert reply_text(frames) == ("hello from afar", "hello from afar")
    assert seen[0].headers["host"] == page_host and seen[0].headers["origin"] == page_origin


REFUSALS = {
    # case: (server options, connect options, the Guard's verdict)
    "page origin not allowed": ({"hosts": True, "origin": False}, {}, (403, "origin not allowed")),
    "default allowed_hosts": ({"hosts": False, "origin": True}, {}, (403, "host not allowed")),
    # Jupyter accepts its token in the URL; llmsock refuses any query parameter named *token*.
    "Jupyter token in the URL": (
        {"hosts": True, "origin": True},
        {"query": "session=s1&token={jupyter_token}", "headers": {}},
        (401, "a token in the URL is refused; send it in a header or the first frame"),
    ),
    # Jupyter also takes "Authorization: Bearer <its token>"; llmsock then reads that header
    # instead of waiting for the auth frame.
    "Jupyter bearer header": (
        {"hosts": True, "origin": True},
        {"headers": {"Authorization": "Bearer {jupyter_token}"}},
        (401, "invalid token"),
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusal_is_an_opened_socket_that_drops(jupyter: ProxyJupyter, llmsock, run, case: str) -> None:
    """The proxy completes the handshake before llmsock answers, so a refusal shows as an open
    socket closed without a close frame (1006): no frame, no session, no WebSocket on llmsock."""
    server_options, connect_options, verdict = REFUSALS[case]
    page_origin = f"http://{jupyter.host}"
    server, seen = llmsock(allowed_hosts=[jupyter.host] if server_options["hosts"] else [])
    if server_options["origin"]:
        server.allow_origin(page_origin)
    options = {
        key: (
            {k: v.format(jupyter_token=jupyter.token) for k, v in value.items()}
            if isinstance(value, dict)
            else value.format(jupyter_token=jupyter.token)
        )
        for key, value in connect_options.items()
    }

    async def scenario() -> tuple[str | None, int | None]:
        ws = await open_proxied(jupyter, server, origin=page_origin, **options)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        return ws.subprotocol, ws.close_code

    subprotocol, code = run(scenario())
    assert subprotocol == DIALECT  # the proxy's own choice: the handshake succeeded
    assert code == 1006
    assert [r.refusal for r in seen] == [verdict]
    assert server.stats.rejected == 1 and server.stats.connections_total == 0


def test_jupyter_login_cookie_is_what_a_browser_uses(jupyter: ProxyJupyter, llmsock, run) -> None:
    """The browser authenticates to Jupyter with its login cookie (no _xsrf needed for the
    upgrade); without a Jupyter credential, or from a foreign page, Jupyter refuses with 403
    before llmsock is contacted."""
    page_origin = f"http://{jupyter.host}"
    server, seen = llmsock(allowed_hosts=[jupyter.host])
    server.allow_origin(page_origin)
    # The address `jupyter lab` prints: the page sets the login cookie.
    with urllib.request.urlopen(f"{jupyter.base_url}/lab?token={jupyter.token}", timeout=TIMEOUT) as page:
        cookies = [c.split(";", 1)[0] for c in page.headers.get_all("Set-Cookie") or []]
    cookie = {"Cookie": "; ".join(cookies)}

    async def status(**options: Any) -> int:
        with pytest.raises(InvalidStatus) as refused:
            await open_proxied(jupyter, server, **options)
        return refused.value.response.status_code

    async def scenario() -> tuple[list[dict[str, Any]], int, int]:
        no_credential = await status(origin=page_origin, headers={})
        foreign_page = await status(origin="http://evil.example", headers=cookie)
        ws = await open_proxied(jupyter, server, origin=page_origin, headers=cookie)
        _, frames = await ask(ws, "/echo cookie")
        await ws.close()
        return frames, no_credential, foreign_page

    frames, no_credential, foreign_page = run(scenario())
    assert no_credential == 403 and foreign_page == 403
    assert reply_text(frames) == ("cookie", "cookie")
    assert len(seen) == 1  # only the authenticated, same-origin request reached llmsock


def test_query_string_and_resume_pass_through(jupyter: ProxyJupyter, llmsock, run) -> None:
    """``?session=...&resume=<epoch>:<seq>`` reaches llmsock intact: a reconnect through the
    proxy resumes and gets exactly the events it missed."""
    page_origin = f"http://{jupyter.host}"
    server, seen = llmsock(allowed_hosts=[jupyter.host])
    server.allow_origin(page_origin)

    async def scenario() -> tuple[int, str, dict[str, Any], list[dict[str, Any]], str]:
        first = Client(await open_proxied(jupyter, server, origin=page_origin, query="session=r-1"))
        epoch = (await first.recv())["data"]["event"]["epoch"]
        await first.send("/echo resume me")
        echo = await first.recv()  # the user message: the last event this client "saw"
        last = echo["data"]["meta"]["sequence"]
        await first.recv_until(is_turn_end)
        first.ws.transport.abort()  # the network goes away
        query = f"session=r-1&resume={epoch}:{last}&x=a%20b%2Fc"
        again = Client(await open_proxied(jupyter, server, origin=page_origin, query=query))
        ready = (await again.recv())["data"]["event"]
        # Up to the event with ready's sequence (deltas may come merged, docs/protocol.md 5.1).
        replayed = await again.recv_until(
            lambda m: m["data"].get("meta", {}).get("sequence") == ready["sequence"]
        )
        await again.ws.close()
        return last, epoch, ready, replayed, query

    last, epoch, ready, replayed, query = run(scenario())
    assert seen[-1].query == query  # percent-encoding included
    assert ready["resumed"] is True and ready["epoch"] == epoch
    assert ready["replayed"] == ready["sequence"] - last > 0
    pairs = [(f["data"]["meta"]["sequence"], f["data"]["event"]["type"]) for f in replayed]
    assert_no_event_lost([(last, "message"), *pairs])  # exactly what it missed: nothing lost, nothing twice
    assert any(is_turn_end(f) for f in replayed)


def test_close_codes_do_not_survive_the_proxy(jupyter: ProxyJupyter, llmsock, run) -> None:
    """llmsock's 4400 (session refused) reaches a direct client; through the proxy the client
    gets a close frame without a code (1005) and without the reason."""
    page_origin = f"http://{jupyter.host}"
    server, _ = llmsock(allowed_hosts=[jupyter.host])
    server.allow_origin(page_origin)

    async def closed(ws: ClientConnection) -> tuple[int | None, str | None]:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        return ws.close_code, ws.close_reason

    async def scenario() -> tuple[tuple[int | None, str | None], tuple[int | None, str | None]]:
        direct = await connect(
            f"{server.url}?session=bad.id",
            additional_headers={"Authorization": f"Bearer {server.token}"},
            open_timeout=TIMEOUT,
        )
        proxied = await open_proxied(jupyter, server, origin=page_origin, query="session=bad.id")
        return await closed(direct), await closed(proxied)

    direct, proxied = run(scenario())
    assert direct[0] == CLOSE_SESSION_REFUSED and direct[1]
    assert proxied == (1005, "")


def test_message_size_limit_through_the_proxy(jupyter: ProxyJupyter, llmsock, run) -> None:
    """The proxy's own limits (10 MiB each way) are above llmsock's ``max_message_size``
    (1 MiB): a frame of exactly that size passes, frames above 1 MiB come back, and one byte
    more closes the socket — with 1005 instead of llmsock's 1009."""
    page_origin = f"http://{jupyter.host}"
    server, _ = llmsock(allowed_hosts=[jupyter.host])
    server.allow_origin(page_origin)
    text = "a" * (server.max_message_size - len("/echo "))

    async def scenario() -> tuple[list[dict[str, Any]], int | None]:
        ws = await open_proxied(jupyter, server, origin=page_origin)
        _, frames = await ask(ws, "/echo " + text)
        await ws.send("b" * (server.max_message_size + 1))
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
        return frames, ws.close_code

    frames, code = run(scenario())
    assert reply_text(frames)[1] == text  # the end frame, over 1 MiB, came through
    assert code == 1005


async def raw_upgrade(jupyter: ProxyJupyter, server: ServerThread, origin: str, session: str) -> Any:
    """Open a WebSocket through the proxy by hand and return its reader; the caller never
    writes again, so it never answers a ping."""
    reader, writer = await asyncio.open_connection("127.0.0.1", jupyter.port)
    request = (
        f"GET {BASE_PATH}proxy/{server.port}/ws?session={session} HTTP/1.1\r\n"
        f"Host: {jupyter.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {base64.b64encode(secrets.token_bytes(16)).decode()}\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {DIALECT}\r\n"
        f"Authorization: token {jupyter.token}\r\nOrigin: {origin}\r\n\r\n"
    )
    writer.write(request.encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101"), head
    writer.write(masked_frame(0x1, json.dumps({"type": "auth", "token": server.token}).encode()))
    await writer.drain()
    return reader, writer


def test_heartbeat_ends_at_the_proxy(
    jupyter: ProxyJupyter, llmsock, run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llmsock's pings are answered by the proxy: a client that never answers stays connected
    (llmsock cannot see that a browser went away); the pings are relayed to the client."""
    pongs: collections.Counter[str | None] = collections.Counter()
    enough = threading.Event()

    answered = WebSocketHandler.on_pong  # the keepalive's own: the pong answers its ping

    def on_pong(handler: WebSocketHandler, data: bytes) -> None:  # runs on the server's thread
        answered(handler, data)
        pongs[handler.session_id] += 1
        if pongs["silent"] >= 3:
            enough.set()

    monkeypatch.setattr(WebSocketHandler, "on_pong", on_pong)
    page_origin = f"http://{jupyter.host}"
    # A short interval; the ping timeout equals it, so an unanswered ping would close the socket.
    server, _ = llmsock(allowed_hosts=[jupyter.host], ping_interval=TIMEOUT / 50)
    server.allow_origin(page_origin)

    async def open_sessions() -> list[str | None]:
        return [c.session_id for c in server.connections]

    async def scenario() -> tuple[bool, list[str | None], list[int]]:
        reader, writer = await raw_upgrade(jupyter, server, page_origin, "silent")
        answered = await asyncio.to_thread(enough.wait, TIMEOUT)
        still_open = server.submit(open_sessions()).result(TIMEOUT)
        opcodes: list[int] = []
        while 0x9 not in opcodes:  # the ready text frame, then the relayed pings
            opcodes.append((await asyncio.wait_for(read_frame(reader), TIMEOUT))[0])
        writer.close()
        return answered, still_open, opcodes

    answered, still_open, opcodes = run(scenario())
    assert answered, f"llmsock saw only {pongs['silent']} pongs"
    assert still_open == ["silent"]
    assert opcodes[0] == 0x1 and opcodes[-1] == 0x9
