"""A model calls a tool with hostile arguments (B3, B12), over real sockets: nothing is lost or leaked."""

from __future__ import annotations

import asyncio
import http.client
import json
from typing import Any

import pytest

from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread
from llmsock_widget.stores import JsonFileStore
from llmsock_widget.stores.base import resolve
from tests import fakeopenai
from tests.conftest import TIMEOUT
from tests.fakeopenai import FakeOpenAI

from .conftest import Client, MakeServer, is_turn_end, open_client
from .test_commlink import View, ended, link
from .test_resume import reconnect

HOSTILE = {
    "nan": '{"expression": NaN}',
    "duplicate-keys": '{"expression": "1", "expression": "2"}',
    "deep-5000": '{"expression": ' + "[" * 5000 + "]" * 5000 + "}",
}

calls: list[Any] = []


def evaluate(expression: str) -> str:
    """Record the expression it was called with.

    Args:
        expression: what to evaluate.
    """
    calls.append(expression)
    return f"evaluated {expression}"


@pytest.fixture
def tool_server(make_server: MakeServer) -> ServerThread:
    """A server with the builtin model and the recording evaluate tool."""
    calls.clear()
    return make_server(model=BuiltinModel(tokens_per_second=None), tools=[evaluate])


def strict(frame: str) -> Any:
    """Parse JSON the way a strict client does: NaN and Infinity are not JSON."""
    return json.loads(frame, parse_constant=lambda name: pytest.fail(f"{name} on the wire"))


async def recv_strict(client: Client) -> dict[str, Any]:
    """Receive one frame and parse it strictly."""
    message: dict[str, Any] = strict(await asyncio.wait_for(client.ws.recv(), TIMEOUT))
    return message


async def until_end(client: Client) -> list[dict[str, Any]]:
    """Receive frames up to and including the end (or error) of a turn."""
    out = []
    while not out or not is_turn_end(out[-1]):
        out.append(await recv_strict(client))
    return out


def model_events(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["data"]["event"] for m in messages if m.get("name") == "interaction.model"]


@pytest.mark.parametrize("arguments", HOSTILE.values(), ids=HOSTILE.keys())
def test_websocket_view_gets_the_tool_call_and_the_turn_ends(
    tool_server: ServerThread, run, arguments: str
) -> None:
    """A WebSocket view sees the call with the raw arguments, an invalid_arguments result, then the end."""

    async def scenario() -> list[dict[str, Any]]:
        client = await open_client(tool_server, session="hostile-ws", dialect="envelope")
        await recv_strict(client)
        await client.send(
            {"type": "user_message", "id": "u1", "data": {"text": f"/tool evaluate {arguments}"}}
        )
        messages = await until_end(client)
        await client.ws.close()
        return messages

    events = model_events(run(scenario()))
    call = next(e["toolCall"] for e in events if "toolCall" in e)
    result = next(e["toolResult"] for e in events if "toolResult" in e)
    assert call["name"] == "evaluate" and call["arguments"] == arguments
    assert result["ok"] is False and result["error"]["code"] == "invalid_arguments"
    assert events[-1]["type"] == "end" and "invalid_arguments" in events[-1]["text"]
    assert calls == []  # the duplicate-key call never ran, with "2" or anything else


def test_typed_view_gets_the_tool_call_with_the_raw_arguments(tool_server: ServerThread, run) -> None:
    """seed 004: tool_call start carries the raw text as args; the error result and llm_complete follow."""
    arguments = HOSTILE["nan"]

    async def scenario() -> list[dict[str, Any]]:
        client = await open_client(tool_server, dialect="typed")
        await recv_strict(client)
        await client.send(
            {"type": "user_message", "id": "u1", "data": {"text": f"/tool evaluate {arguments}"}}
        )
        messages = []
        while not messages or messages[-1]["type"] != "llm_complete":
            messages.append(await recv_strict(client))
        await client.ws.close()
        return messages

    messages = run(scenario())
    start = next(m for m in messages if m["type"] == "tool_call" and m["data"]["status"] == "start")
    result = next(m for m in messages if m["type"] == "tool_result")
    assert start["data"]["args"] == arguments
    assert result["data"]["success"] is False and result["data"]["error"]["code"] == "invalid_arguments"


@pytest.mark.parametrize("arguments", HOSTILE.values(), ids=HOSTILE.keys())
def test_sse_stream_stays_strict_json_to_the_end(tool_server: ServerThread, arguments: str) -> None:
    """POST /sse with such a turn: every data line is strict JSON and the stream runs to the end event."""
    conn = http.client.HTTPConnection("127.0.0.1", tool_server.port, timeout=TIMEOUT)
    headers = {"Authorization": f"Bearer {tool_server.token}"}
    conn.request("POST", "/sse?session=hostile-sse", body=f"/tool evaluate {arguments}", headers=headers)
    response = conn.getresponse()
    raw = response.read().decode("utf-8")
    conn.close()
    assert response.status == 200
    blocks = [dict(line.split(": ", 1) for line in b.split("\n")) for b in raw.split("\n\n") if b.strip()]
    model = [strict(b["data"])["event"] for b in blocks if b["event"] == "interaction.model"]
    call = next(e["toolCall"] for e in model if "toolCall" in e)
    assert call["arguments"] == arguments
    assert model[-1]["type"] == "end"


