"""Stop over the comm transport while a CPU-bound cell holds the kernel's main thread.

Real JupyterLab 4 and Notebook 7, Debian's chromium, the builtin model.  Both front ends send
widget comm messages to a kernel subshell (``commsOverSubshells``, "perCommTarget" by default
in JupyterLab 4.6 with ipykernel 7), so a Stop from the view is handled while a cell runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import WebSocketRoute, expect

from tests.conftest import BUSY_CELL as BUSY
from tests.conftest import TIMEOUT

from .chat import Chat
from .jupyter_process import JupyterServer
from .notebook import Notebook

pytestmark = pytest.mark.browser

OpenNotebook = Callable[[list[str]], Notebook]
Screenshot = Callable[..., Path]

LOAD = "%load_ext llmsock"
WIDGET = "from llmsock_widget import ChatWidget\nChatWidget()"
CHAT_SOCKETS = re.compile(r"/ws\?session=")
_RUNNING_PROMPT = re.compile(r"^\s*\[\*\]:\s*$")
KERNEL_SETTINGS = "@jupyterlab/apputils-extension:kernels-settings"


def set_comms_over_subshells(jupyter: JupyterServer, mode: str) -> None:
    """Set the front end's "Kernel Comms over subshells" setting (for pages opened afterwards)."""
    jupyter.put_setting(KERNEL_SETTINGS, {"commsOverSubshells": mode}, TIMEOUT)


def test_stop_over_the_comm_ends_the_answer_while_a_cpu_bound_cell_runs(
    open_notebook: OpenNotebook, screenshot: Screenshot, jupyter: JupyterServer
) -> None:
    """Stop reaches the kernel through the widget's comm while a busy cell runs: the answer ends."""
    # The default of JupyterLab 4.6 and Notebook 7.5, said explicitly: it is what the test is about.
    set_comms_over_subshells(jupyter, "perCommTarget")
    notebook = open_notebook([LOAD, WIDGET, BUSY])

    def refuse(ws: WebSocketRoute) -> None:
        ws.close(code=4000, reason="unreachable in this test")

    notebook.page.route_web_socket(CHAT_SOCKETS, refuse)
    notebook.run_cells(0, 1)
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    assert chat.wait_until_open() == "comm"

    chat.send("/slow 20 /long 5000")  # 250 s of answer: it can only end by Stop
    body = chat.answer(0).locator(".llmsock-body")
    expect(body).to_contain_text(re.compile(r"\w+ \w+ \w+"))
    notebook.run_cell(2, wait=False)
    expect(notebook.output(2)).to_contain_text("busy")  # the busy loop has started
    before = len(chat.answer_text(0))
    expect(chat.answer(0)).to_have_attribute("data-status", "streaming")
    chat.record_lengths()

    expect(chat.stop_button).to_be_enabled()
    chat.stop_button.click()
    expect(chat.answer(0)).to_have_attribute("data-status", "aborted", timeout=TIMEOUT * 1000)
    screenshot(chat.root, "stopped")
    expect(chat.answer(0)).to_contain_text("(stopped)")
    # Still inside the busy cell: the Stop did not wait for it.
    expect(notebook.prompt(2)).to_have_text(_RUNNING_PROMPT, timeout=0)
    assert "done" not in notebook.output(2).inner_text()
    assert len(chat.answer_text(0)) >= before, "the answer kept streaming while the cell ran"

    # No delta lands after the view showed the answer aborted.
    stopped_at = len(chat.answer_text(0))
    lengths = notebook.page.evaluate("window.__lengths")
    after_abort = [entry["length"] for entry in lengths if entry["status"] == "aborted"]
    assert after_abort and set(after_abort) == {stopped_at}, after_abort
    expect(notebook.prompt(2)).to_have_text(_RUNNING_PROMPT, timeout=0)

    notebook.interrupt_kernel()  # end the busy cell now rather than when its clock runs out
    expect(notebook.prompt(2)).not_to_have_text(_RUNNING_PROMPT, timeout=TIMEOUT * 1000)
