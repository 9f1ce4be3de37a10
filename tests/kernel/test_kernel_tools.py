"""The kernel tools in a real kernel: the model reads the namespace while a cell runs; run_code is approved.

The builtin model's ``/tool NAME {...}`` calls a tool and answers ``NAME returned <what it got>.``,
so the answer is what the model received.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from llmsock_widget.core import snapshot
from tests.conftest import BUSY_CELL as BUSY
from tests.conftest import TIMEOUT

from .conftest import Kernel, start_kernel, stop_kernel, text_of

SECRET = "sk-live-0123456789abcdefghij"
SETUP = (
    "import pandas as pd\n"
    "df = pd.DataFrame({'city': ['Oslo', 'Lima', 'Pune'], 'temp': [4.5, 19.0, 31.25]})\n"
    f"api_key = {SECRET!r}\n"
    "data = [1, 2, 3]\n"
    "_scratch = 'hidden'\n"
)
SERVER = "(lambda s: {'url': s.url, 'token': s.token})(__import__('llmsock_widget').get_server())"


async def session(url: str, token: str, name: str) -> ClientConnection:
    ws = await connect(f"{url}?session={name}", additional_headers={"Authorization": f"Bearer {token}"})
    await asyncio.wait_for(ws.recv(), TIMEOUT)  # the session's ready frame
    return ws


async def events_until_end(ws: ClientConnection, on_event: Any = None) -> str:
    """Read the model channel's events until the turn ends; return the answer's text."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if frame.get("name") != "interaction.model":
            continue
        event = frame["data"]["event"]
        if on_event is not None:
            await on_event(ws, event)
        if event["type"] in ("end", "error"):
            assert event["type"] == "end", event
            return str(event.get("text", ""))


def ask(url: str, token: str, prompt: str, name: str = "tools", on_event: Any = None) -> str:
    async def run() -> str:
        ws = await session(url, token, name)
        try:
            await ws.send(prompt)
            return await events_until_end(ws, on_event)
        finally:
            await ws.close()

    return asyncio.run(run())


def cell_ended(kernel: Kernel, msg_id: str) -> bool:
    """Say whether the cell ``msg_id`` went idle, reading the IOPub messages there are now."""
    while True:
        try:
            msg = kernel.client.get_iopub_msg(timeout=0.01)
        except queue.Empty:
            return False
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return True
        if msg["msg_type"] == "stream" and "done" in msg["content"]["text"]:
            return True


def test_the_model_reads_the_namespace_while_a_cpu_bound_cell_runs(tmp_path: Path) -> None:
    chats = tmp_path / "chats"
    kernel = start_kernel(tmp_path, LLMSOCK_STORE=f"file:{chats}")
    try:
        kernel.run("%load_ext llmsock")
        kernel.run("%llmsock model builtin:0")
        kernel.run(SETUP)
        server = kernel.value(SERVER)
        busy = kernel.submit(BUSY)
        kernel.stream_until(busy, "busy")
        started = time.monotonic()

        answer = ask(server["url"], server["token"], '/tool describe_variable {"name": "df"}')
        assert answer.startswith(
            "The tool describe_variable returned df: pandas.DataFrame, 3 rows x 2 columns"
        )
        assert "Oslo" in answer and "31.25" in answer and "temp" in answer

        listed = ask(server["url"], server["token"], "/tool list_variables {}")
        assert listed.startswith("The tool list_variables returned ")
        variables = json.loads(listed[len("The tool list_variables returned ") : -1])["variables"]
        # No _-names, modules, In or Out; "end" is the running cell's, assigned as it started.
        assert [v["name"] for v in variables] == ["api_key", "data", "df", "end"]
        assert variables[0]["summary"] == "<masked: the name looks secret>"
        assert SECRET not in listed

        assert not cell_ended(kernel, busy), "the answers waited for the cell"
        assert time.monotonic() - started < TIMEOUT * 3
        kept = snapshot.loads((chats / "tools.json").read_text())
        [record] = kept.messages[1].tools
        assert record.name == "describe_variable" and "Oslo" in str(record.result)
        assert SECRET not in (chats / "tools.json").read_text()
        kernel.manager.interrupt_kernel()  # end the busy cell now rather than when its clock runs out
    finally:
        stop_kernel(kernel)


