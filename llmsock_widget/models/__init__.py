"""Models: the ChatModel port and its implementations."""

from __future__ import annotations

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


def resolve_model(spec: str | ChatModel | None) -> ChatModel:
    """Return the model named by ``spec`` ("builtin", "builtin:<tokens/s>") or ``spec`` itself."""
    if spec is None or spec == "builtin":
        return BuiltinModel()
    if isinstance(spec, str):
        if spec.startswith("builtin:"):
            rate = spec.split(":", 1)[1]
            return BuiltinModel(tokens_per_second=None if rate in ("", "max", "0") else float(rate))
        raise ValueError(f"unknown model {spec!r}; use 'builtin' or 'builtin:<tokens per second>'")
    return spec
