"""Replacing a prompt over real WebSockets: edit and resend, regenerate, a refusal, a queued edit.

A prompt that names an earlier user message (``data.replaces``) takes its place when its turn
starts: that message and every one after it leave the transcript, for every viewer, in the
saved snapshot and in what the model is sent (docs/protocol.md, section 9.8).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmsock_widget.client import Client as PyClient
from llmsock_widget.core import snapshot
from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread
from llmsock_widget.stores import JsonFileStore

from .conftest import Client, MakeServer, is_turn_end, open_client


def is_echo(m: dict[str, Any]) -> bool:
    return m.get("name") == "interaction.user"


def envelope_prompt(text: str, message_id: str, replaces: str | None = None) -> dict[str, Any]:
    """Return a prompt as the widget sends it over the envelope dialect."""
    data: dict[str, Any] = {"text": text, "options": {}}
    if replaces is not None:
        data["replaces"] = replaces
    return {"type": "user_message", "id": message_id, "data": data}


async def ask(client: Client, text: str, message_id: str, replaces: str | None = None) -> list[dict]:
    """Send a prompt (envelope dialect) and return the frames up to its turn's end."""
    await client.send(envelope_prompt(text, message_id, replaces))
    return await client.recv_until(is_turn_end)


async def get_history(client: Client, request_id: str) -> dict[str, Any]:
    """Return the data of a get_history result (envelope dialect)."""
    await client.send({"type": "control", "id": request_id, "data": {"type": "get_history"}})
    frames = await client.recv_until(
        lambda m: m.get("name") == "interaction.control" and m["data"]["event"].get("requestId") == request_id
    )
    return frames[-1]["data"]["event"]["data"]


def transcript(history: dict[str, Any]) -> list[tuple[str, str, int]]:
    """Return ``(id, text, replaced)`` of each message of a get_history result (0 when absent)."""
    return [(m["id"], m["text"], m.get("replaced", 0)) for m in history["messages"]]


def echo_of(frames: list[dict]) -> dict[str, Any]:
    (echo,) = [m["data"]["event"] for m in frames if is_echo(m)]
    return echo


def test_edit_in_the_middle_of_three_turns(tmp_path: Path, run, make_server: MakeServer) -> None:
    """Editing prompt 2 of 3: both viewers see the cut; get_history and the saved file keep it."""
    first = make_server(
        model=BuiltinModel(tokens_per_second=None, default_tokens=12), store=JsonFileStore(tmp_path)
    )

    async def scenario() -> tuple[list[dict], list[dict], dict, dict]:
        writer = await open_client(first, session="edit", dialect="envelope")
        viewer = await open_client(first, session="edit", dialect="envelope")
        await writer.recv()
        await viewer.recv()
        for n in (1, 2, 3):
            await ask(writer, f"prompt {n}", f"w-{n}")
            await viewer.recv_until(is_turn_end)
        frames = await ask(writer, "prompt 2, edited", "w-4", replaces="w-2")
        seen = await viewer.recv_until(is_turn_end)
        mine = await get_history(writer, "h1")
        theirs = await get_history(viewer, "h2")
        await writer.ws.close()
        await viewer.ws.close()
        return frames, seen, mine, theirs

    frames, seen, mine, theirs = run(scenario())
    echo = echo_of(frames)
    assert echo == {
        "type": "message",
        "text": "prompt 2, edited",
        "messageId": "w-4",
        "replaces": "w-2",
        "replaced": 4,
    }
    assert echo_of(seen) == echo  # the other viewer is told the same cut, with the same event
    answer = frames[-1]["data"]["event"]["text"]
    assert answer.startswith('You said: "prompt 2, edited". This is turn 2 of our conversation')
    assert [m["role"] for m in mine["messages"]] == ["user", "assistant", "user", "assistant"]
    assert transcript(mine)[0::2] == [("w-1", "prompt 1", 0), ("w-4", "prompt 2, edited", 4)]
    assert mine["messages"][3]["text"] == answer
    assert transcript(theirs) == transcript(mine)
    first.stop()

    saved = snapshot.loads((tmp_path / "edit.json").read_text())
    assert [(m.id, m.replaced) for m in saved.messages if m.role == "user"] == [("w-1", 0), ("w-4", 4)]

    second = make_server(model=BuiltinModel(tokens_per_second=None), store=JsonFileStore(tmp_path))

    async def reload() -> dict:
        client = await open_client(second, session="edit", dialect="envelope")
        await client.recv()
        history = await get_history(client, "h3")
        await client.ws.close()
        return history

    assert transcript(run(reload())) == transcript(mine)


