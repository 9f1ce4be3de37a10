"""Tests for llmsock_widget.tools.call_tool: every fault becomes a ToolOutcome with a code."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import json
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from llmsock_widget.tools import ToolOutcome, ToolRegistry, call_tool, default_registry
from tests.conftest import TIMEOUT

SHORT = 0.2  # a timeout the blocked tools below are sure to exceed


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def run(registry: ToolRegistry, name: str, arguments: str, **options: Any) -> ToolOutcome:
    """Return the outcome of one call on a fresh event loop."""
    options.setdefault("timeout", TIMEOUT)
    return asyncio.run(call_tool(registry, name, arguments, **options))


def error_of(outcome: ToolOutcome) -> tuple[str, str]:
    """Return ``(code, message)`` of a failed outcome."""
    assert not outcome.ok and outcome.error is not None
    return outcome.error["code"], outcome.error["message"]


@pytest.fixture
def registry() -> ToolRegistry:
    """A registry with a few small sync and async tools."""
    tools = ToolRegistry()

    @tools.register
    def add(a: int, b: int = 1) -> int:
        """Add two integers."""
        return a + b

    @tools.register
    async def scale(value: float, factor: float = 2.0) -> float:
        """Scale a number."""
        return value * factor

    @tools.register
    def describe(color: Color, tags: tuple[str, ...] = (), note: str | None = None) -> dict[str, Any]:
        """Describe the arguments as received."""
        return {"color": color.name, "tags_type": type(tags).__name__, "note": note}

    @tools.register
    def fail(message: str) -> None:
        """Raise a ValueError."""
        raise ValueError(message)

    @tools.register
    def where() -> str:
        """Name the thread this runs on."""
        return threading.current_thread().name

    return tools


# -- success ---------------------------------------------------------------------------------


def test_sync_tool_succeeds(registry: ToolRegistry) -> None:
    """A sync tool's return value becomes the result, with a duration."""
    outcome = run(registry, "add", '{"a": 2, "b": 3}')
    assert outcome == ToolOutcome(ok=True, result=5, duration_ms=outcome.duration_ms)
    assert outcome.duration_ms >= 0


def test_async_tool_succeeds(registry: ToolRegistry) -> None:
    """An async tool is awaited and its value becomes the result."""
    assert run(registry, "scale", '{"value": 1.5}').result == 3.0


def test_async_tool_runs_on_the_calling_loop() -> None:
    """An async tool runs on the thread of the loop that called it."""
    tools = ToolRegistry()

    @tools.register
    async def loop_thread() -> str:
        """Name the thread."""
        return threading.current_thread().name

    assert run(tools, "loop_thread", "{}").result == threading.current_thread().name


def test_sync_tool_runs_on_a_tool_thread(registry: ToolRegistry) -> None:
    """A sync tool runs on an llmsock-tool worker, not the main thread nor the loop's."""
    name = run(registry, "where", "{}").result
    assert name.startswith("llmsock-tool")
    assert name != threading.main_thread().name


def test_given_executor_is_used(registry: ToolRegistry) -> None:
    """A sync tool runs on the executor passed to call_tool."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="custom-pool") as pool:
        assert run(registry, "where", "{}", executor=pool).result.startswith("custom-pool")


def test_defaults_are_used(registry: ToolRegistry) -> None:
    """Missing optional arguments take the function's defaults."""
    assert run(registry, "add", '{"a": 2}').result == 3


def test_blank_arguments_mean_no_arguments(registry: ToolRegistry) -> None:
    """Blank arguments (some providers send "") count as {}."""
    assert run(registry, "where", "").ok
    assert run(registry, "where", "  ").ok


def test_arguments_are_converted(registry: ToolRegistry) -> None:
    """Enum values arrive as members, arrays for tuples as tuples, a missing Optional as None."""
    outcome = run(registry, "describe", '{"color": "blue", "tags": ["a"]}')
    assert outcome.result == {"color": "BLUE", "tags_type": "tuple", "note": None}


def test_integral_float_is_accepted_for_int(registry: ToolRegistry) -> None:
    """3.0 is accepted for an int parameter and passed as 3."""
    assert run(registry, "add", '{"a": 3.0, "b": 0}').result == 3


def test_positional_only_parameters() -> None:
    """A function with positional-only parameters (math.sqrt) is called positionally."""
    tools = ToolRegistry()
    tools.register(math.sqrt, name="sqrt")
    assert run(tools, "sqrt", '{"x": 16}').result == 4.0


