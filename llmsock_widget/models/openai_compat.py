"""A ChatModel for any OpenAI-compatible chat completions server (OpenAI, vLLM, Ollama, OpenRouter, ...).

The adapter sends the request with the official ``openai`` package (configuration, auth,
retries, status errors, timeouts), reads the streamed body itself with the pure
:class:`~llmsock_widget.models.openai_sse.EventReader` (bytes in, decoded chunks out) and turns
the chunks into :mod:`~llmsock_widget.models.base` chunks with the pure :class:`ChunkReader`,
in a task of its own (:mod:`~llmsock_widget.models.openai_body`) that yields the event loop
every millisecond or 64 chunks of a fast stream; the text of chunks that arrived together goes
on as one chunk.  :class:`OpenAICompatModel` does the I/O and turns the client's exceptions
into :class:`~llmsock_widget.errors.ModelFailure`:

=================  ===========================================================
code               when
=================  ===========================================================
auth_error         HTTP 401 or 403: the provider refused the API key
model_not_found    HTTP 404: no such model (or a wrong ``base_url``)
rate_limited       HTTP 429, with the ``Retry-After`` seconds when sent
provider_error     HTTP 5xx, other 4xx, or an error object inside the stream
timeout            no connection within ``connect_timeout``, or no byte for ``timeout``
                   seconds, before or during the stream
connection_error   the server could not be reached (or does not speak TLS to an https URL)
bad_response       a chunk that is not JSON, or that has no ``choices`` list
stream_ended       the stream stopped before any ``finish_reason``
tool_call_cut      the token limit cut off a tool call (``finish_reason`` "length")
=================  ===========================================================

All are recoverable: the session goes on.  Every HTTP error keeps the provider's own text
(``the provider failed (HTTP 500): tools param requires --jinja flag``).  Retries: the client's
own ``max_retries`` apply only to the initial request (connection errors, timeouts,
408/409/429/5xx) before any byte of the answer arrived; once the stream has started nothing is
retried, so no token is ever shown twice.  Timeouts and connection errors say the real time
since the request started and how many attempts it took (``no answer after 25.3 s (3 attempts,
8 s each)``), not one attempt's limit.

The API key never appears in an error message, a log line, ``repr(model)`` or ``name``:
failures are raised outside the client exception's handler (no ``__context__`` to print),
messages never quote the response body except a provider's own error text, and every message
is scrubbed of the key and of anything that looks like one (``sk-...``, bearer tokens, long
base64-like runs) and cut to a few hundred characters.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import json
import math
import os
import re
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, cast
from urllib.parse import urlsplit

import openai

from ..errors import ModelFailure
from .base import (
    ModelChunk,
    ModelRequest,
)
from .openai_body import DONE, QUEUED_CHUNKS, Failed, body_blocks, merged, pump, stop
from .openai_chunks import ChunkReader
from .openai_sse import EventReader

__all__ = ["ChunkReader", "OpenAICompatModel", "from_spec"]

PREFIX = "openai:"
PLACEHOLDER_KEY = "not-needed"
"""The key sent to a ``base_url`` server when none is configured (local servers ignore it)."""

DEFAULT_CONNECT_TIMEOUT = 5.0
"""Seconds to connect (TCP and TLS) by default: the ``openai`` client's own default."""

_MESSAGE_LIMIT = 300  # characters of a provider's own error text we pass on
_FAILURE_LIMIT = 600  # characters of a whole failure message
_KEY_LIKE = re.compile(
    r"\bsk-[A-Za-z0-9_\-*.]{6,}"  # OpenAI-style keys, also masked ones ("sk-abc***xyz")
    r"|(?-i:\b[Bb]earer\s+\S+|\bBasic\s+[A-Za-z0-9+/=]{8,})"  # an Authorization header's credentials
    r"|\b(?:api[_-]?key|access[_-]?token|token|secret|password)\b\s*[:=]\s*[\"']?[^\s\"',;]{6,}"
    r"|\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-.]+"  # a JSON Web Token
    r"|(?P<run>[A-Za-z0-9+/_\-]{32,}={0,2})",  # long base64-like runs that mix letters and digits
    re.IGNORECASE,
)
# The attempts (HTTP requests, retries included) of the stream() running in this context.
_attempts: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("llmsock_attempts", default=None)


