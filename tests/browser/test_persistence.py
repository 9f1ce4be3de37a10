"""Chats that outlive the kernel: saved in the notebook's metadata, restored in a new kernel.

Real JupyterLab 4 and Notebook 7 with the llmsock-notebook extension installed from this
package, Debian's chromium, the builtin model (which says which turn of the conversation it
answers, and quotes the first prompt: proof that it saw the history).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import TIMEOUT

from .chat import Chat, builtin_reply, flat
from .jupyter_process import JupyterServer
from .notebook import Notebook

pytestmark = pytest.mark.browser

OpenNotebook = Callable[[list[str]], Notebook]
Screenshot = Callable[..., Path]

LOAD = "%load_ext llmsock"
WIDGET = "from llmsock_widget import ChatWidget\nChatWidget()"


def saved_sessions(notebook: Notebook) -> dict[str, Any]:
    """Save with Ctrl+S; return ``metadata.llmsock`` of the file on disk."""
    saved = json.loads(notebook.save())
    notebook.widget_state = json.dumps(saved["metadata"].get("widgets", {}))  # type: ignore[attr-defined]
    block: dict[str, Any] = saved["metadata"]["llmsock"]
    assert block["version"] == 1
    return block


def texts(snapshot: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], m["text"]) for m in snapshot["messages"]]


def wait_for_snapshot(chat: Chat, notebook: Notebook, session: str, messages: int) -> dict[str, Any]:
    """Wait until the notebook took a snapshot of ``session`` with ``messages`` messages; save; return it.

    The snapshot of a finished turn reaches the notebook model a moment after the answer shows
    (the kernel saves, then sends it); the chat says when the notebook has taken it.
    """
    expect(chat.store_line).to_have_attribute("data-snapshot-messages", str(messages))
    snapshot: dict[str, Any] = saved_sessions(notebook)["sessions"][session]
    assert len(snapshot["messages"]) == messages
    return snapshot


def restart_kernel(notebook: Notebook, jupyter: JupyterServer) -> None:
    """Restart the notebook's kernel (as Kernel > Restart does) and wait until it is idle again."""
    name = notebook.path.name
    session = next(s for s in jupyter.api("GET", "/api/sessions") if s["path"].endswith(name))
    jupyter.api("POST", f"/api/kernels/{session['kernel']['id']}/restart", timeout=TIMEOUT * 3)
    expect(notebook.kernel_status).to_have_attribute("data-status", "idle", timeout=TIMEOUT * 3000)


def test_chat_is_saved_in_the_notebook_and_restored_after_a_kernel_restart(
    open_notebook: OpenNotebook, jupyter: JupyterServer, screenshot: Screenshot
) -> None:
    """Two turns land in metadata.llmsock; a new kernel shows them again, and the model knows them."""
    keep_token = (
        "from llmsock_widget.notebook import kernel\n"
        "_ = open('token.txt', 'w').write(kernel.current_server().token)"
    )
    notebook = open_notebook([LOAD, WIDGET, keep_token])
    notebook.run_cells(0, 1)
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    chat.wait_until_open()
    expect(chat.store_line).to_contain_text("notebook metadata")
    prompts = ["my cat is called Miso", "and my dog is Rex"]
    answers = []
    for index, prompt in enumerate(prompts):
        chat.send(prompt)
        answers.append(chat.wait_for_answer(index))

    snapshot = wait_for_snapshot(chat, notebook, "default", 4)
    assert [role for role, _ in texts(snapshot)] == ["user", "assistant", "user", "assistant"]
    assert [text for role, text in texts(snapshot) if role == "user"] == prompts
    assert flat(texts(snapshot)[3][1]) == flat(builtin_reply(*prompts))
    assert prompts[0] not in notebook.widget_state, "the chat is not kept in the widget state"  # type: ignore[attr-defined]
    # The server's token never reaches the file (the cell writes it next to the notebook, unseen).
    notebook.run_cell(2)
    token = (notebook.path.parent / "token.txt").read_text()
    assert len(token) >= 32 and token not in notebook.path.read_text(encoding="utf-8")

    restart_kernel(notebook, jupyter)
    expect(chat.status).not_to_have_attribute("data-connection", "open", timeout=TIMEOUT * 2000)
    notebook.run_cells(0, 1)
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    chat.wait_until_open()
    expect(chat.prompts).to_have_text(prompts)
    assert flat(chat.answer_text(1)) == flat(answers[1])
    chat.send("what are my pets called?")
    third = chat.wait_for_answer(2)
    screenshot(chat.root)
    assert 'This is turn 3 of our conversation; earlier you asked "my cat is called Miso"' in flat(third)
    assert len(wait_for_snapshot(chat, notebook, "default", 6)["messages"]) == 6


