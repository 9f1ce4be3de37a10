"""In the typed dialect every prompt ends with ``llm_complete``, then its ``error`` if it failed.

Seed 004's client (Cantika23/aibase's ``WSClient``) settles a prompt's promise on the first
``llm_complete`` or ``error`` with its id, but only an ``llm_complete`` ends the answer on its
page.  So a model or provider error and a refused prompt each give ``llm_complete`` (marked
``finishReason: "error"``, with the partial text) and then the ``error``, both with the prompt's
id; the next prompt is a turn of its own.  Error replies carry seed 004's code in ``code`` and
llmsock's in ``llmsockCode``.  Options may be flat in ``data``, as that client sends them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from llmsock_widget.client import Answer
from llmsock_widget.client import Client as PyClient
from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread
from tests import fakeopenai
from tests.conftest import TIMEOUT
from tests.fakeopenai import FakeOpenAI

from .conftest import Client, MakeServer, open_client


async def typed(server: ServerThread, session: str | None = None) -> Client:
    """Connect in the typed dialect and read the welcome."""
    client = await open_client(server, session=session, dialect="typed")
    await client.recv()
    return client


def prompt(message_id: str, text: str, **data: Any) -> dict[str, Any]:
    """Return a seed-004 ``user_message`` as its client sends it (options flat in ``data``)."""
    return {"type": "user_message", "id": message_id, "data": {"text": text, **data}}


def control(request_id: str, action: str) -> dict[str, Any]:
    """Return a seed-004 ``control`` message."""
    return {"type": "control", "id": request_id, "data": {"type": action}}


def of(kind: str, message_id: str) -> Any:
    """Return a predicate for a message of ``kind`` with id ``message_id``."""
    return lambda m: m.get("type") == kind and m.get("id") == message_id


def answer_of(messages: list[dict[str, Any]], message_id: str) -> list[dict[str, Any]]:
    """Return the frames of one prompt's turn: those carrying its id."""
    return [m for m in messages if m.get("id") == message_id]


def chunks(messages: list[dict[str, Any]]) -> str:
    """Return the text the ``llm_chunk`` frames among ``messages`` add up to."""
    return "".join(m["data"]["chunk"] for m in messages if m["type"] == "llm_chunk")


def assert_failed_end(turn: list[dict[str, Any]], code: str, text: str) -> dict[str, Any]:
    """Assert the turn ends with llm_complete (marked, ``text`` so far) then the error; return the error."""
    assert [m["type"] for m in turn[-2:]] == ["llm_complete", "error"], [m["type"] for m in turn]
    complete, error = turn[-2:]
    assert complete["data"]["finishReason"] == "error" and complete["data"]["aborted"] is False
    assert complete["data"]["fullText"] == text
    assert complete["data"]["error"]["code"] == error["data"]["code"] == code
    assert complete["data"]["error"]["message"] == error["data"]["message"] and error["data"]["message"]
    assert [m["type"] for m in turn].count("llm_complete") == 1
    return error


# -- model and provider errors ------------------------------------------------------------------


def test_model_error_sends_llm_complete_then_error_to_every_connection(server: ServerThread, run) -> None:
    """``/error 2`` streams two tokens and fails: both connections get llm_complete, then error."""

    async def scenario() -> tuple[list[dict], list[dict], list[dict]]:
        a, b = await typed(server, "fails"), await typed(server, "fails")
        await a.send(prompt("u1", "/error 2"))
        seen_a = await a.recv_until(of("error", "u1"))
        seen_b = await b.recv_until(of("error", "u1"))
        await b.ws.close()  # before the next turn: a client that stops reading makes its close wait
        await a.send(prompt("u2", "hello again"))
        second = await a.recv_until(of("llm_complete", "u2"))
        await a.ws.close()
        return seen_a, seen_b, second

    seen_a, seen_b, second = run(scenario())
    for seen in (seen_a, seen_b):
        turn = answer_of(seen, "u1")
        partial = chunks(turn)
        assert partial  # two tokens streamed before the failure
        error = assert_failed_end(turn, "model_error", partial)
        assert error["data"]["fullText"] == partial and "failed on purpose" in error["data"]["message"]
        complete = turn[-2]
        # The event is the error: it has the sequence; the llm_complete before it has none.
        assert "sequence" not in complete["metadata"] and error["metadata"]["sequence"] >= 1
        assert complete["metadata"]["turnId"] == error["metadata"]["turnId"]
    # The next answer is a turn of its own: its frames carry its id, and u1 has no frame after its error.
    turn = answer_of(second, "u2")
    assert turn[0]["type"] == "user_message" and turn[-1]["type"] == "llm_complete"
    assert turn[-1]["data"]["finishReason"] == "stop" and turn[-1]["data"]["fullText"] == chunks(turn)
    assert "hello again" in turn[-1]["data"]["fullText"]
    assert not answer_of(second, "u1")


