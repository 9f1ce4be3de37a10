"""The cell gate: run_code waits for a running cell; a cell that starts while run_code runs waits for it."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from llmsock_widget.notebook import gate as gates
from llmsock_widget.notebook.kerneltools import KernelTools
from tests.conftest import TIMEOUT


def cell() -> tuple[Any, Any]:
    """IPython's ExecutionInfo of a cell and the ExecutionResult its post_run_cell gets."""
    info = SimpleNamespace(raw_cell="...")
    return info, SimpleNamespace(info=info)


class Call(threading.Thread):
    """Run ``fn()`` on a thread of its own; keep what it returned or raised."""

    def __init__(self, fn: Any) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:
            self.error = exc

    def outcome(self) -> Any:
        self.join(TIMEOUT)
        assert not self.is_alive(), "the call did not end"
        if self.error is not None:
            raise self.error
        return self.result


def test_run_code_waits_for_the_running_cell_then_runs() -> None:
    ns: dict[str, Any] = {}
    tools = KernelTools(lambda: ns)
    info, result = cell()
    tools.gate.cell_starts(info)
    call = Call(lambda: tools.run_code("x = 1\nprint('ran')"))
    call.start()
    assert tools.gate.until_waiting(1, TIMEOUT)
    assert "x" not in ns  # nothing ran while the cell runs
    tools.gate.cell_ends(result)
    ran = call.outcome()
    assert ns["x"] == 1 and ran["stdout"] == "ran\n"
    assert ran["waited_for_cell_s"] >= 0  # it says it waited


def test_run_code_that_did_not_wait_says_nothing_of_waiting() -> None:
    tools = KernelTools(dict)
    assert tools.run_code("pass") == {"stdout": "", "stderr": ""}


def test_a_cell_that_starts_during_run_code_waits_until_it_ends() -> None:
    started, go = threading.Event(), threading.Event()
    ns: dict[str, Any] = {"started": started, "go": go, "TIMEOUT": TIMEOUT}
    tools = KernelTools(lambda: ns)
    run = Call(lambda: tools.run_code("started.set()\ngo.wait(TIMEOUT)\ny = 2"))
    run.start()
    assert started.wait(TIMEOUT)
    info, result = cell()
    seen: list[Any] = []

    def user_cell() -> None:
        tools.gate.cell_starts(info)  # pre_run_cell
        seen.append(ns.get("y"))  # the cell's code
        tools.gate.cell_ends(result)  # post_run_cell

    user = Call(user_cell)
    user.start()
    assert tools.gate.until_waiting(1, TIMEOUT)
    assert seen == [] and user.is_alive()
    go.set()
    user.outcome()
    assert run.outcome() == {"stdout": "", "stderr": ""}
    assert seen == [2]  # the cell ran after run_code, never beside it


def test_run_code_gives_up_on_a_long_cell_without_running(caplog: pytest.LogCaptureFixture) -> None:
    ns: dict[str, Any] = {}
    tools = KernelTools(lambda: ns, run_wait=0.05)
    tools.gate.cell_starts(cell()[0])
    with caplog.at_level("INFO", logger="llmsock.tools"), pytest.raises(gates.CellStillRunning) as raised:
        tools.run_code("x = 1")
    assert str(raised.value) == (
        "a cell has been running for 0.05 s; the code was not run: ask again once the cell has finished"
    )
    assert "x" not in ns and "run_code waits for the running cell to finish" in caplog.text


def test_a_cell_waits_at_most_cell_wait_then_runs() -> None:
    gate = gates.CellGate(cell_wait=0.05)
    with gate.exclusive(TIMEOUT):
        entered = Call(lambda: gate.cell_starts(cell()[0]))
        entered.start()
        entered.outcome()  # returned while run_code still holds the gate
        assert gate.cell_running


def test_two_run_code_calls_take_turns() -> None:
    first_in, release = threading.Event(), threading.Event()
    order: list[str] = []
    ns: dict[str, Any] = {"first_in": first_in, "release": release, "order": order, "TIMEOUT": TIMEOUT}
    tools = KernelTools(lambda: ns)
    first = Call(lambda: tools.run_code("order.append('first')\nfirst_in.set()\nrelease.wait(TIMEOUT)"))
    first.start()
    assert first_in.wait(TIMEOUT)
    second = Call(lambda: tools.run_code("order.append('second')"))
    second.start()
    assert tools.gate.until_waiting(1, TIMEOUT)
    release.set()
    first.outcome()
    assert "waited_for_run_code_s" in second.outcome() and order == ["first", "second"]


def test_nested_and_empty_cells_keep_the_count_right() -> None:
    gate = gates.CellGate()
    outer, _ = cell()
    inner, inner_result = cell()
    gate.cell_starts(outer)
    gate.cell_starts(inner)  # a cell that runs another (get_ipython().run_cell)
    gate.cell_ends(inner_result)
    assert gate.cell_running  # the outer cell still runs
    gate.cell_ends(SimpleNamespace(info=SimpleNamespace()))  # an empty cell: no pre_run_cell came
    assert gate.cell_running
    gate.cell_ends(None)  # a cell whose run failed before its result: the latest one ends
    assert not gate.cell_running


def test_run_code_inside_run_code_is_refused() -> None:
    gate = gates.CellGate()
    with gate.exclusive(TIMEOUT), pytest.raises(RuntimeError, match="run_code cannot run inside run_code"):
        with gate.exclusive(TIMEOUT):
            pass


def test_installing_in_a_running_cell_counts_that_cell() -> None:
    _, result = cell()
    events = SimpleNamespace(callbacks={}, register=lambda *a: None)
    shell = SimpleNamespace(events=events, displayhook=SimpleNamespace(exec_result=result))
    gate = gates.CellGate()
    gates.install(gate, shell)
    assert gate.cell_running
    gate.cell_ends(result)  # that cell's post_run_cell
    assert not gate.cell_running


def test_a_cell_that_waits_for_a_chat_lets_run_code_in() -> None:
    ns: dict[str, Any] = {}
    tools = KernelTools(lambda: ns)
    info, result = cell()
    tools.gate.cell_starts(info)  # a %%llmsock cell, or ask() in a cell
    with tools.gate.cell_waits():  # ... waiting for the answer, whose run_code needs the gate
        assert tools.run_code("x = 1") == {"stdout": "", "stderr": ""}
    assert ns["x"] == 1 and tools.gate.cell_running  # the cell runs on afterwards
    tools.gate.cell_ends(result)
    assert not tools.gate.cell_running
