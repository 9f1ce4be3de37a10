"""The model's own HTTP transport for plain-HTTP servers: kept connections, dropped ones, proxies.

Against the fake OpenAI server (Python's own HTTP/1.1 server, keep-alive on); LiteLLM's proxy
(uvicorn) is read through the same transport in test_litellm_proxy.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from llmsock_widget.errors import ModelFailure
from llmsock_widget.models.base import ModelRequest, TextChunk
from llmsock_widget.models.openai_compat import OpenAICompatModel
from llmsock_widget.models.openai_transport import Http1Transport, mounts
from tests.conftest import TIMEOUT
from tests.fakeopenai import FakeOpenAI, dropped, stall, text

REQUEST = ModelRequest(messages=({"role": "user", "content": "Hi"},))


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def _model(fake: FakeOpenAI) -> OpenAICompatModel:
    # No retries of the client's own: what is seen is the transport's doing.
    return OpenAICompatModel(
        model="m", base_url=fake.base_url, api_key="sk-test", max_retries=0, timeout=TIMEOUT
    )


async def _answers(model: OpenAICompatModel, count: int) -> list[str | ModelFailure]:
    """Return the text of ``count`` answers in a row on one loop (or the failure of each)."""
    out: list[str | ModelFailure] = []
    try:
        for _ in range(count):
            pieces: list[str] = []
            try:
                async for chunk in model.stream(REQUEST):
                    if isinstance(chunk, TextChunk):
                        pieces.append(chunk.text)
            except ModelFailure as failure:
                out.append(failure)
            else:
                out.append("".join(pieces))
    finally:
        await model.aclose()
    return out


def test_answers_in_a_row_share_one_connection(fake: FakeOpenAI, run: Any) -> None:
    fake.enqueue(text(["one"]), text(["two"]), text(["three"]))
    assert run(_answers(_model(fake), 3)) == ["one", "two", "three"]
    peers = {request.peer for request in fake.chat_requests}
    assert len(peers) == 1, f"each answer opened a connection of its own: {peers}"


def test_a_kept_connection_the_server_drops_is_replaced_without_an_error(fake: FakeOpenAI, run: Any) -> None:
    """A server may close a kept connection just as a request goes out on it (its idle timeout):
    the request goes again on a new connection, even with the client's retries off."""
    fake.enqueue(text(["one"]), dropped(), text(["two"]))
    assert run(_answers(_model(fake), 2)) == ["one", "two"]
    first, on_kept, again = fake.chat_requests
    assert on_kept.peer == first.peer and again.peer != first.peer


def test_a_new_connection_dropped_is_a_connection_error(fake: FakeOpenAI, run: Any) -> None:
    fake.enqueue(dropped(), text(["later"]))
    failure, answer = run(_answers(_model(fake), 2))
    assert isinstance(failure, ModelFailure) and failure.code == "connection_error", failure
    assert f"127.0.0.1:{fake.port}" in failure.message
    assert answer == "later"  # the chat goes on


def test_the_transport_is_left_out_where_a_proxy_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(mounts()["http://"], Http1Transport)
    for name in ("http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://proxy.example:3128")
        assert mounts() == {}, f"{name} is set: httpx must send through the proxy"
        monkeypatch.delenv(name)


def test_a_request_cancelled_at_any_step_ends_at_once(fake: FakeOpenAI, run: Any) -> None:
    """Stop cancels the answer's task wherever it waits: connecting, sending, or for the head.

    The server never answers, so a cancellation the transport lost would leave the task waiting
    for good. Before Python 3.12, ``asyncio.wait_for`` loses a cancellation that arrives in the
    loop step in which its awaited result lands (CPython gh-86296), so the cancel is sent at each
    of the first loop steps of a request in turn.
    """
    steps = 60
    fake.enqueue(*[stall() for _ in range(steps)])
    model = _model(fake)

    async def consume() -> None:
        async for _ in model.stream(REQUEST):
            pass

    async def cancelled_after(step: int) -> bool:
        task = asyncio.ensure_future(consume())
        for _ in range(step):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=TIMEOUT)
        if not done:
            task.cancel()  # let the loop close; the step is reported below
            await asyncio.wait({task}, timeout=TIMEOUT)
        return bool(done) and task.cancelled()

    async def first_lost() -> int | None:
        try:
            for step in range(steps):
                if not await cancelled_after(step):
                    return step
            return None
        finally:
            await model.aclose()

    assert run(first_lost()) is None, "a cancel sent at this loop step was lost"
