"""A Stop sent right after a prompt is never lost: the prompt's turn is open before the next frame."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from llmsock_widget.models import BuiltinModel
from llmsock_widget.models.base import TextChunk
from llmsock_widget.server.thread import ServerThread
from tests import fakeopenai
from tests.conftest import TIMEOUT
from tests.fakeopenai import FakeOpenAI

from .conftest import Client, MakeServer, is_model, is_turn_end, open_client
from .test_commlink import View, link

ROUNDS = 20
BURST = 1000  # every frame of the test fits the rate limit's burst (40 by default)
LONG = "/long 5000"  # 25 s at 200 tokens a second: an answer that ends on its own is a lost Stop


def prompt(n: int, text: str = LONG) -> str:
    return json.dumps({"type": "user_message", "id": f"u{n}", "data": {"text": text}})


def control(request_id: str, action: str) -> str:
    return json.dumps({"type": "control", "id": request_id, "data": {"type": action}})


def is_result(request_id: str) -> Any:
    return lambda m: (
        m.get("name") == "interaction.control" and m["data"]["event"].get("requestId") == request_id
    )


async def prompt_then_abort(client: Client, n: int) -> dict[str, Any]:
    """Send a prompt and an abort back to back; return the abort's result, the deltas and the end."""
    await client.send(prompt(n))
    await client.send(control(f"a{n}", "abort"))
    messages = await client.recv_until(is_turn_end)
    result = next((m for m in messages if is_result(f"a{n}")(m)), None)
    assert result is not None, "the abort's result did not come before the turn's end"
    events = [m["data"]["event"] for m in messages if m.get("name") == "interaction.model"]
    return {
        "result": result["data"]["event"],
        "deltas": [e["text"] for e in events if e["type"] == "delta" and "text" in e],
        "end": events[-1],
    }


def assert_aborted(round_: dict[str, Any], n: int) -> None:
    result, end = round_["result"], round_["end"]
    assert (result["ok"], result["message"]) == (True, "turn aborted"), f"round {n}: {result}"
    assert (end["type"], end["finishReason"]) == ("end", "aborted"), f"round {n}: {end}"
    assert len(round_["deltas"]) <= 5, f"round {n}: the model went on after the abort"
    assert end["text"] == "".join(round_["deltas"])


def test_an_abort_right_after_a_prompt_always_ends_it_aborted(make_server: MakeServer, run: Any) -> None:
    """Twenty prompts, each followed at once by an abort: each ends aborted, after a few deltas at most."""
    server = make_server(model=BuiltinModel(tokens_per_second=200), message_burst=BURST)

    async def scenario() -> list[dict[str, Any]]:
        client = await open_client(server, dialect="envelope")
        await client.recv()
        rounds = [await prompt_then_abort(client, n) for n in range(ROUNDS)]
        await client.send(control("s", "get_status"))
        status = (await client.recv_until(is_result("s")))[-1]["data"]["event"]["data"]
        await client.ws.close()
        return [*rounds, status]

    *rounds, status = run(scenario())
    for n, round_ in enumerate(rounds):
        assert_aborted(round_, n)
    assert (status["phase"], status["queued"]) == ("idle", 0)
    assert server.hub.turns_run == ROUNDS


@pytest.fixture
def provider() -> Iterator[FakeOpenAI]:
    # Two chunks, then the response is held open until the client goes away.
    with FakeOpenAI(default=fakeopenai.hang_after(2)) as fake:
        yield fake


def test_an_abort_right_after_a_prompt_closes_the_provider_stream(
    provider: FakeOpenAI, make_server: MakeServer, run: Any
) -> None:
    """Against an OpenAI-compatible server, every request a prompt made is cut off by the abort after it."""
    server = make_server(
        model="openai:test-model",
        model_options={"base_url": provider.base_url, "api_key": "sk-test", "max_retries": 0},
        message_burst=BURST,
    )

    async def scenario() -> list[dict[str, Any]]:
        client = await open_client(server, dialect="envelope")
        await client.recv()
        rounds = [await prompt_then_abort(client, n) for n in range(ROUNDS)]
        # One more abort once the answer streams, so the provider surely saw a request cut off.
        await client.send(prompt(ROUNDS, "streams first"))
        await client.recv_until(is_model("delta"))
        await client.send(control("last", "abort"))
        await client.recv_until(is_turn_end)
        await client.ws.close()
        return rounds

    for n, round_ in enumerate(run(scenario())):
        assert_aborted(round_, n)
    # A held response ends only when its client leaves: each request made must be closed by its abort.
    assert 1 <= len(provider.chat_requests) <= ROUNDS + 1
    while True:
        provider.disconnected.clear()
        if provider.disconnects >= len(provider.chat_requests):  # counted before the event is set
            break
        assert provider.disconnected.wait(TIMEOUT), (provider.disconnects, len(provider.chat_requests))


def test_an_abort_right_after_a_prompt_over_a_comm_link(server_paced: ServerThread) -> None:
    """A chat view's comm link hands both frames to the same pipeline: the abort is never lost."""
    view = View()
    commlink = link(server_paced, view)
    for n in range(ROUNDS):
        server_paced.call_soon(commlink.command, prompt(n))
        server_paced.call_soon(commlink.command, control(f"a{n}", "abort"))
        view.wait_for(lambda v, n=n: sum(e.get("type") == "end" for e in v.events()) > n)
    events = view.events()
    ends = [e for e in events if e.get("type") == "end"]
    results = [e for e in events if e.get("requestId", "").startswith("a")]
    assert [e["finishReason"] for e in ends] == ["aborted"] * ROUNDS
    assert [(r["ok"], r["message"]) for r in results] == [(True, "turn aborted")] * ROUNDS
    assert sum(e.get("type") == "delta" for e in events) <= 5 * ROUNDS
    server_paced.call_soon(commlink.close)


@pytest.fixture
def server_paced(make_server: MakeServer) -> ServerThread:
    """A server whose builtin model streams 200 tokens a second."""
    return make_server(model=BuiltinModel(tokens_per_second=200), message_burst=BURST)


class LosesOneCancel:
    """A model whose code loses the first cancellation, as ``asyncio.wait_for`` before Python 3.12
    does when the awaited result lands in the same loop step (CPython gh-86296)."""

    name = "loses-one-cancel"

    def __init__(self) -> None:
        self.cancels_lost = 0

    async def stream(self, request: Any) -> Any:
        yield TextChunk(text="thinking")
        try:
            await asyncio.Event().wait()  # never set
        except asyncio.CancelledError:
            self.cancels_lost += 1  # swallowed: the model waits again
        await asyncio.Event().wait()
        yield TextChunk(text="never")


def test_a_stop_the_model_code_loses_still_ends_the_turn(make_server: MakeServer, run: Any) -> None:
    """Stop cancels the answer again while it goes on: the turn ends aborted and the chat goes on."""
    model = LosesOneCancel()
    server = make_server(model=model)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        client = await open_client(server, dialect="envelope")
        await client.recv()
        await client.send(prompt(1, "hello"))
        await client.recv_until(is_model("delta"))
        await client.send(control("a", "abort"))
        end = (await client.recv_until(is_turn_end))[-1]["data"]["event"]
        await client.send(control("s", "get_status"))
        status = (await client.recv_until(is_result("s")))[-1]["data"]["event"]["data"]
        await client.ws.close()
        return end, status

    end, status = run(scenario())
    assert (end["type"], end["finishReason"], end["text"]) == ("end", "aborted", "thinking")
    assert model.cancels_lost == 1  # the first cancel was lost, and the turn ended all the same
    assert status["phase"] == "idle"
