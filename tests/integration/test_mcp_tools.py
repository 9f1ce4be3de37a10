"""MCP tools over a real WebSocket: the real ``mcp-server-time`` (stdio) and the SDK's HTTP server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread
from tests import fakeopenai
from tests.conftest import TIMEOUT
from tests.fakeopenai import FakeOpenAI

from .conftest import MakeServer, is_turn_end, open_client

pytest.importorskip("mcp_server_time")

TIME_SERVER = [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]
NOW = '/tool time__get_current_time {"timezone": "UTC"}'
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")
DAYS = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}

# The official SDK's server (MCPServer, formerly FastMCP) over streamable HTTP, on a port the OS picks.
HTTP_SERVER = """
import socket, sys, anyio, uvicorn
from mcp.server.mcpserver import MCPServer
app = MCPServer("arith")
@app.tool()
def add(a: int, b: int) -> int:
    '''Add two integers.'''
    return a + b
sock = socket.socket(); sock.bind(("127.0.0.1", 0)); sock.listen()
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config(app.streamable_http_app(), log_level="warning")
anyio.run(lambda: uvicorn.Server(config).serve(sockets=[sock]))
"""


def mcp_children() -> set[int]:
    """Return the pids of this process's MCP time servers."""
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if "mcp_server_time" in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return found


def gone(pids: set[int]) -> bool:
    """Wait (bounded) for ``pids`` to exit; return whether they all did."""
    _, alive = psutil.wait_procs([p for p in map(_process, pids) if p is not None], timeout=TIMEOUT)
    return not alive


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


@pytest.fixture(scope="module")
def time_server() -> Iterator[ServerThread]:
    """A server with the builtin model and the real ``mcp-server-time`` added as ``time``."""
    server = ServerThread(model=BuiltinModel(tokens_per_second=None)).start()
    try:
        server.add_mcp("time", TIME_SERVER)
        yield server
    finally:
        server.stop()


async def turn(server: ServerThread, prompt: str) -> list[dict[str, Any]]:
    """Send ``prompt`` in the envelope dialect; return the turn's model events."""
    client = await open_client(server, dialect="envelope")
    await client.recv()
    await client.send({"type": "user_message", "id": "u1", "data": {"text": prompt}})
    messages = await client.recv_until(is_turn_end)
    await client.ws.close()
    return [m["data"]["event"] for m in messages if m.get("name") == "interaction.model"]


