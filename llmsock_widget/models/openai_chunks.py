"""Reading OpenAI ``chat.completion.chunk`` objects into model chunks.  Pure: no I/O, no clock.

:class:`ChunkReader` holds the rules (how text, reasoning, tool-call fragments, usage and
finish reasons arrive); :mod:`.openai_compat` feeds it what the ``openai`` client streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeGuard

from ..errors import ModelFailure
from .base import FinishChunk, ModelChunk, ReasoningChunk, TextChunk, ToolCallChunk, UsageChunk

__all__ = ["ERROR_CODES", "ChunkReader", "as_data"]

ERROR_CODES = (
    "auth_error",
    "model_not_found",
    "rate_limited",
    "provider_error",
    "timeout",
    "connection_error",
    "bad_response",
    "stream_ended",
    "tool_call_cut",
)
"""The codes of the OpenAI-compatible model's failures (``ModelFailure.code``)."""


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


class ChunkReader:
    """Turn decoded ``chat.completion.chunk`` objects into model chunks.  Pure: no I/O, no clock.

    Text and reasoning come out as they arrive; tool-call fragments are gathered by ``index``
    and come out whole when the choice finishes; usage and the finish reason come out at
    :meth:`end`.  A call that the token limit cut off is not returned (half its arguments
    are missing): :meth:`cut_failure` says so.  Only choice 0 is read.
    """

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self._calls: dict[int, _PartialCall] = {}
        self._usage: UsageChunk | None = None
        self._cut: list[str] = []  # the names of the calls the token limit cut off

    @property
    def finished(self) -> bool:
        """Whether the choice has finished (a ``finish_reason`` arrived)."""
        return self.finish_reason is not None

    def feed(self, data: object) -> list[ModelChunk]:
        """Return the model chunks ``data`` (one decoded SSE data payload) gives.

        Raises:
            ModelFailure: ``bad_response`` for a chunk that is not an object with a ``choices`` list.
        """
        if not isinstance(data, dict):
            raise _bad(f"a stream chunk is {type(data).__name__}, not an object")
        choices = data.get("choices")
        if not isinstance(choices, list):
            raise _bad("a stream chunk has no 'choices' list")
        self._read_usage(data.get("usage"))
        out: list[ModelChunk] = []
        for choice in choices:
            if not isinstance(choice, dict):
                raise _bad("a stream chunk's choice is not an object")
            if choice.get("index", 0) == 0:
                out += self._read_choice(choice)
        return out

    def end(self) -> list[ModelChunk]:
        """Return the closing chunks (usage, then the finish reason unless "stop").

        Raises:
            ModelFailure: ``stream_ended`` if the stream stopped before the choice finished.
        """
        if self.finish_reason is None:
            raise ModelFailure("the stream ended before the answer finished", code="stream_ended")
        out: list[ModelChunk] = [self._usage] if self._usage is not None else []
        if self.finish_reason in ("length", "tool_calls"):
            out.append(FinishChunk(reason=self.finish_reason))
        return out

    def cut_failure(self) -> ModelFailure | None:
        """Return the failure that ends an answer whose tool call the token limit cut off, else None.

        Such a call cannot run and would otherwise vanish, leaving an answer with no
        explanation; the adapter raises this after :meth:`end`'s chunks.
        """
        if not self._cut:
            return None
        # The names are the model's: cut short, and any lone surrogate replaced, so every wire takes them.
        names = [_shown(name) for name in dict.fromkeys(self._cut) if name]
        if not names:
            what = "a tool call"
        else:
            what = ("a call to " if len(names) == 1 else "calls to ") + ", ".join(names)
        return ModelFailure(
            f"the model reached its token limit while writing {what}; raise max_tokens",
            code="tool_call_cut",
        )

    def _read_choice(self, choice: dict[str, Any]) -> list[ModelChunk]:
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise _bad("a stream chunk's delta is not an object")
        out: list[ModelChunk] = []
        # vLLM and DeepSeek say reasoning_content, OpenRouter and Ollama say reasoning; some
        # servers send both with the same text, so one is read.
        thought = _text(delta.get("reasoning_content")) or _text(delta.get("reasoning"))
        if thought:
            out.append(ReasoningChunk(text=thought))
        for key in ("content", "refusal"):
            piece = _text(delta.get(key))
            if piece:
                out.append(TextChunk(text=piece))
        fragments = delta.get("tool_calls") or []
        if not isinstance(fragments, list):
            raise _bad("a stream chunk's tool_calls is not a list")
        for position, fragment in enumerate(fragments):
            self._read_fragment(position, fragment)
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason and self.finish_reason is None:
            out += self._finish(reason)
        return out

    def _read_fragment(self, position: int, fragment: object) -> None:
        if not isinstance(fragment, dict):
            raise _bad("a tool call fragment is not an object")
        # Some servers leave out the index of whole (unsplit) calls; their position stands in.
        index = fragment.get("index", position)
        call = self._calls.setdefault(index if isinstance(index, int) else position, _PartialCall())
        function = fragment.get("function") or {}
        if not isinstance(function, dict):
            raise _bad("a tool call fragment's function is not an object")
        # The id and name come whole in the first fragment; servers that repeat them later are
        # not concatenated.  The arguments come in pieces.
        call.id = call.id or _text(fragment.get("id"))
        call.name = call.name or _text(function.get("name"))
        call.arguments += _text(function.get("arguments"))

    def _finish(self, reason: str) -> list[ModelChunk]:
        calls, self._calls = self._calls, {}
        # A call cut off by the token limit has half its arguments: it is dropped, not run,
        # and remembered so that the answer says why it ends without it.
        if reason == "length" or not calls:
            self.finish_reason = reason
            self._cut = [calls[index].name for index in sorted(calls)]
            return []
        # Some servers say "stop" although the model called tools.
        self.finish_reason = "tool_calls"
        out: list[ModelChunk] = []
        for index in sorted(calls):
            call = calls[index]
            if not call.name:
                raise _bad(f"tool call {index} has no function name")
            out.append(ToolCallChunk(id=call.id or f"call_{index}", name=call.name, arguments=call.arguments))
        return out

    def _read_usage(self, usage: object) -> None:
        # Some servers send usage with every chunk; the last one counts, and is yielded once.
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if _is_count(prompt) and _is_count(completion):
                self._usage = UsageChunk(input_tokens=prompt, output_tokens=completion)


def _bad(message: str) -> ModelFailure:
    return ModelFailure(message, code="bad_response")


def _shown(name: str) -> str:
    """Return a tool name the model wrote, fit for a message: short, and valid UTF-8."""
    name = name if len(name) <= 64 else name[:63] + "…"
    return name.encode("utf-8", "replace").decode("utf-8")


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def as_data(chunk: object) -> object:
    """Return a chunk as the JSON the server sent (the client builds models without validating)."""
    to_dict = getattr(chunk, "to_dict", None)
    return to_dict() if callable(to_dict) else chunk