def test_the_model_reads_sources_and_cells_of_the_notebook(kernel: Kernel) -> None:
    kernel.run("%load_ext llmsock")
    kernel.run("%llmsock model builtin:0")
    kernel.run(
        f"class Model:\n    def fit(self, rows):\n        token = {SECRET!r}\n        return len(rows)\n"
    )
    kernel.run("%llmsock")
    server = kernel.value(SERVER)
    source = ask(server["url"], server["token"], '/tool get_source {"name": "Model"}')
    assert '"source": "class Model:\\n    def fit(self, rows):' in source
    assert SECRET not in source and "<masked" in source
    # In[1] is %load_ext; the last cell (-1) is the one that asked the server's address.
    first = ask(server["url"], server["token"], '/tool read_cell {"index": 1}')
    assert '{"index": 1, "source": "%load_ext llmsock"}' in first
    last = ask(server["url"], server["token"], '/tool read_cell {"index": -1}')
    assert '"index": 5' in last and "get_server()" in last


def test_status_lists_the_kernel_tools_and_unload_removes_them(kernel: Kernel) -> None:
    kernel.run("%load_ext llmsock")
    names = kernel.value("__import__('llmsock_widget').get_server().tools.names()")
    assert names[-5:] == ["list_variables", "describe_variable", "get_source", "read_cell", "run_code"]
    hooks = "[f.__qualname__ for f in get_ipython().events.callbacks['pre_run_cell']]"
    assert "CellGate.cell_starts" in kernel.value(hooks)
    kernel.run("%unload_ext llmsock")
    assert "CellGate.cell_starts" not in kernel.value(hooks)


def test_a_users_tool_of_the_same_name_wins(kernel: Kernel) -> None:
    kernel.run(
        "import llmsock_widget\n"
        "def read_cell(index: int) -> str:\n"
        '    """Mine."""\n'
        "    return 'mine'\n"
        "server = llmsock_widget.get_server(tools=[read_cell])\n"  # the built-in tools and this one
    )
    assert kernel.value("server.tools.get('read_cell').fn is read_cell") is True
    assert kernel.value("server.tools.get('run_code').approval") is True


# -- run_code: only with the user's approval ----------------------------------------------------


def answer_approvals(approved: bool, seen: list[dict[str, Any]]) -> Any:
    async def on_event(ws: ClientConnection, event: dict[str, Any]) -> None:
        if event["type"] == "delta" and "approval" in event:
            seen.append(event["approval"])
            call_id = event["approval"]["toolCallId"]
            await ws.send(
                json.dumps({"type": "approval", "data": {"toolCallId": call_id, "approved": approved}})
            )

    return on_event


def test_run_code_runs_once_when_approved_and_never_when_denied(kernel: Kernel) -> None:
    kernel.run("%load_ext llmsock")
    kernel.run("%llmsock model builtin:0")
    kernel.run("counter = 0")
    server = kernel.value(SERVER)
    prompt = '/tool run_code {"code": "counter += 1\\nprint(\'ran\')\\ncounter * 10"}'

    seen: list[dict[str, Any]] = []
    denied = ask(server["url"], server["token"], prompt, on_event=answer_approvals(False, seen))
    assert len(seen) == 1 and seen[0]["toolName"] == "run_code"
    assert '"code": "denied"' in denied
    assert kernel.value("counter") == 0

    approved = ask(server["url"], server["token"], prompt, on_event=answer_approvals(True, seen))
    assert len(seen) == 2
    assert kernel.value("counter") == 1  # once
    assert '"stdout": "ran\\n"' in approved and "summary" in approved and "10" in approved


def test_run_code_that_nobody_approves_is_denied_when_the_time_runs_out(kernel: Kernel) -> None:
    kernel.run("%load_ext llmsock")
    kernel.run("%llmsock model builtin:0")
    kernel.run("counter = 0\n__import__('llmsock_widget').get_server().hub.approval_timeout = 0.5")
    server = kernel.value(SERVER)
    seen: list[dict[str, Any]] = []

    async def watch(ws: ClientConnection, event: dict[str, Any]) -> None:
        if event["type"] == "delta" and "approvalResult" in event:
            seen.append(event["approvalResult"])

    answer = ask(server["url"], server["token"], '/tool run_code {"code": "counter += 1"}', on_event=watch)
    assert [(s["toolName"], s["approved"], s["reason"]) for s in seen] == [("run_code", False, "timeout")]
    assert "was not approved within 0.5 s" in answer
    assert kernel.value("counter") == 0