def call_and_result(events: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    call = next(e["toolCall"] for e in events if "toolCall" in e)
    result = next(e["toolResult"] for e in events if "toolResult" in e)
    assert result["id"] == call["id"]
    return call, result


def test_a_tool_call_carries_the_servers_real_answer(time_server: ServerThread, run: Any) -> None:
    """/tool time__get_current_time: the call and its result events hold what the MCP server answered."""
    events = run(turn(time_server, NOW))
    call, result = call_and_result(events)
    assert call["name"] == "time__get_current_time" and call["arguments"] == {"timezone": "UTC"}
    assert result["ok"] is True
    answer = result["result"]
    assert answer["timezone"] == "UTC" and answer["day_of_week"] in DAYS and answer["is_dst"] is False
    assert ISO_UTC.fullmatch(answer["datetime"])
    assert events[-1]["type"] == "end" and "time__get_current_time returned" in events[-1]["text"]
    assert answer["datetime"] in events[-1]["text"]  # the model was given the result


def test_tools_lists_the_servers_tools(time_server: ServerThread, run: Any) -> None:
    """/tools names both of mcp-server-time's tools, beside the built-in ones."""
    text = run(turn(time_server, "/tools"))[-1]["text"]
    for name in ("time__get_current_time", "time__convert_time", "calculate"):
        assert name in text
    assert time_server.mcp_servers()["time"]["tools"] == ["time__get_current_time", "time__convert_time"]


def test_the_servers_error_is_a_failed_tool_result(time_server: ServerThread, run: Any) -> None:
    """An unknown timezone: a failed result with the server's own message; the chat goes on."""
    events = run(turn(time_server, '/tool time__get_current_time {"timezone": "Nowhere/Atlantis"}'))
    _, result = call_and_result(events)
    assert result["ok"] is False and result["error"]["code"] == "tool_error"
    assert "MCP server 'time' says" in result["error"]["message"]
    assert "Invalid timezone" in result["error"]["message"]
    assert events[-1]["type"] == "end"
    _, again = call_and_result(run(turn(time_server, NOW)))
    assert again["ok"] is True


def test_a_missing_argument_is_invalid_arguments(time_server: ServerThread, run: Any) -> None:
    """The inputSchema's required arguments are checked before the server is asked."""
    _, result = call_and_result(run(turn(time_server, "/tool time__get_current_time {}")))
    assert result["error"] == {"code": "invalid_arguments", "message": "missing required argument 'timezone'"}


def test_a_dead_server_fails_clearly_and_remove_stops_it(make_server: MakeServer, run: Any) -> None:
    """Killed: its tools fail saying so, the chat goes on; removed: unknown_tool, and no process is left."""
    server = make_server(model=BuiltinModel(tokens_per_second=None))
    before = mcp_children()
    assert server.add_mcp("clock", TIME_SERVER) == ["clock__get_current_time", "clock__convert_time"]
    started = mcp_children() - before
    assert len(started) == 1
    for pid in started:
        psutil.Process(pid).kill()
    assert gone(started)
    _, result = call_and_result(run(turn(server, NOW.replace("time__", "clock__"))))
    assert result["ok"] is False and result["error"]["code"] == "tool_error"
    assert "MCP server 'clock' is not running" in result["error"]["message"]
    assert run(turn(server, "/echo still here"))[-1]["text"] == "still here"
    assert server.remove_mcp("clock") == ["clock__get_current_time", "clock__convert_time"]
    _, result = call_and_result(run(turn(server, NOW.replace("time__", "clock__"))))
    assert result["error"]["code"] == "unknown_tool"
    assert "clock__get_current_time" not in server.tools.names() and server.mcp_servers() == {}


def test_remove_and_stop_end_the_process(make_server: MakeServer) -> None:
    """remove_mcp stops the stdio process; so does stopping the llmsock server (and its tools go)."""
    server = make_server(model=BuiltinModel(tokens_per_second=None))
    before = mcp_children()
    server.add_mcp("a", TIME_SERVER)
    first = mcp_children() - before
    server.add_mcp("b", TIME_SERVER)
    second = mcp_children() - before - first
    assert len(first) == len(second) == 1
    server.remove_mcp("a")
    assert gone(first) and alive(second)
    server.stop()
    assert gone(second)
    assert [name for name in server.tools.names() if "__" in name] == [] and server.mcp_servers() == {}


def alive(pids: set[int]) -> bool:
    """Return whether every one of ``pids`` still runs."""
    return all(psutil.pid_exists(pid) for pid in pids)


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    """The URL of the SDK's MCP server over streamable HTTP on 127.0.0.1, a port the OS picked."""
    process = subprocess.Popen([sys.executable, "-c", HTTP_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(TIMEOUT)


def test_a_streamable_http_server_round_trip(make_server: MakeServer, http_url: str, run: Any) -> None:
    """A server reached by URL: its tool is listed, called, and its answer comes back."""
    server = make_server(model=BuiltinModel(tokens_per_second=None))
    assert server.add_mcp("arith", url=http_url) == ["arith__add"]
    events = run(turn(server, '/tool arith__add {"a": 40, "b": 2}'))
    _, result = call_and_result(events)
    assert result["ok"] is True and result["result"] == {"result": 42}
    assert server.remove_mcp("arith") == ["arith__add"]


def test_an_openai_compatible_model_sees_and_calls_the_mcp_tool(make_server: MakeServer, run: Any) -> None:
    """The provider is offered the MCP tool's inputSchema, calls it, and gets the server's answer back."""
    with FakeOpenAI() as provider:
        server = make_server(
            model="openai:test-model",
            model_options={
                "base_url": provider.base_url,
                "api_key": "sk-test",
                "max_retries": 0,
                "tools": True,
            },
        )
        server.add_mcp("time", TIME_SERVER)
        arguments = '{"timezone": "UTC"}'
        provider.enqueue(
            fakeopenai.tool_calls(
                [{"id": "call_t", "name": "time__get_current_time", "arguments": arguments}]
            ),
            fakeopenai.text(["It is ", "now."]),
        )
        events = run(turn(server, "what time is it?"))
        _, result = call_and_result(events)
        assert result["ok"] is True and ISO_UTC.fullmatch(result["result"]["datetime"])
        assert events[-1]["type"] == "end" and events[-1]["text"] == "It is now."
        assert provider.wait_for_requests(2, TIMEOUT)
        first, second = (r.body for r in provider.chat_requests)
        offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
        parameters = offered["time__get_current_time"]["parameters"]
        assert (
            parameters["required"] == ["timezone"]
            and parameters["properties"]["timezone"]["type"] == "string"
        )
        assert offered["time__get_current_time"]["description"] == "Get current time in a specific timezone"
        tool_message = second["messages"][-1]
        assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_t"
        assert json.loads(tool_message["content"]) == result["result"]
        server.stop()  # before the provider goes


def test_approval_applies_to_the_mcp_tools_it_names(make_server: MakeServer, run: Any) -> None:
    """add_mcp(approval=[...]): a named tool's call waits for the user; denied, the server is never asked."""
    server = make_server(model=BuiltinModel(tokens_per_second=None))
    server.add_mcp("time", TIME_SERVER, approval=["get_current_time"])
    assert server.tools.get("time__get_current_time").approval is True
    assert server.tools.get("time__convert_time").approval is False

    async def answered(approved: bool) -> list[dict[str, Any]]:
        client = await open_client(server, dialect="envelope")
        await client.recv()
        await client.send({"type": "user_message", "id": "u1", "data": {"text": NOW}})
        asked = await client.recv_until(lambda m: "approval" in m.get("data", {}).get("event", {}))
        request = asked[-1]["data"]["event"]["approval"]
        assert request["toolName"] == "time__get_current_time" and request["arguments"] == {"timezone": "UTC"}
        decision = {"toolCallId": request["toolCallId"], "approved": approved}
        await client.send({"type": "approval", "id": "a1", "data": decision})
        messages = await client.recv_until(is_turn_end)
        await client.ws.close()
        return [m["data"]["event"] for m in asked + messages if m.get("name") == "interaction.model"]

    denied = run(answered(False))
    _, result = call_and_result(denied)
    assert result["ok"] is False and result["error"]["code"] == "denied"
    assert "returned" in denied[-1]["text"] and ISO_UTC.search(denied[-1]["text"]) is None
    approved = run(answered(True))
    _, result = call_and_result(approved)
    assert result["ok"] is True and ISO_UTC.fullmatch(result["result"]["datetime"])
