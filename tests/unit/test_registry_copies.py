"""Tests for ToolRegistry.schemas' copies: every level is the caller's own, and equal to the registry's."""

from __future__ import annotations

import copy
from typing import Literal

from llmsock_widget.tools import ToolRegistry
from llmsock_widget.tools.registry import _copy_json, default_registry


def _pick(mode: Literal["a", "b"], tags: list[str] | None = None, limit: int = 3) -> str:
    """Pick something.

    Args:
        mode: Which way.
        tags: Labels to match.
        limit: How many.
    """
    return mode


def test_schema_copies_are_equal_and_independent_at_every_level() -> None:
    """Mutating any dict or list in a returned schema leaves the next call's schema as registered."""
    registry = ToolRegistry()
    registry.register(_pick)
    first = registry.schemas()
    expected = copy.deepcopy(first)
    params = first[0]["function"]["parameters"]
    params["required"].append("extra")
    params["properties"]["mode"]["enum"].append("c")
    params["properties"]["limit"]["default"] = 99
    del params["properties"]["tags"]
    first[0]["function"]["name"] = "changed"
    assert registry.schemas() == expected
    assert registry.schemas(["_pick"]) == expected


def test_registration_changes_what_schemas_returns() -> None:
    """Registering a name again or removing a tool shows in the next schemas()."""
    registry = default_registry()
    before = registry.schemas()

    def calculate(expression: str) -> str:
        """Say no."""
        return expression

    registry.register(calculate)
    after = registry.schemas()
    assert after[1]["function"]["description"] == "Say no."
    assert after[0] == before[0]
    registry.unregister("get_current_time")
    assert [s["function"]["name"] for s in registry.schemas()] == ["calculate"]


def test_copy_json_copies_other_values_deeply() -> None:
    """A value that is not plain JSON is copied as copy.deepcopy would copy it."""
    inner = [1, 2]
    value = {"a": [inner, (inner, {"b": None})], "c": 1.5, "d": True, "e": "s"}
    copied = _copy_json(value)
    assert copied == value
    assert copied["a"][0] is not inner and copied["a"][1][0] is not inner
