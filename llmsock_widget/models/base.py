"""The ChatModel port: what the hub asks of a model, and what a model yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol, Union, runtime_checkable


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelRequest:
    """One model call's input: the conversation so far and options.

    ``messages`` follow the OpenAI chat format: ``{"role": "user"|"assistant"|"system", "content": str}``,
    an assistant message may carry ``"tool_calls": [{"id", "type": "function", "function": {"name",
    "arguments"}}]``, and ``{"role": "tool", "tool_call_id", "content"}`` gives a call's result.
    ``options`` are the validated user_message options (``maxTokens``, ``temperature``, ``tools``;
    ``system`` is already the first message, and ``model`` chose this model).
    ``tools`` are the callable tools as OpenAI function schemas
    (``{"type": "function", "function": {"name", "description", "parameters"}}``).
    """

    messages: tuple[dict[str, Any], ...]
    options: dict[str, Any] = field(default_factory=dict)
    tools: tuple[dict[str, Any], ...] = ()
    session_id: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class TextChunk:
    """A piece of answer text."""

    text: str


_slot: Any = TextChunk.__dict__  # a slots dataclass keeps each field's slot descriptor here
_set_chunk_text = _slot["text"].__set__  # sets the slot itself: no frozen __setattr__


def text_chunk(text: str) -> TextChunk:
    """Return ``TextChunk(text=text)`` at less than half the cost (a model yields one per token)."""
    chunk = object.__new__(TextChunk)
    _set_chunk_text(chunk, text)
    return chunk


@dataclass(frozen=True, kw_only=True, slots=True)
class ReasoningChunk:
    """A piece of the model's reasoning text, when the provider sends it apart from the answer."""

    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolCallChunk:
    """A whole tool call the model asks for; ``arguments`` is the JSON text the model wrote.

    Adapters assemble streamed argument fragments and yield one chunk per complete call.
    """

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, kw_only=True, slots=True)
class UsageChunk:
    """Token counts for the turn (a model yields at most one)."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, kw_only=True, slots=True)
class FinishChunk:
    """Why the model stopped, when it is not plain "stop" ("length", or "tool_calls")."""

    reason: str


ModelChunk = Union[TextChunk, ReasoningChunk, ToolCallChunk, UsageChunk, FinishChunk]


@runtime_checkable
class ChatModel(Protocol):
    """A model that streams an answer.

    ``stream`` is an async generator.  It raises
    :class:`~llmsock_widget.errors.ModelFailure` for a failure it can name;
    cancelling the task that iterates it (abort) must stop all its work (a cancellation
    it loses is sent again every second until the stream ends).
    An optional ``offers_tools`` attribute says whether a prompt that does not choose its
    tools (``options.tools``) is offered the registered ones; a model without it is.
    """

    name: str

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """Yield the answer for ``request`` chunk by chunk."""
        ...