class OpenAICompatModel:
    """Stream chat completions from an OpenAI-compatible server.

    ``name`` is ``"openai:<model>"``.  Per request, ``options["temperature"]``,
    ``options["maxTokens"]``, ``options["timeout"]`` and ``options["retries"]`` override the
    defaults given here; ``request.tools`` go out as ``tools``.  ``offers_tools`` (the ``tools``
    setting, off by default) is whether a prompt that does not choose is offered the registered
    tools: many servers and models refuse them.  One client is kept per event loop, so the model
    can serve the hub's loop and a test's loop alike.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        connect_timeout: float | None = None,
        organization: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        tools: bool = False,
    ) -> None:
        """Configure the model; no request is made until :meth:`stream`.

        Args:
            model: the provider's model name (e.g. ``"gpt-4o-mini"``, ``"Qwen/Qwen2.5-7B-Instruct"``).
            base_url: the server's API root (ending in ``/v1``); default ``OPENAI_BASE_URL``,
                else OpenAI's own.
            api_key: default ``OPENAI_API_KEY``.  With neither, a server named by ``base_url``
                gets the placeholder ``"not-needed"`` (local vLLM, Ollama); OpenAI itself is refused.
            temperature, max_tokens: defaults sent with every request (omitted when None).
            timeout: seconds to wait for the answer's first byte and then between any two
                bytes; a stream silent this long fails.
            max_retries: the client's retries of the initial request; never applied mid-stream.
            connect_timeout: seconds to connect (TCP and TLS) on each attempt; default
                :data:`DEFAULT_CONNECT_TIMEOUT`, or ``timeout`` if that is shorter.
            organization, default_headers: passed to the client as they are.
            tools: offer the registered tools to prompts that do not choose (``options.tools``);
                off by default, since servers without tool support refuse every such request.

        Raises:
            ValueError: for an empty model name, a bad number, or no API key for OpenAI itself.
        """
        if not model:
            raise ValueError("model must name the provider's model, e.g. 'gpt-4o-mini'")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a whole number >= 0, not {max_retries!r}")
        if connect_timeout is None:
            connect_timeout = min(timeout, DEFAULT_CONNECT_TIMEOUT)
        if not (math.isfinite(connect_timeout) and connect_timeout > 0):
            raise ValueError(f"connect_timeout must be a positive number of seconds, not {connect_timeout!r}")
        self.model = model
        self.name = PREFIX + model
        # Environment variables are read here, once: OPENAI_BASE_URL and OPENAI_API_KEY.
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if key is None:
            if self.base_url is None:
                raise ValueError(
                    "no OpenAI API key is configured: pass api_key=... or set OPENAI_API_KEY "
                    "(a local server that needs no key: pass its base_url)"
                )
            key = PLACEHOLDER_KEY
        self._key = _Secret(key)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.max_retries = max_retries
        self.connect_timeout = connect_timeout
        self.organization = organization
        self.default_headers = dict(default_headers or {})
        self.offers_tools = bool(tools)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"OpenAICompatModel(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def host(self) -> str:
        """The server's host (and port) for messages; never credentials or paths."""
        return _host(self.base_url)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """Yield the answer to ``request``: text, reasoning, tool calls, then usage and finish.

        Raises:
            ModelFailure: with one of the codes in the module docstring.
        """
        reader = ChunkReader()
        failure: ModelFailure | None = None
        opened = False
        started = time.monotonic()  # timeouts say the whole wait, retries included
        attempts = [0]
        limits = self._limits(request.options)
        try:
            # The client sends the request (auth, retries, status errors, timeouts); the body is
            # read here, with the EventReader: the client's own stream builds a pydantic object
            # per chunk and was the slowest part of the path.  Leaving the block closes the
            # response, also when the consumer is cancelled (Stop): the server sees the disconnect.
            async with contextlib.AsyncExitStack() as stack:
                counting = _attempts.set(attempts)  # the client's request hook counts into it
                try:
                    response = await stack.enter_async_context(
                        self._client(limits).chat.completions.with_streaming_response.create(
                            model=self.model,
                            messages=cast(Any, list(request.messages)),  # OpenAI format already
                            stream=True,
                            stream_options={"include_usage": True},
                            # Optional fields go as plain JSON: works across openai versions.
                            extra_body=self._options(request),
                        )
                    )
                finally:
                    _attempts.reset(counting)
                opened = True
                http = response.http_response
                blocks = body_blocks(http)
                stack.push_async_callback(blocks.aclose)
                events = EventReader()
                # The body is read by a task of its own, so what arrived together (one read of the
                # socket, a burst of a fast server) is taken here in one go, and its text goes on
                # as one chunk: the session, the encoder and every view then pay once per batch,
                # not once per token.  A stream that arrives token by token is passed on as it comes.
                queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=QUEUED_CHUNKS)
                pump_task = asyncio.ensure_future(pump(blocks, events, reader, queue, http))
                stack.push_async_callback(stop, pump_task)  # runs first: before the body is closed
                while True:
                    batch = [await queue.get()]
                    while not queue.empty():
                        batch.append(queue.get_nowait())
                    for item in merged(batch):
                        if type(item) is Failed:
                            raise item.error
                        if item is DONE:
                            break
                        yield item
                    else:
                        continue
                    break
            end = events.end
            if end is not None and end.kind == "error":  # the provider's words, as the client says them
                raise openai.APIError(end.message, http.request, body=end.body)
            if end is not None and end.kind == "not_json":
                failure = ModelFailure(
                    f"{self.host} sent a stream chunk that is not JSON", code="bad_response"
                )
        except openai.APIError as exc:
            wait = _Wait(attempts=max(attempts[0], 1), elapsed=time.monotonic() - started, limits=limits)
            failure = self._failure(
                exc, opened=opened, finished=reader.finished, wait=wait, tools=bool(request.tools)
            )
        # Raised here, outside the handler, so the client's exception (whose text may quote the
        # response body) is not attached as __context__ to ours.
        if failure is not None:
            raise failure
        for out in reader.end():
            yield out
        cut = reader.cut_failure()  # a tool call the token limit cut off must not vanish unsaid
        if cut is not None:
            raise cut

    async def aclose(self) -> None:
        """Close the client of the running event loop (the others close with their loops)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    def _limits(self, options: Mapping[str, Any]) -> _Limits:
        """Return the timeouts and retries of one request: the prompt's options, else the model's."""
        timeout, retries = options.get("timeout"), options.get("retries")
        limits = _Limits(timeout=self.timeout, connect=self.connect_timeout, retries=self.max_retries)
        if isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0:
            limits = replace(limits, retries=retries)
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
            limits = replace(
                limits, timeout=float(timeout), connect=min(self.connect_timeout, float(timeout))
            )
        return limits

    def _client(self, limits: _Limits | None = None) -> openai.AsyncOpenAI:
        # An HTTP connection pool belongs to one event loop: keep one client per loop, so the
        # hub's loop reuses its connections.  The client's default HTTP client would, when
        # garbage-collected after its loop closed, schedule its own closing on whatever loop
        # runs then (and fail there); openai's DefaultAsyncHttpxClient has the same defaults
        # without that finalizer.
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = openai.AsyncOpenAI(
                api_key=self._key.value,
                base_url=self.base_url,
                organization=self.organization,
                timeout=openai.Timeout(self.timeout, connect=self.connect_timeout),
                max_retries=self.max_retries,
                default_headers=self.default_headers or None,
                http_client=openai.DefaultAsyncHttpxClient(event_hooks={"request": [_count_attempt]}),
            )
            self._clients[loop] = client
        if limits is not None and limits != self._limits({}):
            # A prompt's own timeout or retries: the same connection pool, other limits.
            return client.with_options(
                timeout=openai.Timeout(limits.timeout, connect=limits.connect), max_retries=limits.retries
            )
        return client

    def _options(self, request: ModelRequest) -> dict[str, Any]:
        body: dict[str, Any] = {}
        temperature = _temperature(request.options.get("temperature"), self.temperature)
        if temperature is not None:
            body["temperature"] = temperature
        max_tokens = _max_tokens(request.options.get("maxTokens"), self.max_tokens)
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if request.tools:
            body["tools"] = list(request.tools)
        return body

    def _failure(
        self, exc: openai.APIError, *, opened: bool, finished: bool, wait: _Wait, tools: bool
    ) -> ModelFailure | None:
        failure = _translate(exc, model=self, wait=wait, opened=opened)
        if failure.code == "stream_ended" and finished:
            return None  # the answer was complete; only the usage or [DONE] got lost
        message = _scrub(failure.message, self._key.value)
        if len(message) > _FAILURE_LIMIT:
            message = message[: _FAILURE_LIMIT - 1] + "…"
        failure = ModelFailure(message, code=failure.code)
        return _tools_refused(failure, model=self) if tools else failure


def from_spec(
    spec: str, *, base_url: str | None = None, api_key: str | None = None, **options: Any
) -> OpenAICompatModel:
    """Return the model named by ``"openai:<model>"``; ``options`` are :class:`OpenAICompatModel` settings.

    The model name is everything after the first colon, so ``"openai:qwen2.5:7b"`` names
    ``"qwen2.5:7b"``.

    Raises:
        ValueError: if ``spec`` does not start with ``"openai:"`` or names no model.
    """
    if not spec.startswith(PREFIX) or not spec[len(PREFIX) :].strip():
        raise ValueError(f"expected 'openai:<model name>', not {spec!r}")
    return OpenAICompatModel(model=spec[len(PREFIX) :].strip(), base_url=base_url, api_key=api_key, **options)


# --- options and errors --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Limits:
    """One request's limits: seconds of silence, seconds to connect, retries."""

    timeout: float
    connect: float
    retries: int


