"""The chat's settings panel: tools, the model's timeout and its retries, chosen in the widget.

Real JupyterLab 4 and Notebook 7, Debian's chromium.  The kernel's model is an ``openai:`` model
pointed at a fake OpenAI-compatible provider that this test runs (tests/fakeopenai.py), so the
test sees each request the chat's prompts made: whether it offered tools, and how many attempts
a stalled provider got.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, expect

from tests.conftest import TIMEOUT
from tests.fakeopenai import FakeOpenAI, stall

from .chat import Chat
from .jupyter_process import JupyterServer
from .notebook import Notebook

pytestmark = pytest.mark.browser

OpenNotebook = Callable[[list[str]], Notebook]
Screenshot = Callable[..., Path]

LOAD = "%load_ext llmsock"
CHAT = "from llmsock_widget import ChatWidget\nchat = ChatWidget()\nchat"
# Print the chat's settings as Python sees them, once they are `expected`: the panel's changes
# reach the kernel as comm messages, which a subshell may handle while this cell runs.
SETTLED = f"""import threading

def settled(*expected):
    done = threading.Event()
    def check(change=None):
        if (chat.tools, chat.timeout, chat.retries) == expected:
            done.set()
    chat.observe(check, names=["tools", "timeout", "retries"])
    check()
    done.wait({TIMEOUT:g})
    chat.unobserve(check, names=["tools", "timeout", "retries"])
    print("settings:", chat.tools, chat.timeout, chat.retries)
"""
REFUSED = "try:\n    ChatWidget(timeout=0)\nexcept Exception as exc:\n    print(type(exc).__name__, exc)"
THEMES = "@jupyterlab/apputils-extension:themes"
NARROW = "420px"


@pytest.fixture
def provider() -> Iterator[FakeOpenAI]:
    """A fake OpenAI-compatible provider on 127.0.0.1, stopped (its stalls released) afterwards."""
    with FakeOpenAI() as server:
        yield server


def model_cell(provider: FakeOpenAI) -> str:
    """The cell that makes the kernel's model an ``openai:`` model served by ``provider``."""
    return f"%llmsock model openai:m --base-url {provider.base_url}"


class Panel:
    """The chat's settings disclosure and its three fields."""

    def __init__(self, chat: Chat) -> None:
        self.root = chat.root.locator('[data-role="settings"]')
        self.summary = self.root.locator("summary")
        self.tools = chat.root.get_by_label("Tools", exact=True)
        self.timeout = chat.root.get_by_label("Timeout (s)", exact=True)
        self.retries = chat.root.get_by_label("Retries", exact=True)

    def open_with_keyboard(self) -> None:
        """Focus the summary and press Enter, as a keyboard user does."""
        self.summary.focus()
        expect(self.summary).to_be_focused()
        self.summary.press("Enter")
        expect(self.root).to_have_attribute("open", "")
        expect(self.tools).to_be_visible()

    def error_of(self, field: Locator) -> Locator:
        """The line under ``field`` that says why its value is not sent."""
        return self.root.locator(f"#{field.get_attribute('aria-describedby')}")


def narrow(chat: Chat) -> None:
    """Make the chat as narrow as a side panel's output (420 px)."""
    chat.root.evaluate(f"el => {{ el.style.width = '{NARROW}'; }}")


def assert_fits(panel: Panel) -> None:
    """Nothing in the open panel sticks out of it sideways."""
    overflow = panel.root.evaluate(
        """el => { const body = el.querySelector('.llmsock-settings-body');
                   return body.scrollWidth - body.clientWidth; }"""
    )
    assert overflow <= 0, f"the settings panel overflows by {overflow} px"


def set_theme(jupyter: JupyterServer, theme: str) -> None:
    """Set the front end's theme (for pages opened afterwards)."""
    jupyter.put_setting(THEMES, {"theme": theme}, TIMEOUT)


def open_chat(open_notebook: OpenNotebook, provider: FakeOpenAI) -> tuple[Notebook, Chat, Panel]:
    """Open a notebook whose chat's model is served by ``provider``; wait until the chat is open."""
    later = ["settled(False, None, None)", "chat.retries = 2\nchat.timeout = 45"]
    notebook = open_notebook([LOAD, model_cell(provider), CHAT, SETTLED, *later])
    notebook.run_cells(0, 1, 2, 3)
    chat = Chat(notebook.output(2).locator(".llmsock-chat"))
    chat.wait_until_open()
    return notebook, chat, Panel(chat)


