"""The kernel tools: the model reads the user's namespace and, once the user approves, runs code in it.

``list_variables``, ``describe_variable``, ``get_source`` and ``read_cell`` only read: they run
on a tool's worker thread, also while a cell runs, copy the namespace's keys before going
over them, and run none of the user's code but what a summary runs (``repr``, ``.head()``;
:mod:`llmsock_widget.context`, which caps sizes and masks secret-looking names).  Attribute
paths (``pkg.mod.fn``, ``obj.method``) are followed with ``inspect.getattr_static``, so no
property or ``__getattr__`` of the user's runs.  ``run_code`` changes state: it is registered
with ``approval=True`` and runs inside the cell gate (:mod:`.gate`).

:func:`install` registers the five on a server's registry when the kernel's server starts
(``%load_ext llmsock``, a chat widget, ``get_server()``) and puts the gate's hooks on IPython's
events; a tool of the user's with one of these names is left in place.  :func:`uninstall`
(``%unload_ext``) takes both away.
"""

from __future__ import annotations

import inspect
import linecache
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..context import mask_text, summarize
from ..tools import LiveResult, ToolRegistry
from . import gate as gates
from .namespace import copy_of, is_user_variable
from .runcode import execute

log = logging.getLogger("llmsock.tools")

MAX_VARIABLES = 100
"""Variables ``list_variables`` lists; it says how many more there are."""

LINE_CHARS = 160
"""Characters of one variable's summary in ``list_variables``."""

MAX_SOURCE_CHARS = 12_000
"""Characters of source ``get_source`` and ``read_cell`` return; the rest is cut."""

RUN_CODE_TIMEOUT = 180.0
"""Seconds a ``run_code`` call may take (its own tool timeout), waiting for a cell included."""

RUN_CODE_WAIT = 120.0
"""Seconds ``run_code`` waits for a running cell.  Less than :data:`RUN_CODE_TIMEOUT`: a wait that
gives up is said by ``run_code`` (the code did not run), never reported as the call's timeout
while the code may still start."""

CUT = "\n…[cut: {} more characters]"
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")

# A summary's label with nothing after it on its line (``source:``), and the kinds whose second
# line is the value's own text or repr, which may end in a colon and is never a label.
_LABEL = re.compile(r"[A-Za-z][A-Za-z ]*:")
_VERBATIM = frozenset({"str", "object"})


