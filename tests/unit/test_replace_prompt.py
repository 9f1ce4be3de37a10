"""Replacing a prompt (edit and resend, regenerate, retry): decoder, reducer, snapshots, encoders, hub.

The model is truncation: a prompt that names an earlier user message (``replaces``) takes its
place when its turn starts; that message and every one after it leave the transcript, and the
new prompt records how many went (docs/protocol.md, section 9.8).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmsock_widget.client.core import prompt_frame
from llmsock_widget.core import snapshot
from llmsock_widget.core.events import (
    ErrorReply,
    Event,
    HistoryCleared,
    ModelDelta,
    ModelEnd,
    ModelStart,
    StatusChanged,
    UserMessage,
)
from llmsock_widget.core.session import (
    InteractionState,
    InvalidTransition,
    history,
    new_state,
    replaced_from,
)
from llmsock_widget.errors import CorruptSnapshot, InvalidFrame, InvalidRequest
from llmsock_widget.models import BuiltinModel
from llmsock_widget.models.base import ModelChunk, ModelRequest, TextChunk
from llmsock_widget.runtime.hub import Hub
from llmsock_widget.stores import MemoryStore
from llmsock_widget.wire.encode import to_envelope, to_llmcore, to_typed
from llmsock_widget.wire.protocol import Control, SendPrompt, decode
from tests.conftest import TIMEOUT
from tests.unit.test_session import step

SID = "s1"


# -- helpers ----------------------------------------------------------------------------


def turn(state: InteractionState, n: int, **prompt: Any) -> InteractionState:
    """Return ``state`` after a whole turn whose prompt is ``u<n>`` and answer ``answer <n>``."""
    prompt.setdefault("message_id", f"u{n}")
    prompt.setdefault("text", f"prompt {n}")
    state = step(state, UserMessage, turn_id=f"t{n}", **prompt)
    state = step(state, ModelStart, model="builtin")
    state = step(state, ModelDelta, text=f"answer {n}")
    return step(state, ModelEnd, finish_reason="stop", text=f"answer {n}")


def three_turns() -> InteractionState:
    state = new_state(SID, ts=500, model="builtin")
    for n in (1, 2, 3):
        state = turn(state, n)
    return state


def texts(state: InteractionState) -> list[str]:
    return [m.text for m in state.messages]


# -- the decoder ----------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["typed", "envelope"])
def test_decoder_reads_data_replaces(dialect: str) -> None:
    """data.replaces names the user message the prompt takes the place of, in both dialects."""
    frame = {"type": "user_message", "id": "w-2", "data": {"text": "again", "replaces": "w-1"}}
    command = decode(json.dumps(frame), dialect)  # type: ignore[arg-type]
    assert command == SendPrompt(text="again", message_id="w-2", replaces="w-1")


@pytest.mark.parametrize("dialect", ["typed", "envelope"])
def test_decoder_without_replaces_gives_none(dialect: str) -> None:
    """A prompt that replaces nothing (no field, or null) is an ordinary prompt."""
    for data in ({"text": "hi"}, {"text": "hi", "replaces": None}):
        frame = json.dumps({"type": "user_message", "id": "a", "data": data})
        assert decode(frame, dialect).replaces is None  # type: ignore[arg-type, union-attr]
    assert decode("plain text prompt", "envelope").replaces is None  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", [1, True, "", "x" * 129, ["w-1"], {"id": "w-1"}, 1.5])
@pytest.mark.parametrize("dialect", ["typed", "envelope"])
def test_decoder_refuses_a_bad_replaces_naming_it(dialect: str, bad: Any) -> None:
    """Anything but a string of 1 to 128 characters is invalid_message naming data.replaces."""
    frame = json.dumps({"type": "user_message", "id": "w-9", "data": {"text": "hi", "replaces": bad}})
    with pytest.raises(InvalidFrame, match=r"data\.replaces") as caught:
        decode(frame, dialect)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_message"
    assert caught.value.request_id == "w-9"  # the error reply names the prompt


def test_decoder_takes_128_characters() -> None:
    frame = json.dumps({"type": "user_message", "data": {"text": "hi", "replaces": "x" * 128}})
    assert decode(frame, "typed").replaces == "x" * 128  # type: ignore[union-attr]


# -- the reducer ------------------------------------------------------------------------


def test_replacing_the_middle_prompt_cuts_the_transcript_there() -> None:
    """Editing prompt 2 of 3 turns keeps turn 1, drops prompt 2 and everything after it."""
    state = three_turns()
    state = step(
        state, UserMessage, turn_id="t4", text="prompt 2, edited", message_id="u4", replaces="u2", replaced=4
    )
    assert texts(state) == ["prompt 1", "answer 1", "prompt 2, edited"]
    assert state.messages[-1].replaced == 4
    assert [m.replaced for m in state.messages[:-1]] == [0, 0]
    state = step(state, ModelStart, model="builtin")
    state = step(state, ModelDelta, text="answer 4")
    state = step(state, ModelEnd, finish_reason="stop", text="answer 4")
    assert texts(state) == ["prompt 1", "answer 1", "prompt 2, edited", "answer 4"]


def test_regenerate_removes_the_last_turn_two_messages() -> None:
    state = turn(three_turns(), 4, text="prompt 3", message_id="u4", replaces="u3", replaced=2)
    assert texts(state) == ["prompt 1", "answer 1", "prompt 2", "answer 2", "prompt 3", "answer 4"]
    assert state.messages[4].replaced == 2


def test_replacing_the_first_prompt_empties_the_transcript() -> None:
    state = step(
        three_turns(), UserMessage, turn_id="t4", text="anew", message_id="u4", replaces="u1", replaced=6
    )
    assert texts(state) == ["anew"]


def test_the_model_sees_only_the_new_branch() -> None:
    """history() after an edit holds the kept turns and the new prompt, never the replaced ones."""
    state = step(
        three_turns(),
        UserMessage,
        turn_id="t4",
        text="prompt 2, edited",
        message_id="u4",
        replaces="u2",
        replaced=4,
    )
    assert history(state) == [
        {"role": "user", "content": "prompt 1"},
        {"role": "assistant", "content": "answer 1"},
        {"role": "user", "content": "prompt 2, edited"},
    ]


@pytest.mark.parametrize(
    ("replaces", "why"),
    [("nope", "never there"), ("t1:a", "an assistant message"), ("", "empty")],
)
def test_replacing_what_is_not_a_user_message_is_refused(replaces: str, why: str) -> None:
    state = three_turns()
    with pytest.raises(InvalidTransition):
        step(state, UserMessage, turn_id="t4", text="x", message_id="u4", replaces=replaces, replaced=1)


def test_a_count_that_disagrees_with_the_cut_is_refused() -> None:
    with pytest.raises(InvalidTransition, match="removes 4, not 2"):
        step(three_turns(), UserMessage, turn_id="t4", text="x", message_id="u4", replaces="u2", replaced=2)


def test_the_cut_is_at_the_latest_user_message_of_that_id() -> None:
    """Ids are the clients' and may repeat: the latest user message with the id is the one replaced."""
    state = turn(turn(new_state(SID), 1, message_id="same"), 2, message_id="same")
    assert replaced_from(state.messages, "same") == 2
    assert replaced_from(state.messages, "t1:a") is None  # an assistant message is never replaced
    assert replaced_from(state.messages, "other") is None


