"""Reconnect and resume: a client that lost its socket gets exactly the events it missed."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import CLOSE_SESSION_REFUSED, ServerThread
from tests.conftest import TIMEOUT

from .conftest import Client, MakeServer, assert_no_event_lost, auth, is_model, is_turn_end, open_client


async def reconnect(server: ServerThread, session: str, resume: str, dialect: str | None = None) -> Client:
    ws = await connect(
        f"{server.url}?session={session}&resume={resume}",
        additional_headers=auth(server),
        subprotocols=[f"llmsock.{dialect}.v1"] if dialect else None,  # type: ignore[list-item]
        open_timeout=TIMEOUT,
    )
    return Client(ws)


def seq_of(message: dict) -> int | None:
    return message.get("data", {}).get("meta", {}).get("sequence")


def test_dropped_socket_resumes_without_gap_or_duplicate(server: ServerThread, run) -> None:
    """Drop the socket mid-answer, reconnect with resume=<epoch>:<last seq>: the missed events follow."""

    async def scenario() -> tuple[list[dict], dict, str, int]:
        first = await open_client(server, session="flaky")
        ready = (await first.recv())["data"]["event"]
        await first.send("/slow 400 /long 400")
        seen: list[dict] = []
        while sum(1 for m in seen if m["data"]["event"].get("type") == "delta") < 50:
            seen.append(await first.recv())
        first.ws.transport.abort()  # the network goes away, no close handshake
        last = max(s for s in map(seq_of, seen) if s is not None)
        second = await reconnect(server, "flaky", f"{ready['epoch']}:{last}")
        again = (await second.recv())["data"]["event"]
        rest = await second.recv_until(is_turn_end)
        await second.ws.close()
        return seen + rest, again, ready["epoch"], last

    events, again, epoch, last = run(scenario())
    assert again["resumed"] is True and again["epoch"] == epoch
    assert again["replayed"] == again["sequence"] - last  # exactly what was missed
    # No gap (but before a delta: deltas that waited together leave as one) and no duplicate.
    assert_no_event_lost(
        [(seq, e["data"]["event"].get("type")) for e in events if (seq := seq_of(e)) is not None]
    )
    text = "".join(e["data"]["event"]["text"] for e in events if e["data"]["event"].get("type") == "delta")
    assert text == events[-1]["data"]["event"]["text"]


def test_other_epoch_is_not_resumed(server: ServerThread, run) -> None:
    """A resume from another run of the server is refused (resumed: false): the client must reload."""

    async def scenario() -> dict:
        client = await reconnect(server, "elsewhere", "e-from-another-run:12")
        ready = (await client.recv())["data"]["event"]
        await client.ws.close()
        return ready

    ready = run(scenario())
    assert ready["resumed"] is False and ready["replayed"] == 0


def test_gap_beyond_the_replay_buffer_asks_for_reload(server: ServerThread, run) -> None:
    """When the missed events are no longer kept, the ready says resumed: false."""

    async def scenario() -> dict:
        client = await open_client(server, session="long-gone")
        epoch = (await client.recv())["data"]["event"]["epoch"]
        await client.send("/long 5000")
        await client.recv_until(is_turn_end)
        await client.ws.close()
        late = await reconnect(server, "long-gone", f"{epoch}:1")
        ready = (await late.recv())["data"]["event"]
        await late.ws.close()
        return ready

    ready = run(scenario())
    assert ready["resumed"] is False


@pytest.mark.parametrize("value", ["nocolon", "e-x:abc", ":5", "e-x:-1"])
def test_malformed_resume_closes_with_4400(server: ServerThread, run, value: str) -> None:
    """A malformed resume value is refused with close code 4400."""

    async def scenario() -> int | None:
        client = await reconnect(server, "any", value)
        await client.ws.wait_closed()
        return client.ws.close_code

    assert run(scenario()) == CLOSE_SESSION_REFUSED


def test_ready_without_resume_has_no_resumed_field(server: ServerThread, run) -> None:
    """A plain connect announces the epoch but no resumed/replayed fields."""

    async def scenario() -> dict:
        client = await open_client(server)
        ready = (await client.recv())["data"]["event"]
        await client.ws.close()
        return ready

    ready = run(scenario())
    assert ready["epoch"].startswith("e-") and "resumed" not in ready
    assert json.dumps(ready)


def test_resume_after_the_session_left_memory(server: ServerThread, run) -> None:
    """A client that drops as the turn ends, and comes back once the session was evicted, still resumes."""

    async def scenario() -> tuple[dict, list[dict]]:
        client = await open_client(server, session="parked")
        epoch = (await client.recv())["data"]["event"]["epoch"]
        await client.send("/long 50")
        events = await client.recv_until(is_turn_end)
        cut = next(m for m in events if is_model("start")(m))  # mid-turn: its deltas come after
        await client.recv_until(lambda m: m.get("name") == "interaction.status")  # idle: the turn is over
        await client.ws.close()

        async def evicted() -> None:
            while "parked" in server.hub.sessions:
                await asyncio.sleep(0.005)

        await asyncio.wait_for(asyncio.wrap_future(server.submit(evicted())), TIMEOUT)
        back = await reconnect(server, "parked", f"{epoch}:{seq_of(cut)}")
        ready = (await back.recv())["data"]["event"]
        # The replay is over at the event with ready's sequence (its deltas may come merged).
        replayed = await back.recv_until(lambda m: seq_of(m) == ready["sequence"])
        await back.ws.close()
        return ready, replayed

    ready, replayed = run(scenario())
    assert ready["resumed"] is True and ready["replayed"] > 0
    assert replayed[-1]["name"] == "interaction.status"


@pytest.mark.parametrize("value", ["e-x:\u00b2", "e-x:\u0663"])
def test_non_ascii_digits_in_resume_close_with_4400(server: ServerThread, run, value: str) -> None:
    """Digits of other scripts are not a sequence: a clean 4400, not a dropped connection."""

    async def scenario() -> int | None:
        client = await reconnect(server, "any", value)
        await client.ws.wait_closed()
        return client.ws.close_code

    assert run(scenario()) == CLOSE_SESSION_REFUSED


def test_resume_from_a_sequence_the_session_never_reached_is_refused(server: ServerThread, run) -> None:
    """A resume ahead of the session (another timeline) gets resumed: false, so the client reloads."""

    async def scenario() -> dict:
        client = await open_client(server, session="ahead")
        epoch = (await client.recv())["data"]["event"]["epoch"]
        await client.ws.close()
        back = await reconnect(server, "ahead", f"{epoch}:999")
        ready = (await back.recv())["data"]["event"]
        await back.ws.close()
        return ready

    assert run(scenario())["resumed"] is False


def test_replay_larger_than_the_outbox_asks_for_reload(run, make_server: MakeServer) -> None:
    """A replay that would overflow the connection's outbound queue is refused: reload, no 4008 loop."""
    server = make_server(model=BuiltinModel(tokens_per_second=None), outbound_limit=64 * 1024)

    async def scenario() -> dict:
        client = await open_client(server, session="big")
        epoch = (await client.recv())["data"]["event"]["epoch"]
        await client.send("/echo " + "word " * 4000)
        await client.recv_until(is_turn_end)
        await client.ws.close()
        back = await reconnect(server, "big", f"{epoch}:0")
        ready = (await back.recv())["data"]["event"]
        await back.ws.close()
        return ready

    ready = run(scenario())
    assert ready["resumed"] is False


