"""Two processes saving one session into one store folder keep every turn (B11)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llmsock_widget.models import BuiltinModel
from llmsock_widget.stores import JsonFileStore
from tests.conftest import TIMEOUT

from .conftest import Client, MakeServer, is_turn_end, open_client


@pytest.fixture
def other_process(tmp_path: Path) -> Iterator[SimpleNamespace]:
    """A second llmsock server, in its own process, keeping its chats in the same folder."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmsock_widget", "serve", "--store", f"file:{tmp_path}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        info = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        yield SimpleNamespace(url=info["url"], token=info["token"], proc=proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # it stops, ending and saving its sessions
            try:
                proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _turn(client: Client, text: str) -> None:
    await client.send(text)
    await client.recv_until(is_turn_end)


def _diagnostics(client: Client) -> list[dict[str, Any]]:
    return [m["data"]["event"] for m in client.seen if m.get("name") == "interaction.diagnostic"]


def test_two_processes_on_one_folder_both_keep_their_turns(
    tmp_path: Path, other_process: SimpleNamespace, run: Any, make_server: MakeServer
) -> None:
    """Turns taken alternately in two processes on one session are all saved; neither is refused."""
    here = make_server(model=BuiltinModel(tokens_per_second=None), store=JsonFileStore(tmp_path))

    async def scenario() -> tuple[Client, Client]:
        a = await open_client(here, session="shared")
        await a.recv()
        await _turn(a, "alpha one")
        here.submit(here.save_all()).result(TIMEOUT)  # on disk before the other process loads it
        b = await open_client(other_process, session="shared")  # type: ignore[arg-type]
        await b.recv()
        await _turn(b, "bravo one")
        await _turn(a, "alpha two")
        await _turn(b, "bravo two")
        await _turn(a, "alpha three")
        await a.ws.close()
        await b.ws.close()
        return a, b

    a, b = run(scenario())
    here.stop()  # ends and saves its sessions
    other_process.proc.send_signal(signal.SIGTERM)
    other_process.proc.wait(TIMEOUT)
    saved = JsonFileStore(tmp_path).load_sync("shared")
    assert saved is not None
    prompts = [m.text for m in saved.messages if m.role == "user"]
    assert sorted(prompts) == sorted(["alpha one", "bravo one", "alpha two", "bravo two", "alpha three"])
    answers = [m for m in saved.messages if m.role == "assistant"]
    assert len(answers) == 5 and all(m.status == "complete" for m in answers)
    for client in (a, b):
        assert not [d for d in _diagnostics(client) if "not saved" in d.get("message", "")]
    told = [d for d in _diagnostics(a) if d.get("code") == "store_conflict"]
    assert told and told[0]["level"] == "warning" and "another process" in told[0]["message"]
