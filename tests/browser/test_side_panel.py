"""The chat in the side panel: another view of the same widget, with the window's height.

The llmsock-notebook plugin shows the chat cell's output in the right side panel (JupyterLab
4 and Notebook 7). It is the same session: a prompt sent there shows in the cell's view too,
and its snapshots still go to the notebook.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .chat import Chat
from .notebook import Notebook

pytestmark = pytest.mark.browser

OpenNotebook = Callable[[list[str]], Notebook]
Screenshot = Callable[..., Path]

LOAD = "%load_ext llmsock"
WIDGET = "from llmsock_widget import ChatWidget\nChatWidget()"


def test_the_chat_opens_in_the_side_panel_on_the_same_session(
    open_notebook: OpenNotebook, screenshot: Screenshot
) -> None:
    """Open in side panel: a second view, taller, in sync both ways; one panel per chat cell."""
    notebook = open_notebook([LOAD, WIDGET])
    notebook.run_cells(0, 1)
    page = notebook.page
    cell = Chat(page.locator(".jp-Notebook .llmsock-chat"))
    cell.wait_until_open()
    cell.send("Tell me about lists.")
    cell.wait_for_answer(0)

    opener = cell.root.get_by_role("button", name="Open in side panel")
    expect(opener).to_be_visible()
    opener.click()
    side = Chat(page.locator(".llmsock-panel .llmsock-chat"))
    expect(side.root).to_be_visible()
    side.wait_until_open()
    # The same transcript, and no button to open a panel from the panel.
    expect(side.messages("user")).to_have_count(1)
    side.wait_for_answer(0)
    expect(side.root.get_by_role("button", name="Open in side panel")).to_be_hidden()
    tall = side.transcript.evaluate("el => el.getBoundingClientRect().height")
    short = cell.transcript.evaluate("el => el.getBoundingClientRect().height")
    assert tall > 420 >= short, (tall, short)

    # A prompt from the panel streams into the cell's view as well.
    side.send("And tuples?")
    side.wait_for_answer(1)
    cell.wait_for_answer(1)
    assert cell.answer_text(1) == side.answer_text(1)
    screenshot(page.locator("#main"), "side-panel")

    # A second click brings the same panel forward instead of opening another.
    opener.click()
    expect(page.locator(".llmsock-panel")).to_have_count(1)