def test_get_status_reports_the_connection_and_server_counters(server: ServerThread, run) -> None:
    """After a resume, get_status says how this connection came back and what the server counted."""

    async def scenario() -> tuple[dict, dict, int]:
        first = await open_client(server, session="counted")
        epoch = (await first.recv())["data"]["event"]["epoch"]
        await first.send("/long 20")
        seen = await first.recv_until(is_turn_end)
        await first.ws.close()
        last = max(s for s in map(seq_of, seen) if s is not None)
        second = await reconnect(server, "counted", f"{epoch}:{last - 5}", dialect="envelope")
        ready = (await second.recv())["data"]["event"]
        # The replay ends at ready's sequence; its deltas may come merged into fewer frames.
        frames = len(await second.recv_until(lambda m: seq_of(m) == ready["sequence"]))
        await second.send(json.dumps({"type": "control", "id": "s1", "data": {"type": "get_status"}}))
        reply = await second.recv_until(lambda m: m["data"]["event"].get("action") == "get_status")
        await second.ws.close()
        return ready, reply[-1]["data"]["event"]["data"], frames

    ready, status, frames = run(scenario())
    connection = status["connection"]
    assert connection["transport"] == "websocket"
    assert ready["resumed"] is True and ready["replayed"] >= 5  # the turn's last 5 events, then idle
    assert connection["resumed"] is True and connection["replayed"] == ready["replayed"]
    assert frames <= ready["replayed"]
    assert connection["messagesIn"] == 1 and connection["messagesOut"] == 1 + frames
    assert connection["bytesIn"] > 0 and connection["bytesOut"] > 0
    srv = status["server"]
    assert srv["resumed"] >= 1 and srv["replayedEvents"] >= 5 and srv["transports"] == {"websocket": 1}
    assert server.token not in json.dumps(status)


def test_an_answer_and_a_history_larger_than_the_outbound_limit_reach_a_client_that_reads(
    run, make_server: MakeServer
) -> None:
    """One frame larger than ``outbound_limit`` (the end of a long answer, a history) is no backlog.

    The limit drops clients that stop reading; a client that reads gets a frame of any size its
    session holds.  (Dropped, it would reconnect, ask for the history and be dropped again.)
    """
    server = make_server(model=BuiltinModel(tokens_per_second=None), outbound_limit=64 * 1024)

    async def scenario() -> tuple[str, str]:
        first = await open_client(server, session="huge", dialect="envelope")
        await first.recv()
        await first.send("/shape unbroken 2000")  # 182,000 characters
        seen = await first.recv_until(is_turn_end)
        await first.ws.close()
        second = await open_client(server, session="huge", dialect="envelope")
        await second.recv()
        await second.send(json.dumps({"type": "control", "id": "h1", "data": {"type": "get_history"}}))
        reply = await second.recv_until(lambda m: m["data"]["event"].get("action") == "get_history")
        await second.ws.close()
        end = seen[-1]["data"]["event"]
        messages = reply[-1]["data"]["event"]["data"]["messages"]
        return end["type"], messages[-1]["content"] if "content" in messages[-1] else messages[-1]["text"]

    end, history = run(scenario())
    assert end == "end"
    assert len(history) == 2000 * 91 - 1
    assert server.stats.slow_consumers_dropped == 0
