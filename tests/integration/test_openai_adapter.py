"""OpenAICompatModel through the real ``openai`` client against a local fake OpenAI server."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import re
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from llmsock_widget.errors import ModelFailure
from llmsock_widget.models.base import (
    FinishChunk,
    ModelChunk,
    ModelRequest,
    ReasoningChunk,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)
from llmsock_widget.models.openai_compat import ChunkReader, OpenAICompatModel, from_spec
from tests.conftest import TIMEOUT
from tests.fakeopenai import (
    FakeOpenAI,
    Script,
    error,
    hang_after,
    malformed,
    page,
    raw,
    reasoning,
    slow,
    stall,
    text,
    tool_calls,
    truncated,
)

KEY = "sk-test-SECRET-0123456789abcdef"
REQUEST = ModelRequest(messages=({"role": "user", "content": "What is two plus two?"},))
CALC_TOOL = {
    "type": "function",
    "function": {
        "name": "calc",
        "description": "Evaluate an arithmetic expression.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
    },
}
# Short enough to keep timeout tests quick, scaled like every other wait.
CLIENT_TIMEOUT = TIMEOUT / 20


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    """A fake OpenAI server on 127.0.0.1:0, stopped after the test."""
    with FakeOpenAI() as server:
        yield server


def make_model(fake: FakeOpenAI, **settings: Any) -> OpenAICompatModel:
    """Return a model talking to ``fake`` with the test key and no retries unless asked."""
    settings.setdefault("max_retries", 0)
    settings.setdefault("timeout", TIMEOUT)
    return OpenAICompatModel(model="gpt-test", base_url=fake.base_url, api_key=KEY, **settings)


async def collect(
    model: OpenAICompatModel, request: ModelRequest = REQUEST
) -> tuple[list[ModelChunk], ModelFailure | None]:
    """Return the chunks ``model`` streams for ``request`` and the failure that ended them, if any."""
    chunks: list[ModelChunk] = []
    try:
        async for chunk in model.stream(request):
            chunks.append(chunk)
    except ModelFailure as failure:
        return chunks, failure
    finally:
        await model.aclose()  # this loop ends with the test: close its idle connections
    return chunks, None


def stream(run: Any, model: OpenAICompatModel, request: ModelRequest = REQUEST) -> list[ModelChunk]:
    """Return the chunks of a stream that must succeed."""
    chunks, failure = run(collect(model, request))
    assert failure is None, failure
    return chunks  # type: ignore[no-any-return]


def fail(run: Any, model: OpenAICompatModel, request: ModelRequest = REQUEST) -> ModelFailure:
    """Return the failure of a stream that must fail."""
    _, failure = run(collect(model, request))
    assert failure is not None, "the stream should have failed"
    return failure  # type: ignore[no-any-return]


def texts(chunks: list[ModelChunk]) -> list[str]:
    return [c.text for c in chunks if isinstance(c, TextChunk)]


# --- streaming ------------------------------------------------------------------------------------


def test_text_streams_in_order(fake: FakeOpenAI, run: Any) -> None:
    """Content deltas come out as text in order, then usage, and no finish chunk for "stop"."""
    fake.enqueue(text(["Hel", "lo", ", world"]))
    chunks = stream(run, make_model(fake))
    assert "".join(texts(chunks)) == "Hello, world" and all(texts(chunks))
    assert isinstance(chunks[-1], UsageChunk)
    assert not [c for c in chunks if isinstance(c, FinishChunk)]


def sse(*pieces: str) -> str:
    """Return a whole chat-completion event stream: ``pieces`` as content, then a stop and [DONE]."""
    head = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "gpt-test"}
    deltas = [{"content": piece} for piece in pieces]
    events = [{**head, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def test_chunks_that_arrive_together_come_out_merged(fake: FakeOpenAI, run: Any) -> None:
    """A burst (the whole stream in one write, as a fast local server sends it) comes out in a few
    TextChunks, each whole provider chunks: the session and every view handle a batch once, not
    each token.  (The adapter still yields the loop every 64 chunks or millisecond of work.)"""
    pieces = [f"t{i:03d} " for i in range(1000)]
    fake.enqueue(page(200, sse(*pieces), content_type="text/event-stream"))
    got = texts(stream(run, make_model(fake)))
    assert "".join(got) == "".join(pieces)
    assert len(got) <= len(pieces) // 4 and all(len(piece) % 5 == 0 for piece in got)


def test_chunks_that_arrive_apart_stay_apart(fake: FakeOpenAI, run: Any) -> None:
    """A provider that sends token by token (a real model's pace) gets one TextChunk per token."""
    fake.enqueue(slow(["One", " two", " three"], TIMEOUT / 40))
    chunks = stream(run, make_model(fake))
    assert texts(chunks) == ["One", " two", " three"]


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_reasoning_deltas(fake: FakeOpenAI, run: Any, key: str) -> None:
    """Reasoning deltas, ``reasoning_content`` (vLLM) or ``reasoning`` (OpenRouter), are ReasoningChunks."""
    fake.enqueue(reasoning(["Two ", "and two."], key=key) + text(["Four."]))
    chunks = stream(run, make_model(fake))
    thought = [c.text for c in chunks if isinstance(c, ReasoningChunk)]
    first_text = next(i for i, c in enumerate(chunks) if isinstance(c, TextChunk))
    assert "".join(thought) == "Two and two." and all(
        isinstance(c, ReasoningChunk) for c in chunks[:first_text]
    )
    assert "".join(texts(chunks)) == "Four."


def test_tool_call_fragments_are_assembled(fake: FakeOpenAI, run: Any) -> None:
    """Argument JSON split across chunks comes out as one ToolCallChunk with the exact JSON."""
    arguments = '{"expression": "2+2"}'
    fake.enqueue(tool_calls([{"id": "call_1", "name": "calc", "arguments": arguments}], split_into=3))
    chunks = stream(run, make_model(fake))
    assert [c for c in chunks if isinstance(c, ToolCallChunk)] == [
        ToolCallChunk(id="call_1", name="calc", arguments=arguments)
    ]
    assert chunks[-1] == FinishChunk(reason="tool_calls")
    assert sum(1 for c in chunks if isinstance(c, UsageChunk)) == 1


def test_several_tool_calls_after_text(fake: FakeOpenAI, run: Any) -> None:
    """Text then two tool calls in one response: the text streams, both calls come out whole, in order."""
    calls = [
        {"id": "call_a", "name": "calc", "arguments": '{"expression": "6*7"}'},
        {"id": "call_b", "name": "clock", "arguments": '{"timezone": "Europe/Paris"}'},
    ]
    fake.enqueue(text(["Let me check."]) + tool_calls(calls, split_into=4))
    chunks = stream(run, make_model(fake))
    assert "".join(texts(chunks)) == "".join(["Let me check."])
    assert [c for c in chunks if isinstance(c, ToolCallChunk)] == [
        ToolCallChunk(id="call_a", name="calc", arguments='{"expression": "6*7"}'),
        ToolCallChunk(id="call_b", name="clock", arguments='{"timezone": "Europe/Paris"}'),
    ]
    assert json.loads(chunks[2].arguments) == {"timezone": "Europe/Paris"}  # type: ignore[union-attr]
    assert isinstance(chunks[-2], UsageChunk)
    assert chunks[-1] == FinishChunk(reason="tool_calls")


def test_usage_chunk(fake: FakeOpenAI, run: Any) -> None:
    """The final usage chunk maps prompt/completion tokens to input/output tokens, once."""
    fake.enqueue(text(["Four."]).with_usage(11, 22))
    chunks = stream(run, make_model(fake))
    assert [c for c in chunks if isinstance(c, UsageChunk)] == [UsageChunk(input_tokens=11, output_tokens=22)]


def test_finish_reason_length(fake: FakeOpenAI, run: Any) -> None:
    """finish_reason "length" ends the stream with usage then FinishChunk("length")."""
    fake.enqueue(text(["Two", " plus"]).finishing("length"))
    chunks = stream(run, make_model(fake))
    assert "".join(texts(chunks)) == "".join(["Two", " plus"])
    assert chunks[-1] == FinishChunk(reason="length")
    assert isinstance(chunks[-2], UsageChunk)


def test_connection_lost_after_finish_is_not_an_error(fake: FakeOpenAI, run: Any) -> None:
    """A connection dropped after the finish chunk (usage and [DONE] lost) still ends the answer normally."""
    finish = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "gpt-test"}
    finish["choices"] = [{"index": 0, "delta": {}, "finish_reason": "stop"}]  # type: ignore[assignment]
    fake.enqueue(text(["Four."]) + raw(json.dumps(finish)) + Script(ending="close"))
    assert texts(stream(run, make_model(fake))) == ["Four."]


