"""The one strict JSON parser, for every untrusted input (client frames and model tool arguments),
and the one way frames are dumped.  Pure.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import InvalidFrame

MAX_DEPTH = 32


MAX_INT_DIGITS = 20


def parse_json(text: str) -> Any:
    """Parse JSON strictly: no NaN/Infinity, no duplicate keys, bounded depth and integers.

    Raises:
        InvalidFrame: with a message saying what is wrong.
    """
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except InvalidFrame:
        raise
    except RecursionError:
        raise InvalidFrame("JSON is nested too deeply") from None
    except ValueError as exc:
        raise InvalidFrame(f"not valid JSON: {exc}") from None
    _check_value(value, 0)
    return value


def parse_arguments(text: str) -> Any:
    """Parse a model's tool-call arguments with :func:`parse_json`, the parser of client frames.

    Raises:
        InvalidFrame: the text is not strict JSON (``NaN``, duplicate keys, too deep, ...).
    """
    return parse_json(text)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidFrame(f"duplicate key in JSON object: {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise InvalidFrame(f"{name} is not allowed in JSON")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise InvalidFrame(f"integer with more than {MAX_INT_DIGITS} digits")
    return int(digits)


def _finite_float(digits: str) -> float:
    value = float(digits)
    if value in (float("inf"), float("-inf")):
        raise InvalidFrame(f"number out of range: {digits[:20]}")
    return value


def check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidFrame("text holds a lone surrogate (not valid Unicode)") from None


def _check_value(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidFrame(f"JSON is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key)
            _check_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_value(item, depth + 1)


_SURROGATE = re.compile("[\ud800-\udfff]")


def well_formed(text: str) -> str:
    """Return ``text`` with each lone surrogate (which UTF-8 cannot hold) replaced by U+FFFD.

    A provider's JSON may decode to such a string (``"\\ud800"``); no frame, file or comm
    message could carry it.
    """
    if text.isascii():  # the common case, and cheap
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