@dataclass(frozen=True, slots=True)
class _Wait:
    """How long a failed request took, from the start of :meth:`OpenAICompatModel.stream`."""

    attempts: int  # HTTP requests sent, retries included
    elapsed: float  # seconds
    limits: _Limits  # the limits it ran under

    def said(self) -> str:
        """Return e.g. ``"25.3 s"``."""
        return f"{self.elapsed:.1f} s"


async def _count_attempt(request: object) -> None:
    """Count one HTTP request (an attempt) for the stream() that sent it (httpx request hook)."""
    attempts = _attempts.get()
    if attempts is not None:
        attempts[0] += 1


class _Secret:
    """A string that never shows itself in a repr."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"


def _temperature(value: object, default: float | None) -> float | None:
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    ):
        return float(value)
    return default


def _max_tokens(value: object, default: int | None) -> int | None:
    # bool is an int subclass; True is not a sensible cap.  Providers refuse 0.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return default


def _translate(exc: openai.APIError, *, model: OpenAICompatModel, wait: _Wait, opened: bool) -> ModelFailure:
    """Return the failure ``exc`` stands for; its message may still need scrubbing."""
    host = model.host
    if isinstance(exc, openai.APIStatusError):
        return _status_failure(exc, model=model.model, host=host, wait=wait, key=model._key.value)
    if isinstance(exc, openai.APITimeoutError):
        return _timeout_failure(exc, model=model, wait=wait, opened=opened)
    if isinstance(exc, openai.APIConnectionError):
        if opened:
            return ModelFailure(
                f"the connection to {host} closed before the answer finished", code="stream_ended"
            )
        tried = f"{_attempts_said(wait.attempts)} in {wait.said()}"
        if _is_tls_mismatch(exc) and _scheme(model.base_url) == "https":
            return ModelFailure(
                f"could not connect to {host} ({tried}): it does not answer in TLS; "
                "if it is a plain HTTP server, use an http:// base_url",
                code="connection_error",
            )
        return ModelFailure(f"could not connect to {host} ({tried})", code="connection_error")
    if isinstance(exc, openai.APIResponseValidationError):
        return ModelFailure(f"{host} sent a response of the wrong shape", code="bad_response")
    # An error object inside the stream ({"error": {...}}): the provider's own words help most.
    quoted = _quote(exc.message, model._key.value)
    return ModelFailure(f"the provider reported an error: {quoted}", code="provider_error")


def _timeout_failure(
    exc: openai.APITimeoutError, *, model: OpenAICompatModel, wait: _Wait, opened: bool
) -> ModelFailure:
    """Say how long we really waited: the whole request with its retries, not one attempt's limit."""
    host = model.host
    if opened:  # mid-stream: never retried, so one silence of ``timeout`` seconds ended it
        return ModelFailure(
            f"{host} sent nothing for {wait.limits.timeout:g} s in the middle of the answer "
            f"(after {wait.said()} in all)",
            code="timeout",
        )
    if _cause_named(exc, "ConnectTimeout"):
        hint = (
            "; if it is a plain HTTP server, use an http:// base_url"
            if _scheme(model.base_url) == "https"
            else ""
        )
        return ModelFailure(
            f"could not connect to {host}: no answer after {wait.said()} "
            f"({_attempts_said(wait.attempts, wait.limits.connect, ' to connect')}){hint}",
            code="timeout",
        )
    return ModelFailure(
        f"{host} sent no answer after {wait.said()} ({_attempts_said(wait.attempts, wait.limits.timeout)})",
        code="timeout",
    )


