"""An OpenAI-compatible server behind the whole stack: WebSocket in, real openai client out."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from llmsock_widget.server.thread import ServerThread
from tests import fakeopenai
from tests.conftest import TIMEOUT
from tests.fakeopenai import FakeOpenAI

from .conftest import MakeServer, is_turn_end, open_client

SECRET = "sk-test-0123456789abcdefSECRET"


@pytest.fixture
def provider() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def server(provider: FakeOpenAI, make_server: MakeServer) -> ServerThread:
    """A server whose model is the fake provider (stopped before the provider: set up after it)."""
    return make_server(
        model="openai:test-model",
        model_options={"base_url": provider.base_url, "api_key": SECRET, "max_retries": 0, "tools": True},
    )


async def turn(server: ServerThread, prompt: str) -> list[dict]:
    client = await open_client(server, dialect="envelope")
    await client.recv()
    await client.send(
        {"type": "user_message", "id": "u1", "data": {"text": prompt, "options": {"temperature": 0.2}}}
    )
    messages = await client.recv_until(is_turn_end)
    await client.send({"type": "control", "id": "h", "data": {"type": "get_history"}})
    messages += await client.recv_until(lambda m: m.get("name") == "interaction.control")
    await client.ws.close()
    return messages


def test_tool_call_round_trip_through_a_provider(server: ServerThread, provider: FakeOpenAI, run) -> None:
    """The provider calls calculate in fragments; the tool runs; the result goes back; the answer streams."""
    provider.enqueue(
        fakeopenai.reasoning(["Let me ", "compute."])
        + fakeopenai.tool_calls(
            [{"id": "call_a", "name": "calculate", "arguments": '{"expression": "6*7"}'}], split_into=4
        ),
        fakeopenai.text(["The answer ", "is 42."]).with_usage(30, 5),
    )
    messages = run(turn(server, "what is 6*7?"))
    events = [m["data"]["event"] for m in messages if m.get("name") == "interaction.model"]
    assert "".join(e["reasoning"] for e in events if "reasoning" in e) == "Let me compute."
    assert next(e["toolCall"] for e in events if "toolCall" in e)["arguments"] == {"expression": "6*7"}
    assert next(e["toolResult"] for e in events if "toolResult" in e)["result"] == 42
    assert events[-1]["type"] == "end" and events[-1]["text"] == "The answer is 42."
    assert provider.wait_for_requests(2, TIMEOUT)
    first, second = (r.body for r in provider.chat_requests)
    assert first["model"] == "test-model" and first["temperature"] == 0.2 and first["stream"] is True
    assert {t["function"]["name"] for t in first["tools"]} >= {"calculate", "get_current_time"}
    tool_message = second["messages"][-1]
    assert tool_message == {"role": "tool", "tool_call_id": "call_a", "content": "42"}
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "calculate"
    history = messages[-1]["data"]["event"]["data"]["messages"]
    assert history[-1]["reasoning"] == "Let me compute." and history[-1]["tools"][0]["result"] == 42
    assert provider.chat_requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in json.dumps(messages)


@pytest.mark.parametrize(
    ("script", "code"),
    [
        (fakeopenai.error(status=401, body={"error": {"message": f"bad key {SECRET}"}}), "auth_error"),
        (fakeopenai.error(status=429, headers={"Retry-After": "7"}), "rate_limited"),
        (fakeopenai.truncated(3), "stream_ended"),
    ],
    ids=["401", "429", "truncated"],
)
def test_provider_faults_reach_the_client_as_error_events(
    server: ServerThread, provider: FakeOpenAI, run, script: fakeopenai.Script, code: str
) -> None:
    """A provider failure ends the turn with its code; the key is in no frame; the session goes on."""
    provider.enqueue(script, fakeopenai.text(["still ", "here"]))
    first = run(turn(server, "hello"))
    second = run(turn(server, "again"))
    error = next(m["data"]["event"] for m in first if is_turn_end(m))
    assert error["type"] == "error" and error["code"] == code
    assert SECRET not in json.dumps(first)
    assert next(m["data"]["event"] for m in second if is_turn_end(m))["text"] == "still here"
    if code == "rate_limited":
        assert "7" in error["message"]
