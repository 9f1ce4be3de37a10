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
import math
import os
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any, cast

import openai

from ..errors import ModelFailure
from .base import (
    ModelChunk,
    ModelRequest,
)
from .openai_body import DONE, QUEUED_BATCHES, Failed, body_blocks, merged, pump, stop
from .openai_chunks import ChunkReader
from .openai_errors import PLACEHOLDER_KEY, Endpoint, Limits, Wait, failure_of, host_of
from .openai_sse import EventReader
from .openai_transport import mounts

__all__ = ["ChunkReader", "OpenAICompatModel", "from_spec"]

PREFIX = "openai:"
DEFAULT_CONNECT_TIMEOUT = 5.0
"""Seconds to connect (TCP and TLS) by default: the ``openai`` client's own default."""

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
        return host_of(self.base_url)

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
                queue: asyncio.Queue[list[Any]] = asyncio.Queue(maxsize=QUEUED_BATCHES)
                pump_task = asyncio.ensure_future(pump(blocks, events, reader, queue, http))
                stack.push_async_callback(stop, pump_task)  # runs first: before the body is closed
                while True:
                    batch = await queue.get()
                    while not queue.empty():
                        batch += queue.get_nowait()
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
            wait = Wait(attempts=max(attempts[0], 1), elapsed=time.monotonic() - started, limits=limits)
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

    def _limits(self, options: Mapping[str, Any]) -> Limits:
        """Return the timeouts and retries of one request: the prompt's options, else the model's."""
        timeout, retries = options.get("timeout"), options.get("retries")
        limits = Limits(timeout=self.timeout, connect=self.connect_timeout, retries=self.max_retries)
        if isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0:
            limits = replace(limits, retries=retries)
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
            limits = replace(
                limits, timeout=float(timeout), connect=min(self.connect_timeout, float(timeout))
            )
        return limits

    def _client(self, limits: Limits | None = None) -> openai.AsyncOpenAI:
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
                http_client=openai.DefaultAsyncHttpxClient(
                    mounts=mounts(), event_hooks={"request": [_count_attempt]}
                ),
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
        self, exc: openai.APIError, *, opened: bool, finished: bool, wait: Wait, tools: bool
    ) -> ModelFailure | None:
        endpoint = Endpoint(
            host=self.host, model=self.model, name=self.name, base_url=self.base_url, key=self._key.value
        )
        return failure_of(exc, endpoint=endpoint, opened=opened, finished=finished, wait=wait, tools=tools)


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


# --- options -------------------------------------------------------------------------------------


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
