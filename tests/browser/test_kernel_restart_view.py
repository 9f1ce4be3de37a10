"""A chat view whose kernel restarted under it: it says so, and stops knocking on the dead server.

After a restart the old view's server is gone with the old kernel: through jupyter-server-proxy
and directly its sockets close before they open, and the widget's comm, which the new kernel
does not know, stays silent. The view must not keep retrying as if the network had dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.conftest import TIMEOUT

from .chat import Chat
from .jupyter_process import JupyterServer
from .notebook import Notebook

pytestmark = pytest.mark.browser

OpenNotebook = Callable[[list[str]], Notebook]

LOAD = "%load_ext llmsock"
WIDGET = "from llmsock_widget import ChatWidget\nChatWidget()"
# The chat's sockets name the kernel's server by its port: through the proxy or directly.
SERVER_PORT = re.compile(r"(?:/proxy/|//127\.0\.0\.1:)(\d+)/ws\?session=")


def restart_kernel(notebook: Notebook, jupyter: JupyterServer) -> None:
    """Restart the notebook's kernel (as Kernel > Restart does) and wait until it is idle again."""
    name = notebook.path.name
    session = next(s for s in jupyter.api("GET", "/api/sessions") if s["path"].endswith(name))
    jupyter.api("POST", f"/api/kernels/{session['kernel']['id']}/restart", timeout=TIMEOUT * 3)
    expect(notebook.kernel_status).to_have_attribute("data-status", "idle", timeout=TIMEOUT * 3000)


def test_the_old_view_says_the_kernel_restarted_and_stops_retrying(
    open_notebook: OpenNotebook, jupyter: JupyterServer
) -> None:
    """The open chat says "the kernel restarted: run the cell again", and doing so works."""
    notebook = open_notebook([LOAD, WIDGET, WIDGET])
    ports: list[str] = []

    def note(url: str) -> None:
        if found := SERVER_PORT.search(url):
            ports.append(found.group(1))

    notebook.page.on("websocket", lambda ws: note(ws.url))
    notebook.run_cells(0, 1)
    old = Chat(notebook.output(1).locator(".llmsock-chat"))
    old.wait_until_open()
    old.send("remember me")
    old.wait_for_answer(0)
    old_port = ports[-1]

    restart_kernel(notebook, jupyter)
    # Three walks of the ladder at most, each with a comm rung that waits for its answer.
    expect(old.status).to_have_attribute("data-connection", "error", timeout=TIMEOUT * 6000)
    expect(old.status).to_contain_text("the kernel restarted: run the cell again")
    tries = ports.count(old_port)

    # Another view of the new kernel connects meanwhile; the old one no longer knocks.
    notebook.run_cells(0, 2)
    Chat(notebook.output(2).locator(".llmsock-chat")).wait_until_open()
    assert ports[-1] != old_port, "the new kernel's server has a new port"
    assert ports.count(old_port) == tries, "the old view stopped trying its dead server"
    expect(old.status).to_contain_text("the kernel restarted: run the cell again")

    # What the view says to do works: the cell again gives a connected chat, with its transcript.
    notebook.run_cell(1)
    again = Chat(notebook.output(1).locator(".llmsock-chat"))
    again.wait_until_open()
    expect(again.prompts).to_have_text(["remember me"])
