"""Turn rules that docs/protocol.md and docs/configuration.md state, checked on a real server."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

from llmsock_widget.models import ModelChunk, ModelRequest, TextChunk, ToolCallChunk
from llmsock_widget.server.thread import ServerThread
from tests.conftest import TIMEOUT

from .conftest import MakeServer, is_model, is_turn_end, open_client


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


class FinishesOnCue:
    """A model that streams one word, then finishes (with no other chunk) when the test cues it."""

    name = "cued"

    def __init__(self) -> None:
        self.cue = asyncio.Event()  # set on the server's loop, where the model waits on it
        self.finished = threading.Event()  # set by the model, read by the test's thread

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        yield TextChunk(text="partial")
        await self.cue.wait()
        self.finished.set()


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


def test_calls_past_the_step_limit_get_a_failed_result(make_server: MakeServer) -> None:
    """A tool call past max_tool_steps is not run: it gets a failed tool_error result, then tool_limit."""
    server = make_server(model=AlwaysCallsTools(), max_tool_steps=1)

    async def scenario() -> list[dict[str, Any]]:
        client = await open_client(server, dialect="envelope")
        await client.recv()
        await client.send("go")
        messages = await client.recv_until(is_turn_end)
        await client.send({"type": "control", "id": "h", "data": {"type": "get_history"}})
        messages += await client.recv_until(lambda m: m.get("name") == "interaction.control")
        await client.ws.close()
        return messages

    messages = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT * 3))
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


def test_a_pause_holds_the_end_of_an_answer_until_resume(make_server: MakeServer) -> None:
    """A model that finishes while paused ends the turn only after resume; till then it stays paused."""
    model = FinishesOnCue()
    server = make_server(model=model)

    def is_control(request_id: str) -> Any:
        return lambda m: (
            m.get("name") == "interaction.control" and m["data"]["event"].get("requestId") == request_id
        )

    async def scenario() -> dict[str, Any]:
        client = await open_client(server, dialect="envelope")
        await client.recv()
        await client.send("go")
        await client.recv_until(is_model("delta"))
        await client.send({"type": "control", "id": "p", "data": {"type": "pause"}})
        paused = (await client.recv_until(is_control("p")))[-1]["data"]["event"]
        server.call_soon(model.cue.set)
        assert await asyncio.to_thread(model.finished.wait, TIMEOUT)
        # Whatever the server sent when the model finished arrives before this pong.
        await client.send({"type": "ping", "id": "after-finish"})
        held = await client.recv_until(lambda m: m["data"]["event"].get("requestId") == "after-finish")
        assert not [m for m in held if is_turn_end(m)], "the turn ended while paused"
        await client.send({"type": "control", "id": "s", "data": {"type": "get_status"}})
        status = (await client.recv_until(is_control("s")))[-1]["data"]["event"]["data"]
        await client.send({"type": "control", "id": "r", "data": {"type": "resume"}})
        resumed = await client.recv_until(is_turn_end)
        resumed += await client.recv_until(lambda m: m.get("name") == "interaction.status")
        await client.ws.close()
        return {"paused": paused, "status": status, "resumed": resumed, "all": client.seen}

    out = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT * 3))
    assert out["paused"]["ok"] is True
    assert (out["status"]["status"], out["status"]["phase"]) == ("paused", "streaming")
    result = next(m for m in out["resumed"] if m.get("name") == "interaction.control")["data"]["event"]
    assert result["ok"] is True and result["message"] == "resumed"
    end = next(m for m in out["resumed"] if is_turn_end(m))["data"]["event"]
    assert (end["type"], end["finishReason"], end["text"]) == ("end", "stop", "partial")
    statuses = [m["data"]["event"]["status"] for m in out["all"] if m.get("name") == "interaction.status"]
    assert statuses == ["generating", "paused", "generating", "idle"]
