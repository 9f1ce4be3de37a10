"""The seed-004 JSON protocol over a real WebSocket: every client and server message type."""

from __future__ import annotations

from typing import Any

import pytest

from llmsock_widget.server.thread import ServerThread

from .conftest import Client, open_client


def of_type(kind: str, **data: Any) -> Any:
    """Return a predicate for a seed-004 message of ``kind`` whose data has these values."""
    return lambda m: m.get("type") == kind and all(m["data"].get(k) == v for k, v in data.items())


async def control(client: Client, action: str, request_id: str) -> dict:
    """Send a control message and return its control_response."""
    await client.send({"type": "control", "id": request_id, "data": {"type": action}})
    replies = await client.recv_until(lambda m: m.get("type") == "control_response" and m["id"] == request_id)
    return replies[-1]


def test_first_frame_picks_typed_and_chunks_build_full_text(server: ServerThread, run) -> None:
    """A user_message as first frame switches to seed 004; llm_complete.fullText is the chunks joined."""

    async def scenario() -> tuple[list[dict], list[dict]]:
        client = await open_client(server)
        hello = await client.recv()  # envelope hello before the dialect is known
        await client.send({"type": "user_message", "id": "msg_1", "data": {"text": "What time is it?"}})
        events = await client.recv_until(lambda m: m.get("type") == "llm_complete")
        await client.ws.close()
        return [hello], events

    (hello,), events = run(scenario())
    assert hello["name"] == "interaction.session"
    assert events[0]["type"] == "status" and events[0]["data"]["status"] == "connected"
    types = [m["type"] for m in events]
    assert "user_message" in types and "llm_chunk" in types
    chunks = [m for m in events if m["type"] == "llm_chunk"]
    assert all(m["id"] == "msg_1" and m["data"]["isComplete"] is False for m in chunks)
    complete = events[-1]
    assert complete["id"] == "msg_1"
    assert complete["data"]["fullText"] == "".join(m["data"]["chunk"] for m in chunks)
    assert complete["data"]["finishReason"] == "stop" and complete["data"]["aborted"] is False
    # One chunk per token, or fewer when chunks that waited together were merged (protocol 5.1).
    assert 1 <= len(chunks) <= complete["data"]["usage"]["outputTokens"]
    assert {"sessionId", "sequence", "timestamp"} <= set(complete["metadata"])


