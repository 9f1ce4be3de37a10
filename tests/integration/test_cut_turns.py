"""Turns cut short leave a chat that goes on, and say what happened.

The provider is the fake with Gemma's strict chat template (``strict_roles``): like llama.cpp,
it refuses with HTTP 400 "Conversation roles must alternate" a conversation with two prompts in
a row, which a failed or stopped turn used to leave behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from llmsock_widget.models.base import FinishChunk
from llmsock_widget.models.openai_chunks import ChunkReader
from llmsock_widget.notebook.answer import ask
from llmsock_widget.server.thread import ServerThread
from tests import fakeopenai
from tests.conftest import TIMEOUT
from tests.fakeopenai import FakeOpenAI, gemma_refusal

from .conftest import Client, MakeServer, is_turn_end, open_client


@pytest.fixture
def provider() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(strict_roles=True) as fake:
        yield fake


@pytest.fixture
def server(provider: FakeOpenAI, make_server: MakeServer) -> ServerThread:
    """A server whose model is the strict fake provider, without retries."""
    return make_server(
        model="openai:gemma", model_options={"base_url": provider.base_url, "api_key": "k", "max_retries": 0}
    )


async def prompt(client: Client, text: str, request: str) -> dict[str, Any]:
    """Send ``text``; return the event that ends its turn (end or error)."""
    await client.send({"type": "user_message", "id": request, "data": {"text": text}})
    messages = await client.recv_until(is_turn_end)
    return messages[-1]["data"]["event"]


async def transcript(client: Client) -> list[dict[str, Any]]:
    """Return the session's messages as get_history gives them to a view."""
    await client.send({"type": "control", "id": "h", "data": {"type": "get_history"}})
    messages = await client.recv_until(lambda m: m.get("name") == "interaction.control")
    return messages[-1]["data"]["event"]["data"]["messages"]


@pytest.mark.parametrize(
    ("script", "code"),
    [
        (fakeopenai.error(500, message="server crashed"), "provider_error"),
        (fakeopenai.truncated(0), "stream_ended"),
    ],
    ids=["http-500", "cut-before-first-token"],
)
def test_a_failed_turn_without_text_leaves_a_chat_gemma_accepts(
    server: ServerThread, provider: FakeOpenAI, run: Any, script: fakeopenai.Script, code: str
) -> None:
    """After a turn that failed before its first token, the next prompt is answered, not refused."""
    provider.enqueue(script, fakeopenai.text(["still ", "here"]))

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        client = await open_client(server, dialect="envelope")
        await client.recv()
        failed = await prompt(client, "hello", "u1")
        answered = await prompt(client, "again", "u2")
        shown = await transcript(client)
        await client.ws.close()
        return failed, answered, shown

    failed, answered, shown = run(scenario())
    assert failed["type"] == "error" and failed["code"] == code
    assert answered["type"] == "end" and answered["text"] == "still here", answered
    second = provider.chat_requests[1].body["messages"]
    assert gemma_refusal(second) is None
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[1]["content"].startswith("(no answer: ")
    # The transcript shows the failed answer with its error, then the answer that worked.
    assert [(m["role"], m["status"]) for m in shown] == [
        ("user", "complete"),
        ("assistant", "error"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert shown[1]["error"]["code"] == code


def test_a_stop_before_the_first_token_leaves_a_chat_gemma_accepts(
    server: ServerThread, provider: FakeOpenAI, run: Any
) -> None:
    """Stop while the provider has sent nothing: the turn ends stopped, the next prompt is answered."""
    provider.enqueue(fakeopenai.stall(), fakeopenai.text(["answered"]))

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        client = await open_client(server, dialect="envelope")
        await client.recv()
        await client.send({"type": "user_message", "id": "u1", "data": {"text": "hello"}})
        assert await asyncio.to_thread(provider.wait_for_requests, 1, TIMEOUT)
        await client.send({"type": "control", "id": "a", "data": {"type": "abort"}})
        stopped = (await client.recv_until(is_turn_end))[-1]["data"]["event"]
        answered = await prompt(client, "again", "u2")
        shown = await transcript(client)
        await client.ws.close()
        return stopped, answered, shown

    stopped, answered, shown = run(scenario())
    assert stopped["type"] == "end" and stopped["finishReason"] == "aborted" and stopped["text"] == ""
    assert answered["type"] == "end" and answered["text"] == "answered", answered
    second = provider.chat_requests[1].body["messages"]
    assert second == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "(no answer: it was stopped)"},
        {"role": "user", "content": "again"},
    ]
    assert shown[1]["role"] == "assistant" and shown[1]["status"] == "aborted"  # shown "(stopped)"


