"""The tools a model may call: plain Python functions registered by name.

Users register from the kernel's main thread while the server thread reads, so
every access goes through one lock.  Nothing outside a registry is ever called:
a name the model makes up is looked up here and nowhere else.
"""

from __future__ import annotations

import copy
import inspect
import math
import threading
from dataclasses import dataclass
from typing import Any, Callable, TypeVar, overload

from .calculator import calculate
from .clock import get_current_time
from .schema import ToolSpec, describe

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, kw_only=True, slots=True)
class RegisteredTool:
    """One registered function, its schema and checks, and its own timeout (None: the caller's).

    ``origin`` says where the tool comes from: None for a Python function, ``"mcp:<server>"``
    for a tool of an MCP server.  ``approval``: each call runs only after the user approves it.
    """

    fn: Callable[..., Any]
    spec: ToolSpec
    timeout: float | None
    is_async: bool
    origin: str | None = None
    approval: bool = False

    @property
    def name(self) -> str:
        """The name the model calls the tool by."""
        return self.spec.name


class ToolRegistry:
    """Named tools with their schemas; safe to use from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tools: dict[str, RegisteredTool] = {}

    @overload
    def register(
        self,
        fn: F,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        approval: bool = False,
    ) -> F: ...

    @overload
    def register(
        self,
        fn: None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        approval: bool = False,
    ) -> Callable[[F], F]: ...

    def register(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        approval: bool = False,
    ) -> Any:
        """Register ``fn`` as a tool and return it unchanged; without ``fn``, return a decorator.

        Works as ``@registry.register``, ``@registry.register(name="x")`` and
        ``registry.register(fn, timeout=5)``.  Registering a name again replaces the
        tool, so re-running a notebook cell does what it says.

        Args:
            fn: The function (sync or ``async def``).
            name: The tool's name (default ``fn.__name__``).
            description: The tool's description (default: the docstring's first paragraph).
            timeout: Seconds this tool may run; overrides the timeout of each call.
            approval: Run each call only after the user approves it (a tool that changes state).

        Raises:
            TypeError: ``fn`` cannot be described as a tool (see :func:`tool_schema`).
            ValueError: the name or the timeout is not allowed.
        """
        check_timeout(timeout)
        if not isinstance(approval, bool):
            raise TypeError(f"approval must be True or False, not {approval!r}")

        def add(function: F) -> F:
            spec = describe(function, name=name, description=description)
            tool = RegisteredTool(
                fn=function, spec=spec, timeout=timeout, is_async=_is_async(function), approval=approval
            )
            with self._lock:
                self._tools[spec.name] = tool
            return function

        return add if fn is None else add(fn)

    def add(self, tool: RegisteredTool) -> None:
        """Register a tool described already (e.g. an MCP server's), replacing one of its name."""
        with self._lock:
            self._tools[tool.name] = tool

    def discard(self, tool: RegisteredTool) -> bool:
        """Unregister ``tool`` unless a later registration took its name; say whether it did."""
        with self._lock:
            if self._tools.get(tool.name) is not tool:
                return False
            del self._tools[tool.name]
            return True

    def unregister(self, name: str) -> None:
        """Remove the tool called ``name``.

        Raises:
            KeyError: no tool has that name.
        """
        with self._lock:
            del self._tools[name]

    def get(self, name: str) -> RegisteredTool | None:
        """Return the tool called ``name``, or None."""
        with self._lock:
            return self._tools.get(name) if isinstance(name, str) else None

    def names(self) -> list[str]:
        """Return the tools' names in registration order."""
        with self._lock:
            return list(self._tools)

    def schemas(self, names: list[str] | None = None) -> list[dict[str, Any]]:
        """Return copies of the tools' schemas in registration order: all, or only those in ``names``.

        Names in ``names`` that no tool has are ignored.
        """
        with self._lock:
            tools = list(self._tools.values())
        wanted = None if names is None else set(names)
        return [_copy_json(t.spec.schema) for t in tools if wanted is None or t.name in wanted]

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return isinstance(name, str) and name in self._tools

    def __len__(self) -> int:
        with self._lock:
            return len(self._tools)

    def __repr__(self) -> str:
        return f"<ToolRegistry {self.names()!r}>"


def default_registry() -> ToolRegistry:
    """Return a new registry holding the built-in tools, ``get_current_time`` and ``calculate``."""
    registry = ToolRegistry()
    registry.register(get_current_time)
    registry.register(calculate)
    return registry


def _copy_json(value: Any) -> Any:
    """Return a deep copy of the JSON value ``value``; other values go through ``copy.deepcopy``.

    Every turn copies the schemas it offers, and a schema is dicts, lists and scalars:
    walking those directly costs a third of ``copy.deepcopy``'s bookkeeping.
    """
    kind = type(value)
    if kind is dict:
        return {key: _copy_json(item) for key, item in value.items()}
    if kind is list:
        return [_copy_json(item) for item in value]
    if kind in _SCALARS:
        return value
    return copy.deepcopy(value)  # a parameter's default may be any object


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _is_async(fn: Callable[..., Any]) -> bool:
    # A callable object with ``async def __call__`` is a coroutine function too.
    return inspect.iscoroutinefunction(fn) or (
        not inspect.isroutine(fn) and inspect.iscoroutinefunction(type(fn).__call__)
    )


def check_timeout(timeout: object) -> None:
    """Raise ValueError unless ``timeout`` is None or a positive finite number of seconds."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