def test_chat_comes_back_when_the_notebook_is_reopened(
    open_notebook: OpenNotebook, page: Page, jupyter: JupyterServer, screenshot: Screenshot
) -> None:
    """Close the notebook (its kernel shut down), open the saved file again: the chat is there."""
    notebook = open_notebook([LOAD, WIDGET])
    notebook.run_cells(0, 1)
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    chat.wait_until_open()
    chat.send("remember the number 42")
    first = chat.wait_for_answer(0)
    wait_for_snapshot(chat, notebook, "default", 2)
    jupyter.shutdown_kernels()
    page.goto("about:blank")

    again = Notebook.open(page, jupyter, notebook.path.name, None)
    again.run_cells(0, 1)
    chat = Chat(again.output(1).locator(".llmsock-chat"))
    chat.wait_until_open()
    expect(chat.prompts).to_have_text(["remember the number 42"])
    assert flat(chat.answer_text(0)) == flat(first)
    chat.send("which number?")
    second = chat.wait_for_answer(1)
    screenshot(chat.root)
    assert 'earlier you asked "remember the number 42"' in flat(second)


def test_two_sessions_in_one_notebook_stay_apart(
    open_notebook: OpenNotebook, jupyter: JupyterServer, screenshot: Screenshot
) -> None:
    """Chats on two sessions are saved and restored separately, each with its own history."""
    cells = [
        LOAD,
        "from llmsock_widget import ChatWidget\nChatWidget(session='recipes')",
        "ChatWidget(session='travel')",
    ]
    notebook = open_notebook(cells)
    notebook.run_cells(0, 1, 2)
    recipes = Chat(notebook.output(1).locator(".llmsock-chat"))
    travel = Chat(notebook.output(2).locator(".llmsock-chat"))
    recipes.wait_until_open()
    travel.wait_until_open()
    recipes.send("pancakes need eggs")
    recipes.wait_for_answer(0)
    travel.send("Lisbon in May")
    travel.wait_for_answer(0)
    wait_for_snapshot(recipes, notebook, "recipes", 2)
    block = saved_sessions(notebook)
    assert set(block["sessions"]) >= {"recipes", "travel"}
    assert [t for r, t in texts(block["sessions"]["recipes"]) if r == "user"] == ["pancakes need eggs"]
    assert [t for r, t in texts(wait_for_snapshot(travel, notebook, "travel", 2)) if r == "user"] == [
        "Lisbon in May"
    ]

    restart_kernel(notebook, jupyter)
    notebook.run_cells(0, 1, 2)
    recipes = Chat(notebook.output(1).locator(".llmsock-chat"))
    travel = Chat(notebook.output(2).locator(".llmsock-chat"))
    recipes.wait_until_open()
    travel.wait_until_open()
    expect(recipes.prompts).to_have_text(["pancakes need eggs"])
    expect(travel.prompts).to_have_text(["Lisbon in May"])
    travel.send("what about June?")
    answer = travel.wait_for_answer(1)
    screenshot(notebook.page.locator(".jp-Notebook"))
    assert 'earlier you asked "Lisbon in May"' in flat(answer)
    expect(recipes.messages("user")).to_have_count(1)


def test_a_long_paste_comes_back_whole_after_a_kernel_restart(
    open_notebook: OpenNotebook, jupyter: JupyterServer, screenshot: Screenshot
) -> None:
    """A 300,000-character paste and two prompts: the notebook keeps the latest turns, the file all."""
    paste = "lorem " * 50_000
    prompts = ["my cat is called Miso", paste, "and my dog is Rex", "what are my pets called?"]
    notebook = open_notebook([LOAD, WIDGET])
    notebook.run_cells(0, 1)
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    chat.wait_until_open()
    for index, prompt in enumerate(prompts):
        chat.send(prompt)
        chat.wait_for_answer(index)

    # The notebook keeps the two latest turns (the paste alone is over the cap), and links the file.
    kept = wait_for_snapshot(chat, notebook, "default", 4)
    stem = notebook.path.stem
    assert kept["droppedTurns"] == 2
    assert kept["fullCopy"]["path"] == f".llmsock/{stem}/default.json"
    whole = json.loads(
        (notebook.path.parent / ".llmsock" / stem / "default.json").read_text(encoding="utf-8")
    )
    assert [m["text"] for m in whole["messages"] if m["role"] == "user"] == prompts

    restart_kernel(notebook, jupyter)
    notebook.run_cells(0, 1)
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    chat.wait_until_open()
    users = chat.prompts
    expect(users).to_have_count(4)
    expect(users.first).to_have_text(prompts[0])
    expect(users.nth(2)).to_have_text(prompts[2])
    assert len(users.nth(1).inner_text()) >= len(paste.strip())
    screenshot(chat.root)
