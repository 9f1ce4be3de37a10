"""The ChatModel port: what the hub asks of a model, and what a model yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol, Union, runtime_checkable


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelRequest:
    """One turn's input: the conversation so far (ending with the user's prompt) and options.

    ``messages`` are ``{"role": "user"|"assistant"|"system", "content": str}``.
    ``options`` are the validated user_message options (``maxTokens``, ``temperature``, ``tools``).
    """

    messages: tuple[dict[str, str], ...]
    options: dict[str, Any] = field(default_factory=dict)
    session_id: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class TextChunk:
    """A piece of answer text."""

    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class UsageChunk:
    """Token counts for the turn (a model yields at most one)."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, kw_only=True, slots=True)
class FinishChunk:
    """Why the model stopped, when it is not plain "stop" (e.g. "length")."""

    reason: str


ModelChunk = Union[TextChunk, UsageChunk, FinishChunk]


@runtime_checkable
class ChatModel(Protocol):
    """A model that streams an answer.

    ``stream`` is an async generator.  It raises
    :class:`~llmsock_widget.errors.ModelFailure` for a failure it can name;
    cancelling the task that iterates it (abort) must stop all its work.
    """

    name: str

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """Yield the answer for ``request`` chunk by chunk."""
        ...
