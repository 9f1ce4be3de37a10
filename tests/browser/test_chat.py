"""The chat in a real browser: JupyterLab 4 and Notebook 7, Debian's chromium, the builtin model."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import TIMEOUT

from .chat import Chat, builtin_reply, flat
from .jupyter_process import JupyterServer
from .notebook import Notebook

pytestmark = pytest.mark.browser

OpenNotebook = Callable[[list[str]], Notebook]
Screenshot = Callable[..., Path]

LOAD = "%load_ext llmsock"


def test_cell_magic_streams_rendered_markdown_into_the_output(
    open_notebook: OpenNotebook, screenshot: Screenshot
) -> None:
    """A %%llmsock cell shows the builtin model's answer as rendered markdown in its output."""
    prompt = "hello from the browser"
    notebook = open_notebook([LOAD, f"%%llmsock\n{prompt}"])
    notebook.run_cells(0, 1)
    rendered = notebook.output(1).locator(".llmsock-answer")
    expect(rendered).to_contain_text(f'You said: "{prompt}"')
    expect(rendered.locator("p").first).to_be_visible()  # markdown became HTML, not plain text
    # IPython hands a cell magic its body with the final newline, which seeds the filler text.
    expected = {flat(builtin_reply(prompt)), flat(builtin_reply(f"{prompt}\n"))}
    assert flat(rendered.inner_text()) in expected
    screenshot(notebook.cell(1))


# -- the chat widget ------------------------------------------------------------------------------

WIDGET = "from llmsock_widget import ChatWidget\nChatWidget()"


def open_chat(open_notebook: OpenNotebook, *more_cells: str) -> tuple[Notebook, Chat]:
    """Open a notebook whose cells 0 and 1 load llmsock and show a chat; run them; wait for its socket."""
    notebook = open_notebook([LOAD, WIDGET, *more_cells])
    notebook.run_cells(0, 1)
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    chat.wait_until_open()
    return notebook, chat


def test_widget_streams_an_answer_token_by_token(open_notebook: OpenNotebook, screenshot: Screenshot) -> None:
    """The widget shows a paced answer growing through several lengths before it is complete."""
    _, chat = open_chat(open_notebook)
    prompt = "/slow 40 /long 60"
    chat.record_lengths()
    chat.send(prompt)
    expect(chat.prompts).to_have_text([prompt])
    expect(chat.answer(0)).to_have_attribute("data-status", "streaming")
    expect(chat.answer(0)).not_to_have_text("")
    screenshot(chat.root, "streaming")
    text = chat.wait_for_answer(0)
    screenshot(chat.root)

    streaming, final = chat.streamed_lengths(0)
    assert streaming == sorted(streaming), f"the text shrank while streaming: {streaming}"
    partial = {length for length in streaming if 0 < length < final}
    assert len(partial) >= 3, f"lengths seen while streaming: {streaming} (final {final})"
    assert flat(text) == flat(builtin_reply(prompt))  # all 60 tokens, nothing doubled or lost
    expect(chat.stop_button).to_be_disabled()


def test_a_fresh_chat_is_quiet_and_a_queued_prompt_note_goes_when_it_starts(
    open_notebook: OpenNotebook, screenshot: Screenshot
) -> None:
    """Under a fresh chat: one status line, the rest behind "details"; "queued" only while it waits."""
    _, chat = open_chat(open_notebook)
    notes = chat.root.locator('[data-role="notes"]')
    details = chat.root.locator('details[data-role="details"]')
    expect(chat.status).to_have_text(re.compile(r"^connected · (proxy|direct|comm)$"))
    # Why this transport and where the chat is saved are there, behind the disclosure, closed.
    expect(chat.connection_detail).to_be_hidden()
    expect(chat.store_line).to_be_hidden()
    expect(chat.store_line).to_contain_text("chat saved in:")
    expect(details.locator("summary")).to_be_visible()
    expect(chat.root.locator('[data-role="alerts"]')).to_be_hidden()
    expect(notes).to_be_hidden()
    expect(chat.transcript.locator(".llmsock-notice")).to_have_count(0)
    shown = chat.root.inner_text()
    assert "closed (" not in shown and "chat saved in" not in shown, shown
    screenshot(chat.root, "fresh")
    details.locator("summary").click()
    expect(chat.store_line).to_be_visible()

    # A prompt sent while an answer streams waits: a quiet note says so, and goes when it starts.
    chat.send("/slow 20 /long 60")
    expect(chat.answer(0)).to_have_attribute("data-status", "streaming")
    chat.send("/echo second")
    expect(notes).to_have_text("prompt queued; 1 waiting")
    expect(chat.transcript).not_to_contain_text("queued")
    screenshot(chat.root, "queued")
    assert chat.wait_for_answer(1, timeout=TIMEOUT * 3) == "second"
    expect(notes).to_be_hidden()
    expect(chat.transcript).not_to_contain_text("queued")