def test_approved_run_code_waits_for_the_running_cell_and_says_so(kernel: Kernel) -> None:
    kernel.run("%load_ext llmsock")
    kernel.run("%llmsock model builtin:0")
    server = kernel.value(SERVER)
    # The cell computes until run_code waits for it (or its clock runs out), then ends by itself.
    cell = kernel.submit(
        "import time\n"
        "from llmsock_widget.notebook.kerneltools import current_gate\n"
        "print('busy', flush=True)\n"
        f"end = time.monotonic() + {TIMEOUT}\n"
        "while not current_gate().waiting and time.monotonic() < end:\n"
        "    pass\n"
        "print('cell saw run_code waiting:', current_gate().waiting)\n"
        "during = 'the cell'\n"
    )
    kernel.stream_until(cell, "busy")
    seen: list[dict[str, Any]] = []
    prompt = '/tool run_code {"code": "during = during + \' then run_code\'\\nduring"}'
    answer = ask(server["url"], server["token"], prompt, on_event=answer_approvals(True, seen))
    assert '"waited_for_cell_s": ' in answer and "the cell then run_code" in answer
    assert "cell saw run_code waiting: 1" in text_of(kernel.collect(cell))
    assert kernel.value("during") == "the cell then run_code"


def test_run_code_approved_during_a_cell_that_asks_the_chat_runs_at_once(kernel: Kernel) -> None:
    """%%llmsock waits for its answer: the run_code in that answer must not wait for the cell."""
    kernel.run("%load_ext llmsock")
    kernel.run("%llmsock model builtin:0")
    # A short wait, so that a run_code stuck behind its own cell fails fast instead of in 120 s.
    kernel.run("from llmsock_widget.notebook import kerneltools\nkerneltools.current().run_wait = 2.0")
    server = kernel.value(SERVER)
    seen: list[dict[str, Any]] = []
    ready = threading.Event()

    async def approve() -> None:
        ws = await session(server["url"], server["token"], "default")
        ready.set()
        try:
            while not seen:
                frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                if frame.get("name") == "interaction.model":
                    await answer_approvals(True, seen)(ws, frame["data"]["event"])
        finally:
            await ws.close()

    approver = threading.Thread(target=asyncio.run, args=(approve(),), daemon=True)
    approver.start()
    assert ready.wait(TIMEOUT)
    shown = text_of(kernel.run('%%llmsock\n/tool run_code {"code": "asked = 42\\nasked"}'))
    approver.join(TIMEOUT)
    assert len(seen) == 1
    assert kernel.value("asked") == 42
    assert "run_code returned" in shown and "a cell has been running" not in shown


def test_an_openai_compatible_model_uses_the_kernel_tools_and_never_sees_a_secret(kernel: Kernel) -> None:
    """A provider's calls: list and describe (a secret masked), then run_code once the user approves."""
    from tests import fakeopenai
    from tests.fakeopenai import FakeOpenAI

    with FakeOpenAI() as provider:
        provider.enqueue(
            fakeopenai.tool_calls(
                [
                    {"id": "c1", "name": "list_variables", "arguments": "{}"},
                    {"id": "c2", "name": "describe_variable", "arguments": '{"name": "api_key"}'},
                    {"id": "c3", "name": "describe_variable", "arguments": '{"name": "df"}'},
                ]
            ),
            fakeopenai.tool_calls(
                [{"id": "c4", "name": "run_code", "arguments": '{"code": "hot = df.temp.max()"}'}]
            ),
            fakeopenai.text(["The hottest is 31.25."]),
        )
        kernel.run("%load_ext llmsock")
        kernel.run(SETUP + "import os\nos.environ['LLMSOCK_TEST_KEY'] = 'sk-test'")
        options = f"--base-url {provider.base_url} --api-key-env LLMSOCK_TEST_KEY --tools"
        kernel.run(f"%llmsock model openai:test-model {options}")
        server = kernel.value(SERVER)
        seen: list[dict[str, Any]] = []
        answer = ask(
            server["url"], server["token"], "Which city is hottest?", on_event=answer_approvals(True, seen)
        )
        assert answer == "The hottest is 31.25."
        assert [s["toolName"] for s in seen] == ["run_code"]  # only the call that changes state asked
        assert kernel.value("hot") == 31.25
        bodies = [json.dumps(r.body) for r in provider.chat_requests]
    assert len(bodies) == 3 and all(SECRET not in body for body in bodies)
    results = {
        m["tool_call_id"]: m["content"] for m in json.loads(bodies[1])["messages"] if m["role"] == "tool"
    }
    assert '"name": "df"' in results["c1"] and '"name": "_scratch"' not in results["c1"]
    assert results["c2"] == "<masked: the name looks secret>"
    assert results["c3"].startswith("df: pandas.DataFrame, 3 rows x 2 columns") and "Pune" in results["c3"]
