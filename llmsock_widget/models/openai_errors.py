"""What the OpenAI-compatible model says when a request fails: codes, the real wait, the provider's words.

:func:`failure_of` turns an ``openai`` client exception into the
:class:`~llmsock_widget.errors.ModelFailure` users read (the codes are listed in
:mod:`~llmsock_widget.models.openai_compat`): every HTTP status keeps the provider's own text,
timeouts and connection errors say the real time since the request started and the attempts
(:class:`Wait`), a refusal of offered tools says how to chat without them, and every message is
scrubbed of the key and of anything that looks like a secret (:func:`scrub`) and cut short.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import openai

from ..errors import ModelFailure

PLACEHOLDER_KEY = "not-needed"
"""The key sent to a ``base_url`` server when none is configured (local servers ignore it)."""

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


@dataclass(frozen=True, slots=True)
class Limits:
    """One request's limits: seconds of silence, seconds to connect, retries."""

    timeout: float
    connect: float
    retries: int


@dataclass(frozen=True, slots=True)
class Wait:
    """How long a failed request took, from the start of :meth:`~.openai_compat.OpenAICompatModel.stream`."""

    attempts: int  # HTTP requests sent, retries included
    elapsed: float  # seconds
    limits: Limits  # the limits it ran under

    def said(self) -> str:
        """Return e.g. ``"25.3 s"``."""
        return f"{self.elapsed:.1f} s"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What failure messages name of a model: its server and model names, and the key to hide."""

    host: str  # "host:port", never credentials or paths
    model: str  # the provider's model name
    name: str  # "openai:<model>"
    base_url: str | None
    key: str


def failure_of(
    exc: openai.APIError, *, endpoint: Endpoint, opened: bool, finished: bool, wait: Wait, tools: bool
) -> ModelFailure | None:
    """Return the failure the user reads for ``exc``, or None if the answer was complete anyway.

    ``opened``: the answer's body had started; ``finished``: its finish reason had come;
    ``tools``: the request offered tools.
    """
    failure = _translate(exc, model=endpoint, wait=wait, opened=opened)
    if failure.code == "stream_ended" and finished:
        return None  # the answer was complete; only the usage or [DONE] got lost
    message = scrub(failure.message, endpoint.key)
    if len(message) > _FAILURE_LIMIT:
        message = message[: _FAILURE_LIMIT - 1] + "…"
    failure = ModelFailure(message, code=failure.code)
    return _tools_refused(failure, model=endpoint) if tools else failure


def _translate(exc: openai.APIError, *, model: Endpoint, wait: Wait, opened: bool) -> ModelFailure:
    """Return the failure ``exc`` stands for; its message may still need scrubbing."""
    host = model.host
    if isinstance(exc, openai.APIStatusError):
        return _status_failure(exc, model=model.model, host=host, wait=wait, key=model.key)
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
    quoted = _quote(exc.message, model.key)
    return ModelFailure(f"the provider reported an error: {quoted}", code="provider_error")


def _timeout_failure(
    exc: openai.APITimeoutError, *, model: Endpoint, wait: Wait, opened: bool
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
    exc: openai.APIStatusError, *, model: str, host: str, wait: Wait, key: str
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


def _tools_refused(failure: ModelFailure, *, model: Endpoint) -> ModelFailure:
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
    text = scrub(" ".join(text.split()), key)
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


def host_of(base_url: str | None) -> str:
    if not base_url:
        return "api.openai.com"
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or "the server"
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "the server"


def scrub(message: str, key: str) -> str:
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