def test_non_json_result_is_a_live_object() -> None:
    """A result that is not plain JSON is kept as the object; the model reads its summary."""
    tools = ToolRegistry()
    when = dt.datetime(2024, 5, 1, 12, 0)
    tools.register(lambda: {"when": when, "n": 1}, name="nested")
    tools.register(lambda: math.nan, name="nan")
    tools.register(lambda: (1, 2), name="pair")
    tools.register(lambda: {"n": [1, 2.5, None, True]}, name="plain")
    nested = run(tools, "nested", "{}")
    assert nested.value == {"when": when, "n": 1} and set(nested.result) == {"summary"}
    assert "datetime.datetime(2024, 5, 1, 12, 0)" in nested.result["summary"]
    assert math.isnan(run(tools, "nan", "{}").value)
    pair = run(tools, "pair", "{}")
    assert pair.value == (1, 2) and pair.result["summary"].startswith("result: ")
    plain = run(tools, "plain", "{}")
    assert plain.result == {"n": [1, 2.5, None, True]} and plain.value is None


def test_content_is_the_tool_message_text(registry: ToolRegistry) -> None:
    """content() is a string result as is, any other result as JSON, an error as {"error": ...}."""
    assert run(registry, "where", "{}").content().startswith("llmsock-tool")
    assert json.loads(run(registry, "add", '{"a": 1}').content()) == 2
    assert json.loads(run(registry, "nope", "{}").content())["error"]["code"] == "unknown_tool"


# -- the model's faults ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nope", "os.system", "__import__", "print", "eval", "add ", ""])
def test_unknown_tool(registry: ToolRegistry, name: str) -> None:
    """A name not in the registry is unknown_tool; nothing else is ever looked up."""
    code, message = error_of(run(registry, name, "{}"))
    assert code == "unknown_tool"
    assert repr(name) in message


@pytest.mark.parametrize("text", ["{", "not json", "{'a': 1}", '{"a": NaN}', '{"a": Infinity}'])
def test_invalid_json(registry: ToolRegistry, text: str) -> None:
    """Arguments that are not valid JSON are invalid_arguments."""
    code, message = error_of(run(registry, "add", text))
    assert code == "invalid_arguments"
    assert "JSON" in message


@pytest.mark.parametrize("text", ["[1, 2]", "3", '"a"', "null", "true"])
def test_arguments_must_be_an_object(registry: ToolRegistry, text: str) -> None:
    """Valid JSON that is not an object is invalid_arguments."""
    code, message = error_of(run(registry, "add", text))
    assert (code, "object" in message) == ("invalid_arguments", True)


def test_missing_required_argument(registry: ToolRegistry) -> None:
    """A missing required argument is invalid_arguments naming it."""
    assert error_of(run(registry, "add", '{"b": 1}')) == (
        "invalid_arguments",
        "missing required argument 'a'",
    )


def test_unexpected_argument(registry: ToolRegistry) -> None:
    """An argument the function does not take is invalid_arguments naming it."""
    assert error_of(run(registry, "add", '{"a": 1, "c": 2}')) == (
        "invalid_arguments",
        "unexpected argument 'c'",
    )


@pytest.mark.parametrize(
    ("tool", "arguments", "named"),
    [
        ("add", '{"a": "1"}', "'a'"),
        ("add", '{"a": 1.5}', "'a'"),
        ("add", '{"a": true}', "'a'"),
        ("scale", '{"value": "x"}', "'value'"),
        ("scale", '{"value": false}', "'value'"),
        ("fail", '{"message": 3}', "'message'"),
        ("describe", '{"color": "green"}', "'color'"),
        ("describe", '{"color": "red", "tags": "a"}', "'tags'"),
        ("describe", '{"color": "red", "tags": ["a", 1]}', "'tags'[1]"),
        ("describe", '{"color": "red", "note": 5}', "'note'"),
    ],
)
def test_wrong_type(registry: ToolRegistry, tool: str, arguments: str, named: str) -> None:
    """A value of the wrong JSON type (or outside an enum) is invalid_arguments naming the parameter."""
    code, message = error_of(run(registry, tool, arguments))
    assert code == "invalid_arguments"
    assert message.startswith(f"argument {named}:")


def test_bool_parameter_refuses_numbers() -> None:
    """A bool parameter takes true/false only, not 1 or 0."""
    typed = ToolRegistry()

    def toggle(flag: bool) -> bool:
        """Toggle."""
        return not flag

    typed.register(toggle)
    assert run(typed, "toggle", '{"flag": true}').result is False
    assert error_of(run(typed, "toggle", '{"flag": 1}'))[0] == "invalid_arguments"


# -- the tool's faults ----------------------------------------------------------------------------


