"""Lifecycle faults in a real kernel: asyncio.run and fork in cells, a configured port in use."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

from websockets.asyncio.client import connect

from llmsock_widget.core import snapshot
from tests.conftest import TIMEOUT

from .conftest import Kernel, text_of

SERVER = "(lambda s: {'url': s.url, 'token': s.token})(__import__('llmsock_widget').get_server())"


async def echo(url: str, token: str, text: str) -> str:
    """Send ``/echo text`` and return the answer's text."""
    async with connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=TIMEOUT
    ) as ws:
        await ws.recv()
        await ws.send(f"/echo {text}")
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["data"]["event"]
            if event["type"] in ("end", "error"):
                return str(event.get("text", ""))


def server_threads(kernel: Kernel) -> int:
    return int(kernel.value("sum(t.name == 'llmsock-server' for t in __import__('threading').enumerate())"))


def test_a_cell_that_calls_asyncio_run_does_not_touch_the_server(kernel: Kernel) -> None:
    """asyncio.run in a cell (which ipykernel refuses, its loop is running) leaves the server alone."""
    kernel.run("%load_ext llmsock")
    server = kernel.value(SERVER)
    messages = kernel.collect(kernel.submit("import asyncio\nasyncio.run(asyncio.sleep(0.1))\n'ran'"))
    outcome = [m["content"] for m in messages if m["msg_type"] in ("error", "execute_result")]
    assert outcome, "the cell finished, one way or the other"
    assert asyncio.run(echo(server["url"], server["token"], "after asyncio.run")) == "after asyncio.run"
    # A cell that runs its own loop in a thread while the server streams: both fine.
    code = (
        "import asyncio, threading\n"
        "box = []\n"
        "t = threading.Thread(target=lambda: box.append(asyncio.run(asyncio.sleep(0.2, 'own loop'))))\n"
        "t.start(); t.join(); box[0]"
    )
    assert "own loop" in text_of(kernel.run(code))
    assert server_threads(kernel) == 1


def test_a_cell_that_forks_leaves_the_server_serving(kernel: Kernel, tmp_path: Path) -> None:
    """A forked child (still alive) shares the listening socket but never answers; the kernel does."""
    kernel.run("%load_ext llmsock")
    server = kernel.value(SERVER)
    flag = tmp_path / "release-child"
    kernel.run(
        "import os, time\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        f"    while not os.path.exists({str(flag)!r}):\n"
        "        time.sleep(0.05)\n"
        "    os._exit(0)\n"
    )
    try:
        for i in range(3):
            assert (
                asyncio.run(echo(server["url"], server["token"], f"while forked {i}")) == f"while forked {i}"
            )
    finally:
        flag.touch()
    assert kernel.value("os.waitpid(child, 0)[1]") == 0
    assert asyncio.run(echo(server["url"], server["token"], "after the child")) == "after the child"


def test_a_configured_port_in_use_fails_clearly_and_starts_no_thread(kernel: Kernel) -> None:
    """get_server(port=<busy>) raises a clear error; no half-started thread; a later start works."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        messages = kernel.collect(
            kernel.submit(f"import llmsock_widget\nllmsock_widget.get_server(port={port})")
        )
        errors = [m["content"] for m in messages if m["msg_type"] == "error"]
        assert errors and errors[0]["ename"] == "ServerStartError"
        assert f"cannot listen on 127.0.0.1:{port}" in errors[0]["evalue"]
        assert server_threads(kernel) == 0
    server = kernel.value(SERVER)
    assert asyncio.run(echo(server["url"], server["token"], "second try")) == "second try"
    assert server_threads(kernel) == 1


def test_kernel_restart_mid_answer_keeps_the_saved_chat(tmp_path: Path) -> None:
    """The kernel dies while an answer streams: the client sees the socket drop; in the new kernel
    the chat is back, the cut answer marked aborted (the files are whole), and it goes on."""
    from .conftest import start_kernel, stop_kernel

    store = tmp_path / "chats"
    kernel = start_kernel(tmp_path, LLMSOCK_STORE=f"file:{store}")
    try:
        kernel.run("%load_ext llmsock")
        kernel.run("%llmsock model builtin:0")
        kernel.run("%%llmsock notes\nthe code word is heron")
        server = kernel.value(SERVER)

        async def cut_off() -> int | None:
            headers = {"Authorization": f"Bearer {server['token']}"}
            async with connect(
                server["url"] + "?session=notes", additional_headers=headers, open_timeout=TIMEOUT
            ) as ws:
                await ws.recv()
                await ws.send("/slow 50 /long 500")
                while (
                    json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["data"]["event"]["type"] != "delta"
                ):
                    pass
                kernel.manager.restart_kernel(now=True)
                try:
                    while True:
                        await asyncio.wait_for(ws.recv(), TIMEOUT)
                except Exception:
                    return ws.close_code

        assert asyncio.run(cut_off()) in (1006, 1001)
        kernel.client.wait_for_ready(timeout=TIMEOUT * 3)
        kernel.run("%load_ext llmsock")
        kernel.run("%llmsock model builtin:0")
        answer = kernel.value(
            "__import__('llmsock_widget').ask('and the word?', session='notes', display=False).text"
        )
        # The cut turn was kept as far as it got, marked aborted (a started turn is saved).
        assert 'This is turn 3 of our conversation; earlier you asked "the code word is heron"' in answer
        kept = snapshot.loads((store / "notes.json").read_text())
        statuses = [(m.role, m.status) for m in kept.messages][:4]
        assert statuses == [
            ("user", "complete"),
            ("assistant", "complete"),
            ("user", "complete"),
            ("assistant", "aborted"),
        ]
    finally:
        stop_kernel(kernel)