class KernelTools:
    """The five tools over one namespace; the methods are what the model calls (their docstrings, its help).

    ``namespace`` returns the user's namespace (``shell.user_ns``); ``history`` the raw source of
    the executed cells, ``In[0]`` first (IPython's ``input_hist_raw``; by default the
    namespace's ``In``); ``hidden`` the names IPython defined with their values (``user_ns_hidden``:
    hidden while they keep those values).
    """

    def __init__(
        self,
        namespace: Callable[[], dict[str, Any]],
        *,
        history: Callable[[], Sequence[str]] | None = None,
        hidden: Callable[[], Mapping[str, Any]] | None = None,
        gate: gates.CellGate | None = None,
        run_wait: float = RUN_CODE_WAIT,
    ) -> None:
        self._namespace = namespace
        self._history = history if history is not None else lambda: namespace().get("In", [""])
        self._hidden = hidden if hidden is not None else dict
        self.gate = gate if gate is not None else gates.CellGate(cell_wait=RUN_CODE_TIMEOUT)
        self.run_wait = run_wait

    # -- the tools (their docstrings are what the model reads) ------------------------------------

    def list_variables(self) -> dict[str, Any]:
        """List the variables of the user's notebook: name, kind and a one-line summary of each."""
        hidden = self._hidden()
        shown = []
        for name, value in copy_of(self._namespace()).items():
            if is_user_variable(name, value, hidden):
                shown.append((name, value))
        shown.sort(key=lambda item: (item[0].lower(), item[0]))  # as the @name completions
        variables = [_line(name, value) for name, value in shown[:MAX_VARIABLES]]
        listing: dict[str, Any] = {"variables": variables}
        if len(shown) > MAX_VARIABLES:
            listing["more"] = len(shown) - MAX_VARIABLES
        return listing

    def describe_variable(self, name: str) -> str:
        """Describe a variable of the user's notebook: type, shape, columns, first rows or items, source.

        Args:
            name: The variable's name, or an attribute path such as ``model.config``.
        """
        return str(summarize(name=name, value=self._lookup(name)).text)

    def get_source(self, name: str) -> dict[str, Any]:
        """Return the source code of a function, class, method or module of the user's notebook.

        Args:
            name: A name in the notebook, or an attribute path from one: ``train``, ``np.linalg.norm``,
                ``Model.fit``.
        """
        target = _unwrap(self._lookup(name))
        if not (inspect.ismodule(target) or inspect.isclass(target) or inspect.isroutine(target)):
            raise TypeError(
                f"{name!r} is a {type(target).__name__}, not a function, class or module: "
                "describe_variable shows its value"
            )
        lines, start, where = _source_of(name, target)
        source, _ = mask_text("".join(lines))
        found: dict[str, Any] = {"name": name, "file": where, "line": start}
        found["source"] = _capped(source)
        return found

    def read_cell(self, index: int) -> dict[str, Any]:
        """Return the source of an executed cell of this notebook, ``In[index]``.

        Args:
            index: The cell's execution count (``In[5]``: 5); negative counts from the last (-1).
        """
        cells = list(self._history())
        count = len(cells) - 1  # In[0] is always empty
        if count < 1:
            raise IndexError("no cell has been executed yet")
        number = index if index >= 0 else count + 1 + index
        if not 1 <= number <= count:
            raise IndexError(
                f"no cell In[{index}]: the cells executed are In[1] to In[{count}] (or -1 to -{count})"
            )
        source, _ = mask_text(str(cells[number]))
        return {"index": number, "source": _capped(source)}

    def run_code(self, code: str) -> Any:
        """Run Python code in the user's notebook, as a cell would; the user approves each call first.

        The last line's value is returned (summarized) with what the code printed; names it
        assigns stay in the notebook.  If a cell is running, the code waits until it ends.

        Args:
            code: Python statements; if the last one is an expression, its value is the result.
        """
        with self.gate.exclusive(self.run_wait) as waited:
            ran = execute(code, self._namespace())
        extra: dict[str, Any] = {"stdout": ran.stdout, "stderr": ran.stderr}
        if waited.for_cell:
            log.info("llmsock: run_code waited %.1f s for a running cell", waited.for_cell)
            extra["waited_for_cell_s"] = round(waited.for_cell, 3)
        if waited.for_run_code:
            extra["waited_for_run_code_s"] = round(waited.for_run_code, 3)
        # The object itself is kept for the user (results[call_id]); the model gets its summary.
        return LiveResult(ran.value, **extra) if ran.has_value else extra

    def registrations(self) -> list[tuple[Callable[..., Any], dict[str, Any]]]:
        """Return each tool and its registration options, in the order they are offered."""
        read: dict[str, Any] = {}
        return [
            (self.list_variables, read),
            (self.describe_variable, read),
            (self.get_source, read),
            (self.read_cell, read),
            (self.run_code, {"approval": True, "timeout": RUN_CODE_TIMEOUT}),
        ]

    # -- reading ----------------------------------------------------------------------------------

    def _lookup(self, path: str) -> Any:
        """Return the value at ``path`` (a name, then attributes read statically); raise NameError if none."""
        if not isinstance(path, str) or not _PATH.fullmatch(path):
            raise NameError(f"{path!r} is not a name or a dotted attribute path")
        first, *rest = path.split(".")
        namespace = self._namespace()
        try:
            value = namespace[first]
        except KeyError:
            raise NameError(f"no variable {first!r} in the notebook; list_variables lists them") from None
        for depth, attribute in enumerate(rest, 1):
            try:
                value = _unwrap_descriptor(inspect.getattr_static(value, attribute))
            except AttributeError:
                known = ".".join([first, *rest[: depth - 1]])
                raise NameError(f"{known!r} has no attribute {attribute!r}") from None
        return value


@dataclass
class _Kernel:
    """What :func:`install` set up in this kernel: the tools, their gate, the shell it hooks."""

    tools: KernelTools
    shell: Any
    registries: list[ToolRegistry] = field(default_factory=list)


_lock = threading.Lock()
_kernel: _Kernel | None = None


def install(registry: ToolRegistry, shell: Any) -> list[str]:
    """Register the kernel tools on ``registry`` and the gate's hooks on ``shell``; return the names added.

    A tool already registered under one of the names (the user's) is kept, and the log says
    so.  Installing again adds what is missing.  Without a shell (a script), nothing is done.
    """
    global _kernel
    if shell is None or not isinstance(getattr(shell, "user_ns", None), dict):
        return []
    with _lock:
        if _kernel is None or _kernel.shell is not shell:
            _kernel = _Kernel(tools=_tools_of(shell), shell=shell)
        kernel = _kernel
        gates.install(kernel.tools.gate, shell)
        if not any(known is registry for known in kernel.registries):
            kernel.registries.append(registry)
    added = []
    for fn, options in kernel.tools.registrations():
        name = fn.__name__
        existing = registry.get(name)
        if existing is not None:
            if getattr(existing.fn, "__self__", None) is not kernel.tools:
                log.info(
                    "llmsock: the tool %r is yours; the built-in kernel tool of that name is not added", name
                )
            continue
        registry.register(fn, **options)
        added.append(name)
    return added