# --- the request ----------------------------------------------------------------------------------


def test_request_body_and_defaults(fake: FakeOpenAI, run: Any) -> None:
    """The request streams with usage, carries the messages, and the default temperature and max_tokens."""
    stream(run, make_model(fake, temperature=0.25, max_tokens=64))
    body = fake.chat_requests[0].body
    assert body["model"] == "gpt-test"
    assert body["messages"] == list(REQUEST.messages)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["max_tokens"]) == (0.25, 64)
    assert "tools" not in body


def test_options_override_defaults(fake: FakeOpenAI, run: Any) -> None:
    """Per-request options temperature and maxTokens override the model's defaults."""
    request = ModelRequest(messages=REQUEST.messages, options={"temperature": 0.9, "maxTokens": 7})
    stream(run, make_model(fake, temperature=0.25, max_tokens=64), request)
    body = fake.chat_requests[0].body
    assert (body["temperature"], body["max_tokens"]) == (0.9, 7)


def test_unset_options_are_omitted(fake: FakeOpenAI, run: Any) -> None:
    """With no defaults and no options, temperature and max_tokens are left to the server."""
    stream(run, make_model(fake))
    body = fake.chat_requests[0].body
    assert "temperature" not in body and "max_tokens" not in body


def test_tools_are_sent(fake: FakeOpenAI, run: Any) -> None:
    """request.tools go out as the request's ``tools``, unchanged."""
    stream(run, make_model(fake), ModelRequest(messages=REQUEST.messages, tools=(CALC_TOOL,)))
    assert fake.chat_requests[0].body["tools"] == [CALC_TOOL]


