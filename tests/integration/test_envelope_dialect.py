"""The llm-core envelope dialect (seeds 000-002) over a real WebSocket."""

from __future__ import annotations

import json

from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread

from .conftest import MakeServer, assert_no_event_lost, is_model, is_turn_end, open_client


def test_plain_text_prompt_streams_envelopes(make_server: MakeServer, run) -> None:
    """A seed-000 client sends plain text and gets start, deltas, usage and end envelopes.

    The model is paced, so the answer streams in pieces to a client that keeps up.
    """
    server = make_server(model=BuiltinModel(tokens_per_second=200))

    async def scenario() -> list[dict]:
        client = await open_client(server)
        ready = await client.recv()
        await client.send("Hello, who are you?")
        events = await client.recv_until(is_turn_end)
        await client.ws.close()
        return [ready, *events]

    events = run(scenario())
    ready = events[0]
    assert ready["name"] == "interaction.session"
    assert ready["data"]["event"]["type"] == "ready" and ready["data"]["event"]["created"] is True
    session_id = ready["data"]["event"]["sessionId"]
    model = [e["data"]["event"] for e in events if e["name"] == "interaction.model"]
    kinds = [m["type"] for m in model]
    assert kinds[0] == "start" and kinds[-1] == "end" and "usage" in kinds
    deltas = [m["text"] for m in model if m["type"] == "delta"]
    assert len(deltas) > 1
    assert "".join(deltas) == model[-1]["text"]
    assert "Hello, who are you?" in model[-1]["text"]
    assert_no_event_lost([(e["data"]["meta"]["sequence"], e["data"]["event"]["type"]) for e in events[1:]])
    assert all(e["data"]["meta"]["sessionId"] == session_id for e in events[1:])
    echo = next(e for e in events if e["name"] == "interaction.user")
    assert echo["data"]["event"]["text"] == "Hello, who are you?"


def test_model_sees_earlier_turns(server: ServerThread, run) -> None:
    """The second answer on a session shows the model saw the first prompt."""

    async def scenario() -> str:
        client = await open_client(server)
        await client.recv()
        await client.send("my favourite colour is teal")
        await client.recv_until(is_turn_end)
        await client.send("what did I say?")
        events = await client.recv_until(is_turn_end)
        await client.ws.close()
        return events[-1]["data"]["event"]["text"]

    text = run(scenario())
    assert "my favourite colour is teal" in text
    assert "what did I say?" in text


def test_two_connections_on_one_session_see_the_same_events(server: ServerThread, run) -> None:
    """Every connection on a session receives the same events, the user echo included."""

    async def scenario() -> tuple[list[dict], list[dict]]:
        first = await open_client(server, session="shared-1")
        second = await open_client(server, session="shared-1")
        await first.recv()
        await second.recv()
        await first.send("hello from the first tab")
        a = await first.recv_until(is_turn_end)
        b = await second.recv_until(is_turn_end)
        await first.ws.close()
        await second.ws.close()
        return a, b

    a, b = run(scenario())
    assert a == b
    assert a[0]["name"] == "interaction.user"
    assert a[0]["data"]["event"]["text"] == "hello from the first tab"


def test_sequence_survives_store_round_trip(server: ServerThread, run) -> None:
    """A session reloaded from the store goes on numbering events where it stopped."""

    async def scenario() -> tuple[int, dict]:
        client = await open_client(server, session="seq-keep")
        await client.recv()
        await client.send("first")
        events = await client.recv_until(
            lambda m: m["name"] == "interaction.status" and m["data"]["event"]["status"] == "idle"
        )
        await client.ws.close()
        last = events[-1]["data"]["meta"]["sequence"]
        again = await open_client(server, session="seq-keep")
        ready = await again.recv()
        await again.send("second")
        echo = await again.recv()
        await again.recv_until(is_turn_end)
        await again.ws.close()
        return last, {"ready": ready, "echo": echo}

    last, seen = run(scenario())
    assert seen["ready"]["data"]["event"]["sequence"] == last
    assert seen["ready"]["data"]["event"]["created"] is False
    assert seen["echo"]["data"]["meta"]["sequence"] == last + 1
    assert server.store.load("seq-keep").seq >= last + 1  # type: ignore[union-attr]


