"""A session's settings: the prompt options a chat keeps from turn to turn, and their rules.  Pure.

The settings of a session are those of its last prompt (docs/protocol.md, section 7.1):
its ``temperature``, ``maxTokens``, ``system`` and ``model`` options, those it set.  One
rule per option checks a value for the decoder (a client's prompt) and for a snapshot
(a stored session) alike, so a value one accepts the other accepts too.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

MAX_SYSTEM_CHARS = 32_768
"""The longest ``system`` option (the system prompt of a turn), in characters."""

MAX_MODEL_NAME = 200
"""The longest ``model`` option (the name of a model set up in the server), in characters."""

MAX_TOKENS = 1_000_000
"""The largest ``maxTokens`` option."""


def _temperature(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 2:
        raise ValueError("temperature must be a number from 0 to 2")
    return float(value)


def _max_tokens(value: Any) -> int:
    if type(value) is not int or not 1 <= value <= MAX_TOKENS:
        raise ValueError(f"maxTokens must be an integer from 1 to {MAX_TOKENS}")
    return value


def _system(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_SYSTEM_CHARS:
        raise ValueError(f"system must be a string of at most {MAX_SYSTEM_CHARS} characters, or null")
    return value


def _model(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_MODEL_NAME:
        raise ValueError(f"model must be a model's name (1 to {MAX_MODEL_NAME} characters), or null")
    return value


SETTINGS: dict[str, Callable[[Any], Any]] = {
    "temperature": _temperature,
    "maxTokens": _max_tokens,
    "system": _system,
    "model": _model,
}
"""The options a session keeps as its settings, each with its rule (which raises ValueError)."""


def check_setting(key: str, value: Any) -> Any:
    """Return ``value`` as option ``key`` holds it (an int temperature becomes a float).

    Raises:
        ValueError: the value breaks the option's rule; the message names the option.
    """
    return SETTINGS[key](value)


def settings_of(options: Mapping[str, Any]) -> dict[str, Any]:
    """Return the settings a prompt's validated ``options`` give its session: those it set.

    An option that is absent or null is not set, and neither is an empty ``system``.
    """
    return {key: options[key] for key in SETTINGS if options.get(key) is not None and options[key] != ""}
