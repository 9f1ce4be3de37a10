"""Models: the ChatModel port and its implementations."""

from __future__ import annotations

from typing import Any

from .base import (
    ChatModel,
    FinishChunk,
    ModelChunk,
    ModelRequest,
    ReasoningChunk,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)
from .builtin import BuiltinModel

__all__ = [
    "BuiltinModel",
    "ChatModel",
    "FinishChunk",
    "ModelChunk",
    "ModelRequest",
    "ReasoningChunk",
    "TextChunk",
    "ToolCallChunk",
    "UsageChunk",
    "resolve_model",
]


def resolve_model(spec: str | ChatModel | None, **options: Any) -> ChatModel:
    """Return the model ``spec`` names, or ``spec`` itself if it is a model.

    ``"builtin"`` / ``"builtin:<tokens per second>"`` (``builtin:0`` is unpaced) is the offline
    model; ``"openai:<model>"`` is any OpenAI-compatible server, with ``options`` such as
    ``base_url``, ``api_key``, ``temperature``, ``max_tokens``, ``timeout`` (seconds of silence
    before the first byte or between two), ``connect_timeout``, ``max_retries``
    (see :class:`~llmsock_widget.models.openai_compat.OpenAICompatModel`).  Both take ``tools``:
    whether prompts that do not choose are offered the registered tools (the builtin model: yes
    by default; an OpenAI-compatible one: no, since many servers refuse tools).

    Raises:
        ValueError: an unknown spec, or options a builtin model does not take.
    """
    if not isinstance(spec, str) and spec is not None:
        return spec
    if spec is None or spec == "builtin" or spec.startswith("builtin:"):
        tools = options.pop("tools", True)
        if options:
            raise ValueError(
                f"the builtin model takes no options but tools (got {', '.join(sorted(options))})"
            )
        rate = spec.split(":", 1)[1] if spec and ":" in spec else "100"
        try:
            pace = float(rate) if rate not in ("", "max") else 0.0
            return BuiltinModel(tokens_per_second=pace or None, tools=bool(tools))
        except ValueError:
            raise ValueError(f"bad builtin pace {rate!r}: use builtin:<tokens per second>") from None
    if spec.startswith("openai:"):
        try:
            from .openai_compat import from_spec  # imports the openai package only when asked for
        except ImportError:
            raise ValueError(
                "openai:<model> needs the openai package: pip install 'llmsock[openai]'"
            ) from None

        return from_spec(spec, **options)
    raise ValueError(f"unknown model {spec!r}; use 'builtin', 'builtin:<tokens/s>' or 'openai:<model>'")