def _attempts_said(attempts: int, limit: float | None = None, what: str = "") -> str:
    """Return ``"3 attempts"``, or with a limit ``"3 attempts, 8 s each"`` / ``"1 attempt of 8 s"``."""
    if limit is None:
        return "1 attempt" if attempts == 1 else f"{attempts} attempts"
    if attempts == 1:
        return f"1 attempt of {limit:g} s{what}"
    return f"{attempts} attempts, {limit:g} s each{what}"


def _cause_named(exc: BaseException, *names: str) -> bool:
    """Whether ``exc`` was raised from an exception of one of these class names (any httpx flavour)."""
    cause = exc.__cause__
    return cause is not None and any(cls.__name__ in names for cls in type(cause).__mro__)


def _is_tls_mismatch(exc: BaseException) -> bool:
    """Whether the TLS handshake failed because the peer answered in something else (plain HTTP)."""
    seen: set[int] = set()
    cause: BaseException | None = exc.__cause__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        text = str(cause).upper()
        if "WRONG_VERSION_NUMBER" in text or "RECORD_LAYER_FAILURE" in text or "UNKNOWN_PROTOCOL" in text:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _scheme(base_url: str | None) -> str:
    try:
        return urlsplit(base_url or "https://api.openai.com/v1").scheme.lower()
    except ValueError:
        return ""


