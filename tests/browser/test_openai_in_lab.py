"""A mention, an approved ``run_code`` and a streamed answer from an OpenAI-compatible model, in a browser.

Real JupyterLab 4 and Notebook 7, Debian's chromium; the notebook's kernel uses
``openai:test-model`` with the kernel tools, served by tests/fakeopenai.py on 127.0.0.1 (started
here, in the test process; the kernel reaches it by URL through the real ``openai`` client).  The
provider's answers are scripted and its requests recorded, so the test asserts both what the user
sees and what left the kernel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests import fakeopenai
from tests.fakeopenai import FakeOpenAI

from .chat import Chat, flat
from .jupyter_process import JupyterServer
from .notebook import Notebook
from .test_comm_stop import set_comms_over_subshells
from .test_mentions import DATA, SECRET, SUMMARY, WIDGET, mention

pytestmark = pytest.mark.browser

OpenNotebook = Callable[[list[str]], Notebook]
Screenshot = Callable[..., Path]

COUNTER = "runs = 0"
SHOW = 'print("runs:", runs)'
RUN_CODE = "runs += 1\nhottest = df.loc[df.temp.idxmax(), 'city']\nprint('hottest:', hottest)"
FINAL = ["The hottest ", "city is ", "**Pune**, ", "at 31.25 degrees."]


def load(provider: FakeOpenAI) -> str:
    """The first cell: llmsock, with the provider's model and the kernel tools."""
    options = f"--base-url {provider.base_url} --api-key-env LLMSOCK_TEST_KEY --tools"
    return (
        "%load_ext llmsock\n"
        "import os\n"
        "os.environ['LLMSOCK_TEST_KEY'] = 'sk-test'\n"
        f"%llmsock model openai:test-model {options}"
    )


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeOpenAI]:
    """An OpenAI-compatible server on 127.0.0.1:0 for the module's tests."""
    with FakeOpenAI() as server:
        yield server


def user_message(body: dict[str, Any]) -> str:
    """Return the text of the last user message of a request body."""
    [*_, last] = [m for m in body["messages"] if m["role"] == "user"]
    content = last["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def test_a_mention_an_approved_run_code_and_the_providers_answer_with_an_openai_model(
    open_notebook: OpenNotebook, jupyter: JupyterServer, provider: FakeOpenAI, screenshot: Screenshot
) -> None:
    """``@df`` reaches the provider, a secret never; its run_code runs once on Approve; its answer shows."""
    seen = len(provider.chat_requests)  # the module's server: read only this test's requests
    provider.enqueue(
        fakeopenai.tool_calls(
            [{"id": "call_hot", "name": "run_code", "arguments": json.dumps({"code": RUN_CODE})}]
        ),
        fakeopenai.text(FINAL),
    )
    set_comms_over_subshells(jupyter, "perCommTarget")
    notebook = open_notebook([load(provider), WIDGET, f"{DATA}\n{COUNTER}", SUMMARY, SHOW])
    notebook.run_cells(0, 1, 2, 3)
    summary = notebook.output(3).inner_text().strip()
    assert summary.startswith("df: ") and "Pune" in summary, summary
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    chat.wait_until_open()
    expect(chat.root.locator('[data-role="model-picker"]')).to_have_value("openai:test-model")

    mention(notebook, chat, "which city is hottest in ", "df")
    notebook.page.keyboard.press("Enter")  # the list is closed: Enter sends
    expect(chat.messages("user")).to_have_count(1)
    chip = chat.messages("user").nth(0).get_by_role("button", name="@df")
    chip.click()
    chip_text = chat.messages("user").nth(0).locator('[data-role="chip-text"]')
    expect(chip_text).to_be_visible()
    assert chip_text.inner_text().strip() == summary  # what the user can read is what was sent
    chip.click()  # closed again, so the card below stays in view
    expect(chip).to_have_attribute("aria-expanded", "false")

    tool = chat.answer(0).locator("details.llmsock-tool")
    expect(tool).to_have_attribute("data-approval", "pending")
    expect(tool).to_have_attribute("open", "")
    expect(tool.locator(".llmsock-tool-code pre code")).to_have_text(RUN_CODE)
    expect(tool.locator(".llmsock-tool-state")).to_have_text("waiting for approval")
    approve = tool.get_by_role("button", name="Approve run_code")
    expect(approve).to_be_enabled()
    expect(chat.answer(0)).to_have_attribute("data-status", "streaming")  # the turn waits for the user
    screenshot(chat.root, "approval")
    [first] = [r.body for r in provider.chat_requests[seen:]]  # nothing more was asked while it waits
    prompt = user_message(first)
    assert prompt.startswith("which city is hottest in @df"), prompt
    assert f"Context `@df`:\n```text\n{summary}\n```" in prompt, prompt
    assert "run_code" in {offered["function"]["name"] for offered in first["tools"]}

    approve.click()
    text = chat.wait_for_answer(0)
    assert flat("".join(FINAL).replace("**", "")) in flat(text), text
    expect(chat.answer(0).locator(".llmsock-body strong")).to_have_text("Pune")  # the answer's markdown
    expect(tool).to_have_attribute("data-approval", "approved")
    expect(tool.locator(".llmsock-tool-state")).to_have_text(re.compile(r"^approved · done"))
    expect(tool.locator("pre.llmsock-tool-result")).to_contain_text("hottest: Pune")
    notebook.run_cell(4)
    expect(notebook.output(4)).to_have_text("runs: 1")  # the code ran once, in the notebook's kernel
    screenshot(chat.root, "answered")

    requests = provider.chat_requests[seen:]
    assert len(requests) == 2, [r.body for r in requests]
    results = [m for m in requests[1].body["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in results] == ["call_hot"]
    assert "hottest: Pune" in results[0]["content"], results[0]
    assert all(SECRET.encode() not in r.raw for r in requests)
    assert SECRET not in chat.root.inner_text()
