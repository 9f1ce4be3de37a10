"""Settings per session over real WebSockets: a prompt's model and system prompt, kept settings.

A prompt may name a model set up in the server (``options.model``) and give a system prompt
(``options.system``); the session keeps the last prompt's settings, returns them in
``get_history`` and in its snapshot, so they come back in a new server (docs/protocol.md,
sections 7.1, 9.1, 13).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread
from llmsock_widget.stores import JsonFileStore
from tests import fakeopenai
from tests.fakeopenai import FakeOpenAI

from .conftest import Client, MakeServer, is_turn_end, open_client

PROVIDER_MODEL = "openai:test-model"


@pytest.fixture
def provider() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def server(provider: FakeOpenAI, make_server: MakeServer) -> ServerThread:
    """A server with two models set up: the builtin one (the default) and the fake provider's."""
    server = make_server(
        model=PROVIDER_MODEL,
        model_options={"base_url": provider.base_url, "api_key": "sk-test", "max_retries": 0},
    )
    server.set_model(BuiltinModel(tokens_per_second=None, default_tokens=12))
    return server


def prompt(text: str, message_id: str, **options: Any) -> dict[str, Any]:
    return {"type": "user_message", "id": message_id, "data": {"text": text, "options": options}}


def events(frames: list[dict[str, Any]], name: str = "interaction.model") -> list[dict[str, Any]]:
    return [m["data"]["event"] for m in frames if m.get("name") == name]


async def control(client: Client, action: str, request_id: str) -> dict[str, Any]:
    """Return the data of a control's result (envelope dialect)."""
    await client.send({"type": "control", "id": request_id, "data": {"type": action}})
    frames = await client.recv_until(
        lambda m: m.get("name") == "interaction.control" and m["data"]["event"].get("requestId") == request_id
    )
    return frames[-1]["data"]["event"]["data"]  # type: ignore[no-any-return]


def test_a_prompt_chooses_a_model_set_up_and_its_system_prompt_reaches_the_provider(
    server: ServerThread, provider: FakeOpenAI, run: Any
) -> None:
    provider.enqueue(fakeopenai.text(["Aye, ", "terse."]))
    system = "You are terse.\nAnswer in one line."

    async def scenario() -> tuple[list[dict], list[dict], dict, dict]:
        client = await open_client(server, session="choose", dialect="envelope")
        await client.recv()
        await client.send(prompt("hi", "u1", model=PROVIDER_MODEL, system=system, temperature=0.3))
        chosen = await client.recv_until(is_turn_end)
        await client.send(prompt("and you?", "u2", maxTokens=40))
        default = await client.recv_until(is_turn_end)
        status = await control(client, "get_status", "s")
        history = await control(client, "get_history", "h")
        await client.ws.close()
        return chosen, default, status, history

    chosen, default, status, history = run(scenario())
    start, *_, end = events(chosen)
    assert (start["type"], start["model"]) == ("start", PROVIDER_MODEL)
    assert end["text"] == "Aye, terse."
    (request,) = provider.chat_requests
    assert request.body["messages"] == [
        {"role": "system", "content": system},
        {"role": "user", "content": "hi"},
    ]
    assert request.body["model"] == "test-model" and request.body["temperature"] == 0.3
    start, *_, end = events(default)
    assert start["model"] == "builtin"
    assert end["text"].startswith('You said: "and you?". This is turn 2 of our conversation')
    assert "System prompt" not in end["text"]  # the second prompt set none
    assert (status["model"], status["models"]) == ("builtin", ["builtin", PROVIDER_MODEL])
    assert status["server"]["models"] == ["builtin", PROVIDER_MODEL]
    assert history["settings"] == {"maxTokens": 40}  # the last prompt's


def test_two_builtin_models_the_second_answers_when_named(make_server: MakeServer, run: Any) -> None:
    """A second builtin model set up under its own name answers a prompt that names it."""
    server = make_server(model=BuiltinModel(tokens_per_second=None, default_tokens=12, name="builtin-a"))
    server.set_model(BuiltinModel(tokens_per_second=None, default_tokens=12, name="builtin-b"))

    async def scenario() -> list[dict]:
        client = await open_client(server, session="two", dialect="envelope")
        await client.recv()
        await client.send(prompt("hi", "u1", model="builtin-a", system="Be brief."))
        frames = await client.recv_until(is_turn_end)
        await client.ws.close()
        return frames

    start, *_, end = events(run(scenario()))
    assert start["model"] == "builtin-a"
    assert end["text"] == (
        'You said: "hi". This is the first turn of our conversation. System prompt: "Be brief.".'
    )
    assert server.models() == ["builtin-b", "builtin", "builtin-a"]


def test_a_prompt_naming_a_model_not_set_up_is_refused(server: ServerThread, run: Any) -> None:
    async def scenario() -> tuple[dict, dict, dict]:
        client = await open_client(server, session="refused", dialect="envelope")
        await client.recv()
        before = await control(client, "get_history", "h1")
        await client.send(prompt("hi", "u1", model="openai:gpt-9"))
        refusal = (await client.recv_until(lambda m: m.get("name") == "interaction.error"))[-1]
        after = await control(client, "get_history", "h2")
        await client.ws.close()
        return refusal["data"]["event"], before, after

    refusal, before, after = run(scenario())
    assert refusal == {
        "type": "error",
        "code": "invalid_request",
        "message": (
            f"model 'openai:gpt-9' is not set up in this kernel (set up: builtin, {PROVIDER_MODEL}); "
            "use %llmsock model to add it"
        ),
        "recoverable": True,
        "requestId": "u1",
    }
    assert after == before and after["messages"] == []


def test_settings_survive_a_save_and_a_new_server(tmp_path: Path, make_server: MakeServer, run: Any) -> None:
    settings = {"system": "You are terse.", "temperature": 0.7, "maxTokens": 30, "model": "builtin"}
    first = make_server(model=BuiltinModel(tokens_per_second=None), store=JsonFileStore(tmp_path))

    async def chat() -> list[dict]:
        client = await open_client(first, session="kept", dialect="envelope")
        await client.recv()
        await client.send(prompt("hello", "u1", **settings))
        frames = await client.recv_until(is_turn_end)
        await client.ws.close()
        return frames

    echo = events(run(chat()), "interaction.user")[0]
    assert echo["options"] == settings
    first.stop()
    second = make_server(model=BuiltinModel(tokens_per_second=None), store=JsonFileStore(tmp_path))

    async def reload() -> dict:
        client = await open_client(second, session="kept", dialect="envelope")
        await client.recv()
        history = await control(client, "get_history", "h")
        await client.ws.close()
        return history

    history = run(reload())
    assert history["settings"] == settings
    assert [m["text"] for m in history["messages"] if m["role"] == "user"] == ["hello"]