def _status_failure(
    exc: openai.APIStatusError, *, model: str, host: str, wait: _Wait, key: str
) -> ModelFailure:
    """Name the status and keep the provider's own text, whatever the status."""
    status = exc.status_code
    said = f"HTTP {status}"
    if wait.attempts > 1:  # retried by the client: every attempt failed
        said += f", {_attempts_said(wait.attempts)} in {wait.said()}"
    detail = _provider_message(exc.body, key)
    tail = f": {detail}" if detail else ""
    if status in (401, 403):
        return ModelFailure(f"the provider refused the API key ({said}){tail}", code="auth_error")
    if status == 404:
        return ModelFailure(
            f"{host} has no model {model!r} ({said}; check the model name and base_url){tail}",
            code="model_not_found",
        )
    if status == 429:
        wait_for = _retry_after(exc.response.headers, now=time.time())
        hint = f"; retry after {_seconds(wait_for)} seconds" if wait_for is not None else ""
        return ModelFailure(
            f"the provider is rate limiting requests ({said}){hint}{tail}", code="rate_limited"
        )
    if status >= 500:
        return ModelFailure(f"the provider failed ({said}){tail}", code="provider_error")
    # 400, 409, 413, 422: the request was refused (context too long, bad tool schema); say why.
    return ModelFailure(f"the provider refused the request ({said}){tail}", code="provider_error")


