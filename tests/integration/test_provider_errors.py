"""A provider's failures as the user reads them: its own text, no secrets, and the real wait.

Against the loopback fake provider (tests/fakeopenai.py) through the real ``openai`` client.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from llmsock_widget import cli
from llmsock_widget.errors import ModelFailure
from llmsock_widget.models import resolve_model
from llmsock_widget.models.base import ModelRequest
from llmsock_widget.models.openai_compat import OpenAICompatModel
from llmsock_widget.notebook.extension import _model_options
from llmsock_widget.server.thread import ServerThread
from tests.conftest import TIMEOUT
from tests.fakeopenai import FakeOpenAI, SilentServer, error, page, stall

from .conftest import MakeServer, is_turn_end, open_client

KEY = "sk-proj-SECRET0123456789abcdefXYZ"
REQUEST = ModelRequest(messages=({"role": "user", "content": "hello"},))
# Short per-attempt limits keep the timeout tests quick; scaled like every other wait.
ATTEMPT = TIMEOUT / 20


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    """A fake provider on 127.0.0.1:0, stopped after the test."""
    with FakeOpenAI() as server:
        yield server


def make_model(base_url: str, **settings: Any) -> OpenAICompatModel:
    """Return a model with the test key and no retries unless asked."""
    settings.setdefault("max_retries", 0)
    return OpenAICompatModel(model="gpt-test", base_url=base_url, api_key=KEY, **settings)


async def failing(model: OpenAICompatModel) -> tuple[ModelFailure, float]:
    """Return the failure that ends ``model``'s stream and the seconds it took."""
    started = time.monotonic()
    try:
        async for _ in model.stream(REQUEST):
            pass
    except ModelFailure as failure:
        return failure, time.monotonic() - started
    finally:
        await model.aclose()
    raise AssertionError("the stream should have failed")


def said_seconds(message: str) -> float:
    """Return the seconds a message says it waited ("... after 25.3 s ...")."""
    found = re.search(r"after (\d+(?:\.\d+)?) s\b", message)
    assert found, f"the message says no elapsed time: {message!r}"
    return float(found.group(1))


# --- the provider's own text, for every status -----------------------------------------------------

STATUSES = {
    "400": (error(400, message="This model's maximum context length is 8192 tokens."), "provider_error"),
    "401": (error(401, message="Incorrect API key provided. You can find your key online."), "auth_error"),
    "403": (error(403, message="Project does not have access to model gpt-test"), "auth_error"),
    "404": (error(404, message="The model `gpt-test` does not exist"), "model_not_found"),
    "409": (error(409, message="Conflict: a request with this idempotency key is running"), "provider_error"),
    "422": (error(422, body={"detail": "Unprocessable: messages.0.content is required"}), "provider_error"),
    "429": (
        error(429, message="Rate limit reached for requests", headers={"Retry-After": "7"}),
        "rate_limited",
    ),
    "500": (
        error(
            500,
            body={
                "error": {"code": 500, "message": "tools param requires --jinja flag", "type": "server_error"}
            },
        ),
        "provider_error",
    ),
    "502": (error(502, body={"error": "upstream model server is not reachable"}), "provider_error"),
    "503": (
        error(503, message="The engine is currently overloaded, please try again later"),
        "provider_error",
    ),
    "502-html": (
        page(
            502, "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
        ),
        "provider_error",
    ),
    "503-text": (
        page(503, "upstream connect error or disconnect/reset before headers", content_type="text/plain"),
        "provider_error",
    ),
}
PROVIDER_TEXT = {
    "400": "maximum context length is 8192 tokens",
    "401": "Incorrect API key provided",
    "403": "does not have access to model gpt-test",
    "404": "does not exist",
    "409": "idempotency key is running",
    "422": "messages.0.content is required",
    "429": "Rate limit reached for requests",
    "500": "tools param requires --jinja flag",
    "502": "upstream model server is not reachable",
    "503": "currently overloaded",
    "502-html": "502 Bad Gateway",
    "503-text": "upstream connect error or disconnect/reset before headers",
}