def test_replacing_an_unknown_message_is_refused_and_the_transcript_untouched(
    server: ServerThread, run
) -> None:
    async def scenario() -> tuple[dict, dict, dict, list[dict]]:
        client = await open_client(server, session="unknown", dialect="envelope")
        other = await open_client(server, session="unknown", dialect="envelope")
        await client.recv()
        await other.recv()
        await ask(client, "prompt 1", "w-1")
        before = await get_history(client, "h1")
        await client.send(envelope_prompt("again", "w-2", replaces="m-1"))
        refusal = (await client.recv_until(lambda m: m.get("name") == "interaction.error"))[-1]
        after = await get_history(client, "h2")
        # The other viewer saw the first turn and nothing of the refused prompt: its next frame
        # after the turn is the ping's pong.
        await other.recv_until(is_turn_end)
        await other.send({"type": "ping", "id": "p"})
        late = await other.recv_until(lambda m: m.get("name") == "interaction.control")
        await client.ws.close()
        await other.ws.close()
        return refusal["data"]["event"], before, after, late

    refusal, before, after, late = run(scenario())
    assert refusal == {
        "type": "error",
        "code": "invalid_request",
        "message": "message 'm-1' is not in the transcript: it cannot be replaced",
        "recoverable": True,
        "requestId": "w-2",
    }
    assert after == before
    assert [m["name"] for m in late] == ["interaction.status"] * (len(late) - 1) + ["interaction.control"]


def test_a_replacing_prompt_queued_behind_a_running_turn_cuts_when_it_starts(
    server: ServerThread, run
) -> None:
    """Queued while a turn runs, the edit leaves the transcript alone until its own turn starts."""

    async def scenario() -> tuple[dict, dict, list[dict]]:
        client = await open_client(server, session="queued", dialect="envelope")
        await client.recv()
        await ask(client, "prompt 1", "w-1")
        await ask(client, "prompt 2", "w-2")
        await client.send(envelope_prompt("/hold 2", "w-3"))
        await client.recv_until(lambda m: m["data"]["event"].get("type") == "delta")
        await client.send(envelope_prompt("prompt 1, edited", "w-4", replaces="w-1"))
        await client.recv_until(lambda m: m["data"]["event"].get("code") == "queued")
        waiting = await get_history(client, "h1")
        await client.send({"type": "control", "id": "a", "data": {"type": "abort"}})
        await client.recv_until(is_turn_end)  # the held turn ends aborted
        frames = await client.recv_until(is_turn_end)  # then the edit's turn runs
        after = await get_history(client, "h2")
        await client.ws.close()
        return waiting, after, frames

    waiting, after, frames = run(scenario())
    assert [m["id"] for m in waiting["messages"] if m["role"] == "user"] == ["w-1", "w-2", "w-3"]
    echo = echo_of(frames)
    assert (echo["replaces"], echo["replaced"]) == ("w-1", 6)  # the held turn, run after it was queued, too
    assert [(m["id"], m.get("replaced", 0)) for m in after["messages"] if m["role"] == "user"] == [("w-4", 6)]
    assert len(after["messages"]) == 2
    assert frames[-1]["data"]["event"]["text"].startswith(
        'You said: "prompt 1, edited". This is the first turn'
    )


