"""Tools over a real WebSocket: the model calls Python functions, sees their results, and answers."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from llmsock_widget.models import BuiltinModel, ModelChunk, ModelRequest, TextChunk, ToolCallChunk
from llmsock_widget.server.thread import ServerThread

from .conftest import MakeServer, is_turn_end, open_client

release = threading.Event()


def shout(text: str, times: int = 1) -> str:
    """Repeat a text in capitals.

    Args:
        text: what to shout.
        times: how many times.
    """
    return " ".join([text.upper()] * times)


def explode(reason: str) -> None:
    """Fail on purpose."""
    raise RuntimeError(f"exploded: {reason}")


def wait_for_release() -> str:
    """Block until the test releases it."""
    release.wait(60)
    return "released"


@pytest.fixture
def tool_server(make_server: MakeServer) -> Iterator[ServerThread]:
    """A server whose tools are the built-ins plus shout, explode and wait_for_release."""
    release.clear()
    try:
        yield make_server(
            model=BuiltinModel(tokens_per_second=None),
            tools=[shout, explode, wait_for_release],
            tool_timeout=0.5,
        )
    finally:
        release.set()  # torn down before make_server: a tool still waiting returns before the stop


def model_events(messages: list[dict]) -> list[dict]:
    return [m["data"]["event"] for m in messages if m.get("name") == "interaction.model"]


async def envelope_turn(server: ServerThread, prompt: str, **options: Any) -> list[dict]:
    client = await open_client(server, dialect="envelope")
    await client.recv()
    await client.send({"type": "user_message", "id": "u1", "data": {"text": prompt, "options": options}})
    messages = await client.recv_until(is_turn_end)
    await client.ws.close()
    return messages


def test_calculator_call_in_envelope_dialect(tool_server: ServerThread, run) -> None:
    """The model calls calculate; toolCall and toolResult deltas arrive; the answer uses the result."""
    events = model_events(run(envelope_turn(tool_server, '/tool calculate {"expression": "6*7"}')))
    call = next(e["toolCall"] for e in events if "toolCall" in e)
    result = next(e["toolResult"] for e in events if "toolResult" in e)
    assert call == {"id": call["id"], "name": "calculate", "arguments": {"expression": "6*7"}}
    assert result["id"] == call["id"] and result["ok"] is True and result["result"] == 42
    assert events[-1]["type"] == "end" and "calculate returned 42" in events[-1]["text"]


def test_tool_loop_in_typed_dialect(tool_server: ServerThread, run) -> None:
    """seed 004: tool_call start, tool_call complete, tool_result, then llm_complete with the answer."""

    async def scenario() -> list[dict]:
        client = await open_client(tool_server, dialect="typed")
        await client.recv()
        prompt = '/tool shout {"text": "hi", "times": 2}'
        await client.send({"type": "user_message", "id": "u1", "data": {"text": prompt}})
        messages = await client.recv_until(lambda m: m["type"] == "llm_complete")
        await client.ws.close()
        return [m for m in messages if m["type"] in ("tool_call", "tool_result", "llm_complete")]

    messages = run(scenario())
    assert [(m["type"], m["data"].get("status")) for m in messages] == [
        ("tool_call", "start"),
        ("tool_call", "complete"),
        ("tool_result", None),
        ("llm_complete", None),
    ]
    assert messages[0]["data"]["toolName"] == "shout" and messages[0]["data"]["args"] == {
        "text": "hi",
        "times": 2,
    }
    assert messages[2]["data"]["success"] is True and messages[2]["data"]["result"] == "HI HI"
    assert "shout returned HI HI" in messages[3]["data"]["fullText"]
    assert all(m["id"] == "u1" for m in messages)


@pytest.mark.parametrize(
    ("prompt", "code"),
    [
        ('/tool explode {"reason": "test"}', "tool_error"),
        ("/tool shout {not json", "invalid_arguments"),
        ('/tool shout {"text": 5}', "invalid_arguments"),
        ('/tool shout {"text": "a", "loud": true}', "invalid_arguments"),
        ("/tool os.system {}", "unknown_tool"),
        ("/tool wait_for_release {}", "timeout"),
    ],
    ids=["exception", "invalid-json", "wrong-type", "unexpected-argument", "unknown", "timeout"],
)
def test_tool_faults_become_results_the_model_and_user_see(
    tool_server: ServerThread, run, prompt: str, code: str
) -> None:
    """Each tool fault is a failed toolResult with its code; the model sees it and the turn ends normally."""
    events = model_events(run(envelope_turn(tool_server, prompt)))
    result = next(e["toolResult"] for e in events if "toolResult" in e)
    assert result["ok"] is False and result["error"]["code"] == code and result["error"]["message"]
    assert events[-1]["type"] == "end" and code in events[-1]["text"]


def test_abort_while_a_tool_runs(tool_server: ServerThread, run) -> None:
    """Stop during a tool call ends the turn at once as aborted; the call is marked stopped in history."""
    tool_server.hub.tool_timeout = 30.0

    async def scenario() -> tuple[list[dict], dict]:
        client = await open_client(tool_server, dialect="envelope")
        await client.recv()
        await client.send({"type": "user_message", "id": "u1", "data": {"text": "/tool wait_for_release {}"}})
        await client.recv_until(
            lambda m: m.get("name") == "interaction.model" and "toolCall" in m["data"]["event"]
        )
        await client.send({"type": "control", "id": "stop", "data": {"type": "abort"}})
        messages = await client.recv_until(is_turn_end)
        await client.send({"type": "control", "id": "h", "data": {"type": "get_history"}})
        history = await client.recv_until(
            lambda m: m.get("name") == "interaction.control" and m["data"]["event"].get("requestId") == "h"
        )
        await client.ws.close()
        return messages, history[-1]["data"]["event"]["data"]

    messages, history = run(scenario())
    release.set()
    assert model_events(messages)[-1]["finishReason"] == "aborted"
    tool = history["messages"][-1]["tools"][0]
    assert (
        tool["name"] == "wait_for_release"
        and tool["status"] == "error"
        and tool["error"]["code"] == "aborted"
    )


def test_options_tools_limit_what_the_model_is_offered(tool_server: ServerThread, run) -> None:
    """user_message options.tools offers only the named tools; without it every registered tool is offered."""
    only = model_events(run(envelope_turn(tool_server, "/tools", tools=["calculate"])))[-1]["text"]
    every = model_events(run(envelope_turn(tool_server, "/tools")))[-1]["text"]
    assert only == "Tools I can call: calculate."
    for name in ("calculate", "get_current_time", "shout", "explode", "wait_for_release"):
        assert name in every


def test_tool_registered_by_decorator_is_callable(tool_server: ServerThread, run) -> None:
    """@server.tool registers a function the model can call at once, with a schema from its signature."""

    @tool_server.tool
    def add(a: int, b: int = 1) -> int:
        """Add two integers."""
        return a + b

    events = model_events(run(envelope_turn(tool_server, '/tool add {"a": 40, "b": 2}')))
    assert next(e["toolResult"] for e in events if "toolResult" in e)["result"] == 42
    schema = next(s for s in tool_server.tools.schemas() if s["function"]["name"] == "add")
    assert schema["function"]["parameters"]["required"] == ["a"]


class AlwaysCallsTools:
    """A model that asks for a tool at every step, to test the step cap."""

    name = "loopy"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        yield TextChunk(text="again ")
        step = sum(1 for m in request.messages if m.get("role") == "tool")
        yield ToolCallChunk(
            id=f"c{step}", name="calculate", arguments=json.dumps({"expression": f"{step}+1"})
        )


def test_tool_steps_are_capped(make_server: MakeServer) -> None:
    """A model that never stops calling tools is stopped after max_tool_steps with a tool_limit diagnostic."""
    server = make_server(model=AlwaysCallsTools(), max_tool_steps=2)

    async def scenario() -> list[dict]:
        client = await open_client(server, dialect="envelope")
        await client.recv()
        await client.send("go")
        messages = await asyncio.wait_for(client.recv_until(is_turn_end), 30)
        await client.ws.close()
        return messages

    messages = asyncio.run(scenario())
    calls = [e for e in model_events(messages) if "toolCall" in e]
    notes = [m["data"]["event"]["code"] for m in messages if m.get("name") == "interaction.diagnostic"]
    assert len(calls) == 3 and "tool_limit" in notes
    assert model_events(messages)[-1]["type"] == "end"


class ReusesIds:
    """A model that names every call "call_0", as some providers do, then answers."""

    name = "reuse"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        results = [m for m in request.messages if m.get("role") == "tool"]
        if len(results) < 2:
            yield ToolCallChunk(
                id="call_0", name="calculate", arguments=json.dumps({"expression": f"{len(results)}+1"})
            )
        else:
            yield TextChunk(text=" ".join(m["content"] for m in results))


def test_reused_call_ids_stay_apart(make_server: MakeServer) -> None:
    """Calls that reuse an id across steps get their own ids: each result reaches its own call."""
    server = make_server(model=ReusesIds())

    async def scenario() -> list[dict]:
        client = await open_client(server, dialect="envelope")
        await client.recv()
        await client.send("go")
        messages = await asyncio.wait_for(client.recv_until(is_turn_end), 30)
        await client.ws.close()
        return messages

    events = model_events(asyncio.run(scenario()))
    calls = [e["toolCall"]["id"] for e in events if "toolCall" in e]
    results = [(e["toolResult"]["id"], e["toolResult"]["result"]) for e in events if "toolResult" in e]
    assert len(set(calls)) == 2 and results == [(calls[0], 1), (calls[1], 2)]
    assert events[-1]["text"] == "1 2"


def test_tool_not_offered_in_the_turn_does_not_run(tool_server: ServerThread, run) -> None:
    """With options.tools naming only calculate, a call to shout is refused as unknown_tool."""
    events = model_events(run(envelope_turn(tool_server, '/tool shout {"text": "x"}', tools=["calculate"])))
    result = next(e["toolResult"] for e in events if "toolResult" in e)
    assert result["ok"] is False and result["error"]["code"] == "unknown_tool"