def test_stop_aborts_the_answer_and_keeps_its_text(
    open_notebook: OpenNotebook, screenshot: Screenshot
) -> None:
    """Stop ends a long answer at once: status aborted, "(stopped)" shown, no more text after it."""
    _, chat = open_chat(open_notebook)
    prompt = "/slow 20 /long 2000"
    chat.send(prompt)
    expect(chat.answer(0)).not_to_have_text("")
    expect(chat.stop_button).to_be_enabled()
    chat.stop_button.click()
    expect(chat.answer(0)).to_have_attribute("data-status", "aborted")
    expect(chat.answer(0).get_by_text("(stopped)")).to_be_visible()
    stopped = chat.answer_text(0)
    screenshot(chat.root)

    # A later round trip on the same socket: any delta still in flight would have arrived first.
    chat.send("/echo ok")
    assert chat.wait_for_answer(1) == "ok"
    assert chat.answer_text(0) == stopped
    assert 0 < len(stopped.split()) < 200, f"{len(stopped.split())} words after Stop"
    assert flat(builtin_reply(prompt)).startswith(flat(stopped))  # a prefix of the whole answer
    expect(chat.stop_button).to_be_disabled()


def test_answer_streams_while_a_cell_keeps_the_kernel_busy(
    open_notebook: OpenNotebook, screenshot: Screenshot
) -> None:
    """A chat answer streams and completes while another cell runs; the kernel is then interrupted."""
    sleep = round(TIMEOUT * 3)
    notebook, chat = open_chat(open_notebook, f"import time\ntime.sleep({sleep})")
    notebook.run_cell(2, wait=False)
    expect(notebook.kernel_status).to_have_attribute("data-status", "busy")

    chat.send("/slow 50 /long 40")
    expect(chat.answer(0)).to_have_attribute("data-status", "streaming")
    text = chat.wait_for_answer(0)
    assert flat(text) == flat(builtin_reply("/slow 50 /long 40"))
    # Read at once, no waiting: the sleep must still be running now.
    assert notebook.prompt(2).inner_text().strip() == "[*]:"
    assert notebook.kernel_status.get_attribute("data-status") == "busy"
    screenshot(notebook.page.locator(".jp-Notebook"))

    notebook.interrupt_kernel()
    expect(notebook.prompt(2)).to_have_text(re.compile(r"^\s*\[\d+\]:\s*$"))
    expect(notebook.output(2)).to_contain_text("KeyboardInterrupt")
    expect(notebook.kernel_status).to_have_attribute("data-status", "idle")


XSS = (
    '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> '
    "[click](javascript:window.__xss=3) "
    '<iframe src="https://example.invalid"></iframe> '
    "[safe](https://example.com)"
)


def test_model_output_is_sanitized(open_notebook: OpenNotebook, screenshot: Screenshot) -> None:
    """Markup in an answer stays text: no script runs, no img/script/iframe, no javascript: link."""
    notebook, chat = open_chat(open_notebook)
    chat.send(f"/echo {XSS}")
    text = chat.wait_for_answer(0)
    screenshot(chat.root)

    page = notebook.page
    assert page.evaluate("typeof window.__xss") == "undefined"
    expect(chat.transcript.locator("img, script, iframe, object, embed")).to_have_count(0)
    hrefs = chat.transcript.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href') || '')")
    assert not [href for href in hrefs if href.strip().lower().startswith("javascript:")], hrefs
    safe = chat.answer(0).get_by_role("link", name="safe")
    expect(safe).to_have_attribute("href", re.compile(r"^https://example\.com/?$"))
    expect(safe).to_have_attribute("target", "_blank")
    rel = (safe.get_attribute("rel") or "").split()
    assert "noopener" in rel and "noreferrer" in rel, rel
    for raw in ('<img src=x onerror="window.__xss=1">', "<script>window.__xss=2</script>", "<iframe"):
        assert raw in text, f"{raw!r} is not shown as text in {text!r}"
    expect(chat.prompts).to_have_text([f"/echo {XSS}"])  # the prompt, as plain text


SHARED = 'ChatWidget(session="shared")'


