"""A code block's actions in a real browser: Copy, and the inserts of the llmsock-notebook plugin.

Each test asks the builtin model to ``/echo`` an answer with a Python code block, then uses the
block's toolbar as a user does (pointer and keyboard) and checks what the user would see: the
clipboard's text, and the notebook's cells as saved to disk.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.conftest import TIMEOUT

from .chat import Chat
from .jupyter_process import JupyterServer
from .notebook import Notebook

pytestmark = pytest.mark.browser

OpenNotebook = Callable[[list[str]], Notebook]
Screenshot = Callable[..., Path]

LOAD = "%load_ext llmsock"
WIDGET = "from llmsock_widget import ChatWidget\nChatWidget()"
TARGET = "target = 'replace me'"
CODE = "value = 6 * 7\nprint(f'value={value}')"
# The fence's last line break is not part of the code; the blank line before it is.
ANSWER = f"Try this:\n\n```python\n{CODE}\n```\n\nThen look at the output."
THEMES = "@jupyterlab/apputils-extension:themes"
PLUGIN = "**/lab/extensions/llmsock-notebook/**"
INSERT_NAMES = [
    "Insert above the chat",
    "Insert below the chat",
    "Replace cell: the active one",
    "Insert and run below the chat",
]


def open_chat(open_notebook: OpenNotebook) -> tuple[Notebook, Chat]:
    """Open a notebook [load, chat, target]; run the first two; wait until the chat is open."""
    notebook = open_notebook([LOAD, WIDGET, TARGET])
    notebook.run_cells(0, 1)
    # The notebook's one chat, wherever its cell moves when cells are inserted above it.
    chat = Chat(notebook.page.locator(".jp-Notebook .llmsock-chat"))
    chat.wait_until_open()
    return notebook, chat


def answer_with_code(chat: Chat) -> Locator:
    """Have the model answer with ANSWER; return the code block's toolbar once it is there."""
    chat.send(f"/echo {ANSWER}")
    chat.wait_for_answer(0)
    toolbar = chat.code_toolbar(0, 0)
    expect(toolbar).to_be_visible()
    return toolbar


def sources(notebook: Notebook) -> list[str]:
    """Save the notebook and return its cells' sources as written to disk."""
    return [cell.source for cell in nbformat.reads(notebook.save(), as_version=4).cells]


def test_copy_and_every_insert_put_the_block_into_the_clipboard_and_the_notebook(
    open_notebook: OpenNotebook, jupyter: JupyterServer, screenshot: Screenshot
) -> None:
    """Copy gives the exact code; above, below, replace and insert-and-run leave the cells expected."""
    notebook, chat = open_chat(open_notebook)
    notebook.page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=jupyter.base_url)
    toolbar = answer_with_code(chat)
    expect(toolbar.get_by_role("button")).to_have_count(5)
    for name in ["Copy code", *INSERT_NAMES]:
        expect(toolbar.get_by_role("button", name=name, exact=True)).to_be_visible()
    screenshot(chat.root, "toolbar")

    toolbar.get_by_role("button", name="Copy code").click()
    expect(chat.code_note(0, 0)).to_have_text("Copied")
    expect(chat.root.locator('[data-role="code-announcer"]')).to_have_text("Copied")
    assert notebook.page.evaluate("navigator.clipboard.readText()") == CODE

    # Keyboard only: Tab from the transcript reaches the prompt's Edit, then the block's buttons,
    # in order; Enter acts.
    chat.transcript.focus()
    notebook.page.keyboard.press("Tab")
    expect(chat.messages("user").get_by_role("button", name="Edit this prompt")).to_be_focused()
    notebook.page.keyboard.press("Tab")
    expect(toolbar.get_by_role("button", name="Copy code")).to_be_focused()
    notebook.page.keyboard.press("Tab")
    above = toolbar.get_by_role("button", name="Insert above the chat")
    expect(above).to_be_focused()
    notebook.page.keyboard.press("Enter")
    expect(chat.code_note(0, 0)).to_have_text("Inserted above")
    expect(notebook.page.locator(".jp-Notebook .jp-Cell")).to_have_count(4)
    assert sources(notebook) == [LOAD, CODE, WIDGET, TARGET]

    toolbar.get_by_role("button", name="Insert below the chat").click()
    expect(chat.code_note(0, 0)).to_have_text("Inserted below")
    assert sources(notebook) == [LOAD, CODE, WIDGET, CODE, TARGET]

    # Replace: the cell the user was in before coming back to the chat.
    editor = notebook.cell(4).locator(".jp-InputArea-editor .cm-content")
    editor.focus()
    expect(editor).to_be_focused()
    toolbar.get_by_role("button", name="Replace cell: the active one").click()
    expect(chat.code_note(0, 0)).to_have_text("Replaced")
    assert sources(notebook) == [LOAD, CODE, WIDGET, CODE, CODE]

    toolbar.get_by_role("button", name="Insert and run below the chat").click()
    expect(chat.code_note(0, 0)).to_have_text("Inserted and running")
    expect(notebook.output(3)).to_contain_text("value=42")
    expect(notebook.prompt(3)).to_have_text("[3]:")
    assert sources(notebook) == [LOAD, CODE, WIDGET, CODE, CODE, CODE]
    # The chat itself is untouched: its one answer, its toolbar once.
    expect(chat.messages("assistant")).to_have_count(1)
    expect(chat.root.locator(".llmsock-code-actions")).to_have_count(1)


