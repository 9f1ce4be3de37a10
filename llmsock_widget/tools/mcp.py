"""MCP servers' tools as llmsock tools: add a server, and each of its tools joins a ToolRegistry.

>>> servers = McpServers(registry)                       # on the llmsock server's loop
>>> await servers.add("time", McpTransport.of(command=["python", "-m", "mcp_server_time"]))
['time__get_current_time', 'time__convert_time']

Names: a tool is registered as ``<server>__<tool>``, always, so that two servers (or a
server and a Python tool: ``mcp-server-time`` has a ``get_current_time`` too) never take
each other's names, and the name is one a model accepts (``[a-zA-Z0-9_-]{1,64}``,
OpenAI's rule): other characters become ``_``, and a name past 64 characters is cut and
ends in a hash of the whole.

A call is awaited on the loop that added the server (the llmsock server's loop, where
async tools run) and is bounded by the tool timeout like any tool.  The MCP tool's
``inputSchema`` is the parameters the model sees; llmsock checks only that the required
arguments are there (and that no other is given when the schema forbids it), and the MCP
server checks the rest.  An error the server answers with is a ``tool_error`` whose
message is the server's; so is a call to a server that has exited.

Nothing here imports ``mcp`` until a server is added (see :mod:`.mcp_session`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .mcp_session import McpSession, McpToolError, McpTransport
from .registry import RegisteredTool, ToolRegistry
from .schema import ToolSpec

__all__ = ["McpServers", "McpToolError", "McpTransport", "tool_name"]

SEPARATOR = "__"
SERVER_NAME = re.compile(r"[a-zA-Z0-9_-]{1,32}")
MAX_NAME = 64
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def tool_name(server: str, tool: str) -> str:
    """Return the llmsock name of ``server``'s MCP tool ``tool``: ``<server>__<tool>``, model-safe."""
    name = f"{server}{SEPARATOR}{_UNSAFE.sub('_', tool)}"
    if len(name) <= MAX_NAME and name == f"{server}{SEPARATOR}{tool}":
        return name
    # Changed or cut: a hash of the original keeps two such names apart.
    digest = hashlib.sha256(tool.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}_{digest}"


def check_server_name(name: object) -> str:
    """Return ``name`` if it may name an MCP server (1 to 32 letters, digits, ``_``, ``-``).

    Raises:
        ValueError: it may not.
    """
    if not isinstance(name, str) or not SERVER_NAME.fullmatch(name):
        raise ValueError(f"an MCP server's name is 1 to 32 letters, digits, '_' or '-', not {name!r}")
    return name


@dataclass(frozen=True, kw_only=True, slots=True)
class McpToolSpec(ToolSpec):
    """An MCP tool's schema: the arguments go to the server as one object, which the server checks."""

    closed: bool = False  # the schema says additionalProperties: false

    def bind(self, arguments: Any) -> tuple[list[Any], dict[str, Any]]:
        """Check the required arguments are given (and no unknown one, if the schema is closed)."""
        self.check_names(arguments, closed=self.closed)
        return [dict(arguments)], {}


class McpServers:
    """The MCP servers added to one registry, by name; use it on one loop (the llmsock server's)."""

    def __init__(self, registry: ToolRegistry) -> None:
        self.registry = registry
        self._sessions: dict[str, McpSession] = {}
        self._tools: dict[str, list[RegisteredTool]] = {}

    async def add(
        self,
        name: str,
        transport: McpTransport,
        *,
        timeout: float | None = None,
        approval: bool | Iterable[str] = False,
    ) -> list[str]:
        """Start MCP server ``name`` and register its tools; return their llmsock names.

        A server already added under ``name`` is closed first (re-running a cell replaces it).
        ``approval``: True, every call of its tools waits for the user's approval; a list of the
        server's own tool names, calls of those.

        Raises:
            ValueError: ``name`` is not allowed.
            McpToolError: the server could not be started or did not list its tools.
        """
        check_server_name(name)
        if importlib.util.find_spec("mcp") is None:
            raise McpToolError("the MCP client is not installed: pip install 'llmsock[mcp]'")
        await self.remove(name)
        session = McpSession(name, transport)
        await (session.open() if timeout is None else session.open(timeout))
        needs = _approval_rule(approval)
        tools = [_registered(session, tool, approval=needs(tool.name)) for tool in session.tools]
        self._sessions[name] = session
        self._tools[name] = tools
        # Closed by the llmsock server's stop (not by remove): its tools go too.
        session.on_close = lambda: self._forget(name, session)
        for tool in tools:
            self.registry.add(tool)
        return [tool.name for tool in tools]

    async def remove(self, name: str) -> list[str]:
        """Unregister server ``name``'s tools and close it; return the names removed ([] if unknown)."""
        session = self._sessions.pop(name, None)
        tools = self._tools.pop(name, [])
        for tool in tools:
            self.registry.discard(tool)
        if session is not None:
            await session.close()
        return [tool.name for tool in tools]

    def _forget(self, name: str, session: McpSession) -> None:
        if self._sessions.get(name) is session:
            del self._sessions[name]
            for tool in self._tools.pop(name, []):
                self.registry.discard(tool)

    async def close(self) -> None:
        """Remove every server."""
        for name in list(self._sessions):
            await self.remove(name)

    def listing(self) -> dict[str, dict[str, Any]]:
        """Return each server's transport, whether it runs, and its tools' llmsock names."""
        return {
            name: {
                "transport": session.transport.describe(),
                "running": session.running,
                "problem": None if session.running else session.failure,
                "tools": [tool.name for tool in self._tools.get(name, [])],
            }
            for name, session in list(self._sessions.items())  # read from other threads too
        }


def _approval_rule(approval: bool | Iterable[str]) -> Callable[[str], bool]:
    """Return whether a tool (by the server's own name) needs approval, from ``add``'s ``approval``."""
    if isinstance(approval, bool):
        return lambda _name: approval
    if isinstance(approval, str):
        raise TypeError("approval must be True, False or a list of tool names, not one string")
    named = frozenset(approval)
    if not all(isinstance(item, str) for item in named):
        raise TypeError("approval must be True, False or a list of tool names")
    return lambda name: name in named


def _registered(session: McpSession, tool: Any, *, approval: bool = False) -> RegisteredTool:
    """Return ``session``'s MCP ``tool`` as a registry entry whose call goes to the server."""
    name = tool_name(session.name, tool.name)
    parameters = dict(tool.input_schema or {"type": "object", "properties": {}})
    properties = parameters.get("properties")
    keys = list(properties) if isinstance(properties, dict) else []
    required = parameters.get("required")
    description = tool.description or tool.title or f"The tool {tool.name!r} of MCP server {session.name!r}."
    spec = McpToolSpec(
        name=name,
        schema={
            "type": "function",
            "function": {"name": name, "description": description, "parameters": parameters},
        },
        checks={key: _as_is for key in keys},
        required=frozenset(key for key in required if isinstance(key, str))
        if isinstance(required, list)
        else frozenset(),
        optional=frozenset(),
        closed=parameters.get("additionalProperties") is False,
    )
    mcp_name = tool.name

    async def call(arguments: dict[str, Any]) -> Any:
        return await session.call(mcp_name, arguments)

    call.__name__ = name
    return RegisteredTool(
        fn=call, spec=spec, timeout=None, is_async=True, origin=f"mcp:{session.name}", approval=approval
    )


def _as_is(value: Any, path: str) -> Any:
    return value