@pytest.mark.parametrize("case", STATUSES, ids=STATUSES.keys())
def test_every_status_keeps_the_providers_text(fake: FakeOpenAI, run: Any, case: str) -> None:
    """Each HTTP status gives its code, the status number and the provider's own words."""
    script, code = STATUSES[case]
    fake.enqueue(script)
    failure, _ = run(failing(make_model(fake.base_url)))
    status = case.split("-")[0]
    assert (failure.code, failure.recoverable) == (code, True)
    assert f"HTTP {status}" in failure.message
    assert PROVIDER_TEXT[case] in failure.message, failure.message
    assert "<" not in failure.message  # no HTML markup from an error page


def test_retried_5xx_says_the_attempts_and_the_last_text(fake: FakeOpenAI, run: Any) -> None:
    """A 500 retried by the client says how many attempts failed, and the provider's text."""
    again = error(500, message="tools param requires --jinja flag", headers={"retry-after-ms": "1"})
    fake.enqueue(again, again)
    failure, _ = run(failing(make_model(fake.base_url, max_retries=1)))
    assert failure.message.startswith("the provider failed (HTTP 500, 2 attempts in ")
    assert failure.message.endswith("): tools param requires --jinja flag")
    assert len(fake.chat_requests) == 2


SECRETS = [
    KEY,
    "sk-abcdef0123456789abcdef0123456789",
    "ghp_0123456789abcdefABCDEF0123456789abcd",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "hunter2hunter2",
]


def test_secrets_in_the_providers_text_are_masked(fake: FakeOpenAI, run: Any, caplog: Any) -> None:
    """The key, bearer tokens and key-like runs are masked; the readable words stay; the length is capped."""
    echoed = (
        f"the context window is 8192 tokens; bad key {KEY}; Authorization: Bearer tok_abc.def.ghi; "
        "other sk-abcdef0123456789abcdef0123456789; "
        "github ghp_0123456789abcdefABCDEF0123456789abcd; jwt "
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U; "
        "api_key=hunter2hunter2; and more " + "and more " * 200
    )
    fake.enqueue(error(500, message=echoed))
    with caplog.at_level("DEBUG"):
        failure, _ = run(failing(make_model(fake.base_url)))
    assert "bad key ***" in failure.message and "context window is 8192 tokens" in failure.message
    assert "tok_abc" not in failure.message
    assert not [secret for secret in SECRETS if secret in failure.message or secret in caplog.text]
    assert not [part for part in SECRETS[3].split(".") if part in failure.message]
    assert len(failure.message) <= 600


def test_a_secret_at_the_cut_is_masked_whole(fake: FakeOpenAI, run: Any) -> None:
    """A key-like run where the provider's text is cut short is masked whole, not cut to a shorter run."""
    secret = "Zq9" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5"
    fake.enqueue(error(400, message="word " * 58 + secret + " and the rest" * 3))
    failure, _ = run(failing(make_model(fake.base_url)))
    assert failure.message.endswith("…") and secret[:8] not in failure.message


def test_the_providers_text_reaches_the_client(fake: FakeOpenAI, make_server: MakeServer, run: Any) -> None:
    """Through the whole stack, the error event a client gets quotes the provider and holds no key."""
    server = make_server(
        model="openai:gpt-test", model_options={"base_url": fake.base_url, "api_key": KEY, "max_retries": 0}
    )
    fake.enqueue(error(500, message=f"tools param requires --jinja flag (key {KEY})"))

    async def turn() -> list[dict[str, Any]]:
        client = await open_client(server, dialect="envelope")
        await client.recv()
        await client.send({"type": "user_message", "id": "u1", "data": {"text": "hi", "options": {}}})
        messages = await client.recv_until(is_turn_end)
        await client.ws.close()
        return messages

    messages = run(turn())
    end = next(m["data"]["event"] for m in messages if is_turn_end(m))
    assert end["type"] == "error" and end["code"] == "provider_error"
    assert "the provider failed (HTTP 500): tools param requires --jinja flag" in end["message"]
    assert KEY not in json.dumps(messages)


# --- timeouts say the real wait --------------------------------------------------------------------