def test_api_key_is_sent_as_bearer(fake: FakeOpenAI, run: Any) -> None:
    """The API key reaches the server as a Bearer token."""
    stream(run, make_model(fake))
    assert fake.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_placeholder_key_for_a_local_server(fake: FakeOpenAI, run: Any, monkeypatch: Any) -> None:
    """With no key configured, a base_url server gets the placeholder key "not-needed"."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = OpenAICompatModel(model="local", base_url=fake.base_url, max_retries=0)
    stream(run, model)
    assert fake.chat_requests[0].headers["authorization"] == "Bearer not-needed"


def test_no_key_for_openai_itself_is_refused(monkeypatch: Any) -> None:
    """With no key and no base_url, construction fails with a clear message."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="no OpenAI API key is configured"):
        OpenAICompatModel(model="gpt-4o-mini")


def test_from_spec() -> None:
    """from_spec reads "openai:<model>" (the name may hold colons) and refuses other specs."""
    model = from_spec("openai:qwen2.5:7b", base_url="http://127.0.0.1:1/v1", api_key=KEY, temperature=0.5)
    assert (model.name, model.model, model.temperature) == ("openai:qwen2.5:7b", "qwen2.5:7b", 0.5)
    for spec in ("openai:", "gpt-4o", "builtin"):
        with pytest.raises(ValueError):
            from_spec(spec, api_key=KEY)


# --- faults ---------------------------------------------------------------------------------------


