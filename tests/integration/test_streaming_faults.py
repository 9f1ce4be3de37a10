"""Faults during streaming: pings mid-answer, invalid UTF-8, a connection killed mid-turn."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from llmsock_widget.models import BuiltinModel
from llmsock_widget.server import ServerThread
from tests.conftest import TIMEOUT

from .conftest import is_turn_end, open_client


def event(message: dict[str, Any]) -> dict[str, Any]:
    return message["data"]["event"]


def test_pings_are_answered_while_a_long_answer_streams(run: Any) -> None:
    """A slow answer does not hold the connection: every ping sent mid-answer is answered mid-answer."""
    server = ServerThread(model=BuiltinModel(tokens_per_second=None), ping_interval=0.2).start()

    async def scenario() -> tuple[int, int, bool]:
        client = await open_client(server, session="long", dialect="envelope")
        await client.recv()
        await client.send("/slow 60 /long 240")  # about four seconds
        pongs: list[asyncio.Future[float]] = []
        deltas = 0
        while True:
            message = await client.recv()
            if is_turn_end(message):
                break
            if event(message).get("type") == "delta":
                deltas += 1
                if deltas % 30 == 0:
                    pongs.append(await client.ws.ping())
        answered = sum(1 for p in pongs if p.done())  # before the end event arrived
        await client.ws.close()
        return len(pongs), answered, client.ws.close_code == 1000

    try:
        sent, answered, clean = run(scenario())
    finally:
        server.stop()
    assert sent >= 7
    assert answered >= sent - 1, f"only {answered} of {sent} pings were answered during the answer"
    assert clean, "the server's own pings (every 0.2 s) were answered too: no ping timeout"


def test_invalid_utf8_in_a_text_frame_drops_that_connection_only(server: ServerThread, run: Any) -> None:
    """Tornado aborts the TCP connection (the client sees 1006); the session and the others go on."""

    async def scenario() -> tuple[int | None, dict[str, Any]]:
        calm = await open_client(server, session="shared", dialect="envelope")
        bad = await open_client(server, session="shared", dialect="envelope")
        await calm.recv()
        await bad.recv()
        await bad.ws.send(b"\xff\xfe not utf-8", text=True)
        await asyncio.wait_for(bad.ws.wait_closed(), TIMEOUT)
        await calm.send("/echo still streaming")
        seen = await calm.recv_until(is_turn_end)
        await calm.ws.close()
        return bad.ws.close_code, event(seen[-1])

    code, end = run(scenario())
    assert code == 1006
    assert end["type"] == "end" and end["text"] == "still streaming"


def test_a_client_killed_mid_turn_leaves_the_answer_whole_and_saved(tmp_path: Any, run: Any) -> None:
    """The only client goes away mid-answer: the turn still completes and is stored."""
    from llmsock_widget.stores import JsonFileStore

    store = JsonFileStore(tmp_path, fsync=False)
    server = ServerThread(model=BuiltinModel(tokens_per_second=None), store=store).start()

    async def scenario() -> None:
        client = await open_client(server, session="orphan", dialect="envelope")
        await client.recv()
        await client.send("/slow 200 /long 200")
        await client.recv_until(lambda m: event(m).get("type") == "delta")
        client.ws.transport.abort()

    try:
        run(scenario())
        deadline = time.monotonic() + TIMEOUT
        while True:
            state = store.load_sync("orphan")
            if state is not None and state.phase == "idle" and state.messages:
                break
            assert time.monotonic() < deadline, "the turn was not saved"
            time.sleep(0.05)  # polling the file, bounded by the deadline
    finally:
        server.stop()
    answer = state.messages[-1]
    assert answer.role == "assistant" and answer.status == "complete"
    assert len(answer.text.split()) >= 150
