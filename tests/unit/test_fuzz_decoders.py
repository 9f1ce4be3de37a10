"""Fuzzing both dialects' decoders: every input is a command or a documented client error.

"Documented" means a :class:`~llmsock_widget.errors.ClientError` whose code is one of the
error codes of docs/protocol.md section 10 that a frame can cause; anything else (a
TypeError, a RecursionError, a KeyError from a missing field) is a bug.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmsock_widget.errors import ClientError
from llmsock_widget.wire import protocol

FRAME_ERRORS = {"invalid_message", "unknown_type"}
DIALECTS = ("envelope", "typed")

# JSON values, including the awkward ones: huge and negative numbers, deep nesting, odd keys.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)

KEYS = ["type", "id", "data", "metadata", "text", "options", "maxTokens", "temperature", "tools"]
TYPES = ["user_message", "control", "ping", "prompt", "abort", "", "x" * 200, 5, None]
ACTIONS = ["abort", "pause", "resume", "clear_history", "get_history", "get_status", "explode", 3, None]

# Frames shaped like real ones, with every field free to be wrong.
shaped = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={
        "id": json_values,
        "data": st.fixed_dictionaries(
            {},
            optional={
                "text": json_values,
                "type": st.sampled_from(ACTIONS) | json_values,
                "options": st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4) | json_values,
            },
        )
        | json_values,
        "metadata": json_values,
    },
)


def check(text: str, dialect: str) -> None:
    try:
        protocol.decode(text, dialect)  # type: ignore[arg-type]
    except ClientError as exc:
        assert exc.code in FRAME_ERRORS, f"{exc.code}: {exc.message}"
        assert exc.message and len(exc.message) < 1000


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300), st.sampled_from(DIALECTS))
def test_any_text_is_a_command_or_a_client_error(text: str, dialect: str) -> None:
    check(text, dialect)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(shaped, st.sampled_from(DIALECTS))
def test_frames_shaped_like_commands_are_a_command_or_a_client_error(
    frame: dict[str, Any], dialect: str
) -> None:
    check(json.dumps(frame), dialect)


@settings(max_examples=200)
@given(json_values, st.sampled_from(DIALECTS))
def test_any_json_value_is_a_command_or_a_client_error(value: Any, dialect: str) -> None:
    check(json.dumps(value), dialect)


@settings(max_examples=200)
@given(st.integers(min_value=1, max_value=5000), st.sampled_from(["[", '{"a":']), st.sampled_from(DIALECTS))
def test_deep_nesting_is_refused_not_a_recursion_error(depth: int, opener: str, dialect: str) -> None:
    check(opener * depth, dialect)


@settings(max_examples=200)
@given(st.binary(max_size=200), st.sampled_from(DIALECTS))
def test_bytes_decoded_with_replacement_or_surrogates_never_crash(raw: bytes, dialect: str) -> None:
    # What a server hands on after UTF-8 decoding, and what a lone surrogate escape produces.
    check(raw.decode("utf-8", errors="replace"), dialect)
    check(raw.decode("utf-8", errors="surrogateescape"), dialect)