def test_a_tool_call_cut_at_the_token_limit_is_told(
    server: ServerThread, provider: FakeOpenAI, run: Any
) -> None:
    """A call cut off by max_tokens ends the answer with an error naming the tool; the chat goes on."""
    provider.enqueue(
        fakeopenai.text(["Let me compute."]) + fakeopenai.cut_tool_call("calculate", '{"expression": "6*'),
        fakeopenai.text(["42"]),
    )
    cut = ask("what is 6*7?", session="cut", server=server, display=False, timeout=TIMEOUT)
    assert cut.finish_reason == "error"
    assert cut.error == (
        "tool_call_cut: the model reached its token limit while writing a call to calculate; raise max_tokens"
    )
    assert cut.text == "Let me compute."
    after = ask("and now?", session="cut", server=server, display=False, timeout=TIMEOUT)
    assert (after.finish_reason, after.text) == ("stop", "42")
    second = provider.chat_requests[1].body["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[1]["content"] == "Let me compute."

    async def view() -> list[dict[str, Any]]:
        client = await open_client(server, session=cut.session, dialect="envelope")
        await client.recv()
        shown = await transcript(client)
        await client.ws.close()
        return shown

    told = run(view())[1]  # what the widget shows under the answer: "Error tool_call_cut: ..."
    assert (told["status"], told["text"], told["error"]["code"]) == (
        "error",
        "Let me compute.",
        "tool_call_cut",
    )
    assert "writing a call to calculate" in told["error"]["message"]


def fragment(index: int, **function: str) -> dict[str, Any]:
    """Return a stream chunk carrying one tool-call fragment."""
    call = {"index": index, "id": f"c{index}", "function": function}
    return {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}


def test_the_reader_names_every_call_the_token_limit_cut() -> None:
    """Two calls cut: both named; a call cut before its name: "a tool call"; a clean finish: nothing."""
    reader = ChunkReader()
    reader.feed(fragment(0, name="search", arguments='{"q": "x"}'))
    reader.feed(fragment(1, name="calculate", arguments='{"expr'))
    reader.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    assert reader.end() == [FinishChunk(reason="length")]
    failure = reader.cut_failure()
    assert failure is not None and failure.code == "tool_call_cut"
    assert str(failure) == (
        "the model reached its token limit while writing calls to search, calculate; raise max_tokens"
    )
    nameless = ChunkReader()
    nameless.feed(fragment(0, arguments="{"))
    nameless.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    assert "while writing a tool call;" in str(nameless.cut_failure())
    clean = ChunkReader()
    clean.feed({"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "length"}]})
    assert clean.end() == [FinishChunk(reason="length")] and clean.cut_failure() is None


def test_a_chat_that_called_a_tool_goes_on_with_a_model_offered_no_tools(
    server: ServerThread, provider: FakeOpenAI
) -> None:
    """A tool round trip (the builtin model's), then the strict provider offered no tools: it gets
    the call and its result in words, accepts the history, and answers."""
    provider.enqueue(fakeopenai.text(["It is sunny."]))
    server.set_model("builtin:0")
    called = ask(
        '/tool calculate {"expression": "6*7"}', session="t", server=server, display=False, timeout=TIMEOUT
    )
    assert called.finish_reason == "stop"
    server.set_model("openai:gemma", base_url=provider.base_url, api_key="k", max_retries=0)
    after = ask("and the weather?", session="t", server=server, display=False, timeout=TIMEOUT)
    assert (after.finish_reason, after.text) == ("stop", "It is sunny."), after.error
    (request,) = (r.body for r in provider.chat_requests)
    assert "tools" not in request and gemma_refusal(request["messages"]) is None
    assert [m["role"] for m in request["messages"]] == ["user", "assistant", "user"]
    assert request["messages"][1]["content"].startswith(
        '(tool calls: calculate({"expression": "6*7"}) returned 42)'
    )