def test_views_of_one_session_stay_in_sync(open_notebook: OpenNotebook, screenshot: Screenshot) -> None:
    """Two views of a session show the same answers; a view opened mid-answer catches up."""
    notebook = open_notebook([LOAD, f"from llmsock_widget import ChatWidget\n{SHARED}", SHARED, SHARED])
    notebook.run_cells(0, 1, 2)
    first, second = (Chat(notebook.output(i).locator(".llmsock-chat")) for i in (1, 2))
    first.wait_until_open()
    second.wait_until_open()

    first.send("hello from the first view")
    answer = first.wait_for_answer(0)
    assert second.wait_for_answer(0) == answer
    expect(second.prompts).to_have_text(["hello from the first view"])
    assert flat(answer) == flat(builtin_reply("hello from the first view"))

    # 200 tokens at 20/s (more on slow machines): long enough to open a third view meanwhile.
    long_prompt = f"/slow 20 /long {round(TIMEOUT * 20)}"
    first.send(long_prompt)
    expect(first.answer(1)).to_have_attribute("data-status", "streaming")
    expect(first.answer(1)).not_to_have_text("")
    notebook.run_cell(3)
    third = Chat(notebook.output(3).locator(".llmsock-chat"))
    third.wait_until_open()
    # The premise, read at once: the third view joined while the answer was still streaming.
    assert first.answer(1).get_attribute("data-status") == "streaming"
    screenshot(third.root, "joined")

    long_answer = first.wait_for_answer(1, timeout=TIMEOUT * 3)
    for view in (second, third):
        assert view.wait_for_answer(1) == long_answer
    expect(third.prompts).to_have_text(["hello from the first view", long_prompt])
    assert third.answer_text(0) == answer
    assert flat(long_answer) == flat(builtin_reply("hello from the first view", long_prompt))
    screenshot(third.root)  # the late view, caught up


def test_token_never_reaches_the_saved_notebook(
    open_notebook: OpenNotebook, screenshot: Screenshot, jupyter: JupyterServer
) -> None:
    """After a chat, the saved .ipynb (outputs and widget state) and the page hold no server token."""
    token_file = f"llmsock-token-{secrets.token_hex(4)}.txt"
    notebook, chat = open_chat(
        open_notebook,
        f"import llmsock_widget, pathlib\n_ = pathlib.Path({token_file!r}).write_text("
        "llmsock_widget.get_server().token)",
    )
    chat.send("/echo the token stays in the kernel")
    assert chat.wait_for_answer(0) == "the token stays in the kernel"
    notebook.run_cell(2)
    expect(notebook.output(2).locator(".jp-OutputArea-output")).to_have_count(0)
    path = jupyter.root_dir / token_file
    token = path.read_text(encoding="utf-8")
    path.unlink()
    assert len(token) >= 16

    saved = notebook.save()
    screenshot(chat.root)
    assert "application/vnd.jupyter.widget-view+json" in saved  # the chat's output was saved
    assert "application/vnd.jupyter.widget-state+json" in saved  # and its model state
    assert token not in saved
    page = notebook.page
    assert token not in page.content()
    stored = page.evaluate(
        "() => JSON.stringify([document.cookie, {...localStorage}, {...sessionStorage}, location.href])"
    )
    assert token not in stored


TOOL_CELL = '''import llmsock_widget

@llmsock_widget.tool
def shout(text: str) -> str:
    """Repeat a text in capitals."""
    return text.upper() + "!"'''


def test_tool_calls_show_collapsibly_in_the_chat(open_notebook: OpenNotebook, screenshot: Screenshot) -> None:
    """A tool the notebook registered is called; the chat shows it folded, with arguments and result."""
    notebook, chat = open_chat(open_notebook, TOOL_CELL)
    notebook.run_cells(2, 2)
    chat.send('/tool shout {"text": "<b>hey</b>"}\n/tool calculate {"expression": "1/0"}')
    text = chat.wait_for_answer(0)
    assert "shout returned <B>HEY</B>!" in text and "division by zero" in text
    tools = chat.answer(0).locator("details.llmsock-tool")
    expect(tools).to_have_count(2)
    expect(tools.nth(0)).to_have_attribute("data-tool-status", "complete")
    expect(tools.nth(1)).to_have_attribute("data-tool-status", "error")
    expect(tools.nth(0)).not_to_have_attribute("open", "")  # folded until the reader opens it
    tools.nth(0).locator("summary").click()
    expect(tools.nth(0)).to_contain_text("shout")
    expect(tools.nth(0)).to_contain_text('"text": "<b>hey</b>"')  # arguments as text, not markup
    expect(tools.nth(0)).to_contain_text("<B>HEY</B>!")
    expect(chat.transcript.locator("b")).to_have_count(0)
    screenshot(chat.root)


def test_cell_magic_output_is_sanitized(open_notebook: OpenNotebook, screenshot: Screenshot) -> None:
    """An answer streamed into a cell by %%llmsock shows markup as text: nothing runs, nothing loads."""
    notebook = open_notebook([LOAD, f"%%llmsock\n/echo {XSS}"])
    notebook.run_cells(0, 1)
    rendered = notebook.output(1).locator(".llmsock-answer")
    expect(rendered).to_contain_text("<script>window.__xss=2</script>")
    assert notebook.page.evaluate("typeof window.__xss") == "undefined"
    expect(rendered.locator("img, script, iframe, object, embed")).to_have_count(0)
    hrefs = rendered.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href') || '')")
    assert not [href for href in hrefs if href.strip().lower().startswith("javascript:")], hrefs
    screenshot(notebook.cell(1))
