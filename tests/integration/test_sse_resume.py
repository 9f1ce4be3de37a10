"""``/sse`` resume: ``id: <epoch>:<sequence>`` on every session event, ``Last-Event-ID`` on reconnect.

A real streaming HTTP client (httpx) on loopback follows a session over GET /sse, drops the
connection in the middle of a reply, reconnects with the ``Last-Event-ID`` an ``EventSource``
would send, and must see every event exactly once (docs/protocol.md, sections 1.2 and 4.1).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread
from tests.conftest import TIMEOUT

from .conftest import MakeServer, auth, is_model, is_turn_end, open_client


@dataclass
class Block:
    """One SSE message: its ``event:``, ``id:`` (None if it has none) and parsed ``data:``."""

    event: str
    id: str | None
    data: dict[str, Any]

    @property
    def body(self) -> dict[str, Any]:
        return self.data["event"]

    @property
    def sequence(self) -> int | None:
        return self.data["meta"].get("sequence")


class Follower:
    """A GET /sse response read block by block."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self) -> Block:
        fields: dict[str, str] = {}
        async for line in self._lines:
            if line == "":
                if fields:
                    return Block(fields["event"], fields.get("id"), json.loads(fields["data"]))
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        raise AssertionError("the stream ended")

    async def until(self, predicate: Any) -> list[Block]:
        """Read blocks until one matches ``predicate``; return them all, in order."""
        out = []
        while True:
            out.append(await self.next())
            if predicate(out[-1]):
                return out


@asynccontextmanager
async def follow(
    server: ServerThread, query: str, last_event_id: str | None = None
) -> AsyncIterator[Follower]:
    """GET /sse?<query> (with ``Last-Event-ID`` if given); leaving the block drops the connection."""
    headers = auth(server) | ({"Last-Event-ID": last_event_id} if last_event_id else {})
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        async with client.stream("GET", f"http://127.0.0.1:{server.port}/sse?{query}", headers=headers) as r:
            assert r.status_code == 200, await r.aread()
            assert r.headers["content-type"] == "text/event-stream"
            yield Follower(r)


def is_end(block: Block) -> bool:
    return block.event == "interaction.model" and block.body["type"] in ("end", "error")


def is_delta(block: Block) -> bool:
    return block.event == "interaction.model" and block.body["type"] == "delta"


def test_a_dropped_eventsource_resumes_with_last_event_id(make_server: MakeServer, run) -> None:
    """Dropped mid-reply, the reconnect gets exactly the events it missed: no gap, no duplicate."""
    server = make_server(model=BuiltinModel(tokens_per_second=150))

    async def scenario() -> tuple[list[Block], list[Block], int]:
        driver = await open_client(server, session="resumed")
        await driver.recv()  # its ready
        async with follow(server, "session=resumed") as first:
            ready = await first.next()
            await driver.send("/long 120")
            before = await first.until(lambda b: is_delta(b) and b.sequence is not None and b.sequence >= 8)
        # Dropped.  The reply goes on: wait until the driver has seen events the follower missed.
        last = int(before[-1].id.rpartition(":")[2])  # type: ignore[union-attr]
        seen = await driver.recv_until(lambda m: m["data"]["meta"].get("sequence", 0) >= last + 10)
        assert seen
        async with follow(server, "session=resumed", last_event_id=before[-1].id) as second:
            after = await second.until(is_end)
        await driver.recv_until(is_turn_end)  # read to the end, so its close handshake is not stuck behind
        await driver.ws.close()
        return [ready, *before], after, last

    before, after, last = run(scenario())
    epoch = before[0].body["epoch"]
    assert before[0].id == f"{epoch}:{before[0].body['sequence']}"
    again = after[0]
    assert again.event == "interaction.session" and again.body["resumed"] is True
    assert again.id == f"{epoch}:{last}", "the ready names the position the stream goes on from"
    replayed = [b.sequence for b in after[1:]]
    assert again.body["replayed"] >= 10 and replayed[: again.body["replayed"]] == list(
        range(last + 1, last + 1 + again.body["replayed"])
    )
    sequences = [b.sequence for b in before[1:] + after[1:]]
    assert sequences == list(range(sequences[0], sequences[-1] + 1)), "each event once, in order"
    for block in before[1:] + after[1:]:
        assert block.id == f"{epoch}:{block.sequence}"
    text = "".join(b.body.get("text", "") for b in before + after if is_delta(b))
    assert after[-1].body["type"] == "end" and text == after[-1].body["text"]
    assert server.status()["resumed"] == 1


