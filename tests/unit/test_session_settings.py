"""Settings per session: the system and model options, the settings a session keeps, the models set up.

A prompt's ``temperature``, ``maxTokens``, ``system`` and ``model`` are the session's settings
(the last prompt's), kept in its snapshot; ``model`` picks one of the models set up in the
server, ``system`` goes first in the model's request (docs/protocol.md, sections 7.1, 9.1, 13).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator

import pytest

from llmsock_widget.core import snapshot
from llmsock_widget.core.commands import SendPrompt
from llmsock_widget.core.events import ErrorReply, Event, ModelEnd, ModelStart, UserMessage
from llmsock_widget.core.session import apply, new_state
from llmsock_widget.errors import CorruptSnapshot, InvalidFrame
from llmsock_widget.models import BuiltinModel
from llmsock_widget.models.base import ModelChunk, ModelRequest, TextChunk
from llmsock_widget.notebook import extension
from llmsock_widget.runtime.hub import Hub
from llmsock_widget.server.thread import ServerThread
from llmsock_widget.stores import MemoryStore
from llmsock_widget.wire import protocol
from tests.conftest import TIMEOUT

# --- the decoder --------------------------------------------------------------------------------


def decode(data: dict[str, Any], dialect: str = "envelope") -> SendPrompt:
    frame = {"type": "user_message", "id": "u1", "data": {"text": "hi", **data}}
    command = protocol.decode(json.dumps(frame), dialect)  # type: ignore[arg-type]
    assert isinstance(command, SendPrompt)
    return command


@pytest.mark.parametrize("dialect", ["envelope", "typed"])
def test_system_and_model_are_read_from_options_and_from_data(dialect: str) -> None:
    options = {"system": "You are terse.", "model": "openai:gpt-4o-mini"}
    assert decode({"options": options}, dialect).options == options
    assert decode(options, dialect).options == options  # seed 004's flat options
    both = decode({"system": "flat", "options": {"system": "nested"}}, dialect)
    assert both.options == {"system": "nested"}  # data.options wins
    assert decode({"options": {"system": None, "model": None}}, dialect).options == {}
    assert decode({"options": {"system": "x" * 32_768, "model": "m" * 200}}).options["model"] == "m" * 200


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"options": {"system": 3}}, "options.system must be a string of at most 32768 characters"),
        ({"options": {"system": "x" * 32_769}}, "options.system must be"),
        ({"options": {"system": ["You are terse."]}}, "options.system must be"),
        ({"system": False}, "data.system must be"),
        ({"options": {"model": ""}}, "options.model must be a model's name (1 to 200 characters)"),
        ({"options": {"model": "m" * 201}}, "options.model must be"),
        ({"options": {"model": 4}}, "options.model must be"),
        ({"model": {"name": "builtin"}}, "data.model must be"),
    ],
)
def test_a_bad_system_or_model_is_refused_and_named(data: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidFrame) as caught:
        decode(data)
    assert caught.value.message.startswith(message)


# --- the session's settings ---------------------------------------------------------------------


def prompt(
    state: Any, message_id: str, replaces: str | None = None, replaced: int = 0, **options: Any
) -> Any:
    """Return ``state`` after a user message with ``options`` and its answer."""
    turn = f"t-{message_id}"
    stamp = {"session_id": "s", "ts": 1, "turn_id": turn}
    state = apply(
        state,
        UserMessage(
            **stamp,
            seq=state.seq + 1,
            text="hi",
            message_id=message_id,
            options=options,
            replaces=replaces,
            replaced=replaced,
        ),
    )
    return apply(state, ModelEnd(**stamp, seq=state.seq + 1, finish_reason="stop", text=""))


def test_a_sessions_settings_are_the_options_its_last_prompt_set() -> None:
    state = new_state("s")
    assert state.settings == {}
    state = prompt(state, "u1", system="You are terse.", temperature=0.5, maxTokens=50, model="b", tools=True)
    assert state.settings == {"system": "You are terse.", "temperature": 0.5, "maxTokens": 50, "model": "b"}
    state = prompt(state, "u2", temperature=1.0, system="")  # "" is no system prompt; tools is no setting
    assert state.settings == {"temperature": 1.0}
    state = prompt(state, "u3")
    assert state.settings == {}


def test_a_replacing_prompt_sets_the_settings_too() -> None:
    state = prompt(new_state("s"), "u1", system="first")
    state = prompt(state, "u2", system="second", model="b")
    state = prompt(state, "u3", replaces="u2", replaced=2, system="edited")
    assert state.settings == {"system": "edited"}
    assert [m.id for m in state.messages if m.role == "user"] == ["u1", "u3"]


# --- snapshots ----------------------------------------------------------------------------------


def settled() -> Any:
    return prompt(new_state("s"), "u1", system="You are terse.", temperature=0.0, maxTokens=9, model="b")


def test_settings_survive_a_snapshot_round_trip() -> None:
    state = settled()
    text = snapshot.dumps(state)
    assert json.loads(text)["settings"] == {
        "temperature": 0.0,
        "maxTokens": 9,
        "system": "You are terse.",
        "model": "b",
    }
    assert snapshot.loads(text) == state


def test_a_snapshot_without_settings_has_none_and_writes_none() -> None:
    data = snapshot.encode(new_state("s"))
    assert "settings" not in data  # an empty one is not written
    assert snapshot.decode(data).settings == {}
    assert snapshot.decode({**data, "settings": {"later": 1, "system": "", "model": None}}).settings == {}


@pytest.mark.parametrize(
    ("settings", "wrong"),
    [
        ([], "settings must be an object"),
        ({"temperature": 3}, "settings.temperature must be a number from 0 to 2"),
        ({"temperature": True}, "settings.temperature must be"),
        ({"maxTokens": 0}, "settings.maxTokens must be"),
        ({"system": 5}, "settings.system must be"),
        ({"model": ""}, "settings.model must be"),
    ],
)
def test_a_bad_setting_makes_the_snapshot_corrupt(settings: Any, wrong: str) -> None:
    data = {**snapshot.encode(settled()), "settings": settings}
    with pytest.raises(CorruptSnapshot) as caught:
        snapshot.decode(data)
    assert wrong in caught.value.message


# --- the builtin model ----------------------------------------------------------------------------


def reply(*messages: dict[str, str]) -> str:
    async def collect() -> str:
        model = BuiltinModel(tokens_per_second=None, default_tokens=20)
        request = ModelRequest(messages=messages)
        return "".join([c.text async for c in model.stream(request) if isinstance(c, TextChunk)])

    return asyncio.run(collect())


def test_the_builtin_reply_quotes_the_system_prompt() -> None:
    system = {"role": "system", "content": "You are terse."}
    assert reply(system, {"role": "user", "content": "hello"}) == (
        'You said: "hello". This is the first turn of our conversation. System prompt: "You are terse.".'
    )
    long = {"role": "system", "content": "Answer as a pirate would, and keep every answer under fifty words."}
    assert 'System prompt: "Answer as a pirate would, and keep every answer under…".' in reply(
        long, {"role": "user", "content": "hello"}
    )
    assert "System prompt" not in reply(system, {"role": "user", "content": "/echo only this"})


def test_a_builtin_reply_without_a_system_prompt_is_unchanged() -> None:
    """The replies every other test computes stay byte for byte what they were."""
    assert reply({"role": "user", "content": "hello"}) == (
        'You said: "hello". This is the first turn of our conversation.\n\n'
        "This reply sends the conversation in order."
    )
    earlier = ({"role": "user", "content": "a"}, {"role": "assistant", "content": "b"})
    assert reply(*earlier, {"role": "user", "content": "second"}) == (
        'You said: "second". This is turn 2 of our conversation; earlier you asked "a".'
    )


# --- models set up, and turns that choose one -----------------------------------------------------


class RecordingModel:
    """A model that answers ``ok from <name>`` and keeps the requests it was sent."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests: list[ModelRequest] = []

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        self.requests.append(request)
        yield TextChunk(text=f"ok from {self.name}")