@pytest.fixture
def provider() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def provider_server(provider: FakeOpenAI, make_server: MakeServer) -> ServerThread:
    """A server whose model is the OpenAI-compatible adapter talking to the fake provider on loopback."""
    return make_server(
        model="openai:test-model",
        model_options={"base_url": provider.base_url, "api_key": "sk-test", "max_retries": 0},
    )


@pytest.mark.parametrize(
    ("script", "code", "partial"),
    [
        (fakeopenai.error(status=429, headers={"Retry-After": "7"}), "rate_limited", ""),
        (fakeopenai.error(status=503), "provider_error", ""),
        (
            fakeopenai.text(["Hal", "f an ", "answer"]) + fakeopenai.truncated(0),
            "stream_ended",
            "Half an answer",
        ),
    ],
    ids=["429", "503", "cut-mid-answer"],
)
def test_provider_error_sends_llm_complete_then_error(
    provider_server: ServerThread,
    provider: FakeOpenAI,
    run,
    script: fakeopenai.Script,
    code: str,
    partial: str,
) -> None:
    """A provider failure: llm_complete (the partial text) then error; the next prompt is a new turn."""
    provider.enqueue(script, fakeopenai.text(["still ", "here"]))

    async def scenario() -> list[dict]:
        client = await typed(provider_server)
        await client.send(prompt("p1", "hello"))
        seen = await client.recv_until(of("error", "p1"))
        await client.send(prompt("p2", "again"))
        seen += await client.recv_until(of("llm_complete", "p2"))
        await client.ws.close()
        return seen

    seen = run(scenario())
    turn = answer_of(seen, "p1")
    error = assert_failed_end(turn, code, partial)
    assert chunks(turn) == partial and error["data"]["fullText"] == partial
    assert error["data"]["recoverable"] is True
    second = answer_of(seen, "p2")
    assert second[-1]["data"]["fullText"] == chunks(second) == "still here"
    assert second[-1]["data"]["finishReason"] == "stop"


# -- refused prompts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (prompt("e1", "   "), "empty prompt"),
        (prompt("e1", "hi", maxTokens=0), "data.maxTokens must be an integer from 1 to 1000000"),
        (prompt("e1", "hi", options={"temperature": 9}), "options.temperature must be a number from 0 to 2"),
    ],
    ids=["empty", "flat-option-out-of-range", "nested-option-out-of-range"],
)
def test_refused_prompt_sends_llm_complete_then_error(
    server: ServerThread, run, frame: dict[str, Any], message: str
) -> None:
    """A prompt the server refuses still ends: llm_complete (no text) then error, both with its id."""

    async def scenario() -> tuple[list[dict], list[dict]]:
        client = await typed(server)
        await client.send(frame)
        refused = [await client.recv(), await client.recv()]
        await client.send(prompt("ok", "still here?"))
        after = await client.recv_until(of("llm_complete", "ok"))
        await client.ws.close()
        return refused, after

    refused, after = run(scenario())
    assert [m["id"] for m in refused] == ["e1", "e1"]
    error = assert_failed_end(refused, "INVALID_MESSAGE", "")
    assert error["data"]["llmsockCode"] == "invalid_message" and error["data"]["message"] == message
    assert refused[0]["data"]["error"]["llmsockCode"] == "invalid_message"
    assert "sequence" not in error["metadata"]  # a reply, not a session event
    assert answer_of(after, "ok")[-1]["data"]["fullText"].find("still here?") >= 0
    assert not answer_of(after, "e1")


def test_queue_full_refusal_and_refused_control_carry_seed_004_codes(make_server: MakeServer, run) -> None:
    """Queue full: llm_complete then PROCESSING_ERROR for the prompt; a refused control: CONTROL_ERROR."""
    server = make_server(model=BuiltinModel(tokens_per_second=None), max_queue=1)

    async def scenario() -> tuple[list[dict], list[dict], list[dict]]:
        client = await typed(server)
        await client.send(prompt("h1", "/hold 2"))  # streams two tokens, then holds until aborted
        await client.recv_until(lambda m: m["type"] == "llm_chunk" and m["id"] == "h1")
        await client.send(prompt("q1", "wait for me"))
        await client.recv_until(lambda m: m["type"] == "diagnostic" and m["data"]["code"] == "queued")
        await client.send(prompt("q2", "no room for me"))
        refused = await client.recv_until(of("error", "q2"))
        await client.send(control("c1", "clear_history"))
        cleared = await client.recv_until(of("error", "c1"))
        await client.send(control("c2", "abort"))
        rest = await client.recv_until(of("llm_complete", "q1"))
        await client.ws.close()
        return refused, cleared, rest

    refused, cleared, rest = run(scenario())
    turn = answer_of(refused, "q2")
    error = assert_failed_end(turn, "PROCESSING_ERROR", "")
    assert (
        error["data"]["llmsockCode"] == "queue_full"
        and "queue of this session is full" in error["data"]["message"]
    )
    assert (
        cleared[-1]["data"]["code"] == "CONTROL_ERROR"
        and cleared[-1]["data"]["llmsockCode"] == "invalid_request"
    )
    assert not answer_of(cleared, "c1")[:-1]  # a refused control ends no turn: no llm_complete for it
    held = answer_of(rest, "h1")
    assert held[-1]["type"] == "llm_complete" and held[-1]["data"]["finishReason"] == "aborted"
    queued = answer_of(rest, "q1")
    assert queued[0]["type"] == "user_message" and queued[-1]["data"]["finishReason"] == "stop"
    assert "wait for me" in queued[-1]["data"]["fullText"]
    assert not answer_of(rest, "q2")  # the refused prompt never ran


