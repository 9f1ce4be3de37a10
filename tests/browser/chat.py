"""Drive one view of the chat widget through its DOM contract (roles, names, data attributes).

The contract (js/src/view.js): a ``.llmsock-chat`` root; a textbox "Message"; buttons "Send"
and "Stop"; a ``log`` of messages with ``data-role`` and ``data-status``; a ``status`` element
``.llmsock-status`` with ``data-connection``.  An answer's text is its ``.llmsock-body`` when
there is one (so the "(stopped)" marker is not counted as answer text).
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

from playwright.sync_api import Locator, expect

from tests.conftest import TIMEOUT

_ANSWER_TEXT = "m => (m.querySelector('.llmsock-body') || m).innerText"
# Past this many characters the message box asks for a second Send: LARGE_CHARS in composer.js.
_COMPOSER = Path(__file__).resolve().parents[2] / "js" / "src" / "composer.js"
LARGE_PROMPT_CHARS = int(re.search(r"LARGE_CHARS = ([0-9_]+);", _COMPOSER.read_text()).group(1))  # type: ignore[union-attr]

# Record the length and status of the last assistant message at every DOM change of the log.
_RECORD_LENGTHS = """(log) => {
    const seen = [];
    window.__lengths = seen;
    const record = () => {
        const answers = log.querySelectorAll('[data-role="assistant"]');
        const last = answers[answers.length - 1];
        if (!last) return;
        const body = last.querySelector('.llmsock-body') || last;
        seen.push({length: body.textContent.length, status: last.getAttribute('data-status')});
    };
    new MutationObserver(record).observe(
        log, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


class Chat:
    """One rendered ChatWidget view."""

    def __init__(self, root: Locator) -> None:
        self.root = root

    @property
    def status(self) -> Locator:
        return self.root.locator(".llmsock-status")

    @property
    def message_box(self) -> Locator:
        return self.root.get_by_role("textbox", name="Message")

    @property
    def send_button(self) -> Locator:
        return self.root.get_by_role("button", name="Send", exact=True)

    @property
    def stop_button(self) -> Locator:
        return self.root.get_by_role("button", name="Stop")

    @property
    def composer_warning(self) -> Locator:
        """The polite line under the message box (a very large message waits for a second Send)."""
        return self.root.locator('[data-role="composer-warning"]')

    @property
    def transcript(self) -> Locator:
        return self.root.get_by_role("log")

    def messages(self, role: str) -> Locator:
        """The messages of ``role`` ("user" or "assistant"), oldest first."""
        return self.transcript.locator(f'[data-role="{role}"]')

    @property
    def prompts(self) -> Locator:
        """The text of each prompt, oldest first (without its row of time and actions)."""
        return self.transcript.locator('[data-role="user"] > .llmsock-body')

    def answer(self, index: int) -> Locator:
        """The assistant message at ``index`` (0 = the first answer)."""
        return self.messages("assistant").nth(index)

    def code_toolbar(self, answer: int, block: int) -> Locator:
        """The actions (Copy, the inserts) of code block ``block`` of answer ``answer``."""
        return self.answer(answer).locator("pre").nth(block).locator(".llmsock-code-actions")

    def code_note(self, answer: int, block: int) -> Locator:
        """The confirmation next to a code block's buttons ("Copied", "Inserted below", ...)."""
        return self.code_toolbar(answer, block).locator(".llmsock-code-note")

    def wait_until_open(self, transport: str | None = None, timeout: float = TIMEOUT * 2) -> str:
        """Wait until the view is connected to the kernel's server; return the transport it took.

        Without ``transport``, any of the ladder's (proxy, direct, comm) will do.
        """
        expect(self.root).to_be_visible(timeout=timeout * 1000)
        expect(self.status).to_have_attribute("data-connection", "open", timeout=timeout * 1000)
        expected = re.compile(f"^({transport or 'proxy|direct|comm'})$")
        expect(self.status).to_have_attribute("data-transport", expected)
        return self.status.get_attribute("data-transport") or ""

    @property
    def connection_detail(self) -> Locator:
        """The line under the status: why this transport, and what was skipped."""
        return self.root.locator('[data-role="connection-detail"]')

    @property
    def store_line(self) -> Locator:
        """The line that says where the chat is saved."""
        return self.root.locator('[data-role="store"]')

    def send(self, prompt: str) -> None:
        """Type ``prompt`` into the message box and press Send (twice for a very large one)."""
        if len(prompt) > LARGE_PROMPT_CHARS:
            self.send_large(prompt)
            return
        self.message_box.fill(prompt)
        expect(self.send_button).to_be_enabled()
        self.send_button.click()
        expect(self.message_box).to_have_value("")  # the view took it

    def send_large(self, prompt: str) -> None:
        """Send a message long enough to be warned about: Send, read the warning, Send again."""
        self.message_box.fill(prompt)
        self.send_button.click()
        expect(self.composer_warning).to_contain_text(f"{len(prompt):,} characters long")
        expect(self.message_box).to_have_value(prompt)  # not sent yet
        self.send_button.click()
        expect(self.message_box).to_have_value("")

    def wait_for_answer(self, index: int, *, status: str = "complete", timeout: float = TIMEOUT) -> str:
        """Wait until answer ``index`` has ``status``; return its text."""
        answer = self.answer(index)
        expect(answer).to_have_attribute("data-status", status, timeout=timeout * 1000)
        return self.answer_text(index)

    def answer_text(self, index: int) -> str:
        """The rendered text of answer ``index`` (without its footer)."""
        return str(self.answer(index).evaluate(_ANSWER_TEXT))

    def record_lengths(self) -> None:
        """Start recording the last answer's length at every change into ``window.__lengths``."""
        self.transcript.evaluate(_RECORD_LENGTHS)

    def streamed_lengths(self, index: int) -> tuple[list[int], int]:
        """Return the lengths answer ``index`` had while streaming (since :meth:`record_lengths`),
        in order, and its final length."""
        final = len(self.answer(index).locator(".llmsock-body").text_content() or "")
        recorded = self.root.page.evaluate("window.__lengths")
        return [entry["length"] for entry in recorded if entry["status"] == "streaming"], final


def flat(text: str) -> str:
    """Return ``text`` with every run of whitespace made one space (markdown re-flows whitespace)."""
    return " ".join(text.split())


def builtin_reply(*prompts: str, system: str = "") -> str:
    """Return what the builtin model answers to the last of ``prompts`` (earlier ones: history).

    A leading ``/slow <pace>`` only paces the reply, so it is computed unpaced (``/slow 0``).
    ``system`` is the turn's system prompt (the ``system`` setting), if it has one.
    """
    from llmsock_widget.models.base import ModelRequest, TextChunk
    from llmsock_widget.models.builtin import BuiltinModel

    async def collect() -> str:
        unpaced = [re.sub(r"^/slow[ \t]+\S+", "/slow 0", prompt) for prompt in prompts]
        messages = tuple({"role": "user", "content": prompt} for prompt in unpaced)
        if system:
            messages = ({"role": "system", "content": system}, *messages)
        model = BuiltinModel(tokens_per_second=None)
        chunks = [chunk async for chunk in model.stream(ModelRequest(messages=messages))]
        return "".join(chunk.text for chunk in chunks if isinstance(chunk, TextChunk))

    # Playwright's sync API runs an event loop on this thread: asyncio.run must use another one.
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(asyncio.run(collect())))
    worker.start()
    worker.join(TIMEOUT)
    assert result, "the builtin model did not answer in time"
    return result[0]
