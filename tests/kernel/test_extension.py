"""The extension in a real kernel: one server, one port, a free main thread, nothing in random cells."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psutil
from websockets.asyncio.client import connect

from tests.conftest import TIMEOUT

from .conftest import Kernel, text_of


def listening_ports(kernel: Kernel, baseline: set[int] = frozenset()) -> set[int]:  # type: ignore[assignment]
    """Return the TCP ports the kernel process listens on, besides its own and ``baseline``."""
    conns = psutil.Process(kernel.pid).net_connections(kind="tcp")
    return {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN} - kernel.ports() - baseline


def server_threads(kernel: Kernel) -> int:
    """Return how many llmsock server threads run in the kernel."""
    return int(kernel.value("sum(t.name == 'llmsock-server' for t in __import__('threading').enumerate())"))


def test_load_reload_unload_leave_one_port(kernel: Kernel) -> None:
    """%load_ext starts one server; %reload_ext three times keeps exactly one; %unload_ext frees it."""
    kernel.run("import llmsock_widget")
    before = listening_ports(kernel)  # whatever the kernel itself listens on (e.g. its debugger)
    kernel.run("%load_ext llmsock")
    port = kernel.value("__import__('llmsock_widget').get_server().port")
    assert listening_ports(kernel, before) == {port}
    assert server_threads(kernel) == 1
    for _ in range(3):
        kernel.run("%reload_ext llmsock")
        port = kernel.value("__import__('llmsock_widget').get_server().port")
        assert listening_ports(kernel, before) == {port}
        assert server_threads(kernel) == 1
    kernel.run("%load_ext llmsock")  # already loaded: nothing new
    assert listening_ports(kernel, before) == {port}
    kernel.run("%unload_ext llmsock")
    assert listening_ports(kernel, before) == set()
    assert server_threads(kernel) == 0


def test_get_server_is_the_extension_server(kernel: Kernel) -> None:
    """llmsock_widget.get_server() returns the server %load_ext started, with url and token."""
    kernel.run("%load_ext llmsock")
    info = kernel.value(
        "(lambda s: {'url': s.url, 'port': s.port, 'same': s is __import__('llmsock_widget').get_server()})"
        "(__import__('llmsock_widget').get_server())"
    )
    assert info["same"] is True
    assert info["url"] == f"ws://127.0.0.1:{info['port']}/ws"


async def chat_while_busy(url: str, token: str) -> tuple[str, dict, dict]:
    """Stream a whole reply, then abort a held one; return the text and both end events."""
    async with connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=TIMEOUT
    ) as ws:
        await ws.recv()
        await ws.send("/slow 300 /long 120")
        text, end = "", None
        while end is None:
            event = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["data"]["event"]
            if event["type"] == "delta":
                text += event["text"]
            elif event["type"] in ("end", "error"):
                end = event
        await ws.send("/hold 3")
        aborted = None
        deltas = 0
        while aborted is None:
            event = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["data"]["event"]
            if event["type"] == "delta":
                deltas += 1
                if deltas == 3:
                    await ws.send(json.dumps({"type": "control", "data": {"type": "abort"}}))
            elif event["type"] in ("end", "error"):
                aborted = event
        return text, end, aborted


def busy_cell(flag: Path, kind: str) -> str:
    """Code for a cell that stays busy (sleeping or burning CPU) until ``flag`` exists."""
    work = "time.sleep(0.05)" if kind == "sleep" else "sum(i * i for i in range(20000))"
    return f"import os, time\nwhile not os.path.exists({str(flag)!r}):\n    {work}\n'released'"


def check_streams_while_busy(kernel: Kernel, tmp_path: Path, kind: str) -> None:
    kernel.run("%load_ext llmsock")
    server = kernel.value(
        "(lambda s: {'url': s.url, 'token': s.token})(__import__('llmsock_widget').get_server())"
    )
    flag = tmp_path / "release"
    busy = kernel.submit(busy_cell(flag, kind))
    try:
        text, end, aborted = asyncio.run(chat_while_busy(server["url"], server["token"]))
    finally:
        flag.touch()
    done = kernel.collect(busy, TIMEOUT * 3)
    assert "released" in text_of(done)  # the cell really was running all along
    assert end["type"] == "end" and end["finishReason"] == "stop" and end["text"] == text
    assert len(text.split()) > 50
    assert aborted["type"] == "end" and aborted["finishReason"] == "aborted"


def test_reply_streams_and_stops_while_a_cell_sleeps(kernel: Kernel, tmp_path: Path) -> None:
    """While a cell sleeps, an external client gets a whole streamed reply, and Stop works."""
    check_streams_while_busy(kernel, tmp_path, "sleep")


def test_reply_streams_and_stops_while_a_cell_burns_cpu(kernel: Kernel, tmp_path: Path) -> None:
    """While a CPU-bound cell runs, an external client gets a whole streamed reply, and Stop works."""
    check_streams_while_busy(kernel, tmp_path, "cpu")


ANSWER_ONLY = ("markdown_it", "nh3", "llmsock_widget.notebook.answer", "llmsock_widget.client")


def test_load_ext_leaves_the_answer_renderer_to_the_first_cell(kernel: Kernel) -> None:
    """%load_ext imports what the server needs; markdown-it, nh3 and the client wait for a %%llmsock cell."""
    modules = f"sorted(m for m in __import__('sys').modules if m.startswith({ANSWER_ONLY!r}))"
    kernel.run("%load_ext llmsock")
    assert kernel.value(modules) == []
    kernel.run("%%llmsock\n/echo hi")
    assert "llmsock_widget.notebook.answer" in kernel.value(modules)


def test_cell_magic_streams_answer_into_the_cell(kernel: Kernel) -> None:
    """%%llmsock sends the cell as a prompt and updates its output several times as the answer streams."""
    kernel.run("%load_ext llmsock")
    messages = kernel.run("%%llmsock\nTell me about tea", timeout=TIMEOUT * 2)
    updates = [m for m in messages if m["msg_type"] == "update_display_data"]
    assert len(updates) >= 3
    final = updates[-1]["content"]["data"]
    assert set(final) == {"text/html", "text/plain"}  # sanitized HTML, never Markdown
    assert "Tell me about tea" in final["text/plain"] and "Tell me about tea" in final["text/html"]
    first = updates[0]["content"]["data"]["text/plain"]
    assert len(first) < len(final["text/plain"])


def test_cell_magic_remembers_the_session(kernel: Kernel) -> None:
    """Two %%llmsock cells on one session: the second answer shows the model saw the first prompt."""
    kernel.run("%load_ext llmsock")
    kernel.run("%llmsock model builtin:0")
    kernel.run("%%llmsock notes\nmy cat is called Miso")
    answer = kernel.value(
        "__import__('llmsock_widget').ask('what is my cat called?', session='notes', display=False).text"
    )
    assert "my cat is called Miso" in answer


# The built-in tools, then the kernel tools %load_ext registers.
ALL_TOOLS = "get_current_time, calculate, list_variables, describe_variable, get_source, read_cell, run_code"


def test_cell_magic_flags_choose_the_prompts_tools(kernel: Kernel) -> None:
    """%%llmsock --no-tools / --tools NAMES: the builtin model's /tools lists what the prompt offered."""
    kernel.run("%load_ext llmsock")
    kernel.run("%llmsock model builtin:0")

    def said(line: str) -> str:
        updates = [
            m for m in kernel.run(f"%%llmsock tools {line}\n/tools") if m["msg_type"] == "update_display_data"
        ]
        return str(updates[-1]["content"]["data"]["text/plain"])

    assert f"Tools I can call: {ALL_TOOLS}." in said("")
    assert "Tools I can call: none." in said("--no-tools")
    assert "Tools I can call: calculate." in said("--tools calculate")
    kernel.run("%llmsock model builtin:0 --no-tools")
    assert "Tools I can call: none." in said("")
    out = text_of(kernel.run("%llmsock"))
    assert f"tools: {ALL_TOOLS} (offered only to prompts that ask" in out
    assert f"Tools I can call: {ALL_TOOLS}." in said("--tools")


