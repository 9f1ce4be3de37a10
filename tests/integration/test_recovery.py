"""Sessions survive trouble: interrupted turns, stopped servers, unreadable or newer snapshots."""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from llmsock_widget.core.session import Message, new_state
from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import CLOSE_UNAVAILABLE, ServerThread
from llmsock_widget.stores import JsonFileStore
from tests.conftest import TIMEOUT

from .conftest import MakeServer, is_model, is_turn_end, open_client


@pytest.fixture
def fast_server(make_server: MakeServer) -> Callable[[Path], ServerThread]:
    """Return ``fast_server(store_dir)``: the unpaced builtin model on a JSON file store."""

    def start(store_dir: Path) -> ServerThread:
        return make_server(model=BuiltinModel(tokens_per_second=None), store=JsonFileStore(store_dir))

    return start


def test_turn_cut_by_a_crash_is_recovered_reported_and_saved(tmp_path: Path, run, fast_server) -> None:
    """A snapshot cut mid-answer loads with the turn aborted, a 'recovered' diagnostic, and is saved."""
    user = Message(id="m1", role="user", text="tell me", turn_id="t1", ts=1)
    partial = Message(id="t1:a", role="assistant", text="Once upon", turn_id="t1", ts=2, status="streaming")
    state = dataclasses.replace(
        new_state("cut", ts=1),
        seq=5,
        revision=2,
        phase="streaming",
        status="generating",
        turn_id="t1",
        messages=(user,),
        current=partial,
    )
    JsonFileStore(tmp_path).save_sync("cut", state)
    server = fast_server(tmp_path)

    async def scenario() -> tuple[dict, dict, dict]:
        client = await open_client(server, session="cut", dialect="envelope")
        ready = await client.recv()
        note = await client.recv()
        await client.send({"type": "control", "id": "h", "data": {"type": "get_history"}})
        history = (await client.recv_until(lambda m: m.get("name") == "interaction.control"))[-1]
        await client.ws.close()
        return ready, note, history

    ready, note, history = run(scenario())
    server.stop()
    assert ready["data"]["event"]["created"] is False
    assert note["name"] == "interaction.diagnostic" and note["data"]["event"]["code"] == "recovered"
    messages = history["data"]["event"]["data"]["messages"]
    assert messages[-1]["status"] == "aborted" and messages[-1]["text"] == "Once upon"
    saved = JsonFileStore(tmp_path).load_sync("cut")
    assert saved is not None and saved.phase == "idle" and saved.messages[-1].status == "aborted"


def test_stopping_the_server_mid_answer_saves_the_partial_answer(tmp_path: Path, run, fast_server) -> None:
    """stop() during a reply ends the turn as aborted and saves the text streamed so far."""
    server = fast_server(tmp_path)

    async def scenario() -> str:
        client = await open_client(server, session="halt")
        await client.recv()
        await client.send("/hold 4")
        start = (await client.recv_until(is_model("start")))[-1]["data"]["meta"]["sequence"]
        deltas, last = [], start
        while last < start + 4:  # the four deltas, maybe merged into fewer frames (protocol 5.1)
            message = await client.recv()
            if is_model("delta")(message):
                deltas.append(message["data"]["event"]["text"])
                last = message["data"]["meta"]["sequence"]
        await asyncio.to_thread(server.stop)  # with this client still connected, mid-answer
        await client.ws.wait_closed()  # so its socket is closed, not left to the garbage collector
        return "".join(deltas)

    streamed = run(scenario())
    saved = JsonFileStore(tmp_path).load_sync("halt")
    assert saved is not None and saved.phase == "idle"
    assert saved.messages[-1].status == "aborted" and saved.messages[-1].text == streamed


def test_newer_snapshot_closes_with_1011_and_is_left_alone(tmp_path: Path, run, fast_server) -> None:
    """A snapshot from a newer llmsock refuses the connection with 1011 and a reason; the file stays."""
    path = tmp_path / "future.json"
    path.write_text(json.dumps({"schema": 99, "sessionId": "future"}))
    server = fast_server(tmp_path)

    async def scenario() -> tuple[int | None, str | None, dict]:
        client = await open_client(server, session="future")
        await client.ws.wait_closed()
        other = await open_client(server, session="present")  # the server itself carries on
        ready = await other.recv()
        await other.ws.close()
        return client.ws.close_code, client.ws.close_reason, ready

    code, reason, ready = run(scenario())
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    conn.request("GET", "/sse?session=future", headers={"Authorization": f"Bearer {server.token}"})
    sse = conn.getresponse()
    sse_status, sse_body = sse.status, json.loads(sse.read())
    conn.close()
    server.stop()
    assert code == CLOSE_UNAVAILABLE and reason and "snapshot_version" in reason
    assert ready["data"]["event"]["sessionId"] == "present"
    assert sse_status == 503 and sse_body["error"]["code"] == "snapshot_version"
    assert json.loads(path.read_text())["schema"] == 99


def test_clear_history_then_prompt_saves_without_conflict(tmp_path: Path, run, fast_server) -> None:
    """Clearing history and prompting right away never produces a store_conflict diagnostic."""
    server = fast_server(tmp_path)

    async def scenario() -> list[dict]:
        client = await open_client(server, session="clear")
        await client.recv()
        await client.send("first")
        await client.recv_until(is_turn_end)
        for round_ in range(5):
            await client.send({"type": "control", "id": f"c{round_}", "data": {"type": "clear_history"}})
            await client.send(f"again {round_}")
            await client.recv_until(is_turn_end)
        await client.send({"type": "ping", "id": "last"})
        await client.recv_until(lambda m: m.get("name") == "interaction.control")
        await client.ws.close()
        return client.seen

    seen = run(scenario())
    server.stop()
    codes = [m["data"]["event"].get("code") for m in seen if m.get("name") == "interaction.diagnostic"]
    assert "store_conflict" not in codes and "store_error" not in codes
    saved = JsonFileStore(tmp_path).load_sync("clear")
    assert saved is not None and saved.messages[0].text == "again 4"