def uninstall() -> None:
    """Take the kernel tools off every registry they were added to, and the gate's hooks off the shell."""
    global _kernel
    with _lock:
        kernel, _kernel = _kernel, None
    if kernel is None:
        return
    gates.uninstall(kernel.tools.gate, kernel.shell)
    for registry in kernel.registries:
        for fn, _ in kernel.tools.registrations():
            tool = registry.get(fn.__name__)
            if tool is not None and getattr(tool.fn, "__self__", None) is kernel.tools:
                registry.discard(tool)


def current() -> KernelTools | None:
    """Return this kernel's tools (their ``run_wait`` may be changed), or None before :func:`install`."""
    with _lock:
        return _kernel.tools if _kernel is not None else None


def current_gate() -> gates.CellGate | None:
    """Return the cell gate of this kernel's ``run_code``, or None before :func:`install`."""
    tools = current()
    return tools.gate if tools is not None else None


@contextmanager
def cell_waits_for_chat() -> Iterator[None]:
    """Let ``run_code`` run while the running cell only waits for a chat's answer (``ask()``, ``%%llmsock``).

    Without it, a ``run_code`` approved during such a cell would wait for the cell, which
    waits for the answer, which waits for ``run_code``, until ``run_code`` gave up.  Only the
    kernel's main thread (the one that runs cells) releases its cell; elsewhere nothing changes.
    """
    gate = current_gate()
    if gate is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    with gate.cell_waits():
        yield


def _tools_of(shell: Any) -> KernelTools:
    history = getattr(shell, "history_manager", None)
    return KernelTools(
        lambda: shell.user_ns,
        history=(lambda: history.input_hist_raw) if history is not None else None,
        hidden=lambda: getattr(shell, "user_ns_hidden", {}),
    )


def _line(name: str, value: Any) -> dict[str, str]:
    """Return a variable's name, kind and summary on one line (its first two lines, joined).

    A second line that is only a label (``source:`` over a function's source, ``dtypes:`` of a
    frame without columns) heads lines the one line leaves out, so it is left out too.
    """
    summary = summarize(name=name, value=value, max_chars=LINE_CHARS * 4)
    body = summary.text[len(name) + 2 :] if summary.text.startswith(f"{name}: ") else summary.text
    first, _, rest = body.partition("\n")
    second = rest.split("\n", 1)[0].strip()
    if summary.kind not in _VERBATIM and _LABEL.fullmatch(second):
        second = ""
    text = f"{first}: {second}" if second else first
    if len(text) > LINE_CHARS:
        text = text[: LINE_CHARS - 1] + "…"
    return {"name": name, "kind": summary.kind, "summary": text}


def _unwrap_descriptor(value: Any) -> Any:
    """Return the function behind a ``staticmethod``, ``classmethod`` or ``property`` read statically."""
    if isinstance(value, (staticmethod, classmethod)):
        return value.__func__
    if isinstance(value, property) and value.fget is not None:
        return value.fget
    return value


def _unwrap(value: Any) -> Any:
    """Return the function a decorator wrapped (``functools.wraps``), or ``value``."""
    try:
        return inspect.unwrap(value) if inspect.isroutine(value) else value
    except ValueError:  # a cycle of __wrapped__
        return value


def _source_of(name: str, target: Any) -> tuple[list[str], int, str | None]:
    """Return the source lines of ``target``, its first line number and its file; raise if none."""
    where = _file_of(target)
    try:
        lines, start = inspect.getsourcelines(target)
    except (OSError, TypeError):
        found = _class_in_cell(target) if inspect.isclass(target) else None
        if found is None:
            raise ValueError(f"no source for {name!r}: it is built in, or its file is gone") from None
        lines, start, where = found
    return lines, max(start, 1), where


def _file_of(target: Any) -> str | None:
    try:
        return inspect.getsourcefile(target)
    except (OSError, TypeError):  # a class of __main__ (a cell), a built-in
        return None


def _class_in_cell(cls: type) -> tuple[list[str], int, str] | None:
    """Find the source of a class a cell defined, by its methods' file (``inspect`` reads ``__main__``'s)."""
    for member in vars(cls).values():
        code = getattr(_unwrap_descriptor(member), "__code__", None)
        if code is None:
            continue
        lines = linecache.getlines(code.co_filename)
        heading = re.compile(rf"\s*class\s+{re.escape(cls.__name__)}\b")
        for number in range(min(code.co_firstlineno, len(lines)) - 1, -1, -1):
            if heading.match(lines[number]):
                return inspect.getblock(lines[number:]), number + 1, code.co_filename
    return None


def _capped(text: str) -> str:
    if len(text) <= MAX_SOURCE_CHARS:
        return text
    return text[:MAX_SOURCE_CHARS] + CUT.format(f"{len(text) - MAX_SOURCE_CHARS:,}")
