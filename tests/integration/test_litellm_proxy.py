"""LiteLLM's proxy, a real third-party OpenAI-compatible server, behind the whole stack.

The proxy (tests/litellm_proxy.py) answers some models from its own mock mode and forwards one
to the fake provider, for what mock mode cannot stream (tool calls) and to see the request it
passes on.  Every test goes WebSocket client -> llmsock -> real ``openai`` client -> LiteLLM.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmsock_widget.server.thread import ServerThread
from tests import fakeopenai
from tests.conftest import TIMEOUT
from tests.fakeopenai import FakeOpenAI
from tests.litellm_proxy import LiteLLMProxy, find_executable, forward, mock

from .conftest import MakeServer, is_turn_end, open_client

EXECUTABLE = find_executable()
pytestmark = pytest.mark.skipif(
    EXECUTABLE is None,
    reason="LiteLLM's proxy is not installed: scripts/test.sh makes .venv-litellm (or set LLMSOCK_LITELLM)",
)

ANSWER = "LiteLLM's mock answers three characters a chunk: all of them arrive, in order."
JINJA = "tools param requires --jinja flag"
STALL_SECONDS = 60  # the slow model's delay before its first byte: far beyond the client's timeout
CLIENT_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    """The fake provider the proxy's ``upstream`` model forwards to."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def proxy(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteLLMProxy]:
    """One LiteLLM proxy for the module: its models are fixed, so the tests cannot disturb each other."""
    assert EXECUTABLE is not None
    forwarded = forward("upstream", upstream.base_url)
    forwarded["litellm_params"]["max_retries"] = 0  # LiteLLM's own client: one attempt per request
    models = [
        mock("mock-text", mock_response=ANSWER),
        mock("mock-400", mock_response=f"Exception: content_filter_policy: {JINJA}"),
        mock("mock-500", mock_response="litellm.InternalServerError"),
        mock("mock-429", mock_response="litellm.RateLimitError"),
        mock("mock-529", mock_response="Exception: mock_streaming_error"),  # Anthropic's "overloaded"
        mock("mock-slow", mock_response="too late", mock_delay=STALL_SECONDS),
        forwarded,
    ]
    with LiteLLMProxy(EXECUTABLE, models, Path(tmp_path_factory.mktemp("litellm"))) as started:
        print(f"LiteLLM proxy answered after {started.started_in:.1f} s")
        yield started


def llmsock(make_server: MakeServer, proxy: LiteLLMProxy, model: str, **options: Any) -> ServerThread:
    """Return a server whose model is ``model`` on the proxy, through the real openai client."""
    settings = {"base_url": proxy.base_url, "api_key": proxy.master_key, "max_retries": 0, **options}
    return make_server(model=f"openai:{model}", model_options=settings)


async def turn(server: ServerThread, prompt: str, **options: Any) -> list[dict[str, Any]]:
    """Send one prompt; return every frame until the turn ends."""
    client = await open_client(server, dialect="envelope")
    await client.recv()
    await client.send({"type": "user_message", "id": "u1", "data": {"text": prompt, "options": options}})
    frames = await client.recv_until(is_turn_end)
    await client.ws.close()
    return frames