def test_envelope_client_can_send_typed_commands(server: ServerThread, run) -> None:
    """An envelope client aborts and reads history with seed-004 control messages."""

    async def scenario() -> tuple[list[dict], dict, dict]:
        client = await open_client(server)
        await client.recv()
        await client.send("/hold 3")
        streamed = await client.recv_until(is_model("delta"))
        await client.send({"type": "control", "id": "c1", "data": {"type": "abort"}})
        rest = await client.recv_until(is_turn_end)
        control = next(m for m in client.seen if m["name"] == "interaction.control")
        await client.send({"type": "control", "id": "c2", "data": {"type": "get_history"}})
        history = await client.recv_until(
            lambda m: m["name"] == "interaction.control" and m["data"]["event"].get("requestId") == "c2"
        )
        await client.ws.close()
        return streamed + rest, control, history[-1]

    events, control, history = run(scenario())
    end = events[-1]["data"]["event"]
    assert end["type"] == "end" and end["finishReason"] == "aborted"
    assert end["text"]  # the partial answer is kept
    assert control["data"]["event"]["ok"] is True
    messages = history["data"]["event"]["data"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["status"] == "aborted" and messages[1]["text"] == end["text"]


def test_model_error_mid_stream_is_an_error_event(server: ServerThread, run) -> None:
    """A model failure ends the turn with a coded error event; the session goes on."""

    async def scenario() -> tuple[list[dict], list[dict]]:
        client = await open_client(server)
        await client.recv()
        await client.send("/error 3")
        failed = await client.recv_until(is_turn_end)
        await client.send("are you still there?")
        after = await client.recv_until(is_turn_end)
        await client.ws.close()
        return failed, after

    failed, after = run(scenario())
    error = failed[-1]["data"]["event"]
    assert error["type"] == "error" and error["code"] == "model_error" and error["message"]
    assert error["text"] == "".join(m["data"]["event"]["text"] for m in failed if is_model("delta")(m))
    assert after[-1]["data"]["event"]["type"] == "end"


def test_two_prompts_at_once_run_in_order(server: ServerThread, run) -> None:
    """Prompts sent back to back are queued and answered one after the other, never interleaved."""

    def is_queued(m: dict) -> bool:
        return m["name"] == "interaction.diagnostic" and m["data"]["event"]["code"] == "queued"

    async def scenario() -> list[dict]:
        client = await open_client(server)
        await client.recv()
        # The first answer holds until it is stopped, so the second prompt surely arrives while
        # it runs, whatever the machine's load.
        await client.send("/hold 3")
        await client.send("second prompt")
        events = await client.recv_until(is_queued)
        await client.send({"type": "control", "id": "c1", "data": {"type": "abort"}})
        ends = sum(map(is_turn_end, events))
        while ends < 2:
            m = await client.recv()
            events.append(m)
            ends += is_turn_end(m)
        await client.ws.close()
        return events

    events = run(scenario())
    seqs = [e["data"]["meta"]["sequence"] for e in events if "sequence" in e["data"].get("meta", {})]
    assert seqs == sorted(set(seqs))  # strictly increasing: no duplicates
    turns = [e["data"]["meta"]["turnId"] for e in events if e["name"] == "interaction.model"]
    first, second = turns[0], turns[-1]
    assert first != second
    switch = turns.index(second)
    assert all(t == first for t in turns[:switch]) and all(t == second for t in turns[switch:])
    texts = [e["data"]["event"]["text"] for e in events if is_model("end")(e)]
    assert "second prompt" in texts[1]
    assert any(map(is_queued, events))


def test_frames_are_compact_json_with_meta(server: ServerThread, run) -> None:
    """Envelope frames are JSON objects with name, data.kind, data.event and data.meta."""

    async def scenario() -> str:
        client = await open_client(server)
        await client.recv()
        await client.send("hi")
        raw = await client.ws.recv()
        await client.recv_until(is_turn_end)  # a client that leaves mid-stream waits for its close timeout
        await client.ws.close()
        return raw if isinstance(raw, str) else raw.decode()

    raw = run(scenario())
    message = json.loads(raw)
    assert set(message) == {"name", "data"}
    assert set(message["data"]) == {"kind", "event", "meta"}
