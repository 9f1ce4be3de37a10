"""MCP tools' names, argument checks and results, and that nothing imports ``mcp`` before it is used."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from llmsock_widget.tools import ToolRegistry, default_registry
from llmsock_widget.tools.mcp import McpToolSpec, McpTransport, check_server_name, tool_name
from llmsock_widget.tools.mcp_session import result_value
from llmsock_widget.tools.schema import InvalidArgument

MODEL_SAFE = re.compile(r"[a-zA-Z0-9_-]{1,64}")


@pytest.mark.parametrize(
    ("server", "tool", "expected"),
    [
        ("time", "get_current_time", "time__get_current_time"),
        ("fs", "read-file", "fs__read-file"),
    ],
)
def test_a_safe_name_is_server_and_tool(server: str, tool: str, expected: str) -> None:
    assert tool_name(server, tool) == expected


@pytest.mark.parametrize("tool", ["files.read", "a/b c", "é", "x" * 80, "y" * 61 + ".z"])
def test_every_name_is_model_safe_and_distinct(tool: str) -> None:
    """Dots, slashes, spaces, non-ASCII and long names become names OpenAI accepts, told apart by a hash."""
    name = tool_name("srv", tool)
    assert MODEL_SAFE.fullmatch(name) and name.startswith("srv__")
    assert name != tool_name("srv", tool + "!")


def test_names_that_clean_to_the_same_text_stay_apart() -> None:
    assert tool_name("s", "a.b") != tool_name("s", "a/b") != tool_name("s", "a_b")


@pytest.mark.parametrize("name", ["", "a b", "a.b", "x" * 33, None, "é"])
def test_a_server_name_is_checked(name: object) -> None:
    with pytest.raises(ValueError, match="MCP server's name"):
        check_server_name(name)


def spec(closed: bool = False) -> McpToolSpec:
    return McpToolSpec(
        name="s__t",
        schema={},
        checks={"a": lambda v, p: v, "b": lambda v, p: v},
        required=frozenset({"a"}),
        optional=frozenset(),
        closed=closed,
    )


def test_arguments_go_to_the_server_as_one_object() -> None:
    """Only the required ones are checked; unknown ones pass unless the schema is closed."""
    assert spec().bind({"a": {"deep": [1]}, "c": 3}) == ([{"a": {"deep": [1]}, "c": 3}], {})
    with pytest.raises(InvalidArgument, match="missing required argument 'a'"):
        spec().bind({"b": 1})
    with pytest.raises(InvalidArgument, match="unexpected argument 'c'"):
        spec(closed=True).bind({"a": 1, "c": 3})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "either command"),
        ({"command": ["x"], "url": "http://h/mcp"}, "either command"),
        ({"command": []}, "a program and its arguments"),
        ({"command": ""}, "a program and its arguments"),
        ({"url": "ftp://h/mcp"}, "http:// or https://"),
    ],
)
def test_a_transport_is_a_command_or_a_url(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        McpTransport.of(**options)  # type: ignore[arg-type]


def test_a_command_string_is_split_like_a_shell() -> None:
    transport = McpTransport.of(command="python -m 'my server'")
    assert transport.command == ("python", "-m", "my server")
    assert transport.describe() == "python -m 'my server'"


def test_discard_leaves_a_later_registration_of_the_name() -> None:
    """Removing an MCP server never takes away a tool that took one of its names since."""
    registry = default_registry()
    first = registry.get("calculate")
    assert first is not None
    registry.register(lambda expression: expression, name="calculate")
    assert registry.discard(first) is False and "calculate" in registry
    again = registry.get("calculate")
    assert again is not None and registry.discard(again) is True and "calculate" not in registry
    assert ToolRegistry().discard(again) is False


def test_a_result_is_its_structured_content_or_its_text() -> None:
    types = pytest.importorskip("mcp.types")
    text = types.TextContent(type="text", text="one")
    image = types.ImageContent(type="image", data="aGk=", mime_type="image/png")
    structured = types.CallToolResult(content=[text], structured_content={"n": 1})
    assert result_value(structured) == {"n": 1}
    mixed = types.CallToolResult(content=[text, image, types.TextContent(type="text", text="two")])
    assert result_value(mixed) == "one\n[image image/png not shown]\ntwo"


@pytest.mark.parametrize(
    "module", ["llmsock_widget", "llmsock_widget.server.thread", "llmsock_widget.tools.mcp"]
)
def test_importing_does_not_import_mcp(module: str) -> None:
    """The MCP client (and anyio's servers, pydantic models) load only when a server is added."""
    code = f"import sys, json, {module}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert not loaded & {"mcp", "mcp_types", "anyio"}, sorted(loaded & {"mcp", "mcp_types", "anyio"})
