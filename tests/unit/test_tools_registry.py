"""Tests for llmsock_widget.tools.ToolRegistry: registering, filtering, thread safety."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest

from llmsock_widget.tools import ToolRegistry, default_registry
from tests.conftest import TIMEOUT


def test_register_as_plain_decorator() -> None:
    """@registry.register registers the function under its own name and returns it unchanged."""
    registry = ToolRegistry()

    @registry.register
    def ping() -> str:
        """Answer pong."""
        return "pong"

    assert ping() == "pong"
    assert "ping" in registry
    assert registry.names() == ["ping"]


def test_register_as_decorator_with_options() -> None:
    """@registry.register(name=..., description=...) uses the given name and description."""
    registry = ToolRegistry()

    @registry.register(name="echo-text", description="Echo.")
    def echo(text: str) -> str:
        return text

    assert echo("x") == "x"
    assert registry.schemas()[0]["function"]["name"] == "echo-text"
    assert registry.schemas()[0]["function"]["description"] == "Echo."
    assert "echo" not in registry


def test_register_as_call() -> None:
    """registry.register(fn) registers and returns fn."""
    registry = ToolRegistry()

    def double(x: int) -> int:
        return 2 * x

    assert registry.register(double, timeout=3) is double
    tool = registry.get("double")
    assert tool is not None and tool.timeout == 3 and not tool.is_async


def test_register_detects_async_tools() -> None:
    """async def functions and callables with async __call__ are marked async."""
    registry = ToolRegistry()

    async def wait() -> None:
        return None

    class Waiter:
        async def __call__(self) -> None:
            return None

    registry.register(wait)
    registry.register(Waiter(), name="waiter")
    assert all(tool.is_async for tool in map(registry.get, ["wait", "waiter"]) if tool is not None)


@pytest.mark.parametrize("timeout", [0, -1, math.inf, math.nan, True, "5"])
def test_register_refuses_bad_timeout(timeout: Any) -> None:
    """A timeout that is not a positive finite number is a ValueError."""
    with pytest.raises(ValueError, match="timeout"):
        ToolRegistry().register(lambda: None, name="noop", timeout=timeout)


def test_register_same_name_replaces() -> None:
    """Registering a name again replaces the tool (re-running a notebook cell)."""
    registry = ToolRegistry()
    registry.register(lambda: 1, name="one", description="First.")
    registry.register(lambda: 1, name="one", description="Second.")
    assert len(registry) == 1
    assert registry.schemas()[0]["function"]["description"] == "Second."


def test_schemas_filter_by_name_and_ignore_unknown() -> None:
    """schemas(names) returns only the named tools, in registration order; unknown names are ignored."""
    registry = default_registry()
    registry.register(lambda: None, name="noop")
    assert [s["function"]["name"] for s in registry.schemas()] == ["get_current_time", "calculate", "noop"]
    chosen = registry.schemas(["noop", "nope", "get_current_time"])
    assert [s["function"]["name"] for s in chosen] == ["get_current_time", "noop"]
    assert registry.schemas([]) == []


def test_schemas_are_copies() -> None:
    """Changing a returned schema does not change the registry's."""
    registry = default_registry()
    registry.schemas()[0]["function"]["name"] = "changed"
    assert registry.schemas()[0]["function"]["name"] == "get_current_time"


def test_unregister() -> None:
    """unregister removes a tool; an unknown name is a KeyError."""
    registry = default_registry()
    registry.unregister("calculate")
    assert "calculate" not in registry
    assert registry.names() == ["get_current_time"]
    with pytest.raises(KeyError):
        registry.unregister("calculate")


def test_contains_refuses_non_strings() -> None:
    """`in` is False for names that are not strings."""
    assert 3 not in default_registry()
    assert None not in default_registry()


def test_default_registry_is_new_each_time() -> None:
    """default_registry() returns a fresh registry with the two built-in tools."""
    first, second = default_registry(), default_registry()
    first.unregister("calculate")
    assert second.names() == ["get_current_time", "calculate"]


def test_concurrent_registration_loses_nothing() -> None:
    """Threads registering at once all end up in the registry."""
    registry = ToolRegistry()
    start = threading.Barrier(8)

    def worker(index: int) -> None:
        start.wait(TIMEOUT)
        for n in range(50):
            registry.register(lambda: None, name=f"t{index}_{n}")
            registry.schemas()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert len(registry) == 400
