"""``@name`` mentions, their chips, and "Explain the last error" in a real browser.

Real JupyterLab 4 and Notebook 7, Debian's chromium, the builtin model (whose answer quotes the
prompt it received).  Names and summaries come from the kernel over the widget's comm; with
comms on a subshell (the default of both front ends) they answer while a cell runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import BUSY_CELL as BUSY
from tests.conftest import TIMEOUT

from .chat import Chat
from .jupyter_process import JupyterServer
from .notebook import Notebook
from .test_comm_stop import set_comms_over_subshells

pytestmark = pytest.mark.browser

OpenNotebook = Callable[[list[str]], Notebook]
Screenshot = Callable[..., Path]

LOAD = "%load_ext llmsock\n%llmsock model builtin"
WIDGET = "from llmsock_widget import ChatWidget\nChatWidget()"
SECRET = "sk-live-0123456789abcdefghij"
DATA = (
    "import pandas as pd\n"
    "df = pd.DataFrame({'city': ['Oslo', 'Lima', 'Pune'], 'temp': [4.5, 19.0, 31.25]})\n"
    f"api_key = {SECRET!r}"
)
SUMMARY = "from llmsock_widget.context import summarize\nprint(summarize(name='df', value=df).text)"
FAILING = "def ratio(total, count):\n    return total / count\n\nratio(10, 0)"
_RUNNING_PROMPT = re.compile(r"^\s*\[\*\]:\s*$")


def open_chat(open_notebook: OpenNotebook, jupyter: JupyterServer, *cells: str) -> tuple[Notebook, Chat]:
    """Open a notebook [load, chat, *cells] with comms on a subshell; run the first two; wait for the chat."""
    set_comms_over_subshells(jupyter, "perCommTarget")
    notebook = open_notebook([LOAD, WIDGET, *cells])
    notebook.run_cells(0, 1)
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    chat.wait_until_open()
    return notebook, chat


def mention(notebook: Notebook, chat: Chat, before: str, name: str) -> None:
    """Type ``before`` and ``@`` plus the first letters of ``name``; pick ``name`` from the list with Tab."""
    box = chat.message_box
    box.focus()
    box.press_sequentially(f"{before}@{name[:2]}")
    listbox = chat.root.get_by_role("listbox", name="Names in the kernel")
    expect(listbox).to_be_visible()
    option = listbox.get_by_role("option").filter(has_text=re.compile(f"^{name}"))
    expect(option).to_have_count(1)
    while option.get_attribute("aria-selected") != "true":
        notebook.page.keyboard.press("ArrowDown")
    expect(box).to_have_attribute("aria-activedescendant", option.get_attribute("id") or "")
    notebook.page.keyboard.press("Tab")
    expect(listbox).to_be_hidden()
    expect(box).to_have_value(f"{before}@{name} ")


def test_a_mention_is_completed_sent_with_its_summary_and_shown_as_a_chip(
    open_notebook: OpenNotebook, jupyter: JupyterServer, screenshot: Screenshot
) -> None:
    """``@d`` lists ``df``; the prompt carries its summary; the chip under it opens that exact text."""
    notebook, chat = open_chat(open_notebook, jupyter, DATA, SUMMARY)
    notebook.run_cells(2, 3)
    expected = notebook.output(3).inner_text().strip()
    assert expected.startswith("df: ") and "Oslo" in expected

    mention(notebook, chat, "what is in ", "df")
    screenshot(chat.root, "picked")
    notebook.page.keyboard.press("Enter")  # the list is closed: Enter sends
    expect(chat.messages("user")).to_have_count(1)
    chip = chat.messages("user").nth(0).get_by_role("button", name="@df")
    expect(chip).to_have_attribute("aria-expanded", "false")
    chip.click()
    expect(chip).to_have_attribute("aria-expanded", "true")
    text = chat.messages("user").nth(0).locator('[data-role="chip-text"]')
    expect(text).to_be_visible()
    assert text.inner_text().strip() == expected
    screenshot(chat.root, "chip-open")
    answer = chat.wait_for_answer(0)
    assert "Context" in answer and "@df" in answer, answer  # the model read the attachment's block

    # A name that looks secret goes masked.
    mention(notebook, chat, "and ", "api_key")
    notebook.page.keyboard.press("Enter")
    expect(chat.messages("user")).to_have_count(2)
    chat.messages("user").nth(1).get_by_role("button", name="@api_key").click()
    masked = chat.messages("user").nth(1).locator('[data-role="chip-text"]')
    expect(masked).to_contain_text("masked")
    assert SECRET not in chat.root.inner_text()


def test_explain_the_last_error_streams_an_answer_about_it_while_a_cell_runs(
    open_notebook: OpenNotebook, jupyter: JupyterServer, screenshot: Screenshot
) -> None:
    """No error yet: the kernel says so; after a failed cell, Explain sends it while a cell runs."""
    notebook, chat = open_chat(open_notebook, jupyter, FAILING, BUSY)
    explain = chat.root.get_by_role("button", name="Explain the last error")
    note = chat.root.locator('[data-role="explain-note"]')
    explain.click()
    expect(note).to_have_text("no error to explain yet: run a cell that fails first")
    expect(chat.messages("user")).to_have_count(0)

    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        notebook.run_cell(2)  # it runs to its end and fails, as it is meant to
    notebook.run_cell(3, wait=False)
    expect(notebook.output(3)).to_contain_text("busy")  # the busy loop has started

    explain.click()
    expect(note).to_be_hidden()
    prompt = chat.prompts.nth(0)
    expect(prompt).to_contain_text("Explain this error and how to fix it.", timeout=TIMEOUT * 1000)
    expect(prompt).to_contain_text("ZeroDivisionError: division by zero")
    expect(prompt).to_contain_text("return total / count")
    answer = chat.answer(0)
    expect(answer).to_contain_text('You said: "Explain this error and how to fix it.', timeout=TIMEOUT * 1000)
    screenshot(chat.root, "explained")
    # Still inside the busy cell: the explanation did not wait for it.
    expect(notebook.prompt(3)).to_have_text(_RUNNING_PROMPT, timeout=0)

    notebook.interrupt_kernel()  # end the busy cell now rather than when its clock runs out
    expect(notebook.prompt(3)).not_to_have_text(_RUNNING_PROMPT, timeout=TIMEOUT * 1000)