def test_tools_chosen_in_the_panel_decide_what_the_provider_is_offered(
    open_notebook: OpenNotebook, provider: FakeOpenAI
) -> None:
    """Tools "on" offers the registered tools to the provider, "off" none; Python sees the choice."""
    notebook, chat, panel = open_chat(open_notebook, provider)
    expect(panel.summary).to_have_text("settings")
    panel.open_with_keyboard()
    expect(panel.tools).to_have_value("default")

    panel.tools.select_option("on")
    expect(panel.summary).to_have_text("settings · tools on")
    chat.send("with tools")
    chat.wait_for_answer(0)
    offered = provider.chat_requests[-1].body.get("tools")
    assert offered, "tools 'on': the request offers the registered tools"
    assert {tool["function"]["name"] for tool in offered} >= {"calculate"}

    panel.tools.select_option("off")
    chat.send("without tools")
    chat.wait_for_answer(1)
    assert "tools" not in provider.chat_requests[-1].body, "tools 'off': the request offers none"
    assert len(provider.chat_requests) == 2

    # The choice reached Python's traits; traits set in Python show in the panel.
    notebook.run_cell(4)
    expect(notebook.output(4)).to_contain_text("settings: False None None")
    notebook.run_cell(5)
    expect(panel.retries).to_have_value("2")
    expect(panel.timeout).to_have_value("45")
    expect(panel.summary).to_have_text("settings · tools off · timeout 45 s · retries 2")


def test_timeout_and_retries_from_the_panel_bound_a_stalled_provider(
    open_notebook: OpenNotebook, provider: FakeOpenAI, screenshot: Screenshot
) -> None:
    """Timeout 1 s and no retries: a provider that sends nothing fails the answer after about 1 s, once."""
    _, chat, panel = open_chat(open_notebook, provider)
    narrow(chat)
    panel.open_with_keyboard()

    # Invalid input is said next to its field and not sent.
    panel.timeout.fill("0")
    expect(panel.timeout).to_have_attribute("aria-invalid", "true")
    expect(panel.error_of(panel.timeout)).to_have_text(
        "Not sent: a number of seconds above 0, at most 3600. Prompts use the model's setting."
    )
    panel.retries.fill("ten")
    expect(panel.error_of(panel.retries)).to_contain_text("a whole number from 0 to 10")
    expect(panel.summary).to_have_text("settings")
    assert_fits(panel)
    screenshot(chat.root, "invalid")

    panel.timeout.fill("1")
    panel.retries.fill("0")
    expect(panel.timeout).not_to_have_attribute("aria-invalid", "true")
    expect(panel.error_of(panel.retries)).to_have_text("")
    expect(panel.summary).to_have_text("settings · timeout 1 s · retries 0")
    assert_fits(panel)
    screenshot(chat.root, "light")

    provider.enqueue(stall())
    chat.send("are you there?")
    error = chat.answer(0).locator(".llmsock-error")
    expect(error).to_contain_text("sent no answer after", timeout=TIMEOUT * 1000)
    said = error.inner_text()
    found = re.search(r"sent no answer after (\d+\.\d) s \(1 attempt of 1 s\)", said)
    assert found, said
    assert 1.0 <= float(found.group(1)) < 3.0, f"about 1 s: {said}"
    assert len(provider.chat_requests) == 1, "no retry: the provider saw one request"
    expect(chat.answer(0)).to_have_attribute("data-status", "error")
    panel.timeout.press("Escape")
    screenshot(chat.root, "timed-out")


def test_the_settings_panel_in_the_dark_theme_at_420_px(
    open_notebook: OpenNotebook, jupyter: JupyterServer, screenshot: Screenshot
) -> None:
    """ChatWidget()'s settings show in the panel, readable in the dark theme at 420 px; bad ones fail."""
    set_theme(jupyter, "JupyterLab Dark")
    try:
        widget = "from llmsock_widget import ChatWidget\nChatWidget(tools=True, timeout=30, retries=0)"
        notebook = open_notebook([LOAD, widget, REFUSED])
        notebook.run_cells(0, 1, 2)
        expect(notebook.output(2)).to_have_text(
            "TraitError ChatWidget.timeout must be a number of seconds above 0, at most 3600, "
            "or None for the model's setting; not 0"
        )
        chat = Chat(notebook.output(1).locator(".llmsock-chat"))
        chat.wait_until_open()
        narrow(chat)
        panel = Panel(chat)
        expect(panel.summary).to_have_text("settings · tools on · timeout 30 s · retries 0")
        panel.open_with_keyboard()
        expect(panel.tools).to_have_value("on")
        expect(panel.timeout).to_have_value("30")
        expect(panel.retries).to_have_value("0")
        panel.retries.fill("11")
        expect(panel.error_of(panel.retries)).to_have_text(
            "Not sent: a whole number from 0 to 10. Prompts use 0 retries."
        )
        assert_fits(panel)
        screenshot(chat.root, "dark")
        # Escape closes the panel and leaves the focus on its summary.
        panel.retries.press("Escape")
        expect(panel.root).not_to_have_attribute("open", "")
        expect(panel.summary).to_be_focused()
    finally:
        set_theme(jupyter, "JupyterLab Light")


