"""Tools a model may call: plain Python functions, described by their signatures and docstrings.

>>> registry = default_registry()          # get_current_time and calculate
>>> @registry.register(timeout=5)
... def add(a: int, b: int = 1) -> int:
...     '''Add two numbers.'''
...     return a + b
>>> registry.schemas(["add"])[0]["function"]["parameters"]["required"]
['a']

``await call_tool(registry, name, arguments_json, timeout=...)`` runs one call
and returns a :class:`ToolOutcome`; it never raises for the model's or the
tool's faults.  A tool that returns an object that is not plain JSON (or a
:class:`LiveResult`) hands the user that object; the model reads its summary.
See ``execution`` for which thread runs what, and ``mcp`` for an MCP server's tools as
registry entries (that module imports the ``mcp`` package only when used).
"""

from __future__ import annotations

from .calculator import CalculationError, calculate
from .clock import get_current_time
from .execution import LiveResult, ToolOutcome, call_tool, shutdown_pool
from .registry import RegisteredTool, ToolRegistry, default_registry
from .schema import InvalidArgument, tool_schema

__all__ = [
    "CalculationError",
    "InvalidArgument",
    "LiveResult",
    "RegisteredTool",
    "ToolOutcome",
    "ToolRegistry",
    "calculate",
    "call_tool",
    "default_registry",
    "get_current_time",
    "shutdown_pool",
    "tool_schema",
]
