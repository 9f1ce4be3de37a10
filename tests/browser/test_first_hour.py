"""The first hour, as a newcomer lives it: the README's notebooks in JupyterLab 4 and Notebook 7.

`scripts/lab.sh` opens ``notebooks/quickstart.ipynb``; the user presses Run All, chats, stops a
long answer, pastes a long text, saves, restarts the kernel and runs the chat again. Each notebook
is copied from the repository into the server's root as ``notebooks/<name>`` (so what the front end
saves never touches the repository) and run with the front end's own menu commands.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import TIMEOUT

from .chat import Chat, flat
from .jupyter_process import JupyterServer
from .notebook import Notebook

pytestmark = pytest.mark.browser

Screenshot = Callable[..., Path]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
# The tallest picture of a whole notebook (chromium's limit for one screenshot is 16,384 pixels).
MAX_SHOT_HEIGHT = 16_000

# quickstart.ipynb: the chat cell, and what Run All asks on its session before the user types.
CHAT_CELL = 3
RUN_ALL_PROMPTS = ["What can you do?", "Summarise our conversation in one line."]
# 300,000 characters: alone larger than the notebook keeps of a chat (256 KiB).
PASTE = "lorem " * 50_000
CHAT_FILE = ".llmsock/quickstart/default.json"


def open_copy(page: Page, jupyter: JupyterServer, name: str) -> Notebook:
    """Copy ``notebooks/<name>`` into the server's root at the same path; open it, its kernel idle."""
    target = jupyter.root_dir / "notebooks" / name
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(NOTEBOOKS / name, target)
    return Notebook.open(page, jupyter, f"notebooks/{name}", None)


def shoot_whole_notebook(notebook: Notebook, screenshot: Screenshot, moment: str) -> Path:
    """Save a picture of the whole notebook: the window grows to its height, then shrinks back."""
    page = notebook.page
    viewport = page.viewport_size
    assert viewport is not None
    # From the top (Run All leaves the last cell selected, scrolled to), down to the last cell's end.
    hidden = page.evaluate(
        """() => {
            const panel = document.querySelector('.jp-Notebook');
            const scroller = panel.querySelector('.jp-WindowedPanel-outer') || panel;
            scroller.scrollTop = 0;
            const cells = panel.querySelectorAll('.jp-Cell');
            const end = cells[cells.length - 1].getBoundingClientRect().bottom;
            return Math.max(0, Math.ceil(end - scroller.getBoundingClientRect().bottom) + 16);
        }"""
    )
    height = min(viewport["height"] + hidden, MAX_SHOT_HEIGHT)
    page.set_viewport_size({"width": viewport["width"], "height": height})
    try:
        return screenshot(page.locator(".jp-Notebook"), moment)
    finally:
        page.set_viewport_size(viewport)


def run_all_without_errors(notebook: Notebook, screenshot: Screenshot, moment: str) -> None:
    """Run > Run All Cells; picture the notebook; fail with every error output it shows."""
    prompts = notebook.run_all()
    shoot_whole_notebook(notebook, screenshot, moment)
    errors = notebook.error_outputs()
    shown = "\n---\n".join(errors)
    assert not errors, f"{notebook.path.name}: {len(errors)} error output(s) after Run All:\n{shown}"
    assert all(re.fullmatch(r"\[\d+\]:", prompt) for prompt in prompts), f"not every cell ran: {prompts}"


def test_run_all_shows_no_error_in_the_persistence_and_tools_notebooks(
    page: Page, jupyter: JupyterServer, screenshot: Screenshot
) -> None:
    """Run All on persistence.ipynb and tools.ipynb, as Jupyter runs them: no error output at all."""
    for name in ("persistence.ipynb", "tools.ipynb"):
        notebook = open_copy(page, jupyter, name)
        run_all_without_errors(notebook, screenshot, Path(name).stem)
        # The next notebook starts on a quiet machine: this one's kernel goes with its page.
        page.goto("about:blank")
        jupyter.shutdown_kernels()


def user_texts(snapshot: dict[str, Any]) -> list[str]:
    """The prompts of a saved chat, without the whitespace at their ends."""
    return [message["text"].strip() for message in snapshot["messages"] if message["role"] == "user"]


def send_and_wait(chat: Chat, prompt: str, index: int) -> str:
    """Send ``prompt``; wait until it is answered (answer ``index``); return the answer's text."""
    chat.send(prompt)
    return chat.wait_for_answer(index, timeout=TIMEOUT * 3)