def test_401_is_auth_error(fake: FakeOpenAI, run: Any) -> None:
    """HTTP 401 becomes a recoverable auth_error that keeps the provider's words, with the key masked."""
    fake.enqueue(error(401, message=f"Incorrect API key provided: {KEY}"))
    failure = fail(run, make_model(fake))
    assert (failure.code, failure.recoverable) == ("auth_error", True)
    assert "refused the API key" in failure.message
    assert failure.message.endswith("(HTTP 401): Incorrect API key provided: ***")
    assert KEY not in failure.message


def test_403_is_auth_error(fake: FakeOpenAI, run: Any) -> None:
    """HTTP 403 is also an auth_error."""
    fake.enqueue(error(403))
    assert fail(run, make_model(fake)).code == "auth_error"


def test_404_is_model_not_found(fake: FakeOpenAI, run: Any) -> None:
    """HTTP 404 becomes model_not_found naming the model."""
    fake.enqueue(error(404, message="The model `gpt-test` does not exist"))
    failure = fail(run, make_model(fake))
    assert failure.code == "model_not_found"
    assert "'gpt-test'" in failure.message


def test_429_is_rate_limited_with_retry_after(fake: FakeOpenAI, run: Any) -> None:
    """HTTP 429 becomes rate_limited mentioning Retry-After's seconds; with no retries, one request."""
    fake.enqueue(error(429, headers={"Retry-After": "7"}))
    failure = fail(run, make_model(fake))
    assert failure.code == "rate_limited"
    assert "7 seconds" in failure.message
    assert len(fake.chat_requests) == 1


def test_429_retry_after_as_a_date(fake: FakeOpenAI, run: Any) -> None:
    """A Retry-After given as an HTTP date is reported as the seconds until then."""
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    fake.enqueue(error(429, headers={"Retry-After": when}))
    failure = fail(run, make_model(fake))
    assert re.search(r"retry after 1(19|20) seconds", failure.message), failure.message


def test_429_retries_at_most_max_retries(fake: FakeOpenAI, run: Any) -> None:
    """Repeated 429s are retried by the client max_retries times, then reported (1 + max_retries requests)."""
    limited = error(429, headers={"retry-after-ms": "1"})
    fake.enqueue(limited, limited, limited, text(["never sent"]))
    failure = fail(run, make_model(fake, max_retries=2))
    assert failure.code == "rate_limited"
    assert len(fake.chat_requests) == 3


def test_retry_before_first_token_succeeds(fake: FakeOpenAI, run: Any) -> None:
    """A 500 on the initial request is retried by the client; the second request's answer streams."""
    fake.enqueue(error(500, headers={"retry-after-ms": "1"}), text(["Four."]))
    chunks = stream(run, make_model(fake, max_retries=2))
    assert "".join(texts(chunks)) == "".join(["Four."])
    assert len(fake.chat_requests) == 2


def test_5xx_is_provider_error(fake: FakeOpenAI, run: Any) -> None:
    """HTTP 503 becomes provider_error with the status code."""
    fake.enqueue(error(503))
    failure = fail(run, make_model(fake))
    assert failure.code == "provider_error"
    assert "503" in failure.message


def test_400_says_why(fake: FakeOpenAI, run: Any) -> None:
    """HTTP 400 becomes provider_error quoting the provider's own error message."""
    fake.enqueue(error(400, message="This model's maximum context length is 8192 tokens."))
    failure = fail(run, make_model(fake))
    assert failure.code == "provider_error"
    assert "maximum context length is 8192 tokens" in failure.message


def test_error_inside_the_stream_is_provider_error(fake: FakeOpenAI, run: Any) -> None:
    """An ``{"error": ...}`` object sent mid-stream becomes provider_error with its message."""
    fake.enqueue(text(["Fo"]) + raw(json.dumps({"error": {"message": "overloaded", "type": "server_error"}})))
    chunks, failure = run(collect(make_model(fake)))
    assert "".join(texts(chunks)) == "".join(["Fo"])
    assert failure is not None and failure.code == "provider_error"
    assert "overloaded" in failure.message