@pytest.mark.parametrize(
    "fields",
    [{"replaced": 1}, {"replaces": "u1", "replaced": 0}, {"replaces": "u1", "replaced": -1}],
)
def test_user_message_checks_its_replace_fields(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        UserMessage(session_id=SID, seq=1, ts=0, turn_id="t", text="x", message_id="m", **fields)


# -- snapshots --------------------------------------------------------------------------


def edited() -> InteractionState:
    return turn(three_turns(), 4, text="prompt 2, edited", replaces="u2", replaced=4)


def test_snapshot_keeps_replaced_and_reads_it_back() -> None:
    state = edited()
    data = snapshot.encode(state)
    assert [m.get("replaced") for m in data["messages"]] == [None, None, 4, None]
    assert snapshot.loads(snapshot.dumps(state)) == state


def test_an_old_snapshot_without_replaced_reads_as_zero() -> None:
    data = snapshot.encode(three_turns())
    assert all("replaced" not in m for m in data["messages"])
    assert [m.replaced for m in snapshot.decode(data).messages] == [0] * 6


@pytest.mark.parametrize("bad", [-1, "4", True, 4.0, None, 2**53])
def test_a_bad_replaced_makes_the_snapshot_corrupt(bad: Any) -> None:
    data = snapshot.encode(edited())
    data["messages"][2]["replaced"] = bad
    with pytest.raises(CorruptSnapshot, match="replaced"):
        snapshot.decode(data)


# -- encoders ---------------------------------------------------------------------------


def echo(**fields: Any) -> UserMessage:
    return UserMessage(session_id=SID, seq=9, ts=5, turn_id="t4", text="again", message_id="w-2", **fields)


def test_envelope_echo_says_what_the_prompt_replaced() -> None:
    body = to_envelope(echo(replaces="w-1", replaced=2))["data"]["event"]  # type: ignore[index]
    assert body == {"type": "message", "text": "again", "messageId": "w-2", "replaces": "w-1", "replaced": 2}


def test_typed_echo_says_what_the_prompt_replaced() -> None:
    message = to_typed(echo(replaces="w-1", replaced=2))
    assert message is not None
    assert message["type"] == "user_message" and message["id"] == "w-2"
    assert message["data"] == {"text": "again", "replaces": "w-1", "replaced": 2}


def test_llmcore_echo_says_what_the_prompt_replaced() -> None:
    event = to_llmcore(echo(replaces="w-1", replaced=2))["data"]["event"]
    assert event["kind"] == "event-stream"
    assert event["event"]["data"]["replaces"] == "w-1" and event["event"]["data"]["replaced"] == 2


def test_an_ordinary_echo_has_no_replace_fields() -> None:
    """Frames of prompts that replace nothing stay as they were (the protocol stays llmsock/1)."""
    assert "replaces" not in to_envelope(echo())["data"]["event"]  # type: ignore[index]
    typed = to_typed(echo())
    assert typed is not None and "replaced" not in typed["data"]
    assert "replaces" not in to_llmcore(echo())["data"]["event"]["event"]["data"]


def test_python_client_frame_carries_replaces() -> None:
    frame = json.loads(prompt_frame("again", "m-2", {}, "m-1"))
    assert frame == {"type": "user_message", "id": "m-2", "data": {"text": "again", "replaces": "m-1"}}
    assert "replaces" not in json.loads(prompt_frame("hi", "m-3", {}))["data"]
    assert decode(prompt_frame("again", "m-2", {"maxTokens": 5}, "m-1"), "typed") == SendPrompt(
        text="again", message_id="m-2", options={"maxTokens": 5}, replaces="m-1"
    )


# -- the hub ----------------------------------------------------------------------------


class RecordingModel:
    """A model that answers every prompt with ``ok`` and keeps the messages it was sent."""

    name = "recording"

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, Any], ...]] = []

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        self.requests.append(request.messages)
        yield TextChunk(text="ok")