@pytest.mark.parametrize(
    ("frame", "request_id", "code", "ours"),
    [
        ("{not json", "error", "INVALID_MESSAGE", "invalid_message"),
        (
            {"type": "user_message", "id": "m1", "data": {"text": 5}},
            "m1",
            "INVALID_MESSAGE",
            "invalid_message",
        ),
        ({"type": "shout", "id": "x1", "data": {}}, "x1", "UNKNOWN_MESSAGE_TYPE", "unknown_type"),
        (
            {"type": "control", "id": "c1", "data": {"type": "explode"}},
            "c1",
            "UNKNOWN_CONTROL",
            "unknown_type",
        ),
    ],
    ids=["not-json", "text-not-a-string", "unknown-type", "unknown-control"],
)
def test_error_replies_carry_the_code_seed_004_sends(
    server: ServerThread, run, frame: Any, request_id: str, code: str, ours: str
) -> None:
    """A bad frame gets seed 004's code in ``code`` (its client shows it), llmsock's in ``llmsockCode``."""

    async def scenario() -> dict:
        client = await typed(server)
        await client.send(frame)
        error = (await client.recv_until(lambda m: m["type"] == "error"))[-1]
        await client.ws.close()
        return error

    error = run(scenario())
    assert error["id"] == request_id
    assert error["data"]["code"] == code and error["data"]["llmsockCode"] == ours
    assert error["data"]["recoverable"] is True and error["data"]["message"]


# -- options flat in data -----------------------------------------------------------------------------


def test_flat_options_reach_the_builtin_model(server: ServerThread, run) -> None:
    """``maxTokens`` flat in data caps the answer, as it does in data.options."""

    async def scenario() -> list[dict]:
        client = await typed(server)
        await client.send(prompt("u1", "tell me a long story", maxTokens=7))
        seen = await client.recv_until(of("llm_complete", "u1"))
        await client.ws.close()
        return seen

    seen = run(scenario())
    assert seen[-1]["data"]["finishReason"] == "length" and seen[-1]["data"]["usage"]["outputTokens"] == 7
    echo = next(m for m in seen if m["type"] == "user_message")
    assert echo["data"]["options"] == {"maxTokens": 7}


def test_flat_options_reach_the_provider(provider_server: ServerThread, provider: FakeOpenAI, run) -> None:
    """The provider's request has the flat options; data.options wins for an option given in both places."""

    async def scenario() -> None:
        client = await typed(provider_server)
        await client.send(prompt("u1", "hi", temperature=0.3, maxTokens=5))
        await client.recv_until(of("llm_complete", "u1"))
        await client.send(prompt("u2", "hi", temperature=0.3, maxTokens=5, options={"temperature": 1.5}))
        await client.recv_until(of("llm_complete", "u2"))
        await client.ws.close()

    run(scenario())
    assert provider.wait_for_requests(2, TIMEOUT)
    first, second = (r.body for r in provider.chat_requests)
    assert first["temperature"] == 0.3 and first["max_tokens"] == 5
    assert second["temperature"] == 1.5 and second["max_tokens"] == 5


# -- llmsock's own Python client -----------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["typed", "envelope"])
def test_python_client_ends_each_turn_once_with_the_error_and_the_partial_text(
    server: ServerThread, run, dialect: str
) -> None:
    """ask(), either dialect: a failed turn keeps its partial text and its error; the next answer is apart."""

    async def scenario() -> tuple[Answer, Answer, Answer]:
        client = PyClient(server.url, token=server.token, dialect=dialect, open_timeout=TIMEOUT)  # type: ignore[arg-type]
        async with client:
            failed = await client.ask("/error 2", timeout=TIMEOUT)
            refused = await client.ask("hi", timeout=TIMEOUT, maxTokens=0)
            fine = await client.ask("hello again", timeout=TIMEOUT)
        return failed, refused, fine

    failed, refused, fine = run(scenario())
    assert failed.finish_reason == "error" and failed.text  # the two tokens before the failure
    assert (
        failed.error is not None and failed.error.startswith("model_error: ") and "on purpose" in failed.error
    )
    assert refused.finish_reason == "error" and refused.text == ""
    assert refused.error == "invalid_message: options.maxTokens must be an integer from 1 to 1000000"
    assert fine.finish_reason == "stop" and fine.text.startswith('You said: "hello again"')
