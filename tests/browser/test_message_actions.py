"""A message's actions in a real browser: Copy an answer, Regenerate, Retry, Edit and resend, Clear.

Each test drives the chat as a user does (pointer and keyboard) with the builtin model, whose
replies say which turn they answer and the first prompt (so a reply shows what the model was
given), then checks what the user sees and what the notebook saved (``metadata.llmsock``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import Locator, expect

from tests.conftest import TIMEOUT

from .chat import Chat, builtin_reply, flat
from .jupyter_process import JupyterServer
from .notebook import Notebook

pytestmark = pytest.mark.browser

OpenNotebook = Callable[[list[str]], Notebook]
Screenshot = Callable[..., Path]

LOAD = "%load_ext llmsock"
WIDGET = "from llmsock_widget import ChatWidget\nChatWidget()"
CLEAR = "%llmsock clear"
ECHO = "/echo Some **bold** text and `code`:\n\n- one\n- two"


def open_chat(open_notebook: OpenNotebook, *more: str) -> tuple[Notebook, Chat]:
    """Open a notebook [load, chat, *more]; run the first two; wait until the chat is open."""
    notebook = open_notebook([LOAD, WIDGET, *more])
    notebook.run_cells(0, 1)
    chat = Chat(notebook.page.locator(".jp-Notebook .llmsock-chat"))
    chat.wait_until_open()
    return notebook, chat


def turn(chat: Chat, prompt: str, index: int) -> str:
    """Send ``prompt``; wait for answer ``index`` to complete; return its text."""
    chat.send(prompt)
    expect(chat.messages("user")).to_have_count(index + 1)
    return chat.wait_for_answer(index)


def action(message: Locator, name: str) -> Locator:
    """The button ``name`` ("Copy", "Regenerate", "Retry", "Edit") in a message's row."""
    return message.locator(".llmsock-actions").get_by_role("button", name=name)


def saved(notebook: Notebook, session: str = "default") -> dict[str, Any]:
    """Save with Ctrl+S; return the session's snapshot in the file on disk."""
    data = nbformat.reads(notebook.save(), as_version=4)
    snapshot: dict[str, Any] = data.metadata["llmsock"]["sessions"][session]
    return snapshot


def wait_for_saved(chat: Chat, notebook: Notebook, messages: int) -> dict[str, Any]:
    """Wait until the notebook took a snapshot with ``messages`` messages; save; return it."""
    expect(chat.store_line).to_have_attribute("data-snapshot-messages", str(messages))
    snapshot = saved(notebook)
    assert len(snapshot["messages"]) == messages, json.dumps(snapshot)[:2000]
    return snapshot


def test_copy_and_regenerate(
    open_notebook: OpenNotebook, jupyter: JupyterServer, screenshot: Screenshot
) -> None:
    """Copy gives the answer's Markdown; Regenerate replaces the last turn, on screen and in the file."""
    notebook, chat = open_chat(open_notebook)
    page = notebook.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=jupyter.base_url)
    first = "Tell me about lists."
    turn(chat, first, 0)
    echoed = turn(chat, ECHO, 1)
    # Only the last answer regenerates; every answer copies.
    expect(action(chat.answer(0), "Regenerate")).to_have_count(0)
    expect(action(chat.answer(1), "Regenerate")).to_be_enabled()
    expect(action(chat.answer(0), "Copy")).to_be_enabled()
    screenshot(chat.root, "rows")

    action(chat.answer(1), "Copy").click()
    expect(chat.root.locator('[data-role="announcer"]')).to_have_text("Answer copied as Markdown")
    assert page.evaluate("navigator.clipboard.readText()") == ECHO.removeprefix("/echo ")

    # Keyboard: the Regenerate button takes Enter.
    regenerate = action(chat.answer(1), "Regenerate")
    regenerate.focus()
    page.keyboard.press("Enter")
    # The second prompt comes back once, marked, with a new answer; nothing else changes.
    marker = chat.messages("user").nth(1).locator('[data-role="replaced"]')
    expect(marker).to_have_text("sent again: replaced 2 earlier messages")
    expect(chat.messages("user")).to_have_count(2)
    assert chat.wait_for_answer(1) == echoed
    expect(chat.messages("assistant")).to_have_count(2)

    # The file holds the one branch, and so does the model's history: the next reply is turn 3.
    third = "And a generator?"
    assert flat(turn(chat, third, 2)) == flat(builtin_reply(first, ECHO, third))
    snapshot = wait_for_saved(chat, notebook, 6)
    prompts = [m["text"] for m in snapshot["messages"] if m["role"] == "user"]
    assert prompts == [first, ECHO, third]
    assert snapshot["messages"][2].get("replaced") == 2
    assert "replaced" not in snapshot["messages"][0]


