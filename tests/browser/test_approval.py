"""A tool that changes state runs only after the user approves that call, in a real browser.

A cell registers ``remember`` with ``approval=True`` (it appends its note to a list of the
kernel's namespace); the builtin model calls it on ``/tool remember {json}``. The call's card
opens by itself with the arguments, a countdown and Approve / Deny buttons named after the tool.
Approve: the tool ran once (the kernel's list says so) and the answer gives its result. A second
call, denied from the keyboard: the list is unchanged and the answer says the call was denied.
A waiting ``run_code`` call shows its code highlighted, and its card passes axe-core and WCAG AA
contrast in both themes (the checks of test_accessibility.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Locator, expect

from tests.conftest import TIMEOUT

from .chat import Chat
from .conftest import ARTIFACTS, artifact_name
from .jupyter_process import JupyterServer
from .notebook import Notebook
from .test_accessibility import AA_CONTRAST, FAILING_IMPACTS, THEME_NAMES, THEMES, contrast, describe, run_axe

pytestmark = pytest.mark.browser

OpenNotebook = Callable[[list[str]], Notebook]
Screenshot = Callable[..., Path]

LOAD = "%load_ext llmsock"
WIDGET = "from llmsock_widget import ChatWidget\nChatWidget()"
TOOL = """import llmsock_widget

notes = []


def remember(note: str) -> str:
    \"\"\"Remember a note.\"\"\"
    notes.append(note)
    return f"remembered {note}"


llmsock_widget.tool(remember, approval=True)"""
SHOW = 'print("notes:", notes)'


def card(chat: Chat, answer: int) -> Locator:
    """The card of the (only) tool call of answer ``answer``."""
    return chat.answer(answer).locator("details.llmsock-tool")


def ask(chat: Chat, answer: int, note: str) -> Locator:
    """Ask for a call of ``remember``; wait for its card to ask for approval; return the card."""
    chat.send(f"/tool remember {json.dumps({'note': note})}")
    tool = card(chat, answer)
    expect(tool).to_have_attribute("data-approval", "pending")
    expect(tool).to_have_attribute("open", "")
    expect(tool.locator("pre.llmsock-tool-args")).to_have_text(json.dumps({"note": note}, indent=2))
    expect(tool.locator(".llmsock-tool-state")).to_have_text("waiting for approval")
    expect(tool.get_by_role("timer")).to_have_text(re.compile(r"^[12]:\d\d left$"))
    return tool


def kernel_notes(notebook: Notebook, expected: list[str]) -> None:
    """Run the cell that prints the kernel's list; expect it to be ``expected``."""
    notebook.run_cell(3)
    expect(notebook.output(3)).to_contain_text(f"notes: {expected!r}")


def test_approve_runs_the_tool_once_and_deny_never_runs_it(
    open_notebook: OpenNotebook, screenshot: Screenshot
) -> None:
    """Approve: one run, its result in the answer; Deny (keyboard): no run, the answer says denied."""
    notebook = open_notebook([LOAD, WIDGET, TOOL, SHOW])
    notebook.run_cells(0, 1, 2)
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    chat.wait_until_open()
    page = notebook.page

    tool = ask(chat, 0, "first")
    approve = tool.get_by_role("button", name="Approve remember")
    deny = tool.get_by_role("button", name="Deny remember")
    expect(approve).to_be_enabled()
    expect(deny).to_be_enabled()
    expect(chat.answer(0)).to_have_attribute("data-status", "streaming")  # the turn waits
    screenshot(chat.root, "asking")
    approve.click()
    text = chat.wait_for_answer(0)
    assert "remembered first" in text, text
    expect(tool.locator(".llmsock-tool-state")).to_have_text(re.compile(r"^approved · done"))
    expect(tool.locator("pre.llmsock-tool-result")).to_contain_text("remembered first")
    expect(approve).to_have_count(0)
    kernel_notes(notebook, ["first"])

    tool = ask(chat, 1, "second")
    deny = tool.get_by_role("button", name="Deny remember")
    deny.focus()
    page.keyboard.press("Enter")
    expect(tool.locator("summary")).to_be_focused()  # not lost with the disabled button
    text = chat.wait_for_answer(1)
    assert "denied" in text, text
    expect(tool).to_have_attribute("data-approval", "denied")
    expect(tool.locator(".llmsock-tool-state")).to_have_text("denied by you")
    expect(tool.locator(".llmsock-approval-status")).to_have_text("Not run: denied by you.")
    expect(tool.get_by_role("button", name="Deny remember")).to_have_count(0)
    screenshot(chat.root, "decided")
    kernel_notes(notebook, ["first"])