def _tools_refused(failure: ModelFailure, *, model: OpenAICompatModel) -> ModelFailure:
    """Say so when a server refused a request because it offered tools, and how to chat without them.

    Servers without tool support answer a request with ``tools`` with a 400 or a 500 whose text
    names the tools (llama.cpp: "tools param requires --jinja flag"); the fix is on our side.
    """
    if failure.code != "provider_error" or "tool" not in failure.message.lower():
        return failure
    message = (
        f"{model.host} refused the tools offered with this prompt: {failure.message}. To chat without "
        f"tools, turn them off for the prompt (%%llmsock --no-tools, ask(..., tools=False), the chat's "
        f"settings) or for the model (%llmsock model {model.name} without --tools); or give the "
        "server tool support (llama-server: --jinja)"
    )
    return ModelFailure(message, code=failure.code)


def _provider_message(body: object, key: str) -> str:
    """Return the provider's own error text from an error body, quoted and cut short, or "".

    Shapes: OpenAI's ``{"error": {"message"}}`` (the client may hand over the inner object),
    ``{"error": "text"}`` (Ollama), ``{"message"}``, ``{"detail"}`` (FastAPI servers), or a body
    that is not JSON at all (a proxy's text or HTML page).
    """
    if isinstance(body, dict):
        for key in ("message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, dict):
                return _provider_message(value, key)
            if isinstance(value, str) and value.strip():
                return _quote(value, key)
            if isinstance(value, list) and value:  # FastAPI validation errors
                return _quote(json.dumps(value, ensure_ascii=False), key)
        return ""
    if isinstance(body, str):
        title = re.search(r"<title[^>]*>(.*?)</title>", body, re.IGNORECASE | re.DOTALL)
        text = title.group(1) if title else re.sub(r"<[^>]*>", " ", body)
        return _quote(text, key) if text.strip() else ""
    return ""


def _quote(text: str, key: str) -> str:
    """Return the provider's ``text`` on one line, scrubbed (before it is cut: no half secret), short."""
    text = _scrub(" ".join(text.split()), key)
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def _retry_after(headers: Mapping[str, str], *, now: float) -> float | None:
    """Return the seconds the server asks us to wait (``retry-after-ms`` or ``Retry-After``), if any."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            parsed = email.utils.parsedate_tz(value) if scale == 1.0 else None
            if parsed is None:
                continue
            seconds = email.utils.mktime_tz(parsed) - now
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def _seconds(value: float) -> str:
    # Whole seconds (rounded up) unless it is under one: "7", "120", "0.25".
    return str(math.ceil(value)) if value >= 1 else f"{value:.2g}"


def _host(base_url: str | None) -> str:
    if not base_url:
        return "api.openai.com"
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or "the server"
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "the server"


def _scrub(message: str, key: str) -> str:
    """Return ``message`` with ``key`` and anything that looks like a key or bearer token masked."""
    if key and key != PLACEHOLDER_KEY:
        message = message.replace(key, "***")
    return _KEY_LIKE.sub(_mask, message)


def _mask(match: re.Match[str]) -> str:
    run = match.group("run")
    # A long run is a secret only if it mixes letters and digits (not a long plain word or number).
    if run is not None and not (any(c.isdigit() for c in run) and any(c.isalpha() for c in run)):
        return run
    return "***"
