"""How the chat reaches the kernel: the transport ladder, reconnect and resume, server restarts.

Real JupyterLab 4 and Notebook 7, Debian's chromium, the builtin model.  Jupyter Server runs
with its default IOPub rate limit (1,000 messages a second).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from tests.conftest import TIMEOUT

from .chat import Chat, builtin_reply, flat
from .jupyter_process import REMOTE_HOST, JupyterServer
from .notebook import Notebook

pytestmark = pytest.mark.browser

OpenNotebook = Callable[[list[str]], Notebook]
Screenshot = Callable[..., Path]

LOAD = "%load_ext llmsock"
WIDGET = "from llmsock_widget import ChatWidget\nChatWidget()"
# The chat's own sockets (direct and through the proxy); Jupyter's kernel channels do not match.
CHAT_SOCKETS = re.compile(r"/ws\?session=")

# Every change of the status line's connection state, in order, into window.__connections.
_RECORD_CONNECTIONS = """status => {
    window.__connections = [status.getAttribute('data-connection')];
    new MutationObserver(() => window.__connections.push(status.getAttribute('data-connection')))
        .observe(status, {attributes: true, attributeFilter: ['data-connection']});
}"""


def test_page_from_a_remote_looking_host_chats_through_the_proxy(
    request: pytest.FixtureRequest, page: Page, jupyter: JupyterServer, screenshot: Screenshot
) -> None:
    """Served as from another machine, the page cannot use 127.0.0.1: jupyter-server-proxy it is."""
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    name = f"{request.node.originalname}.ipynb"
    notebook = Notebook.open(page, jupyter, name, [LOAD, WIDGET], host=REMOTE_HOST)
    notebook.run_cells(0, 1)
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    assert chat.wait_until_open() == "proxy"
    expect(chat.connection_detail).to_contain_text(f"direct: the page is served from {REMOTE_HOST}")
    prompt = "/slow 100 /long 80"
    chat.send(prompt)
    text = chat.wait_for_answer(0)
    screenshot(chat.root)
    assert flat(text) == flat(builtin_reply(prompt))
    chat_sockets = [url for url in sockets if CHAT_SOCKETS.search(url)]
    assert chat_sockets and all(
        re.match(rf"ws://{re.escape(REMOTE_HOST)}:{jupyter.port}/proxy/\d+/ws\?session=", url)
        for url in chat_sockets
    ), chat_sockets


def test_comm_fallback_delivers_a_10000_token_reply_under_the_iopub_limit(
    open_notebook: OpenNotebook, screenshot: Screenshot, jupyter: Any
) -> None:
    """No socket can reach the server: the view falls back to the comm, and nothing is lost."""
    notebook = open_notebook([LOAD, WIDGET])
    refused: list[str] = []

    def refuse(ws: WebSocketRoute) -> None:
        refused.append(ws.url)
        ws.close(code=4000, reason="unreachable in this test")

    notebook.page.route_web_socket(CHAT_SOCKETS, refuse)
    notebook.run_cells(0, 1)
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    assert chat.wait_until_open() == "comm"
    expect(chat.connection_detail).to_contain_text("comm")
    assert refused, "the view tried a socket first"
    screenshot(chat.root, "connected")

    prompt = "/slow 0 /long 10000"
    chat.send(prompt)
    text = chat.wait_for_answer(0, timeout=TIMEOUT * 6)
    screenshot(chat.root)
    expected = builtin_reply(prompt)
    assert flat(text) == flat(expected), "every token arrived once, in order"
    log = jupyter.log_path.read_text(errors="replace")
    assert "rate exceeded" not in log, "Jupyter dropped IOPub messages"


def test_socket_dropped_mid_reply_resumes_without_duplicates(
    open_notebook: OpenNotebook, screenshot: Screenshot
) -> None:
    """The socket is cut while an answer streams: the view says so, reconnects, and ends whole."""
    notebook = open_notebook([LOAD, WIDGET])
    routes: list[WebSocketRoute] = []

    def pass_through(ws: WebSocketRoute) -> None:
        ws.connect_to_server()
        routes.append(ws)

    notebook.page.route_web_socket(CHAT_SOCKETS, pass_through)
    notebook.run_cells(0, 1)
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    transport = chat.wait_until_open()
    assert transport in ("proxy", "direct")
    chat.status.evaluate(_RECORD_CONNECTIONS)

    prompt = "/slow 150 /long 600"
    chat.send(prompt)
    body = chat.answer(0).locator(".llmsock-body")
    expect(body).to_contain_text(re.compile(r"\w+ \w+ \w+ \w+ \w+ \w+ \w+ \w+ \w+ \w+"))
    before = len(routes)
    routes[-1].close(code=4000, reason="network dropped (test)")
    expect(chat.status).not_to_have_attribute("data-connection", "open")
    screenshot(chat.root, "reconnecting")
    expect(chat.status).to_have_attribute("data-connection", "open", timeout=TIMEOUT * 2000)
    assert len(routes) > before, "a new socket was opened"
    expect(chat.connection_detail).to_contain_text("resumed")
    text = chat.wait_for_answer(0, timeout=TIMEOUT * 3)
    screenshot(chat.root)
    assert flat(text) == flat(builtin_reply(prompt)), "no duplicated or missing text after the resume"
    states = notebook.page.evaluate("window.__connections")
    assert "open" in states and states.index("open") < len(states) - 1, states
    assert {"closed", "connecting"} & set(states[states.index("open") :]), states


def test_server_restart_in_the_kernel_reconnects_the_widget(
    open_notebook: OpenNotebook, screenshot: Screenshot
) -> None:
    """``%llmsock stop`` then a new server: the open widget learns the new address and goes on."""
    notebook = open_notebook(
        [LOAD, WIDGET, "%llmsock stop", "from llmsock_widget.notebook import kernel\nkernel.get_server()"]
    )
    notebook.run_cells(0, 1)
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    chat.wait_until_open()
    chat.send("first")
    chat.wait_for_answer(0)
    notebook.run_cell(2)
    expect(chat.status).not_to_have_attribute("data-connection", "open")
    notebook.run_cell(3)
    chat.wait_until_open()
    chat.send("second")
    text = chat.wait_for_answer(1)
    screenshot(chat.root)
    assert flat(text).startswith('You said: "second".')