def test_the_first_hour_in_the_quickstart(page: Page, jupyter: JupyterServer, screenshot: Screenshot) -> None:
    """Run All, chat, Stop, a long paste, save, restart, run the chat again: the whole chat is back."""
    notebook = open_copy(page, jupyter, "quickstart.ipynb")
    run_all_without_errors(notebook, screenshot, "quickstart")
    chat = Chat(notebook.output(CHAT_CELL).locator(".llmsock-chat"))
    chat.wait_until_open()
    # Run All asked on the chat's session twice (%%llmsock, ask()); the chat shows both, quietly.
    expect(chat.prompts).to_have_text(RUN_ALL_PROMPTS)
    expect(chat.messages("assistant")).to_have_count(2)
    expect(chat.transcript.locator(".llmsock-notice")).to_have_count(0)
    prompts = list(RUN_ALL_PROMPTS)

    # A first prompt of one's own, paced as the notebook suggests (/slow 10 hello) so the stream
    # is seen: the answer grows in steps, and knows the conversation so far.
    hello = "Hello! How does this chat work?"
    chat.record_lengths()
    answer = send_and_wait(chat, f"/slow 20 {hello}", 2)
    prompts.append(f"/slow 20 {hello}")
    final = len(chat.answer(2).locator(".llmsock-body").text_content() or "")
    streaming = [e["length"] for e in page.evaluate("window.__lengths") if e["status"] == "streaming"]
    partial = {length for length in streaming if 0 < length < final}
    assert len(partial) >= 3, f"lengths seen while streaming: {streaming} (final {final})"
    first = RUN_ALL_PROMPTS[0]
    said = f'You said: "{hello}". This is turn 3 of our conversation; earlier you asked "{first}"'
    assert said in flat(answer), answer

    # A long answer, stopped: it ends at once, marked, its text kept.
    slow = "/slow 20 /long 2000"
    chat.send(slow)
    prompts.append(slow)
    expect(chat.answer(3)).not_to_have_text("")
    expect(chat.stop_button).to_be_enabled()
    chat.stop_button.click()
    expect(chat.answer(3)).to_have_attribute("data-status", "aborted")
    expect(chat.answer(3).get_by_text("(stopped)")).to_be_visible()
    expect(chat.stop_button).to_be_disabled()

    # A paste past the notebook's cap (and past the size the box asks a second Send for): the chat
    # says, in its transcript, where the whole of it is kept.
    send_and_wait(chat, PASTE, 4)
    prompts.append(PASTE)
    kept = chat.transcript.locator('.llmsock-notice[data-code="history_kept_in_file"]')
    expect(kept).to_have_count(1)
    expect(kept).to_have_attribute("data-level", "warning")
    expect(kept).to_contain_text(f"the whole chat is kept in {CHAT_FILE}")
    # Two more turns. The notebook keeps only the turns after the paste: 2 messages after the
    # first (as after the paste), 4 after the second, which tells that its snapshot has arrived.
    for index, prompt in ((5, "Are you still there?"), (6, "What did I ask first?")):
        send_and_wait(chat, prompt, index)
        prompts.append(prompt)
        expect(chat.store_line).to_have_attribute("data-snapshot-messages", str(2 * (index - 4)))
    expect(chat.transcript.locator('[data-role="user"], [data-role="assistant"]')).to_have_count(14)
    expect(kept).to_have_count(1)  # said once
    screenshot(chat.root, "before-restart")

    # Ctrl+S: the notebook holds the latest turns and links the file that holds them all.
    saved = json.loads(notebook.save())["metadata"]["llmsock"]["sessions"]["default"]
    assert saved["droppedTurns"] == 5
    assert saved["fullCopy"]["path"] == CHAT_FILE
    assert user_texts(saved) == [prompt.strip() for prompt in prompts[-2:]]
    whole = json.loads((notebook.path.parent / CHAT_FILE).read_text(encoding="utf-8"))
    assert user_texts(whole) == [prompt.strip() for prompt in prompts]

    # Kernel > Restart Kernel..., then the chat cell again (with the cell that loads llmsock).
    notebook.restart_kernel_from_menu()
    expect(chat.status).not_to_have_attribute("data-connection", "open")
    notebook.run_cells(1, CHAT_CELL)
    chat = Chat(notebook.output(CHAT_CELL).locator(".llmsock-chat"))
    chat.wait_until_open()

    # The whole transcript is back: every prompt, every answer, the stopped one still stopped.
    users = chat.prompts
    expect(users).to_have_count(7)
    expect(chat.messages("assistant")).to_have_count(7)
    for index, prompt in enumerate(prompts):
        if prompt != PASTE:
            expect(users.nth(index)).to_have_text(prompt)
    assert len(users.nth(prompts.index(PASTE)).inner_text()) >= len(PASTE.strip())
    expect(chat.answer(3)).to_have_attribute("data-status", "aborted")
    # ... and the chat says where it was kept: the whole of it in its file, the rest in the notebook.
    restored = chat.root.locator('[data-role="notes"] [data-code="history_restored"]')
    expect(restored).to_have_text(
        "this chat is larger than the notebook keeps (256 KiB):"
        f" all 14 messages were restored from {CHAT_FILE} beside the notebook"
    )
    chat.root.locator('details[data-role="details"] summary').click()
    expect(chat.store_line).to_be_visible()
    expect(chat.store_line).to_contain_text("chat saved in: notebook metadata")
    screenshot(chat.root, "restored")