def test_server_silent_past_timeout_is_timeout(fake: FakeOpenAI, run: Any) -> None:
    """A server that sends no headers within ``timeout`` gives timeout; the server sees the client leave."""
    fake.enqueue(stall())
    failure = fail(run, make_model(fake, timeout=CLIENT_TIMEOUT))
    assert failure.code == "timeout"
    assert len(fake.chat_requests) == 1
    assert fake.disconnected.wait(TIMEOUT)


def test_stream_silent_past_timeout_is_timeout_without_retry(fake: FakeOpenAI, run: Any) -> None:
    """A stream silent after a token gives timeout and is not retried, although retries are allowed."""
    fake.enqueue(hang_after(1), text(["must not be requested"]))
    chunks, failure = run(collect(make_model(fake, timeout=CLIENT_TIMEOUT, max_retries=2)))
    assert "".join(texts(chunks)) == "".join(["tok0 "])
    assert failure is not None and failure.code == "timeout"
    assert len(fake.chat_requests) == 1


def test_connection_refused_is_connection_error(run: Any) -> None:
    """A server that is not listening gives connection_error naming the host, not the key."""
    with FakeOpenAI() as gone:
        base_url = gone.base_url
    model = OpenAICompatModel(model="gpt-test", base_url=base_url, api_key=KEY, max_retries=0)
    failure = fail(run, model)
    assert failure.code == "connection_error"
    assert base_url.split("//")[1].split("/")[0] in failure.message


def test_malformed_chunk_is_bad_response(fake: FakeOpenAI, run: Any) -> None:
    """A data line that is not JSON gives bad_response after the text before it."""
    fake.enqueue(malformed(["Fo"]))
    chunks, failure = run(collect(make_model(fake)))
    assert "".join(texts(chunks)) == "".join(["Fo"])
    assert failure is not None and failure.code == "bad_response"


