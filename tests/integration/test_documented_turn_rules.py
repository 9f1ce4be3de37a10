"""Turn rules that docs/protocol.md and docs/configuration.md state, checked on a real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from llmsock_widget.models import ModelChunk, ModelRequest, TextChunk, ToolCallChunk
from llmsock_widget.server.thread import ServerThread
from tests.conftest import TIMEOUT

from .conftest import is_model, is_turn_end, open_client


class Named:
    """A model that answers one fixed text, so the answer says which model gave it."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        yield TextChunk(text=f"from {self.name}")


class AlwaysCallsTools:
    """A model that asks for a tool at every step, to reach the step limit."""

    name = "loopy"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        step = sum(1 for m in request.messages if m.get("role") == "tool")
        yield ToolCallChunk(id=f"c{step}", name="calculate", arguments=json.dumps({"expression": "1+1"}))


def _is_diagnostic(code: str) -> Any:
    return lambda m: m.get("name") == "interaction.diagnostic" and m["data"]["event"]["code"] == code


def test_a_model_switch_reaches_prompts_already_queued(server: ServerThread, run: Any) -> None:
    """A prompt queued behind a running turn is answered by the model chosen while it waited."""

    async def scenario() -> tuple[str, str, list[dict[str, Any]]]:
        client = await open_client(server, dialect="envelope")
        await client.recv()
        await client.send("/hold 1")
        first = (await client.recv_until(is_model("start")))[-1]["data"]["event"]["model"]
        await client.send({"type": "user_message", "id": "queued", "data": {"text": "second"}})
        await client.recv_until(_is_diagnostic("queued"))
        server.set_model(Named("other"))  # through the loop's one door, before the abort below is read
        await client.send({"type": "control", "id": "stop", "data": {"type": "abort"}})
        await client.recv_until(is_turn_end)  # the held turn, aborted
        rest = await client.recv_until(is_turn_end)
        await client.ws.close()
        second = next(m for m in rest if is_model("start")(m))["data"]["event"]["model"]
        return first, second, rest

    first, second, rest = run(scenario())
    assert first == "builtin"
    assert second == "other"
    assert rest[-1]["data"]["event"]["text"] == "from other"


def test_calls_past_the_step_limit_get_a_failed_result() -> None:
    """A tool call past max_tool_steps is not run: it gets a failed tool_error result, then tool_limit."""
    server = ServerThread(model=AlwaysCallsTools(), max_tool_steps=1).start()

    async def scenario() -> list[dict[str, Any]]:
        client = await open_client(server, dialect="envelope")
        await client.recv()
        await client.send("go")
        messages = await client.recv_until(is_turn_end)
        await client.send({"type": "control", "id": "h", "data": {"type": "get_history"}})
        messages += await client.recv_until(lambda m: m.get("name") == "interaction.control")
        await client.ws.close()
        return messages

    try:
        messages = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT * 3))
    finally:
        server.stop()
    events = [m["data"]["event"] for m in messages if m.get("name") == "interaction.model"]
    results = [e["toolResult"] for e in events if "toolResult" in e]
    assert [r["ok"] for r in results] == [True, False]
    assert results[1]["error"]["code"] == "tool_error"
    assert results[1]["error"]["message"].startswith("not run: the turn reached its limit of 1 ")
    assert any(_is_diagnostic("tool_limit")(m) for m in messages)
    history = messages[-1]["data"]["event"]["data"]["messages"]
    records = history[-1]["tools"]
    assert [r["status"] for r in records] == ["complete", "error"]
    assert records[1]["error"]["code"] == "tool_error"