def test_regenerate_the_last_turn_through_the_typed_dialect(server: ServerThread, run) -> None:
    """Regenerate: the last prompt's text again, replacing it; the echo says 2 messages went."""

    async def scenario() -> tuple[list[dict], dict]:
        client = await open_client(server, session="regen", dialect="typed")
        await client.recv()
        for n in (1, 2):
            await client.send({"type": "user_message", "id": f"u{n}", "data": {"text": f"prompt {n}"}})
            await client.recv_until(lambda m: m.get("type") == "llm_complete")
        await client.send(
            {"type": "user_message", "id": "u3", "data": {"text": "prompt 2", "replaces": "u2"}}
        )
        frames = await client.recv_until(lambda m: m.get("type") == "llm_complete")
        await client.send({"type": "control", "id": "h", "data": {"type": "get_history"}})
        history = (await client.recv_until(lambda m: m.get("type") == "control_response"))[-1]
        await client.ws.close()
        return frames, history["data"]

    frames, history = run(scenario())
    (echo,) = [m for m in frames if m["type"] == "user_message"]
    assert echo["id"] == "u3"
    assert echo["data"] == {"text": "prompt 2", "replaces": "u2", "replaced": 2}
    assert frames[-1]["data"]["finishReason"] == "stop"
    users = [(m["id"], m["text"], m.get("replaced", 0)) for m in history["messages"] if m["role"] == "user"]
    assert users == [("u1", "prompt 1", 0), ("u3", "prompt 2", 2)]
    assert len(history["messages"]) == 4


def test_typed_refusal_ends_the_prompt_with_llm_complete_then_error(server: ServerThread, run) -> None:
    """A replace of a message that is not there ends like any refused prompt (section 9.7)."""

    async def scenario() -> list[dict]:
        client = await open_client(server, session="typed-refusal", dialect="typed")
        await client.recv()
        await client.send({"type": "user_message", "id": "u9", "data": {"text": "x", "replaces": "gone"}})
        frames = await client.recv_until(lambda m: m.get("type") == "error")
        await client.ws.close()
        return frames

    complete, error = run(scenario())
    message = "message 'gone' is not in the transcript: it cannot be replaced"
    assert complete["type"] == "llm_complete" and complete["id"] == "u9"
    assert complete["data"]["finishReason"] == "error"
    assert complete["data"]["error"]["message"] == message
    assert error["id"] == "u9" and error["data"]["llmsockCode"] == "invalid_request"


def test_llmcore_dialect_echo_carries_the_cut(server: ServerThread, run) -> None:
    async def scenario() -> dict:
        client = await open_client(server, session="core", dialect="llmcore")
        await client.recv()
        await client.send(envelope_prompt("prompt 1", "w-1"))
        await client.recv_until(
            lambda m: m["name"] == "interaction.model" and m["data"]["event"]["event"]["type"] == "end"
        )
        await client.send(envelope_prompt("prompt 1 again", "w-2", replaces="w-1"))
        frames = await client.recv_until(
            lambda m: (
                m["name"] == "interaction.event-stream"
                and m["data"]["event"]["event"]["name"] == "interaction.user"
            )
        )
        await client.ws.close()
        return frames[-1]["data"]["event"]["event"]["data"]

    data = run(scenario())
    assert data == {
        "type": "message",
        "text": "prompt 1 again",
        "messageId": "w-2",
        "replaces": "w-1",
        "replaced": 2,
    }


def test_python_client_ask_replaces(server: ServerThread, run) -> None:
    """Client.ask(replaces=...) sends data.replaces; the answer is that of the new branch."""

    async def scenario() -> tuple[str, str, Any]:
        async with PyClient(server.url, token=server.token, session="py") as client:
            await client.ask("my name is Ada", message_id="p1")
            await client.ask("what is my name?")
            answer = await client.ask("my name is Grace", replaces="p1")
            refused = await client.ask("again", replaces="p1")  # gone: the edit replaced it
            history = await client.control("get_history")
        users = [m["text"] for m in history["data"]["messages"] if m["role"] == "user"]
        return answer.text, " | ".join(users), refused

    text, users, refused = run(scenario())
    assert text.startswith('You said: "my name is Grace". This is the first turn')
    assert users == "my name is Grace"
    assert refused.finish_reason == "error"
    assert refused.error is not None and "'p1' is not in the transcript" in refused.error