# Print the chat's settings once a view has set them (after a restart, from the session's snapshot).
SHOWN = f"""import threading

names = ["system", "temperature", "max_tokens", "model"]
done = threading.Event()
def check(change=None):
    if chat.system is not None and chat.model is not None:
        done.set()
chat.observe(check, names=names)
check()
done.wait({TIMEOUT:g})
chat.unobserve(check, names=names)
print("settings:", chat.system, chat.temperature, chat.max_tokens, chat.model)
"""


def test_system_prompt_temperature_max_tokens_and_model_are_kept_by_the_session(
    open_notebook: OpenNotebook, provider: FakeOpenAI, jupyter: JupyterServer, screenshot: Screenshot
) -> None:
    """The panel's system prompt, temperature and max tokens reach the provider; the header picks the
    builtin model instead; after a kernel restart a new ChatWidget() takes all four back."""
    from .test_persistence import restart_kernel, saved_sessions

    notebook = open_notebook([LOAD, model_cell(provider), CHAT, SHOWN])
    notebook.run_cells(0, 1, 2)
    chat = Chat(notebook.output(2).locator(".llmsock-chat"))
    chat.wait_until_open()
    panel = Panel(chat)
    picker = chat.root.locator('[data-role="model-picker"]')
    expect(picker).to_be_visible()
    expect(picker.locator("option")).to_have_text(["openai:m", "builtin"])
    expect(picker).to_have_value("openai:m")

    panel.open_with_keyboard()
    system = chat.root.get_by_label("System prompt", exact=True)
    system.fill("Answer in French.")
    system.press("Tab")  # taken when the box is left
    chat.root.get_by_label("Temperature", exact=True).fill("0.3")
    chat.root.get_by_label("Max tokens", exact=True).fill("50")
    expect(panel.summary).to_have_text("settings · system prompt · temperature 0.3 · max 50 tokens")
    chat.send("bonjour")
    chat.wait_for_answer(0)
    body = provider.chat_requests[-1].body
    assert body["messages"][0] == {"role": "system", "content": "Answer in French."}, body["messages"]
    assert body["temperature"] == 0.3
    assert body.get("max_tokens", body.get("max_completion_tokens")) == 50, body

    # The header's picker: the builtin model answers the next prompt, with the same system prompt
    # and the same cap (50 tokens: it cuts the builtin's longer reply).
    picker.select_option("builtin")
    chat.send("and now?")
    answer = chat.wait_for_answer(1, status="length")
    assert 'System prompt: "Answer in French."' in answer, answer
    assert len(provider.chat_requests) == 1, "the provider got no request for the builtin model's turn"
    screenshot(chat.root, "picker")

    expect(chat.store_line).to_have_attribute("data-snapshot-messages", "4")
    kept = saved_sessions(notebook)["sessions"]["default"]["settings"]
    assert kept == {"system": "Answer in French.", "temperature": 0.3, "maxTokens": 50, "model": "builtin"}

    restart_kernel(notebook, jupyter)
    expect(chat.status).not_to_have_attribute("data-connection", "open", timeout=TIMEOUT * 2000)
    notebook.run_cells(0, 1, 2)
    chat = Chat(notebook.output(2).locator(".llmsock-chat"))
    chat.wait_until_open()
    expect(chat.messages("user")).to_have_count(2)
    notebook.run_cell(3)
    expect(notebook.output(3)).to_have_text("settings: Answer in French. 0.3 50 builtin")
    expect(chat.root.locator('[data-role="model-picker"]')).to_have_value("builtin")
    expect(Panel(chat).summary).to_have_text("settings · system prompt · temperature 0.3 · max 50 tokens")