async def until(events: list[Event], count: int, kind: type) -> None:
    async def poll() -> None:
        while sum(isinstance(e, kind) for e in events) < count:
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), TIMEOUT)


async def idle(hub: Hub, key: str) -> None:
    async def poll() -> None:
        while hub.sessions[key].worker is not None:
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), TIMEOUT)


def test_the_model_is_not_sent_the_replaced_turns() -> None:
    """After an edit of prompt 2, the model's request holds turn 1 and the edited prompt only."""

    async def scenario() -> list[tuple[dict[str, Any], ...]]:
        model = RecordingModel()
        hub = Hub(store=MemoryStore(), model=model)
        seen: list[Event] = []
        key, detach, _ = await hub.attach("edit", seen.append)
        for n in (1, 2, 3):
            hub.handle(key, SendPrompt(text=f"prompt {n}", message_id=f"u{n}"), seen.append)
            await until(seen, n, ModelEnd)
        await idle(hub, key)
        hub.handle(key, SendPrompt(text="prompt 2, edited", message_id="u4", replaces="u2"), seen.append)
        await until(seen, 4, ModelEnd)
        await idle(hub, key)
        await detach()
        return model.requests

    requests = asyncio.run(scenario())
    assert [m["content"] for m in requests[-1]] == ["prompt 1", "ok", "prompt 2, edited"]


def test_builtin_model_answers_an_edited_first_prompt_as_a_first_turn() -> None:
    """The builtin model's echo after editing prompt 1 of 3 turns: turn 1, no trace of the old prompts."""

    async def scenario() -> str:
        hub = Hub(store=MemoryStore(), model=BuiltinModel(tokens_per_second=None, default_tokens=20))
        seen: list[Event] = []
        key, detach, _ = await hub.attach("edit-first", seen.append)
        for n in (1, 2, 3):
            hub.handle(key, SendPrompt(text=f"secret {n}", message_id=f"u{n}"), seen.append)
            await until(seen, n, ModelEnd)
        await idle(hub, key)
        hub.handle(key, SendPrompt(text="a new start", replaces="u1"), seen.append)
        await until(seen, 4, ModelEnd)
        await detach()
        return [e for e in seen if isinstance(e, ModelEnd)][-1].text

    answer = asyncio.run(scenario())
    assert answer.startswith('You said: "a new start". This is the first turn of our conversation.')
    assert "secret" not in answer


