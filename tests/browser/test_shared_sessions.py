"""One chat in two notebooks: each with its own kernel, both kernels sharing a real Redis.

Two pages of one Jupyter server open two notebooks; each kernel takes the Redis store and shows
``ChatWidget(session=...)`` on the same session. A prompt sent in one streams live into the
other, and both end with the same answer (docs/deployment.md, section 9).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import TIMEOUT
from tests.redisserver import RedisServer

from .chat import Chat, builtin_reply, flat
from .jupyter_process import JupyterServer
from .notebook import Notebook

pytestmark = pytest.mark.browser

Screenshot = Callable[..., Path]


def _chat_notebook(page: Page, jupyter: JupyterServer, name: str, url: str, session: str) -> Chat:
    """Open notebook ``name`` whose kernel keeps its chats in Redis and shows the shared chat."""
    notebook = Notebook.open(
        page,
        jupyter,
        name,
        [
            "%load_ext llmsock",
            f"%llmsock store {url}",
            f"from llmsock_widget import ChatWidget\nChatWidget(session={session!r})",
        ],
    )
    notebook.run_cells(0, 1, 2)
    chat = Chat(notebook.output(2).locator(".llmsock-chat"))
    chat.wait_until_open()
    return chat


def test_an_answer_asked_in_one_notebook_streams_live_into_the_other(
    page: Page, jupyter: JupyterServer, redis_server: RedisServer, screenshot: Screenshot
) -> None:
    session = f"team-{secrets.token_hex(4)}"
    other = page.context.new_page()
    try:
        first = _chat_notebook(page, jupyter, "shared-first.ipynb", redis_server.url, session)
        second = _chat_notebook(other, jupyter, "shared-second.ipynb", redis_server.url, session)
        prompt = "/slow 30 /long 90"
        second.record_lengths()
        first.send(prompt)
        # The other kernel's view shows the prompt, then the answer while it streams.
        expect(second.prompts).to_have_text([prompt])
        expect(second.answer(0)).to_have_attribute("data-status", "streaming")
        expect(second.answer(0)).not_to_have_text("")
        screenshot(first.root, "asking-view-mid-answer")
        screenshot(second.root, "other-kernel-view-mid-answer")
        text_second = second.wait_for_answer(0, timeout=TIMEOUT * 3)
        text_first = first.wait_for_answer(0, timeout=TIMEOUT * 3)
        streaming, final = second.streamed_lengths(0)
        # Answered by the first notebook's kernel; the second showed it as it grew.
        assert len({length for length in streaming if 0 < length < final}) >= 3, streaming
        assert flat(text_second) == flat(text_first) == flat(builtin_reply(prompt))
        # And the other way round: the second notebook asks, the first sees it.
        second.send("and from the second notebook")
        expect(first.prompts).to_have_text([prompt, "and from the second notebook"])
        answered = second.wait_for_answer(1, timeout=TIMEOUT * 3)
        assert flat(first.wait_for_answer(1, timeout=TIMEOUT * 3)) == flat(answered)
        assert flat(answered).startswith('You said: "and from the second notebook"')
    finally:
        other.close()