def test_stalled_provider_with_retries_reports_the_true_total(fake: FakeOpenAI, run: Any) -> None:
    """Three silent attempts: the message says the whole wait, the attempts and each attempt's limit."""
    fake.enqueue(stall(), stall(), stall())
    model = make_model(fake.base_url, timeout=ATTEMPT, max_retries=2)
    failure, took = run(failing(model))
    fake.release()
    assert failure.code == "timeout"
    assert f"(3 attempts, {ATTEMPT:g} s each)" in failure.message, failure.message
    said = said_seconds(failure.message)
    assert said >= 3 * ATTEMPT - 0.05  # not one attempt's limit
    assert abs(said - took) <= 0.1 + took * 0.05  # what the user actually waited
    assert len(fake.chat_requests) == 3


def test_one_silent_attempt_says_its_limit(fake: FakeOpenAI, run: Any) -> None:
    """Without retries the message says the one attempt and its limit, and the time it took."""
    fake.enqueue(stall())
    failure, took = run(failing(make_model(fake.base_url, timeout=ATTEMPT)))
    fake.release()
    assert (
        f"sent no answer after {said_seconds(failure.message):.1f} s (1 attempt of {ATTEMPT:g} s)"
        in failure.message
    )
    assert abs(said_seconds(failure.message) - took) <= 0.1 + took * 0.05


def test_a_prompts_own_timeout_and_retries_apply_to_it_alone(
    fake: FakeOpenAI, make_server: MakeServer, run: Any
) -> None:
    """The model waits 60 s with 2 retries; a prompt asking for ATTEMPT s and no retries fails after
    one attempt of ATTEMPT s, says so, and the next prompt has the model's limits again."""
    server = make_server(
        model="openai:gpt-test",
        model_options={"base_url": fake.base_url, "api_key": KEY, "timeout": 60, "max_retries": 2},
    )
    fake.enqueue(stall(), error(503, message="busy"), error(503, message="busy"), error(503, message="busy"))

    async def turns() -> list[dict[str, Any]]:
        client = await open_client(server, dialect="envelope")
        await client.recv()
        ends = []
        for request, options in (("u1", {"timeout": ATTEMPT, "retries": 0}), ("u2", {})):
            data = {"text": "hi", "options": options}
            await client.send({"type": "user_message", "id": request, "data": data})
            messages = await client.recv_until(is_turn_end)
            ends.append(next(m["data"]["event"] for m in messages if is_turn_end(m)))
        await client.ws.close()
        return ends

    stalled, busy = run(turns())
    fake.release()
    assert stalled["code"] == "timeout" and f"(1 attempt of {ATTEMPT:g} s)" in stalled["message"], stalled
    assert said_seconds(stalled["message"]) < 60
    assert busy["code"] == "provider_error" and "3 attempts" in busy["message"], busy  # the model's 2 retries
    assert len(fake.chat_requests) == 4


def test_https_url_for_a_silent_plain_server_says_the_true_time(run: Any) -> None:
    """A TLS handshake nobody answers ends at the connect timeout, saying the real wait and the fix."""
    with SilentServer() as silent:
        model = make_model(silent.url("https"), timeout=TIMEOUT, connect_timeout=ATTEMPT, max_retries=1)
        failure, took = run(failing(model))
        attempts = silent.connections
    assert failure.code == "timeout"
    assert took < TIMEOUT  # the connect limit applied, not the (long) read timeout
    assert f"(2 attempts, {ATTEMPT:g} s each to connect)" in failure.message, failure.message
    assert "use an http:// base_url" in failure.message
    said = said_seconds(failure.message)
    assert said >= 2 * ATTEMPT - 0.05 and abs(said - took) <= 0.1 + took * 0.05
    assert attempts == 2


def test_https_url_for_a_plain_http_server_fails_fast_with_the_fix(fake: FakeOpenAI, run: Any) -> None:
    """A plain HTTP server that answers the handshake with HTTP: connection_error at once, naming the fix."""
    https = fake.base_url.replace("http://", "https://")
    model = make_model(https, timeout=TIMEOUT, connect_timeout=TIMEOUT, max_retries=1)
    failure, took = run(failing(model))
    assert took < TIMEOUT / 2
    if failure.code == "timeout":  # the server waited for a request line: then the true time
        assert abs(said_seconds(failure.message) - took) <= 0.1 + took * 0.05
    else:
        assert failure.code == "connection_error"
        assert re.search(r"\(2 attempts in \d+\.\d s\)", failure.message), failure.message
    assert "use an http:// base_url" in failure.message