def events(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the model events among ``frames``, in order."""
    return [m["data"]["event"] for m in frames if m.get("name") == "interaction.model"]


def test_a_streamed_answer_arrives_whole(make_server: MakeServer, proxy: LiteLLMProxy, run: Any) -> None:
    """Every chunk LiteLLM streams reaches the client in order, whole; the end carries the text and usage."""
    frames = run(turn(llmsock(make_server, proxy, "mock-text"), "hello"))
    seen = events(frames)
    deltas = [e["text"] for e in seen if e["type"] == "delta"]
    assert "".join(deltas) == ANSWER
    # Chunks that arrived together may go on as one delta, never split: each delta is whole
    # three-character chunks (the last chunk may be shorter).
    assert all(len(piece) % 3 == 0 for piece in deltas[:-1]) and deltas[-1]
    end = seen[-1]
    assert end["type"] == "end" and end["text"] == ANSWER
    usage = next(e for e in seen if e["type"] == "usage")
    assert usage["inputTokens"] > 0 and usage["outputTokens"] > 0
    assert proxy.master_key not in json.dumps(frames)


@pytest.mark.parametrize(
    ("model", "code", "text"),
    [
        ("mock-400", "provider_error", JINJA),
        ("mock-500", "provider_error", "this is a mock internal server error"),
        ("mock-429", "rate_limited", "this is a mock rate limit error"),
        ("mock-529", "provider_error", "This is a mock error raised mid-stream"),
    ],
    ids=["400", "500", "429", "529"],
)
def test_an_error_keeps_the_providers_text(
    make_server: MakeServer, proxy: LiteLLMProxy, run: Any, model: str, code: str, text: str
) -> None:
    """The proxy's HTTP error ends the turn with its code and its own words, and no key."""
    frames = run(turn(llmsock(make_server, proxy, model), "hello"))
    error = events(frames)[-1]
    assert error["type"] == "error" and error["code"] == code
    assert text in error["message"]
    assert proxy.master_key not in json.dumps(frames)


def test_an_upstream_5xx_keeps_its_text_through_the_proxy(
    make_server: MakeServer, proxy: LiteLLMProxy, upstream: FakeOpenAI, run: Any
) -> None:
    """A server behind LiteLLM refuses with HTTP 500: its words reach the user through both."""
    upstream.enqueue(fakeopenai.error(500, message=JINJA))
    frames = run(turn(llmsock(make_server, proxy, "upstream"), "hello"))
    error = events(frames)[-1]
    assert error["type"] == "error" and error["code"] == "provider_error"
    assert JINJA in error["message"]


def test_tools_on_go_out_and_round_trip(
    make_server: MakeServer, proxy: LiteLLMProxy, upstream: FakeOpenAI, run: Any
) -> None:
    """With a tool enabled, the schema reaches the server and a streamed call runs and goes back."""
    before = len(upstream.chat_requests)
    call = {"id": "call_l", "name": "calculate", "arguments": '{"expression": "6*7"}'}
    upstream.enqueue(fakeopenai.tool_calls([call], split_into=3), fakeopenai.text(["It is ", "42."]))
    seen = events(run(turn(llmsock(make_server, proxy, "upstream"), "6*7?", tools=["calculate"])))
    assert next(e["toolResult"] for e in seen if "toolResult" in e)["result"] == 42
    assert seen[-1]["type"] == "end" and seen[-1]["text"] == "It is 42."
    first, second = (r.body for r in upstream.chat_requests[before:])
    assert [t["function"]["name"] for t in first["tools"]] == ["calculate"]
    assert second["messages"][-1]["role"] == "tool" and second["messages"][-1]["content"] == "42"


def test_tools_off_send_no_tools(
    make_server: MakeServer, proxy: LiteLLMProxy, upstream: FakeOpenAI, run: Any
) -> None:
    """With no tool enabled, the request LiteLLM passes on has no ``tools`` at all."""
    before = len(upstream.chat_requests)
    upstream.enqueue(fakeopenai.text(["no ", "tools"]))
    seen = events(run(turn(llmsock(make_server, proxy, "upstream"), "hello", tools=[])))
    assert seen[-1]["type"] == "end" and seen[-1]["text"] == "no tools"
    (request,) = (r.body for r in upstream.chat_requests[before:])
    assert "tools" not in request


def test_tools_go_out_only_where_enabled(
    make_server: MakeServer, proxy: LiteLLMProxy, upstream: FakeOpenAI, run: Any
) -> None:
    """A prompt that does not choose gets the model's setting: no tools for an OpenAI-compatible
    model unless it was set up with tools; then every registered tool."""
    before = len(upstream.chat_requests)
    upstream.enqueue(fakeopenai.text(["plain"]), fakeopenai.text(["with tools"]))
    plain = events(run(turn(llmsock(make_server, proxy, "upstream"), "hello")))
    enabled = events(run(turn(llmsock(make_server, proxy, "upstream", tools=True), "hello")))
    assert (plain[-1]["text"], enabled[-1]["text"]) == ("plain", "with tools")
    first, second = (r.body for r in upstream.chat_requests[before:])
    assert "tools" not in first
    assert [t["function"]["name"] for t in second["tools"]] == ["get_current_time", "calculate"]


def test_a_server_that_refuses_tools_is_named_with_the_fix(
    make_server: MakeServer, proxy: LiteLLMProxy, upstream: FakeOpenAI, run: Any
) -> None:
    """llama-server without --jinja refuses a request with tools (HTTP 500, through the proxy): one
    error says the tools were refused and how to chat without them; without tools the chat works."""
    upstream.enqueue(fakeopenai.error(500, message=JINJA), fakeopenai.text(["fine"]))
    server = llmsock(make_server, proxy, "upstream", tools=True)
    refused = events(run(turn(server, "hello")))[-1]
    assert refused["type"] == "error" and refused["code"] == "provider_error"
    assert "refused the tools offered with this prompt" in refused["message"]
    assert JINJA in refused["message"] and "--no-tools" in refused["message"]
    answered = events(run(turn(server, "hello", tools=False)))[-1]
    assert answered["type"] == "end" and answered["text"] == "fine"


def test_a_stalled_answer_times_out(make_server: MakeServer, proxy: LiteLLMProxy, run: Any) -> None:
    """The proxy holds its answer back: the turn ends with a timeout error soon after the limit."""
    server = llmsock(make_server, proxy, "mock-slow", timeout=CLIENT_TIMEOUT)
    started = time.monotonic()
    error = events(run(turn(server, "hello")))[-1]
    waited = time.monotonic() - started
    assert error["type"] == "error" and error["code"] == "timeout"
    assert CLIENT_TIMEOUT <= waited < CLIENT_TIMEOUT + TIMEOUT