RUN_CODE = "total = sum(range(10))  # a sum\nprint(f'total: {total}')"
# The card's text while it asks, and once decided: (name, selector).
CARD_TEXT = [
    ("tool state", "details.llmsock-tool .llmsock-tool-state"),
    ("question", ".llmsock-approval-question"),
    ("countdown", ".llmsock-approval-timer"),
    ("approve button", "button.llmsock-approve"),
    ("deny button", "button.llmsock-deny"),
    ("code comment", ".llmsock-tool-code .hljs-comment"),
]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_a_waiting_run_code_call_shows_its_code_and_passes_axe_and_contrast(
    request: pytest.FixtureRequest,
    open_notebook: OpenNotebook,
    jupyter: JupyterServer,
    screenshot: Screenshot,
    theme: str,
) -> None:
    """run_code's card: the code highlighted, no serious axe violation, every text at 4.5:1."""
    jupyter.put_setting(THEMES, {"theme": THEME_NAMES[theme]}, TIMEOUT)
    try:
        notebook = open_notebook([LOAD, WIDGET])
        notebook.run_cells(0, 1)
        chat = Chat(notebook.output(1).locator(".llmsock-chat"))
        chat.wait_until_open()
        chat.send(f"/tool run_code {json.dumps({'code': RUN_CODE})}")
        tool = card(chat, 0)
        expect(tool).to_have_attribute("data-approval", "pending")
        code = tool.locator(".llmsock-tool-code pre code")
        expect(code).to_have_text(RUN_CODE)
        expect(code.locator(".hljs-keyword, .hljs-built_in").first).to_be_visible()
        expect(tool.get_by_role("button", name="Approve run_code")).to_be_enabled()
        found = {"asking": run_axe(notebook.page)}
        measured = {name: contrast(chat, selector) for name, selector in CARD_TEXT}
        screenshot(chat.root, f"{theme}-run-code")
        tool.get_by_role("button", name="Deny run_code").click()
        chat.wait_for_answer(0)
        expect(tool.locator(".llmsock-approval-status")).to_have_text("Not run: denied by you.")
        found["denied"] = run_axe(notebook.page)
        measured["denied status"] = contrast(chat, ".llmsock-approval-status")
        measured["denied state"] = contrast(chat, "details.llmsock-tool .llmsock-tool-state")
    finally:
        jupyter.put_setting(THEMES, {"theme": THEME_NAMES["light"]}, TIMEOUT)
    stem = artifact_name(request.node, jupyter.frontend)
    (ARTIFACTS / f"{stem}-{theme}-axe.json").write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
    violations = [rule | {"state": state} for state, result in found.items() for rule in result["violations"]]
    serious = [rule for rule in violations if rule["impact"] in FAILING_IMPACTS]
    assert not serious, f"axe ({theme} theme) found serious or critical violations:\n{describe(violations)}"
    report = "\n".join(
        f"{name}: {m['ratio']:.2f}:1 ({m['color']} on {m['background']})" for name, m in measured.items()
    )
    low = [name for name, m in measured.items() if m["ratio"] < AA_CONTRAST]
    assert not low, f"below {AA_CONTRAST}:1 in the {theme} theme: {low}\n{report}"