def test_exception_becomes_tool_error(registry: ToolRegistry) -> None:
    """An exception in the tool is tool_error "<Type>: <message>"."""
    assert error_of(run(registry, "fail", '{"message": "bad input"}')) == (
        "tool_error",
        "ValueError: bad input",
    )


def test_long_exception_message_is_cut(registry: ToolRegistry) -> None:
    """The exception's message is cut to 500 characters."""
    _, message = error_of(run(registry, "fail", json.dumps({"message": "x" * 5000})))
    assert message.startswith("ValueError: x")
    assert len(message) == len("ValueError: ") + 500


def test_async_exception_becomes_tool_error() -> None:
    """An async tool's exception (even its own TimeoutError) is tool_error, not timeout."""
    tools = ToolRegistry()

    @tools.register
    async def flaky() -> None:
        """Fail."""
        raise TimeoutError("upstream timed out")

    assert error_of(run(tools, "flaky", "{}")) == ("tool_error", "TimeoutError: upstream timed out")


def test_system_exit_in_sync_tool_is_tool_error() -> None:
    """sys.exit() in a sync tool is only that tool's failure."""
    tools = ToolRegistry()

    def leave() -> None:
        """Exit."""
        raise SystemExit(3)

    tools.register(leave)
    assert error_of(run(tools, "leave", "{}")) == ("tool_error", "SystemExit: 3")


def test_sync_tool_returning_coroutine_is_tool_error() -> None:
    """A plain function that returns a coroutine is a tool_error, and the coroutine is closed."""
    tools = ToolRegistry()

    async def inner() -> int:
        return 1

    tools.register(lambda: inner(), name="sneaky")
    code, message = error_of(run(tools, "sneaky", "{}"))
    assert code == "tool_error" and "async def" in message


def test_sync_timeout_reports_and_the_thread_runs_on() -> None:
    """A sync tool past its timeout is reported as timeout; its thread finishes once released."""
    tools = ToolRegistry()
    release, finished = threading.Event(), threading.Event()

    @tools.register
    def block() -> str:
        """Wait until the test releases it."""
        release.wait(TIMEOUT)
        finished.set()
        return "late"

    try:
        outcome = run(tools, "block", "{}", timeout=SHORT)
        assert error_of(outcome)[0] == "timeout"
        assert "0.2 s" in error_of(outcome)[1]
        assert not finished.is_set()
    finally:
        release.set()
    assert finished.wait(TIMEOUT)


def test_async_timeout_cancels_the_tool() -> None:
    """An async tool past its timeout is cancelled and reported as timeout."""
    tools = ToolRegistry()
    cancelled = threading.Event()

    @tools.register
    async def hang() -> None:
        """Wait forever."""
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    assert error_of(run(tools, "hang", "{}", timeout=SHORT))[0] == "timeout"
    assert cancelled.is_set()


def test_registered_timeout_overrides_the_call() -> None:
    """A tool's own timeout replaces the timeout of the call."""
    tools = ToolRegistry()
    release = threading.Event()
    tools.register(lambda: release.wait(TIMEOUT), name="block", timeout=SHORT)
    try:
        code, message = error_of(run(tools, "block", "{}", timeout=TIMEOUT))
    finally:
        release.set()
    assert code == "timeout" and "0.2 s" in message


@pytest.mark.parametrize("timeout", [0, -1.0, math.inf])
def test_bad_call_timeout_raises(registry: ToolRegistry, timeout: float) -> None:
    """A timeout that is not a positive number is the caller's bug: ValueError."""
    with pytest.raises(ValueError, match="timeout"):
        run(registry, "add", '{"a": 1}', timeout=timeout)


# -- ToolOutcome ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"ok": True, "error": {"code": "tool_error", "message": "x"}},
        {"ok": False},
        {"ok": False, "error": {"code": "tool_error"}},
        {"ok": False, "error": {"code": "made_up", "message": "x"}},
    ],
)
def test_outcome_validates_itself(fields: dict[str, Any]) -> None:
    """An outcome is ok exactly when it has no error, and an error has a known code and a message."""
    with pytest.raises(ValueError, match="error"):
        ToolOutcome(**fields)


def test_builtin_tools_through_call_tool() -> None:
    """The default registry's tools run through call_tool; their errors are tool_error."""
    tools = default_registry()
    assert run(tools, "calculate", '{"expression": "2 + 3 * 4"}').result == 14
    assert run(tools, "get_current_time", "{}").result.endswith("+00:00")
    code, message = error_of(run(tools, "get_current_time", '{"timezone": "Mars/Olympus"}'))
    assert code == "tool_error" and "unknown time zone" in message
    code, message = error_of(run(tools, "calculate", '{"expression": "1 / 0"}'))
    assert (code, message) == ("tool_error", "CalculationError: division by zero")