def test_connection_refused_says_attempts_and_time(run: Any) -> None:
    """A port nobody listens on: connection_error with the attempts and the time they took."""
    with FakeOpenAI() as gone:
        base_url = gone.base_url
    failure, _ = run(failing(make_model(base_url, max_retries=1)))
    assert failure.code == "connection_error"
    assert re.search(r"could not connect to 127\.0\.0\.1:\d+ \(2 attempts in \d+\.\d s\)$", failure.message)


# --- the settings reach the client -----------------------------------------------------------------


def client_settings(model: Any) -> tuple[float, float, int]:
    """Return the read timeout, connect timeout and retries of the client ``model`` would use."""

    async def build() -> tuple[float, float, int]:
        client = model._client()
        settings = (client.timeout.read, client.timeout.connect, client.max_retries)
        await model.aclose()
        return settings

    return asyncio.run(build())


def test_magic_options_reach_the_client(fake: FakeOpenAI, run: Any) -> None:
    """``%llmsock model SPEC --timeout S --connect-timeout S --retries N`` sets the client's limits."""
    spec, options = _model_options(
        [
            "openai:gpt-test",
            "--base-url",
            fake.base_url,
            "--timeout",
            "7.5",
            "--connect-timeout",
            "2",
            "--retries",
            "4",
        ]
    )
    model = resolve_model(spec, **options)
    assert client_settings(model) == (7.5, 2.0, 4)
    # The retries are the ones the provider sees: 1 + retries requests for a failing status.
    spec, options = _model_options(["openai:gpt-test", "--base-url", fake.base_url, "--retries", "1"])
    again = error(503, message="busy", headers={"retry-after-ms": "1"})
    fake.enqueue(again, again, again)
    failure, _ = run(failing(resolve_model(spec, **options)))  # type: ignore[arg-type]
    assert "HTTP 503, 2 attempts" in failure.message
    assert len(fake.chat_requests) == 2


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--timeout", "soon"], "--timeout takes a number of seconds, not 'soon'"),
        (["--retries", "2.5"], "--retries takes a whole number, not '2.5'"),
        (["--retries"], "unknown or incomplete option '--retries'"),
    ],
)
def test_magic_refuses_bad_numbers(args: list[str], says: str) -> None:
    """A bad number is named with its flag."""
    with pytest.raises(ValueError, match=re.escape(says)):
        _model_options(["openai:gpt-test", *args])


@pytest.mark.parametrize("value", ["-1", "0", "nan"])
def test_model_refuses_bad_timeouts(value: str) -> None:
    """A timeout that is not a positive number is refused by the model, naming the setting."""
    spec, options = _model_options(
        ["openai:gpt-test", "--base-url", "http://127.0.0.1:9/v1", "--timeout", value]
    )
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        resolve_model(spec, **options)


def test_serve_flags_reach_the_client() -> None:
    """``serve --timeout --connect-timeout --retries`` become the model's options."""
    args = cli._parser().parse_args(
        [
            *("serve", "--model", "openai:gpt-test", "--base-url", "http://127.0.0.1:9/v1"),
            *("--timeout", "9", "--connect-timeout", "3", "--retries", "5"),
        ]
    )
    options = cli._model_options(args)
    assert options == {
        "base_url": "http://127.0.0.1:9/v1",
        "timeout": 9.0,
        "connect_timeout": 3.0,
        "max_retries": 5,
    }
    model = resolve_model("openai:gpt-test", **options)
    assert client_settings(model) == (9.0, 3.0, 5)


def test_server_model_options_reach_the_client() -> None:
    """``ServerThread``/``get_server(model_options=...)`` pass timeouts and retries to the client."""
    server = ServerThread(
        model="openai:gpt-test",
        model_options={"base_url": "http://127.0.0.1:9/v1", "timeout": 4, "max_retries": 0},
    )
    assert client_settings(server.model) == (4.0, 4.0, 0)  # connect: the shorter of 4 and 5


def test_defaults() -> None:
    """By default: 60 s of silence, 5 s to connect (the openai client's own), 2 retries."""
    assert client_settings(make_model("http://127.0.0.1:9/v1", max_retries=2)) == (60.0, 5.0, 2)
