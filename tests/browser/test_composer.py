"""The message box in a real browser: growth, Esc, Up recall, the Stop shortcut, large pastes.

Each test uses the box as a user does, with the keyboard, and checks what the user would see:
the box's height, where the focus went and whether notebook shortcuts work again, the text the
box holds, the answer's status, the warning line and the messages sent.
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
WIDGET = "from llmsock_widget import ChatWidget\nChatWidget()"
LIMIT_LINES = 12  # style.css: .llmsock-input's max-height
LARGE = 100_001  # composer.js: LARGE_CHARS + 1


def open_chat(open_notebook: OpenNotebook) -> tuple[Notebook, Chat]:
    """Open a notebook [load, chat]; run both; wait until the chat is open."""
    notebook = open_notebook([LOAD, WIDGET])
    notebook.run_cells(0, 1)
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    chat.wait_until_open()
    return notebook, chat


def box_height(chat: Chat) -> float:
    """The message box's rendered height in CSS pixels."""
    return float(chat.message_box.evaluate("el => el.getBoundingClientRect().height"))


def test_the_box_grows_with_its_lines_up_to_the_limit_then_scrolls(
    open_notebook: OpenNotebook, screenshot: Screenshot
) -> None:
    """One line when empty (also at 420 px); a line taller per line typed; past 12 lines it scrolls."""
    notebook, chat = open_chat(open_notebook)
    box = chat.message_box
    empty = box_height(chat)
    line = float(box.evaluate("el => parseFloat(getComputedStyle(el).lineHeight)"))
    assert line > 0
    assert empty < 2 * line, f"an empty box is {empty} px high: more than one line of {line} px"

    box.focus()
    box.press_sequentially("line 1")
    heights = [box_height(chat)]
    for n in range(2, LIMIT_LINES + 4):
        notebook.page.keyboard.press("Shift+Enter")
        notebook.page.keyboard.type(f"line {n}")
        heights.append(box_height(chat))
    assert heights[0] == pytest.approx(empty, abs=1)
    for n in range(1, LIMIT_LINES):  # lines 2..12: one line taller each
        assert heights[n] - heights[n - 1] == pytest.approx(line, abs=1.5), heights
    # Lines 13 and on: no taller (scrollHeight is whole pixels, the limit may not be).
    assert heights[LIMIT_LINES:] == pytest.approx([heights[LIMIT_LINES - 1]] * 3, abs=1), heights
    scrolls = box.evaluate("el => el.scrollHeight > el.clientHeight && getComputedStyle(el).overflowY")
    assert scrolls == "auto", "past the limit the box does not scroll"
    screenshot(chat.root, "at-the-limit")

    # Sent: one line again.
    box.press("Enter")
    expect(chat.messages("user")).to_have_count(1)
    expect(box).to_have_value("")
    assert box_height(chat) == pytest.approx(empty, abs=1)
    # At 420 px wide the hint does not wrap the empty box onto a second line.
    chat.root.evaluate("el => { el.style.width = '420px'; }")
    assert box_height(chat) == pytest.approx(empty, abs=1)
    screenshot(chat.root, "420px-empty")


def test_escape_leaves_the_box_and_the_notebook_takes_its_shortcuts_again(
    open_notebook: OpenNotebook,
) -> None:
    """Esc in the box: the focus goes to the chat's cell, in command mode, and "b" adds a cell."""
    notebook, chat = open_chat(open_notebook)
    cells = notebook.page.locator(".jp-Notebook .jp-Cell")
    expect(cells).to_have_count(2)
    box = chat.message_box
    box.focus()
    notebook.page.keyboard.type("draft b")  # typed into the box: no notebook shortcut fires
    expect(box).to_have_value("draft b")
    expect(cells).to_have_count(2)

    notebook.page.keyboard.press("Escape")
    expect(box).not_to_be_focused()
    expect(notebook.cell(1)).to_be_focused()
    expect(notebook.page.locator(".jp-Notebook")).to_have_class(re.compile(r"\bjp-mod-commandMode\b"))
    expect(notebook.page.locator(".jp-Notebook")).not_to_have_class(re.compile(r"\bjp-mod-readWrite\b"))
    notebook.page.keyboard.press("b")  # command mode: insert a cell below
    expect(cells).to_have_count(3)
    expect(box).to_have_value("draft b")  # the draft is kept


