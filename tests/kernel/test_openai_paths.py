"""``%llmsock explain``, the ``Chat`` handle and live results with an OpenAI-compatible model, in a kernel.

The model is ``openai:test-model`` on tests/fakeopenai.py (real HTTP and SSE on 127.0.0.1,
which the real ``openai`` client talks to), so each test can assert on what the provider
received as well as on what the user sees.  One kernel and one provider serve the module;
each test uses a session of its own and reads only the requests it caused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests import fakeopenai
from tests.conftest import TIMEOUT
from tests.fakeopenai import FakeOpenAI

from .conftest import Kernel, start_kernel, stop_kernel, text_of
from .test_explain_magic import FAILING, SECRET


class Provider:
    """The kernel, and the provider its model talks to, with the requests one test caused."""

    def __init__(self, kernel: Kernel, server: FakeOpenAI) -> None:
        self.kernel = kernel
        self.server = server
        self._seen = 0

    def answer(self, *scripts: fakeopenai.Script) -> None:
        """Answer the next requests with ``scripts``; later :meth:`requests` start from here."""
        self._seen = len(self.server.chat_requests)
        self.server.enqueue(*scripts)

    def requests(self) -> list[dict[str, Any]]:
        """Return the bodies of the chat requests since the last :meth:`answer`."""
        return [request.body for request in self.server.chat_requests[self._seen :]]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    """A kernel whose model is ``openai:test-model`` (with tools) on a fake provider, for the module."""
    with FakeOpenAI() as server:
        kernel = start_kernel(tmp_path_factory.mktemp("openai-paths"), LLMSOCK_STORE="memory")
        try:
            kernel.run("%load_ext llmsock")
            kernel.run("import os, threading, llmsock_widget\nos.environ['LLMSOCK_TEST_KEY'] = 'sk-test'")
            options = f"--base-url {server.base_url} --api-key-env LLMSOCK_TEST_KEY --tools"
            kernel.run(f"%llmsock model openai:test-model {options}")
            yield Provider(kernel, server)
        finally:
            stop_kernel(kernel)


def user_message(body: dict[str, Any]) -> str:
    """Return the text of the last user message of a request body."""
    [*_, last] = [m for m in body["messages"] if m["role"] == "user"]
    content = last["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def test_explain_sends_the_failing_frame_masked_and_shows_the_providers_answer(provider: Provider) -> None:
    """The provider gets the failing line and the frame's locals, a secret masked; its answer is shown."""
    kernel = provider.kernel
    failing = kernel.submit(FAILING)
    assert any(m["msg_type"] == "error" for m in kernel.collect(failing))
    provider.answer(fakeopenai.text(["`path` is the string 'first'; ", "index rows with an int."]))

    shown = text_of(kernel.run("%llmsock explain --session explain"))

    assert "`path` is the string 'first'; index rows with an int." in shown
    [body] = provider.requests()
    prompt = user_message(body)
    assert prompt.startswith("Explain this error and how to fix it.")
    assert "in load_rows" in prompt and "->    4 |     return rows[path]" in prompt
    assert "rows: list, len 3" in prompt and "path: str" in prompt
    assert "TypeError: list indices must be integers or slices, not str" in prompt
    assert "api_key: <masked" in prompt
    assert SECRET not in json.dumps(body) and SECRET not in shown


def test_the_chat_handle_asks_sends_and_calls_back_with_the_providers_answers(provider: Provider) -> None:
    """``await chat.ask`` and ``chat.send`` return the provider's answers; callbacks and history have them."""
    kernel = provider.kernel
    kernel.run(
        "chat = llmsock_widget.Chat('team')\n"
        "deltas, ends, ended = [], [], threading.Event()\n"
        "chat.on('delta', lambda event: deltas.append(event.text))\n"
        "chat.on('end', lambda event: (ends.append(event.text), ended.set()))"
    )
    provider.answer(fakeopenai.text(["Oslo ", "is the ", "coldest."]))
    assert (
        kernel.value(f"await chat.ask('Which city is coldest?', timeout={TIMEOUT})") == "Oslo is the coldest."
    )
    assert kernel.value(f"ended.wait({TIMEOUT})") is True
    assert kernel.value("''.join(deltas)") == "Oslo is the coldest." and kernel.value("ends") == [
        "Oslo is the coldest."
    ]

    provider.answer(fakeopenai.text(["Pune, ", "at 31.25."]))
    kernel.run("ended.clear()\npending = chat.send('And the warmest?')")
    assert kernel.value(f"pending.result({TIMEOUT}).text") == "Pune, at 31.25."
    assert kernel.value(f"ended.wait({TIMEOUT})") is True
    assert kernel.value("[(m['role'], m['text']) for m in chat.history]") == [
        ["user", "Which city is coldest?"],
        ["assistant", "Oslo is the coldest."],
        ["user", "And the warmest?"],
        ["assistant", "Pune, at 31.25."],
    ]
    # The provider got the conversation so far with the second prompt.
    [body] = provider.requests()
    said = [(m["role"], m["content"]) for m in body["messages"] if m["role"] in ("user", "assistant")]
    assert said == [
        ("user", "Which city is coldest?"),
        ("assistant", "Oslo is the coldest."),
        ("user", "And the warmest?"),
    ]


def test_a_tools_dataframe_reaches_the_provider_as_a_summary_and_the_user_as_itself(
    provider: Provider,
) -> None:
    """The provider reads the DataFrame's summary; ``chat.results[call_id]`` is the DataFrame itself."""
    kernel = provider.kernel
    kernel.run(
        "import pandas as pd\n"
        "cities = pd.DataFrame(\n"
        "    {'city': [f'city{i:03}' for i in range(400)], 'temp': [i / 4 for i in range(400)]}\n"
        ")\n"
        "returned = []\n"
        "def warmer_than(threshold: float):\n"
        '    """Return the cities warmer than ``threshold`` degrees."""\n'
        "    returned.append(cities[cities.temp > threshold])\n"
        "    return returned[-1]\n"
        "llmsock_widget.get_server().tool(warmer_than)\n"
        "chat = llmsock_widget.Chat('live')"
    )
    provider.answer(
        fakeopenai.tool_calls([{"id": "call_warm", "name": "warmer_than", "arguments": '{"threshold": 50}'}]),
        fakeopenai.text(["199 cities are warmer than 50."]),
    )
    answer = kernel.value(f"await chat.ask('Which cities are warmer than 50?', timeout={TIMEOUT})")
    assert answer == "199 cities are warmer than 50."

    first, second = provider.requests()
    assert "warmer_than" in [tool["function"]["name"] for tool in first["tools"]]
    [result] = [m["content"] for m in second["messages"] if m["role"] == "tool"]
    assert "pandas.DataFrame, 199 rows x 2 columns" in result and "city201" in result
    assert "city399" not in result and len(result) < 4_000  # the first rows, not all 199

    # The next cell: the object the tool returned, by the call's id.
    call_id = kernel.value("chat.history[-1]['tools'][0]['id']")
    assert call_id == "call_warm"
    found = kernel.value(
        f"(lambda hot: [type(hot).__name__, list(hot.shape), hot is returned[-1]])(chat.results[{call_id!r}])"
    )
    assert found == ["DataFrame", [199, 2], True]