async def until(events: list[Event], count: int, kind: type) -> None:
    async def poll() -> None:
        while sum(isinstance(e, kind) for e in events) < count:
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), TIMEOUT)


def test_the_hub_keeps_the_models_set_up_with_builtin_and_the_default_first() -> None:
    hub = Hub(store=MemoryStore(), model=RecordingModel("a"))
    assert hub.model_names() == ["a", "builtin"]
    hub.model = RecordingModel("b")
    assert hub.model_names() == ["b", "builtin", "a"]
    hub.model = BuiltinModel(tokens_per_second=None)
    assert hub.model_names() == ["builtin", "a", "b"]
    assert Hub(store=MemoryStore(), model=BuiltinModel()).model_names() == ["builtin"]


def test_the_server_lists_its_models_and_reports_them() -> None:
    server = ServerThread()
    assert server.models() == ["builtin"]
    server.set_model(RecordingModel("openai:gpt-4o-mini"))
    server.set_model("builtin")
    assert server.models() == ["builtin", "openai:gpt-4o-mini"]
    assert server.status()["models"] == ["builtin", "openai:gpt-4o-mini"]
    assert server.hub.model_names() == server.models()


def test_llmsock_model_without_a_spec_says_the_default_and_the_others() -> None:
    assert extension._models_said(["builtin"]) == "model: builtin"
    said = extension._models_said(["builtin", "openai:gpt-4o-mini", "x"])
    assert said == "model: builtin (also set up: openai:gpt-4o-mini, x)"