def test_replacing_an_unknown_message_is_refused_and_changes_nothing() -> None:
    async def scenario() -> tuple[list[Event], InteractionState, InteractionState]:
        hub = Hub(store=MemoryStore(), model=RecordingModel())
        seen: list[Event] = []
        key, detach, _ = await hub.attach("unknown", seen.append)
        hub.handle(key, SendPrompt(text="one", message_id="u1"), seen.append)
        await until(seen, 1, ModelEnd)
        await idle(hub, key)
        before = hub.sessions[key].state
        seen.clear()
        hub.handle(key, SendPrompt(text="two", message_id="u2", replaces="m-1"), seen.append)
        after = hub.sessions[key].state
        await detach()
        return seen, before, after

    seen, before, after = asyncio.run(scenario())
    assert seen == [
        ErrorReply(
            code="invalid_request",
            message="message 'm-1' is not in the transcript: it cannot be replaced",
            ts=seen[0].ts,  # type: ignore[union-attr]
            request_id="u2",
            refused="user_message",
        )
    ]
    assert after is before  # no event: the transcript, the sequence and the status are untouched


def test_a_queued_prompt_whose_message_went_while_it_waited_is_refused_when_its_turn_comes() -> None:
    """Two queued edits: the first cuts the message the second names, so the second is refused then."""

    async def scenario() -> tuple[list[Event], list[str]]:
        hub = Hub(store=MemoryStore(), model=BuiltinModel(tokens_per_second=None, default_tokens=5))
        seen: list[Event] = []
        mine: list[Event] = []
        key, detach, _ = await hub.attach("queued", seen.append)
        for n in (1, 2):
            hub.handle(key, SendPrompt(text=f"prompt {n}", message_id=f"u{n}"), seen.append)
            await until(seen, n, ModelEnd)
        await idle(hub, key)
        hub.handle(key, SendPrompt(text="/hold 2", message_id="h"), seen.append)
        hub.handle(key, SendPrompt(text="edit 1", message_id="e1", replaces="u1"), mine.append)
        hub.handle(key, SendPrompt(text="edit 2", message_id="e2", replaces="u2"), mine.append)
        hub.handle(key, SendPrompt(text="after", message_id="z"), mine.append)
        assert hub.sessions[key].state.messages[0].id == "u1"  # nothing is cut while they wait
        hub.handle(key, Control(action="abort"), seen.append)
        await until(seen, 5, ModelEnd)  # two turns, the held one, "edit 1", "after"
        await idle(hub, key)
        await detach()
        return mine, [m.text for m in hub.sessions[key].state.messages] if key in hub.sessions else []

    mine, _ = asyncio.run(scenario())
    refusals = [e for e in mine if isinstance(e, ErrorReply)]
    assert len(refusals) == 1
    assert refusals[0].request_id == "e2" and refusals[0].refused == "user_message"
    assert refusals[0].message == "message 'u2' is not in the transcript: it cannot be replaced"


def test_a_queued_refusal_ends_nothing_else_and_the_next_prompt_runs() -> None:
    """The refused prompt has no echo and no turn; the transcript is the edit's, then the next prompt's."""

    async def scenario() -> tuple[list[Event], InteractionState, int]:
        store = MemoryStore()
        hub = Hub(store=store, model=BuiltinModel(tokens_per_second=None, default_tokens=5))
        seen: list[Event] = []
        key, detach, _ = await hub.attach("queued2", seen.append)
        for n in (1, 2):
            hub.handle(key, SendPrompt(text=f"prompt {n}", message_id=f"u{n}"), seen.append)
            await until(seen, n, ModelEnd)
        await idle(hub, key)
        hub.handle(key, SendPrompt(text="/hold 2", message_id="h"), seen.append)
        hub.handle(key, SendPrompt(text="edit 1", message_id="e1", replaces="u1"), seen.append)
        hub.handle(key, SendPrompt(text="edit 2", message_id="e2", replaces="u2"), seen.append)
        hub.handle(key, SendPrompt(text="after", message_id="z"), seen.append)
        hub.handle(key, Control(action="abort"), seen.append)
        await until(seen, 5, ModelEnd)
        await idle(hub, key)
        state = hub.sessions[key].state
        turns = hub.turns_run
        await detach()
        return seen, state, turns

    seen, state, turns = asyncio.run(scenario())
    echoes = [e for e in seen if isinstance(e, UserMessage)]
    assert [(e.message_id, e.replaces, e.replaced) for e in echoes] == [
        ("u1", None, 0),
        ("u2", None, 0),
        ("h", None, 0),
        ("e1", "u1", 6),  # cut when its turn started: the held turn is gone too
        ("z", None, 0),
    ]
    assert [m.id for m in state.messages if m.role == "user"] == ["e1", "z"]
    assert state.messages[0].replaced == 6
    assert turns == 5  # the refused prompt is no turn
    assert state.status == "idle" and state.phase == "idle"


