"""Hostile text shapes in the chat widget: rendering stays bounded, nothing hidden reaches the page.

Real JupyterLab and Notebook 7 in chromium.  The main thread's responsiveness is measured in the
page with a requestAnimationFrame gap monitor: the longest time between two frames while the
chat renders is the longest the tab was frozen.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.conftest import TIMEOUT

from .chat import LARGE_PROMPT_CHARS, Chat
from .notebook import Notebook

pytestmark = pytest.mark.browser

OpenNotebook = Callable[[list[str]], Notebook]

FACTOR = float(os.environ.get("LLMSOCK_TEST_TIMEOUT_FACTOR", "1"))
LOAD = "%load_ext llmsock"
SHARED = 'from llmsock_widget import ChatWidget\nChatWidget(session="unbroken")'
# The longest the main thread may stall, in ms (the freeze this guards against lasted minutes).
MAX_STALL_MS = 1000 * FACTOR

# window.llmsockFrames: the longest gap between two animation frames since start().
_FRAME_MONITOR = """() => {
    const monitor = {longest: 0, last: performance.now(), running: true};
    const tick = (now) => {
        monitor.longest = Math.max(monitor.longest, now - monitor.last);
        monitor.last = now;
        if (monitor.running) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    window.llmsockFrames = monitor;
}"""


def longest_stall(chat: Chat) -> float:
    """Stop the frame monitor (after one more frame) and return the longest gap it saw, in ms."""
    stall: float = chat.root.page.evaluate(
        """() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => {
            window.llmsockFrames.running = false;
            resolve(window.llmsockFrames.longest);
        })))"""
    )
    return stall


def open_chat(open_notebook: OpenNotebook, cells: list[str]) -> tuple[Notebook, Chat]:
    """Open a notebook of ``cells``, run the first two, return it and its open chat."""
    notebook = open_notebook(cells)
    notebook.run_cells(0, 1)
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    chat.wait_until_open()
    return notebook, chat


def answer_while_watching_frames(chat: Chat, text: str) -> None:
    """Have the builtin model echo ``text``; fail if the main thread stalled too long meanwhile."""
    prompt = f"/echo {text}"
    chat.message_box.fill(prompt)
    chat.root.page.evaluate(_FRAME_MONITOR)
    chat.send_button.click()
    if len(prompt) > LARGE_PROMPT_CHARS:  # the box asks for a second Send first
        expect(chat.composer_warning).not_to_have_text("")
        chat.send_button.click()
    expect(chat.message_box).to_have_value("")
    expect(chat.answer(0)).to_have_attribute("data-status", "complete", timeout=TIMEOUT * 6000)
    assert longest_stall(chat) < MAX_STALL_MS


def test_a_long_unbroken_token_renders_without_freezing_the_tab(open_notebook: OpenNotebook) -> None:
    """B4: 256 KiB without a space, sent, answered and shown again in a new view, never freezes the tab."""
    token = "A" * (256 * 1024)
    notebook, chat = open_chat(open_notebook, [LOAD, SHARED, SHARED])
    answer_while_watching_frames(chat, token)
    assert len(chat.answer_text(0)) == len(token)
    # Long tokens wrap inside the chat: the transcript does not scroll sideways.
    assert chat.transcript.evaluate("(log) => log.scrollWidth <= log.clientWidth + 1")

    # A new view of the same session gets the whole transcript at once.
    notebook.page.evaluate(_FRAME_MONITOR)
    notebook.run_cell(2)
    restored = Chat(notebook.output(2).locator(".llmsock-chat"))
    restored.wait_until_open()
    expect(restored.answer(0)).to_have_attribute("data-status", "complete", timeout=TIMEOUT * 6000)
    assert longest_stall(restored) < MAX_STALL_MS
    assert len(restored.answer_text(0)) == len(token)


def test_pathological_markdown_renders_without_freezing_the_tab(open_notebook: OpenNotebook) -> None:
    """B4: 256 KiB of `*a` (a quarter million emphasis markers) shows in full without freezing the tab."""
    text = "*a" * (128 * 1024)
    _, chat = open_chat(open_notebook, [LOAD, SHARED])
    answer_while_watching_frames(chat, text)
    shown = chat.answer(0).locator(".llmsock-body").evaluate("(body) => body.textContent")
    assert shown.count("a") == 128 * 1024