def test_last_event_id_of_another_run_or_an_unreached_position_means_reload(
    server: ServerThread, run
) -> None:
    """A stale epoch or a sequence the session never reached: ``resumed: false``, nothing replayed."""

    async def scenario() -> list[Block]:
        async with follow(server, "session=reload") as stream:
            ready = await stream.next()
        epoch, seq = ready.body["epoch"], ready.body["sequence"]
        out = []
        for stale in (f"e-another-run:{seq}", f"{epoch}:{seq + 5}"):
            async with follow(server, "session=reload", last_event_id=stale) as stream:
                out.append(await stream.next())
        return out

    for ready in run(scenario()):
        assert ready.event == "interaction.session"
        assert ready.body["resumed"] is False and ready.body["replayed"] == 0
        assert ready.id == f"{ready.body['epoch']}:{ready.body['sequence']}", (
            "go on from here, after a reload"
        )
    assert server.status()["reloaded"] == 2


def test_after_a_restart_or_too_long_away_the_client_is_told_to_reload(make_server: MakeServer, run) -> None:
    """An id of the previous server run, or one whose events are no longer kept: ``resumed: false``."""
    builtin = {"model": BuiltinModel(tokens_per_second=None)}
    before = make_server(**builtin)
    old_epoch = before.hub.epoch
    before.stop()
    server = make_server(**builtin)

    async def scenario() -> list[Block]:
        url = f"http://127.0.0.1:{server.port}/sse?session=away"
        async with httpx.AsyncClient(timeout=TIMEOUT * 3) as client:  # more events than a session keeps
            response = await client.post(url, headers=auth(server), content="/long 4200")
            assert response.status_code == 200
        out = []
        for last in (f"{old_epoch}:1", f"{server.hub.epoch}:1"):
            async with follow(server, "session=away", last_event_id=last) as stream:
                out.append(await stream.next())
        return out

    restarted, too_old = run(scenario())
    for ready in (restarted, too_old):
        assert ready.body["resumed"] is False and ready.body["replayed"] == 0
        assert ready.id == f"{server.hub.epoch}:{ready.body['sequence']}"
    assert too_old.body["sequence"] > 4096


def test_a_malformed_last_event_id_is_refused(server: ServerThread, run) -> None:
    """A ``Last-Event-ID`` that is not ``<epoch>:<sequence>`` is a 400, as a bad ``resume`` is on /ws."""

    async def scenario() -> httpx.Response:
        headers = auth(server) | {"Last-Event-ID": "12"}
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            return await client.get(f"http://127.0.0.1:{server.port}/sse?session=bad", headers=headers)

    response = run(scenario())
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_message",
        "message": "resume must be <epoch>:<sequence>",
    }


def test_replies_carry_no_id(server: ServerThread, run) -> None:
    """A POST's control reply is no session event: it has no ``id:``, so it moves no client's position."""

    async def scenario() -> list[Block]:
        body = json.dumps({"type": "control", "id": "s1", "data": {"type": "get_status"}})
        url = f"http://127.0.0.1:{server.port}/sse?session=replies"
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            async with client.stream("POST", url, headers=auth(server), content=body) as response:
                return await Follower(response).until(lambda b: b.event == "interaction.control")

    blocks = run(scenario())
    assert [b.event for b in blocks] == ["interaction.session", "interaction.control"]
    assert blocks[0].id is not None and blocks[-1].id is None


def test_sse_follower_sees_ids_on_a_live_turn(server: ServerThread, run) -> None:
    """Every session event of a live turn has ``id: <epoch>:<sequence>``; the ready has one too."""

    async def scenario() -> list[Block]:
        async with follow(server, "session=live") as stream:
            ready = await stream.next()
            driver = await open_client(server, session="live")
            await driver.recv()
            await driver.send("/echo one two three")
            blocks = await stream.until(is_end)
            await driver.recv_until(is_model("end"))
            await driver.ws.close()
            return [ready, *blocks]

    blocks = run(scenario())
    epoch = blocks[0].body["epoch"]
    assert all(b.id == f"{epoch}:{b.sequence}" for b in blocks[1:])
    assert [b.sequence for b in blocks[1:]] == list(range(1, len(blocks)))