# -- %llmsock clear's path in the hub ---------------------------------------------------


def test_hub_clear_counts_the_messages_and_every_viewer_sees_cleared() -> None:
    async def scenario() -> tuple[int, int, list[Event], list[Event], InteractionState | None]:
        store = MemoryStore()
        hub = Hub(store=store, model=RecordingModel())
        one: list[Event] = []
        two: list[Event] = []
        key, detach_one, _ = await hub.attach("clear", one.append)
        _, detach_two, _ = await hub.attach("clear", two.append)
        for n in (1, 2):
            hub.handle(key, SendPrompt(text=f"p{n}"), one.append)
            await until(one, n, ModelEnd)
        await idle(hub, key)
        cleared = await hub.clear("clear")
        again = await hub.clear("clear")  # nothing left: nothing is emitted
        await asyncio.gather(*hub.sessions[key].tasks)
        await detach_one()
        await detach_two()
        return cleared, again, one, two, store.load(key)

    cleared, again, one, two, stored = asyncio.run(scenario())
    assert (cleared, again) == (4, 0)
    assert sum(isinstance(e, HistoryCleared) for e in one) == 1
    assert sum(isinstance(e, HistoryCleared) for e in two) == 1
    assert stored is not None and stored.messages == ()


def test_hub_clear_loads_a_closed_session_and_refuses_during_a_turn() -> None:
    async def scenario() -> tuple[int, int, str, bool]:
        store = MemoryStore()
        hub = Hub(store=store, model=BuiltinModel(tokens_per_second=None, default_tokens=5))
        seen: list[Event] = []
        key, detach, _ = await hub.attach("closed", seen.append)
        hub.handle(key, SendPrompt(text="hello"), seen.append)
        await until(seen, 1, ModelEnd)
        await idle(hub, key)
        await detach()
        assert "closed" not in hub.sessions  # evicted: only the store has it
        nothing = await hub.clear("never-seen")
        cleared = await hub.clear("closed")
        await asyncio.sleep(0)
        for live in list(hub.sessions.values()):
            await asyncio.gather(*live.tasks)
        await asyncio.sleep(0)
        stored = store.load("closed")
        key, detach, _ = await hub.attach("busy", seen.append)
        hub.handle(key, SendPrompt(text="/hold 2"), seen.append)
        try:
            await hub.clear("busy")
        except InvalidRequest as exc:
            refused = exc.message
        else:
            refused = ""
        hub.handle(key, Control(action="abort"), seen.append)
        await until(seen, 2, ModelEnd)
        await idle(hub, key)
        await detach()
        return nothing, cleared, refused, stored is not None and stored.messages == ()

    nothing, cleared, refused, emptied = asyncio.run(scenario())
    assert (nothing, cleared, emptied) == (0, 2, True)
    assert refused == "cannot clear history while a turn is running; abort it first"


def test_status_changed_and_other_events_unaffected() -> None:
    """A prompt that replaces nothing opens its turn exactly as before (echo, then generating)."""

    async def scenario() -> list[Event]:
        hub = Hub(store=MemoryStore(), model=RecordingModel())
        seen: list[Event] = []
        key, detach, _ = await hub.attach("plain", seen.append)
        hub.handle(key, SendPrompt(text="hi", message_id="u1"), seen.append)
        await until(seen, 1, ModelEnd)
        await detach()
        return seen

    seen = asyncio.run(scenario())
    echo_, status = seen[1], seen[2]
    assert isinstance(echo_, UserMessage) and echo_.replaces is None and echo_.replaced == 0
    assert isinstance(status, StatusChanged) and status.status == "generating"