def test_resume_across_the_call_works_and_leaks_no_subscriber(tool_server: ServerThread, run) -> None:
    """Resuming from before the call replays it; after the resumed views leave, only the first one counts."""
    arguments = HOSTILE["deep-5000"]

    async def connections(client: Client) -> int:
        await client.send({"type": "control", "id": "st", "data": {"type": "get_status"}})
        while True:
            message = await recv_strict(client)
            event = message["data"]["event"]
            if message.get("name") == "interaction.control" and event.get("requestId") == "st":
                return int(event["data"]["connections"])

    async def scenario() -> tuple[list[list[dict[str, Any]]], list[int]]:
        first = await open_client(tool_server, session="hostile-resume", dialect="envelope")
        ready = (await recv_strict(first))["data"]["event"]
        await first.send(
            {"type": "user_message", "id": "u1", "data": {"text": f"/tool evaluate {arguments}"}}
        )
        await until_end(first)
        replays = []
        for _ in range(3):
            again = await reconnect(
                tool_server, "hostile-resume", f"{ready['epoch']}:{ready['sequence']}", "envelope"
            )
            resumed = await recv_strict(again)
            replays.append([resumed, *await until_end(again)])
            await again.ws.close()
        seen = [await connections(first)]
        while seen[-1] != 1 and len(seen) < 1000:  # the server detaches a closed view just after it closes
            seen.append(await connections(first))
        await first.ws.close()
        return replays, seen

    replays, seen = run(scenario())
    for replay in replays:
        assert replay[0]["data"]["event"]["resumed"] is True
        events = model_events(replay[1:])
        assert next(e["toolCall"] for e in events if "toolCall" in e)["arguments"] == arguments
        assert events[-1]["type"] == "end"
    assert seen[-1] == 1


@pytest.mark.parametrize("arguments", HOSTILE.values(), ids=HOSTILE.keys())
def test_comm_view_keeps_the_whole_turn(tool_server: ServerThread, arguments: str) -> None:
    """Over the comm the batch holding the call still arrives: call, refusal and end, all strict JSON."""
    view = View()
    commlink = link(tool_server, view, session="hostile-comm")
    tool_server.call_soon(commlink.command, f"/tool evaluate {arguments}")
    view.wait_for(ended)
    frames = [f for m in view.messages if m["kind"] == "frames" for f in m["frames"]]
    events = [strict(f)["data"]["event"] for f in frames]
    call = next(e["toolCall"] for e in events if "toolCall" in e)
    result = next(e["toolResult"] for e in events if "toolResult" in e)
    assert call["arguments"] == arguments and result["error"]["code"] == "invalid_arguments"
    assert calls == []


def test_hostile_provider_turn_reaches_the_view_and_is_saved(
    tmp_path: Any, run, make_server: MakeServer
) -> None:
    """An OpenAI-compatible endpoint sends hostile calls and a lone surrogate: all shown, refused, saved."""
    hostile = [HOSTILE["nan"], HOSTILE["duplicate-keys"], '{"expression": "a\ud800"}']
    calls_script = [{"id": f"c{i}", "name": "evaluate", "arguments": a} for i, a in enumerate(hostile)]
    with FakeOpenAI() as provider:
        provider.enqueue(
            fakeopenai.text(["bad \udc00 text "]) + fakeopenai.tool_calls(calls_script, split_into=3),
            fakeopenai.text(["all refused"]),
        )
        server = make_server(
            model="openai:test-model",
            model_options={
                "base_url": provider.base_url,
                "api_key": "sk-test",
                "max_retries": 0,
                "tools": True,
            },
            tools=[evaluate],
            store=JsonFileStore(tmp_path, fsync=False),
        )

        async def scenario() -> list[dict[str, Any]]:
            client = await open_client(server, session="provider", dialect="envelope")
            await recv_strict(client)
            await client.send({"type": "user_message", "id": "u1", "data": {"text": "go"}})
            messages = await until_end(client)
            await client.ws.close()
            return messages

        messages = run(scenario())
        assert provider.wait_for_requests(2, TIMEOUT)
        tool_messages = [m for m in provider.chat_requests[1].body["messages"] if m["role"] == "tool"]
        server.stop()  # the saved file is read below, once the server is done with it
    events = model_events(messages)
    shown = [e["toolCall"]["arguments"] for e in events if "toolCall" in e]
    # Shown as written, a lone surrogate as U+FFFD; the tool got the text as written and refused it.
    assert shown == [HOSTILE["nan"], HOSTILE["duplicate-keys"], {"expression": "a\ufffd"}]
    errors = [e["toolResult"]["error"]["code"] for e in events if "toolResult" in e]
    assert errors == ["invalid_arguments"] * 3 and calls == []
    assert all("invalid_arguments" in m["content"] for m in tool_messages)  # the model is told
    assert events[-1]["type"] == "end" and events[-1]["text"].startswith("bad \ufffd text ")
    diagnostics = [m for m in messages if m.get("name") == "interaction.diagnostic"]
    assert diagnostics == []  # no store_error: the turn was saved
    saved = asyncio.run(resolve(JsonFileStore(tmp_path, fsync=False).load("provider")))
    assert saved is not None and saved.messages[-1].tools[2].arguments == '{"expression": "a\ufffd"}'