def test_a_prompt_chooses_its_model_and_its_system_prompt_goes_first() -> None:
    async def scenario() -> tuple[list[Event], RecordingModel, RecordingModel, dict[str, Any]]:
        first, second = RecordingModel("a"), RecordingModel("b")
        hub = Hub(store=MemoryStore(), model=first)
        hub.model = second
        hub.model = first  # the default again; b stays set up
        seen: list[Event] = []
        key, detach, _ = await hub.attach("choose", seen.append)
        options = {"model": "b", "system": "You are terse.", "temperature": 0.5}
        hub.handle(key, SendPrompt(text="hi", message_id="u1", options=options), seen.append)
        await until(seen, 1, ModelEnd)
        hub.handle(key, SendPrompt(text="again", message_id="u2"), seen.append)
        await until(seen, 2, ModelEnd)
        status = hub.status(key)
        await detach()
        return seen, first, second, status

    seen, first, second, status = asyncio.run(scenario())
    assert [e.model for e in seen if isinstance(e, ModelStart)] == ["b", "a"]
    assert [e.text for e in seen if isinstance(e, ModelEnd)] == ["ok from b", "ok from a"]
    (request,) = second.requests
    assert request.messages == (
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hi"},
    )
    assert [m["role"] for m in first.requests[0].messages] == ["user", "assistant", "user"]  # none: no system
    assert (status["model"], status["models"]) == ("a", ["a", "builtin", "b"])


def test_a_prompt_naming_a_model_not_set_up_is_refused_and_nothing_happens() -> None:
    async def scenario() -> list[Event]:
        hub = Hub(store=MemoryStore(), model=RecordingModel("openai:gpt-4o-mini"))
        seen: list[Event] = []
        key, detach, _ = await hub.attach("unknown", seen.append)
        hub.handle(key, SendPrompt(text="hi", message_id="u1", options={"model": "x"}), seen.append)
        # Queued behind a running turn, it is refused when its turn comes; the next one runs.
        hub.handle(key, SendPrompt(text="/hold", message_id="u2", options={"model": "builtin"}), seen.append)
        hub.handle(key, SendPrompt(text="hi", message_id="u3", options={"model": "y"}), seen.append)
        hub.handle(key, SendPrompt(text="hi", message_id="u4"), seen.append)
        await until(seen, 1, ModelStart)
        hub.sessions[key].abort()
        await until(seen, 2, ModelEnd)
        await detach()
        return seen

    seen = asyncio.run(scenario())
    errors = [e for e in seen if isinstance(e, ErrorReply)]
    assert [(e.code, e.request_id) for e in errors] == [("invalid_request", "u1"), ("invalid_request", "u3")]
    assert errors[0].message == (
        "model 'x' is not set up in this kernel (set up: builtin, openai:gpt-4o-mini); "
        "use %llmsock model to add it"
    )
    echoes = [e.message_id for e in seen if isinstance(e, UserMessage)]
    assert echoes == ["u2", "u4"]