def test_up_recalls_the_prompts_sent_and_down_goes_forward(open_notebook: OpenNotebook) -> None:
    """Up in the empty box shows the last prompt, then older ones; Down back; Enter sends it again."""
    notebook, chat = open_chat(open_notebook)
    chat.send("/echo first")
    chat.wait_for_answer(0)
    chat.send("/echo second")
    chat.wait_for_answer(1)
    box = chat.message_box
    box.focus()
    keyboard = notebook.page.keyboard
    keyboard.press("ArrowUp")
    expect(box).to_have_value("/echo second")
    keyboard.press("ArrowUp")
    expect(box).to_have_value("/echo first")
    keyboard.press("ArrowDown")
    expect(box).to_have_value("/echo second")
    keyboard.press("ArrowDown")
    expect(box).to_have_value("")
    keyboard.press("ArrowUp")
    keyboard.press("ArrowUp")
    keyboard.press("Enter")
    expect(chat.messages("user")).to_have_count(3)
    expect(chat.prompts.nth(2)).to_have_text("/echo first")
    assert chat.wait_for_answer(2) == "first"


def test_the_stop_shortcut_stops_a_streaming_answer(
    open_notebook: OpenNotebook, screenshot: Screenshot
) -> None:
    """Ctrl+Shift+Backspace while an answer streams: the answer ends as stopped."""
    notebook, chat = open_chat(open_notebook)
    chat.send("/slow 20 /long 2000")  # 100 s of answer: it can only end by Stop in time
    expect(chat.answer(0).locator(".llmsock-body")).to_contain_text(re.compile(r"\w+ \w+ \w+"))
    expect(chat.answer(0)).to_have_attribute("data-status", "streaming")
    chat.message_box.focus()
    notebook.page.keyboard.type("next")
    notebook.page.keyboard.press("Control+Shift+Backspace")
    expect(chat.answer(0)).to_have_attribute("data-status", "aborted")
    expect(chat.answer(0)).to_contain_text("(stopped)")
    expect(chat.message_box).to_have_value("next")  # the shortcut edits no text
    # The button says its shortcut, to the eye and to assistive technology.
    expect(chat.stop_button).to_have_attribute("aria-keyshortcuts", "Control+Shift+Backspace")
    expect(chat.stop_button).to_have_attribute("title", re.compile(r"Ctrl\+Shift\+Backspace"))
    screenshot(chat.root, "stopped")


def test_a_very_large_paste_warns_before_it_is_sent(
    open_notebook: OpenNotebook, jupyter: JupyterServer, screenshot: Screenshot
) -> None:
    """Pasted 100,001 characters: the first Enter warns (politely), typing clears it, Send sends."""
    notebook, chat = open_chat(open_notebook)
    page = notebook.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=jupyter.base_url)
    large = ("word " * (LARGE // 5 + 1))[:LARGE]
    page.evaluate("text => navigator.clipboard.writeText(text)", large)
    box = chat.message_box
    box.focus()
    page.keyboard.press("Control+v")
    expect(box).to_have_value(large)

    page.keyboard.press("Enter")
    warning = chat.composer_warning
    expect(warning).to_be_visible()
    expect(warning).to_have_text(re.compile(r"100,001 characters.*Send again"))
    expect(warning).to_have_attribute("aria-live", "polite")
    expect(box).to_be_focused()
    expect(box).to_have_value(large)
    expect(chat.messages("user")).to_have_count(0)
    screenshot(chat.root, "warning")

    page.keyboard.type("!")  # typing: the text changed, the warning goes
    expect(warning).to_be_hidden()
    page.keyboard.press("Backspace")
    page.keyboard.press("Enter")
    expect(warning).to_be_visible()
    expect(chat.messages("user")).to_have_count(0)
    # Keyboard only: Tab reaches Send; pressing it is the second Send.
    page.keyboard.press("Tab")
    expect(chat.send_button).to_be_focused()
    page.keyboard.press("Enter")
    expect(chat.messages("user")).to_have_count(1)
    expect(box).to_have_value("")
    expect(warning).to_be_hidden()
    length = chat.messages("user").first.evaluate("m => m.querySelector('.llmsock-body').textContent.length")
    assert length == LARGE
    chat.wait_for_answer(0, timeout=TIMEOUT * 2)