def test_edit_a_prompt_replaces_it_and_the_turns_after_it(
    open_notebook: OpenNotebook, screenshot: Screenshot
) -> None:
    """Edit the first of three prompts: the editor warns, Enter sends, the later turns are gone."""
    notebook, chat = open_chat(open_notebook)
    page = notebook.page
    prompts = ["Tell me about lists.", "And tuples?", "And sets?"]
    for i, prompt in enumerate(prompts):
        turn(chat, prompt, i)
    first = chat.messages("user").nth(0)
    edit = action(first, "Edit")
    edit.focus()
    page.keyboard.press("Enter")
    box = first.get_by_role("textbox", name="Edited prompt")
    expect(box).to_be_focused()
    expect(box).to_have_value(prompts[0])
    expect(first.locator('[data-role="replace-warning"]')).to_have_text(
        "Sending replaces this prompt and the 5 messages after it."
    )
    screenshot(chat.root, "editor")
    # Esc gives the prompt back untouched; the notebook stays in edit mode on the chat.
    page.keyboard.press("Escape")
    expect(box).to_have_count(0)
    expect(edit).to_be_focused()
    expect(chat.messages("user")).to_have_count(3)

    page.keyboard.press("Enter")
    box.fill("Tell me about dictionaries.")
    page.keyboard.press("Enter")
    expect(chat.messages("user")).to_have_count(1)
    expect(chat.messages("user").nth(0).locator(".llmsock-body")).to_have_text("Tell me about dictionaries.")
    expect(chat.messages("user").nth(0).locator('[data-role="replaced"]')).to_have_text(
        "sent again: replaced 6 earlier messages"
    )
    text = chat.wait_for_answer(0)
    # The model was given only the edited prompt: its reply is that of a first turn.
    assert flat(text) == flat(builtin_reply("Tell me about dictionaries."))
    snapshot = wait_for_saved(chat, notebook, 2)
    assert [m["text"] for m in snapshot["messages"] if m["role"] == "user"] == ["Tell me about dictionaries."]


def test_retry_after_an_error(open_notebook: OpenNotebook) -> None:
    """A failed answer offers Retry (not Regenerate); it sends the prompt again in its place."""
    _, chat = open_chat(open_notebook)
    chat.send("/error 2")
    chat.wait_for_answer(0, status="error")
    expect(action(chat.answer(0), "Regenerate")).to_have_count(0)
    action(chat.answer(0), "Retry").click()
    expect(chat.messages("user").nth(0).locator('[data-role="replaced"]')).to_have_text(
        "sent again: replaced 2 earlier messages"
    )
    chat.wait_for_answer(0, status="error")
    expect(chat.messages("user")).to_have_count(1)
    expect(chat.messages("assistant")).to_have_count(1)


def test_clear_asks_first_and_the_magic_clears_every_view(
    open_notebook: OpenNotebook, screenshot: Screenshot
) -> None:
    """Clear shows a confirmation (Esc keeps the chat); Clear chat empties it; so does %llmsock clear."""
    notebook, chat = open_chat(open_notebook, CLEAR)
    page = notebook.page
    turn(chat, "hello", 0)
    clear = chat.root.get_by_role("button", name="Clear the chat")
    clear.click()
    question = chat.root.locator(".llmsock-confirm-text")
    expect(question).to_have_text("Clear all 2 messages of this chat? They cannot be brought back.")
    expect(chat.root.get_by_role("button", name="Cancel")).to_be_focused()
    screenshot(chat.root, "confirm")
    page.keyboard.press("Escape")
    expect(question).to_be_hidden()
    expect(chat.messages("user")).to_have_count(1)
    clear.click()
    chat.root.get_by_role("button", name="Clear chat").click()
    expect(chat.transcript.locator(".llmsock-msg")).to_have_count(0)
    expect(clear).to_be_disabled()
    wait_for_saved(chat, notebook, 0)

    # From a cell: the open view empties too.
    turn(chat, "hello again", 0)
    notebook.run_cell(2)
    expect(notebook.output(2)).to_contain_text("cleared 2 messages")
    expect(chat.transcript.locator(".llmsock-msg")).to_have_count(0, timeout=TIMEOUT * 1000)