def test_status_magic_shows_url_model_and_counters(kernel: Kernel) -> None:
    """%llmsock shows the url, model, sessions, connections and message counters; never the token."""
    kernel.run("%load_ext llmsock")
    token = kernel.value("__import__('llmsock_widget').get_server().token")
    out = text_of(kernel.run("%llmsock"))
    for key in ("url: ws://127.0.0.1:", "model: builtin", "sessions:", "connections:", "messagesIn:"):
        assert key in out
    assert token not in out


def test_server_thread_logs_never_land_in_a_cell(kernel: Kernel) -> None:
    """Lines logged by llmsock (on any thread) go to the kernel's console, never into a cell.

    ipykernel forwards what reaches file descriptor 2 to the running cell, late; a marker
    written to descriptor 2 after the probes proves every earlier line had its chance to arrive.
    """
    msg_id = kernel.submit(
        "%load_ext llmsock\n"
        "import logging, os\n"
        "s = __import__('llmsock_widget').get_server()\n"
        "async def probe():\n"
        "    logging.getLogger('llmsock').warning('probe-from-server-thread')\n"
        "    logging.getLogger('tornado.application').error('probe-from-tornado')\n"
        "s.submit(probe()).result(10)\n"
        "logging.getLogger('llmsock').warning('probe-from-main-thread')\n"
        "os.write(2, b'fd-marker\\n')"
    )
    texts = kernel.stream_until(msg_id, "fd-marker")
    assert "fd-marker" in texts
    for probe in ("probe-from-server-thread", "probe-from-tornado", "probe-from-main-thread", "listening on"):
        assert probe not in texts