def test_without_the_plugin_only_copy_shows(
    page: Page, open_notebook: OpenNotebook, jupyter: JupyterServer, screenshot: Screenshot
) -> None:
    """Where no llmsock-notebook plugin answers (VS Code, Colab, a front end without it): Copy only."""
    # The front end loads without the plugin: its code never arrives.
    page.route(PLUGIN, lambda route: route.abort())
    notebook, chat = open_chat(open_notebook)
    notebook.page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=jupyter.base_url)
    toolbar = answer_with_code(chat)
    expect(toolbar.get_by_role("button")).to_have_count(1)
    expect(toolbar.get_by_role("button", name="Copy code")).to_be_visible()
    toolbar.get_by_role("button", name="Copy code").click()
    expect(chat.code_note(0, 0)).to_have_text("Copied")
    assert notebook.page.evaluate("navigator.clipboard.readText()") == CODE
    screenshot(chat.root, "copy-only")


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_the_toolbar_fits_and_shows_focus_at_420_px(
    open_notebook: OpenNotebook, jupyter: JupyterServer, screenshot: Screenshot, theme: str
) -> None:
    """At 420 px, in either theme, the buttons stay inside the block and a focused one is marked."""
    jupyter.put_setting(THEMES, {"theme": theme}, TIMEOUT)
    try:
        notebook, chat = open_chat(open_notebook)
        chat.root.evaluate("el => { el.style.width = '420px'; }")
        toolbar = answer_with_code(chat)
        overflow = toolbar.evaluate(
            """el => { const pre = el.closest('pre'); const box = pre.getBoundingClientRect();
                       return [...el.querySelectorAll('button')].filter((b) => {
                         const r = b.getBoundingClientRect();
                         return r.left < box.left || r.right > box.right; }).length; }"""
        )
        assert overflow == 0, "a button sticks out of the code block"
        copy = toolbar.get_by_role("button", name="Copy code")
        chat.transcript.focus()
        notebook.page.keyboard.press("Tab")  # the prompt's Edit
        notebook.page.keyboard.press("Tab")
        expect(copy).to_be_focused()
        outline = copy.evaluate("el => getComputedStyle(el).outlineStyle")
        assert outline == "solid", f"no focus outline on the focused button: {outline}"
        slug = "dark" if "Dark" in theme else "light"
        screenshot(chat.root, f"{slug}-420px")
    finally:
        jupyter.put_setting(THEMES, {"theme": "JupyterLab Light"}, TIMEOUT)


# Dispatch the widget's events as code-actions.js does, from inside the chat or from an element in
# no notebook; report whether the plugin acknowledged and what it wrote into the detail.
_FIRE = """([type, detail, outside]) => {
    const from = outside ? document.body.appendChild(document.createElement('div'))
                         : document.querySelector('.jp-Notebook .llmsock-chat');
    const event = new CustomEvent(type, {bubbles: true, composed: true, cancelable: true, detail});
    return {acked: !from.dispatchEvent(event), detail: event.detail};
}"""


def test_the_plugin_ignores_malformed_requests_and_requests_from_outside_a_notebook(
    open_notebook: OpenNotebook,
) -> None:
    """Only a well-formed request from inside a notebook is acknowledged; the others change no cell."""
    notebook, _ = open_chat(open_notebook)
    page = notebook.page

    def fire(kind: str, detail: dict[str, object], outside: bool = False) -> dict[str, object]:
        result: dict[str, object] = page.evaluate(_FIRE, [f"llmsock:{kind}", detail, outside])
        return result

    probe = {"version": 1, "insertCode": False}
    # A view in a notebook cell may also be shown in the side panel.
    assert fire("capabilities", probe) == {
        "acked": True,
        "detail": probe | {"insertCode": True, "openPanel": True},
    }
    assert fire("capabilities", probe, outside=True) == {"acked": False, "detail": probe}
    assert not fire("capabilities", probe | {"version": 2})["acked"]
    request = {"version": 1, "code": "x = 1", "where": "below", "ok": False, "message": ""}
    for bad in ({"version": 2}, {"code": ["x"]}, {"where": "sideways"}, {"where": None}):
        assert not fire("insert-code", request | bad)["acked"], bad
    assert not fire("insert-code", request, outside=True)["acked"]
    assert sources(notebook) == [LOAD, WIDGET, TARGET]
    # A well-formed one does what it says.
    assert fire("insert-code", request | {"where": "above"}) == {
        "acked": True,
        "detail": request | {"where": "above", "ok": True},
    }
    assert sources(notebook) == [LOAD, "x = 1", WIDGET, TARGET]
