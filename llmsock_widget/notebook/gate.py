"""The cell gate: ``run_code`` and the user's cells never run at the same time.

IPython's ``pre_run_cell`` and ``post_run_cell`` events say when a cell starts and ends
(:meth:`CellGate.cell_starts`, :meth:`CellGate.cell_ends`).  ``run_code`` runs on a tool's worker
thread inside :meth:`CellGate.exclusive`: it waits (bounded) while a cell runs, and a cell that
starts while it runs waits in ``pre_run_cell`` until it ends, so the two never race on the
namespace or on ``sys.stdout``.  Two ``run_code`` calls (two chats) take turns the same way.

What the gate cannot see: code that runs without those events (a ``silent`` execution, a
thread the user started, a comm handler) is not held back.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("llmsock.tools")

CELL_WAIT = 120.0
"""Seconds a cell waits in ``pre_run_cell`` for a running ``run_code``; then it runs anyway."""


class CellStillRunning(TimeoutError):
    """A cell ran longer than ``run_code`` may wait: the code was not run."""


@dataclass
class Waited:
    """How long :meth:`CellGate.exclusive` waited before the code could run, and for what."""

    for_cell: float = 0.0
    for_run_code: float = 0.0


class CellGate:
    """Who may touch the user's namespace now: a cell, one ``run_code`` call, or nobody.

    Safe from any thread: one condition variable guards the cells running (the
    ``ExecutionInfo`` of each, innermost last: a cell may run another through
    ``get_ipython().run_cell``) and the thread of the ``run_code`` call running, if any.
    """

    def __init__(self, *, cell_wait: float = CELL_WAIT) -> None:
        self._condition = threading.Condition()
        self._cells: list[Any] = []
        self._runner: int | None = None  # the thread id of the run_code that holds the gate
        # sys.stderr when run_code took the gate: it redirects sys.stderr to its own capture,
        # and the notice to a waiting cell belongs in the cell's output.
        self._stderr: Any = None
        self._waiting = 0  # cells and run_code calls waiting now
        self._cells_waiting = 0  # cells waiting for run_code: they go before the next run_code
        self.cell_wait = cell_wait

    @property
    def cell_running(self) -> bool:
        """Say whether a cell runs now (as far as the events tell)."""
        with self._condition:
            return bool(self._cells)

    @property
    def waiting(self) -> int:
        """Return how many cells and ``run_code`` calls wait for the gate now."""
        with self._condition:
            return self._waiting

    def until_waiting(self, count: int, timeout: float) -> bool:
        """Block until ``count`` parties wait for the gate (at most ``timeout`` s); say whether they do."""
        with self._condition:
            return self._condition.wait_for(lambda: self._waiting >= count, timeout)

    def _wait(self, timeout: float) -> bool:
        """Wait on the condition (held) as one more waiting party, so :meth:`until_waiting` sees it."""
        self._waiting += 1
        self._condition.notify_all()
        try:
            return self._condition.wait(timeout)
        finally:
            self._waiting -= 1

    def cell_starts(self, info: Any = None) -> None:
        """``pre_run_cell``: wait while ``run_code`` runs (at most ``cell_wait`` s); mark the cell running."""
        with self._condition:
            try:
                if self._runner is not None and self._runner != threading.get_ident():
                    self._wait_for_run_code()
            finally:  # even interrupted, the cell runs: it counts as running
                self._cells.append(info)

    def _wait_for_run_code(self) -> None:
        log.info("llmsock: a cell waits for run_code (approved in the chat) to finish")
        # Said in the cell's output too: otherwise the cell looks stuck for no reason.
        self._notice("llmsock: waiting for run_code (approved in the chat) to finish...")
        deadline = time.monotonic() + self.cell_wait
        self._cells_waiting += 1
        try:
            while self._runner is not None and (remaining := deadline - time.monotonic()) > 0:
                self._wait(remaining)
        finally:
            self._cells_waiting -= 1
        if self._runner is not None:
            log.warning("llmsock: run_code still runs after %g s; the cell runs anyway", self.cell_wait)
            self._notice(f"llmsock: run_code still runs after {self.cell_wait:g} s; running the cell anyway")

    def _notice(self, text: str) -> None:
        stream = self._stderr if self._stderr is not None else sys.stderr
        try:
            print(text, file=stream, flush=True)
        except Exception:  # a closed or odd stream: the log line says it already
            pass

    def cell_ends(self, result: Any = None) -> None:
        """``post_run_cell``: the cell of ``result`` (IPython's ``ExecutionResult``) is over."""
        info = getattr(result, "info", None)
        with self._condition:
            for index in range(len(self._cells) - 1, -1, -1):
                if self._cells[index] is info:
                    del self._cells[index]
                    break
            else:
                # No pre_run_cell matched: an empty cell (IPython skips that event for it), or a
                # cell that failed before its result was made (the event then gets None).
                if result is None and self._cells:
                    self._cells.pop()
            self._condition.notify_all()

    @contextmanager
    def cell_waits(self) -> Iterator[None]:
        """The running cell waits for something ``run_code`` may be part of: let ``run_code`` in meanwhile.

        Afterwards the cell counts as running again, once a ``run_code`` that is running ends.
        """
        with self._condition:
            held = self._cells[-1:]
            del self._cells[-1:]
            self._condition.notify_all()
        try:
            yield
        finally:
            for info in held:
                self.cell_starts(info)

    def forget_cells(self) -> None:
        """Forget the cells marked running (the hooks are removed: no post_run_cell will end them)."""
        with self._condition:
            self._cells.clear()
            self._condition.notify_all()

    def cell_already_running(self, info: Any) -> None:
        """Mark a cell running that started before the gate was installed (``%load_ext`` in it)."""
        with self._condition:
            if not any(cell is info for cell in self._cells):
                self._cells.append(info)

    @contextmanager
    def exclusive(self, timeout: float) -> Iterator[Waited]:
        """Hold the gate for the calling thread: wait while a cell or another ``run_code`` runs.

        Yields how long it waited.  Raises :class:`CellStillRunning` after ``timeout`` seconds
        of waiting (nothing was run).
        """
        waited = Waited()
        me = threading.get_ident()
        with self._condition:
            if self._runner == me:
                raise RuntimeError("run_code cannot run inside run_code")
            deadline = time.monotonic() + timeout
            while self._cells or self._cells_waiting or self._runner is not None:
                if not self._wait_once(deadline, waited):
                    what = "a cell" if self._cells or self._cells_waiting else "another run_code"
                    raise CellStillRunning(
                        f"{what} has been running for {timeout:g} s; the code was not run: "
                        f"ask again once {'the cell' if what == 'a cell' else 'it'} has finished"
                    )
            self._runner = me
            self._stderr = sys.stderr
        try:
            yield waited
        finally:
            with self._condition:
                self._runner = None
                self._stderr = None
                self._condition.notify_all()

    def _wait_once(self, deadline: float, waited: Waited) -> bool:
        """Wait for the next change; add the time to what waited; return False once past ``deadline``."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        cell = bool(self._cells or self._cells_waiting)
        if cell and not waited.for_cell:
            log.info("llmsock: run_code waits for the running cell to finish")
        started = time.monotonic()
        self._wait(remaining)
        spent = time.monotonic() - started
        if cell:
            waited.for_cell += spent
        else:
            waited.for_run_code += spent
        return True


def install(gate: CellGate, shell: Any) -> None:
    """Register ``gate``'s hooks on ``shell``'s events (once); a cell running now counts as running."""
    events = shell.events
    if gate.cell_starts not in events.callbacks.get("pre_run_cell", []):
        events.register("pre_run_cell", gate.cell_starts)
    if gate.cell_ends not in events.callbacks.get("post_run_cell", []):
        events.register("post_run_cell", gate.cell_ends)
    # %load_ext runs inside a cell whose pre_run_cell has passed: IPython's displayhook holds
    # that cell's result until it ends, and its post_run_cell will end it here.
    running = getattr(getattr(shell, "displayhook", None), "exec_result", None)
    if running is not None:
        gate.cell_already_running(getattr(running, "info", None))


def uninstall(gate: CellGate, shell: Any) -> None:
    """Remove ``gate``'s hooks from ``shell``'s events (those registered); forget the running cells."""
    for event, callback in (("pre_run_cell", gate.cell_starts), ("post_run_cell", gate.cell_ends)):
        if callback in shell.events.callbacks.get(event, []):
            shell.events.unregister(event, callback)
    gate.forget_cells()