def test_every_control_action(server: ServerThread, run) -> None:
    """get_status, get_history, clear_history, pause, resume and abort each answer a control_response."""

    async def scenario() -> dict[str, Any]:
        client = await open_client(server, dialect="typed")
        ready = await client.recv()
        out: dict[str, Any] = {"ready": ready}
        await client.send({"type": "user_message", "id": "u1", "data": {"text": "remember this"}})
        await client.recv_until(of_type("llm_complete"))
        out["status"] = await control(client, "get_status", "c1")
        out["history"] = await control(client, "get_history", "c2")
        out["clear"] = await control(client, "clear_history", "c3")
        out["history_after"] = await control(client, "get_history", "c4")
        out["pause_idle"] = await control(client, "pause", "c5")
        out["abort_idle"] = await control(client, "abort", "c6")
        out["resume_idle"] = await control(client, "resume", "c7")
        await client.send({"type": "ping", "id": "p1", "data": {"timestamp": 5, "nonce": "n-1"}})
        out["pong"] = (await client.recv_until(of_type("pong")))[-1]
        await client.ws.close()
        return out

    out = run(scenario())
    assert out["ready"]["type"] == "status" and out["ready"]["data"]["status"] == "connected"
    status = out["status"]["data"]
    # As seed 004's server: ``status`` names the kind of reply; the session's status is sessionStatus.
    assert status["success"] is True and status["type"] == "get_status" and status["status"] == "status_info"
    assert status["sessionStatus"] == "idle"
    assert status["messages"] == 2 and status["connections"] == 1
    assert status["messageCount"] == 2 and status["lastActivity"] >= status["connectedAt"] > 0
    history = out["history"]["data"]
    assert history["status"] == "history" and history["sessionStatus"] == "idle"
    messages = history["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["text"] == "remember this"
    # The plain copy seed 004's page shows is for seed 004's clients (test_aibase_session.py) only.
    assert "history" not in history
    assert out["clear"]["data"]["success"] is True and out["clear"]["data"]["status"] == "cleared"
    assert out["history_after"]["data"]["messages"] == []
    kinds = {"pause_idle": "paused", "abort_idle": "aborted", "resume_idle": "resumed"}
    for key, kind in kinds.items():
        assert out[key]["data"]["success"] is False and out[key]["data"]["message"]
        assert out[key]["data"]["status"] == kind
    assert out["pong"]["id"] == "p1" and out["pong"]["data"]["timestamp"] > 5
    assert out["pong"]["data"]["nonce"] == "n-1"  # the ping's data comes back


def test_pause_holds_and_resume_continues_without_loss(server: ServerThread, run) -> None:
    """While paused no chunk arrives; after resume the full text equals the chunks, nothing lost."""

    async def scenario() -> dict[str, Any]:
        client = await open_client(server, dialect="typed")
        await client.recv()
        await client.send({"type": "user_message", "id": "u1", "data": {"text": "/slow 200 /long 200"}})
        await client.recv_until(of_type("llm_chunk"))
        paused = await control(client, "pause", "c1")
        # Everything the server sent before it paused arrives before this pong; after it, nothing may.
        await client.send({"type": "ping", "id": "p1"})
        before = await client.recv_until(of_type("pong"))
        status = await control(client, "get_status", "c2")
        await client.send({"type": "ping", "id": "p2"})
        during = await client.recv_until(of_type("pong"))
        resumed = await control(client, "resume", "c3")
        after = await client.recv_until(of_type("llm_complete"))
        await client.ws.close()
        return {
            "paused": paused,
            "before": before,
            "status": status,
            "during": during,
            "resumed": resumed,
            "after": after,
            "all": client.seen,
        }

    out = run(scenario())
    assert out["paused"]["data"]["success"] is True
    assert out["status"]["data"]["sessionStatus"] == "paused"
    assert not [m for m in out["during"] if m["type"] == "llm_chunk"]
    assert out["resumed"]["data"]["success"] is True
    chunks = [m["data"]["chunk"] for m in out["all"] if m["type"] == "llm_chunk"]
    assert len(chunks) > 1 and out["after"][-1]["data"]["usage"]["outputTokens"] == 200
    assert out["after"][-1]["data"]["fullText"] == "".join(chunks)
    statuses = [m["data"]["status"] for m in out["all"] if m["type"] == "status"]
    assert "paused" in statuses and statuses.index("paused") < len(statuses) - 1


def test_abort_ends_promptly_and_keeps_partial_text(server: ServerThread, run) -> None:
    """Abort during a held answer gives llm_complete marked aborted; history keeps the partial text."""

    async def scenario() -> dict[str, Any]:
        client = await open_client(server, dialect="typed")
        await client.recv()
        await client.send({"type": "user_message", "id": "u1", "data": {"text": "/hold 4"}})
        # The turn's events: the prompt (sequence n), status, start (no frame here), then the
        # four deltas, n + 3 to n + 6, maybe merged into fewer chunks (protocol 5.1).
        n = (await client.recv_until(of_type("user_message")))[-1]["metadata"]["sequence"]
        chunks, last = [], n
        while last < n + 6:
            m = await client.recv()
            if m["type"] == "llm_chunk":
                chunks.append(m["data"]["chunk"])
                last = m["metadata"]["sequence"]
        aborted = await control(client, "abort", "c1")
        complete = (await client.recv_until(of_type("llm_complete")))[-1]
        history = await control(client, "get_history", "c2")
        await client.ws.close()
        return {"chunks": chunks, "aborted": aborted, "complete": complete, "history": history}

    out = run(scenario())
    assert out["aborted"]["data"]["success"] is True
    complete = out["complete"]["data"]
    assert complete["aborted"] is True and complete["finishReason"] == "aborted"
    assert complete["fullText"] == "".join(out["chunks"])
    last = out["history"]["data"]["messages"][-1]
    assert last["status"] == "aborted" and last["text"] == complete["fullText"]


def test_clear_history_while_streaming_is_refused(server: ServerThread, run) -> None:
    """clear_history during a turn is an error reply; the turn and its history are untouched."""

    async def scenario() -> tuple[dict, dict]:
        client = await open_client(server, dialect="typed")
        await client.recv()
        await client.send({"type": "user_message", "id": "u1", "data": {"text": "/hold 2"}})
        await client.recv_until(of_type("llm_chunk"))
        await client.send({"type": "control", "id": "c1", "data": {"type": "clear_history"}})
        refused = (await client.recv_until(lambda m: m["type"] == "error" and m["id"] == "c1"))[-1]
        await control(client, "abort", "c2")
        history = await control(client, "get_history", "c3")
        await client.ws.close()
        return refused, history

    refused, history = run(scenario())
    assert refused["data"]["llmsockCode"] == "invalid_request" and refused["data"]["recoverable"] is True
    assert refused["data"]["code"] == "CONTROL_ERROR"  # seed 004's, docs/protocol.md section 10.2
    assert len(history["data"]["messages"]) == 2


def test_model_error_and_options(server: ServerThread, run) -> None:
    """maxTokens caps the reply (finishReason length); a model failure is an error message with a code."""

    async def scenario() -> tuple[dict, dict]:
        client = await open_client(server, dialect="typed")
        await client.recv()
        await client.send(
            {
                "type": "user_message",
                "id": "u1",
                "data": {"text": "tell me a long story", "options": {"maxTokens": 7}},
            }
        )
        capped = (await client.recv_until(of_type("llm_complete")))[-1]
        await client.send({"type": "user_message", "id": "u2", "data": {"text": "/error 2"}})
        failed = (await client.recv_until(lambda m: m["type"] == "error" and m["id"] == "u2"))[-1]
        await client.ws.close()
        return capped, failed

    capped, failed = run(scenario())
    assert capped["data"]["finishReason"] == "length"
    assert capped["data"]["usage"]["outputTokens"] == 7
    assert failed["data"]["code"] == "model_error" and "failed on purpose" in failed["data"]["message"]
    assert failed["data"]["fullText"]


def test_typed_and_envelope_clients_share_a_session(server: ServerThread, run) -> None:
    """One session, two dialects: each connection gets the same turn in its own dialect."""

    async def scenario() -> tuple[list[dict], list[dict]]:
        a = await open_client(server, session="mixed", dialect="typed")
        b = await open_client(server, session="mixed", dialect="envelope")
        await a.recv()
        await b.recv()
        await a.send({"type": "user_message", "id": "u1", "data": {"text": "hi both"}})
        seen_a = await a.recv_until(of_type("llm_complete"))
        seen_b = await b.recv_until(
            lambda m: m["name"] == "interaction.model" and m["data"]["event"]["type"] == "end"
        )
        await a.ws.close()
        await b.ws.close()
        return seen_a, seen_b

    seen_a, seen_b = run(scenario())
    text_a = seen_a[-1]["data"]["fullText"]
    text_b = seen_b[-1]["data"]["event"]["text"]
    assert text_a == text_b and "hi both" in text_a
    assert seen_b[0]["name"] == "interaction.user" and seen_b[0]["data"]["event"]["messageId"] == "u1"


def test_the_01_subprotocol_name_still_selects_the_typed_dialect(server: ServerThread, run) -> None:
    """A client offering llmsock.seed004.v1 (the name of 0.1) gets it back and is answered in seed 004."""

    async def scenario() -> tuple[str | None, dict, list[dict]]:
        client = await open_client(server, dialect="seed004")
        ready = await client.recv()
        await client.send({"type": "user_message", "id": "old", "data": {"text": "still here?"}})
        events = await client.recv_until(of_type("llm_complete"))
        chosen = client.ws.response.headers.get("Sec-WebSocket-Protocol")  # type: ignore[union-attr]
        await client.ws.close()
        return chosen, ready, events

    chosen, ready, events = run(scenario())
    assert chosen == "llmsock.seed004.v1"
    assert ready["type"] == "status" and ready["data"]["status"] == "connected"  # typed from the start
    assert events[-1]["id"] == "old" and events[-1]["data"]["fullText"]


def test_the_python_client_still_takes_the_01_dialect_name(server: ServerThread, run) -> None:
    """Client(dialect="seed004") warns that the dialect is called "typed" now, and speaks it."""
    from llmsock_widget.client import Client as PythonClient

    with pytest.warns(DeprecationWarning, match="'typed'"):
        client = PythonClient(server.url, token=server.token, dialect="seed004")  # type: ignore[arg-type]
    assert client.dialect == "typed"

    async def scenario() -> str:
        async with client:
            answer = await client.ask("hello there")
            return answer.text

    assert "hello there" in run(scenario())


@pytest.mark.parametrize("action", ["get_status", "get_history"])
def test_the_python_client_reads_control_results_alike_in_both_dialects(
    server: ServerThread, run, action: str
) -> None:
    """Client.control() gives the session's status in data["status"], whichever dialect it speaks."""
    from llmsock_widget.client import Client as PythonClient

    async def scenario(dialect: str) -> dict[str, Any]:
        async with PythonClient(server.url, token=server.token, dialect=dialect) as client:  # type: ignore[arg-type]
            await client.ask("hello there")
            return await client.control(action)

    typed, envelope = run(scenario("typed")), run(scenario("envelope"))
    assert typed["ok"] is envelope["ok"] is True and typed["action"] == envelope["action"] == action
    assert typed["data"]["status"] == envelope["data"]["status"] == "idle"
    assert set(typed["data"]) == set(envelope["data"])  # seed 004's copies are not the client's business
