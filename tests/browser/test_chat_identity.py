"""Who the chat is, in a real browser: the header, the empty state, times and token usage.

Also the screenshots of the chat in both themes at 420 px, looked at by eye.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import TIMEOUT

from .chat import Chat
from .jupyter_process import JupyterServer
from .notebook import Notebook

pytestmark = pytest.mark.browser

OpenNotebook = Callable[[list[str]], Notebook]
Screenshot = Callable[..., Path]

LOAD = "%load_ext llmsock"
THEMES = "@jupyterlab/apputils-extension:themes"


def open_chat(open_notebook: OpenNotebook, session: str = "") -> tuple[Notebook, Chat]:
    """Open a notebook [load, chat]; run both; wait until the chat is open."""
    widget = f"ChatWidget(session={session!r})" if session else "ChatWidget()"
    notebook = open_notebook([LOAD, f"from llmsock_widget import ChatWidget\n{widget}"])
    notebook.run_cells(0, 1)
    chat = Chat(notebook.page.locator(".jp-Notebook .llmsock-chat"))
    chat.wait_until_open()
    return notebook, chat


def test_a_new_chat_says_who_it_is_and_offers_examples(
    open_notebook: OpenNotebook, screenshot: Screenshot
) -> None:
    """The empty state names the session and the model; an example fills the box; usage adds up."""
    _, chat = open_chat(open_notebook, "recipes")
    header = chat.root.locator('[data-role="header"]')
    expect(header.locator('[data-role="session-name"]')).to_have_text("Chat · recipes")
    expect(header.locator('[data-role="model"]')).to_have_text("model: builtin")
    empty = chat.transcript.locator('[data-role="empty-state"]')
    expect(empty).to_contain_text("session “recipes”, answered by the model “builtin”")
    examples = empty.get_by_role("button")
    expect(examples).to_have_count(3)
    screenshot(chat.root, "empty")
    first = examples.nth(0).inner_text()
    examples.nth(0).click()
    expect(chat.message_box).to_have_value(first)
    expect(chat.message_box).to_be_focused()
    chat.message_box.press("Enter")
    expect(empty).to_have_count(0)
    chat.wait_for_answer(0)
    row = chat.answer(0).locator('[data-role="message-actions"]')
    usage = row.locator('[data-role="usage"]').inner_text()
    assert usage.endswith(" out tokens"), usage
    inputs, outputs = (int(part.split()[0]) for part in usage.removesuffix(" tokens").split(" · "))
    expect(header.locator('[data-role="session-usage"]')).to_have_text(f"{inputs + outputs:,} tokens")
    # Every message has its time; the full date is its title.
    for message in (chat.messages("user").nth(0), chat.answer(0)):
        time = message.locator("time")
        expect(time).to_have_text(re.compile(r"^\d\d:\d\d$"))
        assert time.get_attribute("title")


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_the_chat_at_420_px_in_both_themes(
    open_notebook: OpenNotebook, jupyter: JupyterServer, screenshot: Screenshot, theme: str
) -> None:
    """At 420 px an answer with a code block and a table fits its width: nothing but the block scrolls."""
    jupyter.put_setting(THEMES, {"theme": theme}, TIMEOUT)
    try:
        _, chat = open_chat(open_notebook)
        chat.root.evaluate("el => { el.style.width = '420px'; }")
        chat.send("/markdown")
        chat.wait_for_answer(0)
        chat.send("/shape table 40")
        chat.wait_for_answer(1)
        # Answers take the transcript's width (prompts stay bubbles).
        widths = chat.transcript.evaluate(
            """log => [...log.querySelectorAll('.llmsock-msg')].map(
                   (m) => [m.dataset.role, m.getBoundingClientRect().width / log.clientWidth])"""
        )
        answers = [share for role, share in widths if role == "assistant"]
        assert answers and min(answers) > 0.9, widths
        wide = chat.root.evaluate("el => el.scrollWidth - el.clientWidth")
        assert wide <= 0, f"the chat scrolls sideways by {wide} px"
        slug = "dark" if "Dark" in theme else "light"
        screenshot(chat.root, f"{slug}-420px")
    finally:
        jupyter.put_setting(THEMES, {"theme": "JupyterLab Light"}, TIMEOUT)