def test_chunk_without_choices_is_bad_response(fake: FakeOpenAI, run: Any) -> None:
    """A JSON chunk with no ``choices`` gives bad_response."""
    fake.enqueue(raw(json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m"})))
    assert fail(run, make_model(fake)).code == "bad_response"


@pytest.mark.parametrize("clean", [False, True], ids=["dropped", "clean-eof"])
def test_truncated_stream_is_stream_ended_without_retry(fake: FakeOpenAI, run: Any, clean: bool) -> None:
    """A stream cut before finish_reason gives stream_ended after its tokens, with exactly one request."""
    fake.enqueue(truncated(2, clean=clean), text(["must not be requested"]))
    chunks, failure = run(collect(make_model(fake, max_retries=2)))
    assert "".join(texts(chunks)) == "".join(["tok0 ", "tok1 "])
    assert failure is not None and (failure.code, failure.recoverable) == ("stream_ended", True)
    assert len(fake.chat_requests) == 1


def test_abort_closes_the_connection(fake: FakeOpenAI, run: Any) -> None:
    """Cancelling the consuming task mid-stream closes the HTTP response: the server sees the disconnect."""
    fake.enqueue(hang_after(2))
    model = make_model(fake)

    async def scenario() -> list[ModelChunk]:
        got: list[ModelChunk] = []
        two = asyncio.Event()

        async def consume() -> None:
            async for chunk in model.stream(REQUEST):
                got.append(chunk)
                if "".join(texts(got)) == "tok0 tok1 ":  # maybe merged into one chunk
                    two.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(two.wait(), TIMEOUT)
        assert not fake.disconnected.is_set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(fake.disconnected.wait, TIMEOUT)
        await model.aclose()
        return got

    assert "".join(texts(run(scenario()))) == "tok0 tok1 "
    assert len(fake.chat_requests) == 1


# --- secrets --------------------------------------------------------------------------------------

FAULTS = {
    "401": error(401, message=f"Incorrect API key provided: {KEY}"),
    "403": error(403, message=f"key {KEY} may not use this model"),
    "404": error(404, message=f"no model for key {KEY}"),
    "400": error(400, message=f"bad request from Bearer {KEY}"),
    "429": error(429, message=f"slow down {KEY}", headers={"Retry-After": "3"}),
    "500": error(500, message=f"crashed handling {KEY}"),
    "in-stream": raw(json.dumps({"error": {"message": f"your key {KEY} was revoked"}})),
    "malformed": raw(f"not json {KEY}"),
    "truncated": truncated(1),
}


@pytest.mark.parametrize("script", FAULTS.values(), ids=FAULTS.keys())
def test_key_never_in_errors_or_logs(fake: FakeOpenAI, run: Any, caplog: Any, script: Script) -> None:
    """Whatever the server echoes, the key is in no failure message, traceback, log record, repr or name."""
    fake.enqueue(script)
    model = make_model(fake)
    with caplog.at_level(logging.DEBUG):
        failure = fail(run, model)
    shown = [
        failure.message,
        str(failure),
        repr(failure),
        "".join(traceback.format_exception(failure)),
        repr(model),
        model.name,
        caplog.text,
    ]
    assert not [text_ for text_ in shown if KEY in text_]
    assert fake.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"


# --- the chunk reader, pure -----------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """Return a decoded chat.completion.chunk with one choice."""
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {"id": "x", "object": "chat.completion.chunk", "choices": [choice], **extra}


def test_reader_stop_with_tool_calls_counts_as_tool_calls() -> None:
    """Servers that finish tool calls with "stop" still get the calls and FinishChunk("tool_calls")."""
    reader = ChunkReader()
    call = {"id": "c", "type": "function", "function": {"name": "calc", "arguments": "{}"}}
    assert reader.feed(chunk({"tool_calls": [call]})) == []  # no index: position 0 stands in
    assert reader.feed(chunk(finish="stop")) == [ToolCallChunk(id="c", name="calc", arguments="{}")]
    assert reader.end() == [FinishChunk(reason="tool_calls")]


def test_reader_drops_calls_cut_by_length() -> None:
    """A tool call cut off by the token limit is not returned; the finish is "length"."""
    reader = ChunkReader()
    reader.feed(
        chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "calc", "arguments": '{"e'}}]})
    )
    assert reader.feed(chunk(finish="length")) == []
    assert reader.end() == [FinishChunk(reason="length")]


def test_reader_reads_one_reasoning_field_and_last_usage() -> None:
    """Both reasoning fields in one delta give one ReasoningChunk; repeated usage gives the last, once."""
    reader = ChunkReader()
    both = {"reasoning_content": "hmm", "reasoning": "hmm"}
    assert reader.feed(chunk(both, usage={"prompt_tokens": 3, "completion_tokens": 1})) == [
        ReasoningChunk(text="hmm")
    ]
    reader.feed(chunk({"content": "ok"}, finish="stop", usage={"prompt_tokens": 3, "completion_tokens": 2}))
    assert reader.end() == [UsageChunk(input_tokens=3, output_tokens=2)]


def test_reader_refuses_bad_shapes() -> None:
    """Non-object chunks, chunks without a choices list, and nameless tool calls are bad_response."""
    for data in ([1, 2], {"id": "x"}, {"choices": "nope"}, chunk(delta="text")):  # type: ignore[arg-type]
        with pytest.raises(ModelFailure) as caught:
            ChunkReader().feed(data)
        assert caught.value.code == "bad_response"
    reader = ChunkReader()
    reader.feed(chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"arguments": "{}"}}]}))
    with pytest.raises(ModelFailure, match="no function name"):
        reader.feed(chunk(finish="tool_calls"))


def test_reader_without_finish_is_stream_ended() -> None:
    """Ending the reader before any finish_reason raises stream_ended."""
    reader = ChunkReader()
    reader.feed(chunk({"content": "Fo"}))
    with pytest.raises(ModelFailure) as caught:
        reader.end()
    assert caught.value.code == "stream_ended"
