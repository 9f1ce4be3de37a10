"""Results as live objects: a tool's object stays in the kernel, the model reads its summary."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from typing import Any

import pandas as pd
import pytest

from llmsock_widget.core.session import new_state
from llmsock_widget.runtime.live import LiveSession
from llmsock_widget.runtime.results import Results
from llmsock_widget.tools import LiveResult, ToolOutcome, ToolRegistry, call_tool
from llmsock_widget.tools.execution import ERROR_CODES
from tests.conftest import TIMEOUT


def run(registry: ToolRegistry, name: str) -> ToolOutcome:
    return asyncio.run(call_tool(registry, name, "{}", timeout=TIMEOUT))


def frame() -> pd.DataFrame:
    return pd.DataFrame({"price": [1.5, 2.5, 3.5], "city": ["Oslo", "Rome", "Lima"]})


def test_a_data_frame_is_kept_and_the_model_reads_its_summary() -> None:
    """The outcome holds the very object; its JSON result is a summary with the columns and rows."""
    tools = ToolRegistry()
    made = frame()
    tools.register(lambda: made, name="load")
    outcome = run(tools, "load")
    assert outcome.ok and outcome.value is made
    assert set(outcome.result) == {"summary"}
    summary = outcome.result["summary"]
    assert "DataFrame" in summary and "price" in summary and "Oslo" in summary
    json.dumps(outcome.result)  # what goes to the model and the wire is JSON


def test_an_async_tool_result_is_live_too() -> None:
    tools = ToolRegistry()
    made = frame()

    async def load() -> pd.DataFrame:
        return made

    tools.register(load)
    outcome = run(tools, "load")
    assert outcome.value is made and "DataFrame" in outcome.result["summary"]


def test_plain_json_is_the_result_itself_and_no_live_object() -> None:
    tools = ToolRegistry()
    tools.register(lambda: {"a": [1, 2.5, None, True, "x"]}, name="plain")
    outcome = run(tools, "plain")
    assert outcome.result == {"a": [1, 2.5, None, True, "x"]} and outcome.value is None


def test_plain_json_is_copied_and_only_to_its_depth_limit() -> None:
    """The result is a fresh copy; past MAX_PLAIN_DEPTH levels, or with an infinity, it is a live object."""
    from llmsock_widget.tools.execution import MAX_PLAIN_DEPTH

    def nested(levels: int) -> Any:
        value: Any = 1
        for _ in range(levels):
            value = [value]
        return value

    shared = {"rows": [[1, 2]]}
    tools = ToolRegistry()
    tools.register(lambda: shared, name="shared")
    tools.register(lambda: nested(MAX_PLAIN_DEPTH + 1), name="deepest")
    tools.register(lambda: nested(MAX_PLAIN_DEPTH + 2), name="deeper")
    tools.register(lambda: {"x": float("inf")}, name="inf")
    copied = run(tools, "shared").result
    assert copied == shared and copied["rows"][0] is not shared["rows"][0]
    assert run(tools, "deepest").value is None
    assert run(tools, "deeper").value is not None and run(tools, "inf").value is not None


@pytest.mark.parametrize(
    "value",
    [dt.datetime(2024, 5, 1, 12, 0), (1, 2), {"when": dt.date(2024, 1, 1)}, {1: "int key"}, float("nan")],
    ids=["datetime", "tuple", "nested date", "int key", "nan"],
)
def test_anything_else_is_a_live_object(value: Any) -> None:
    tools = ToolRegistry()
    tools.register(lambda: value, name="odd")
    outcome = run(tools, "odd")
    assert outcome.value is value
    assert set(outcome.result) == {"summary"} and outcome.result["summary"].startswith("result: ")


def test_a_live_result_says_the_object_and_what_the_model_also_reads() -> None:
    tools = ToolRegistry()
    made = frame()
    tools.register(lambda: LiveResult(made, rows=3, source="prices.csv"), name="load")
    tools.register(lambda: LiveResult(None, note="nothing kept"), name="none")
    outcome = run(tools, "load")
    assert outcome.value is made
    assert outcome.result["rows"] == 3 and outcome.result["source"] == "prices.csv"
    assert "DataFrame" in outcome.result["summary"]
    empty = run(tools, "none")
    assert (empty.result, empty.value) == ({"note": "nothing kept"}, None)


def test_denied_is_a_tool_outcome_code() -> None:
    assert "denied" in ERROR_CODES
    outcome = ToolOutcome(ok=False, error={"code": "denied", "message": "the user denied this call"})
    assert json.loads(outcome.content()) == {
        "error": {"code": "denied", "message": "the user denied this call"}
    }


# -- Results: bounded, thread-safe ----------------------------------------------------------------


def test_results_keep_the_last_hundred() -> None:
    results = Results()
    for n in range(150):
        results.keep(f"c{n}", n)
    assert len(results) == 100
    assert "c49" not in results and results["c50"] == 50 and results["c149"] == 149
    assert next(iter(results)) == "c50"
    with pytest.raises(KeyError):
        results["c0"]


def test_results_of_two_sessions_with_the_same_call_id_stay_apart() -> None:
    """The builtin model numbers calls per turn: each chat's view gives its own object for a call id."""
    results = Results()
    results.keep("call_1_1", "a's frame", session="a")
    results.keep("call_1_1", "b's frame", session="b")
    assert results.of("a")["call_1_1"] == "a's frame"
    assert results.of("b")["call_1_1"] == "b's frame"
    assert results["call_1_1"] == "b's frame"  # every session: the latest
    assert "call_1_1" not in results.of("c") and len(results.of("a")) == 1
    results.keep("call_1_1", "a's second frame", session="a")  # a cleared chat numbers again
    assert results.of("a")["call_1_1"] == "a's second frame" and results["call_1_1"] == "a's second frame"


def test_results_are_read_from_another_thread_while_written() -> None:
    """Readers on other threads never see a broken mapping while the loop adds results."""
    results = Results(limit=10)
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                for key in results:
                    results.get(key)
                dict(results.items())
        except BaseException as exc:  # any failure is what the test reports
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    for n in range(20000):
        results.keep(f"c{n}", n)
    done.set()
    for reader in readers:
        reader.join(TIMEOUT)
    assert not errors and len(results) == 10


# -- a session's waiting calls ----------------------------------------------------------------------


def test_the_first_answer_wins() -> None:
    async def scenario() -> tuple[bool, bool, bool, bool]:
        live = LiveSession(key="s1", state=new_state("s1"), publish=lambda *_: None, clock=lambda: 0)
        decision = live.expect_approval("c1")
        first = live.approve("c1", True)
        second = live.approve("c1", False)
        unknown = live.approve("nope", True)
        return first, second, unknown, await decision

    assert asyncio.run(scenario()) == (True, False, False, True)
