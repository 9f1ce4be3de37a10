"""The traceback of the last error as text for a model: frames, source lines, masked locals, caps."""

from __future__ import annotations

import linecache
from typing import Any

import pytest

from llmsock_widget.context import traceback_context
from llmsock_widget.context.secrets import NAME_MASK
from llmsock_widget.wire.strictjson import parse_json


def _caught(action: Any, *args: Any) -> BaseException:
    try:
        action(*args)
    except Exception as exc:
        return exc
    raise AssertionError("the action did not fail")


def _average(values: list[int]) -> float:
    api_key = "the-secret-value"  # noqa: F841 (a local the traceback must mask)
    total = sum(values)
    count = len(values) - len(values)
    return total / count  # fails: count is 0


def _report(rows: list[int]) -> str:
    label = "weekly"
    return f"{label}: {_average(rows)}"


def test_the_failing_frames_come_with_source_and_locals_innermost_last() -> None:
    text = traceback_context(_caught(_report, [3, 4]))
    # The frame that caught it (_caught) is the user's code too.
    assert text.startswith("Traceback (most recent call last; 3 frames of the user's code):")
    report, average = text.index("in _report"), text.index("in _average")
    assert report < average  # innermost last
    assert text.rstrip().endswith("ZeroDivisionError: division by zero")
    block = text[average:]
    assert "->" in block and "return total / count  # fails: count is 0" in block
    failing = next(line for line in block.splitlines() if line.startswith("->"))
    assert "return total / count" in failing
    assert "  total: int\n    7" in block and "  values: list, len 2\n    [3, 4]" in block
    assert "  label: str, 6 chars\n    weekly" in text[report:average]


def test_the_source_shows_two_lines_before_and_after() -> None:
    exc = _caught(_average, [1])
    lineno = exc.__traceback__.tb_next.tb_lineno  # type: ignore[union-attr]
    block = traceback_context(exc).split("in _average", 1)[1]
    numbered = [line for line in block.splitlines() if " | " in line and line[:2] in ("->", "  ")]
    assert [int(line[2:8]) for line in numbered] == list(range(lineno - 2, lineno + 3))
    assert linecache.getline(__file__, lineno).strip() in numbered[2]


def test_a_secret_local_is_masked() -> None:
    text = traceback_context(_caught(_average, [1]))
    assert "the-secret-value" not in text
    assert f"\n  api_key: {NAME_MASK}\n" in text


def test_frames_of_llmsock_are_left_out() -> None:
    def user_code() -> None:
        parse_json("{broken")

    text = traceback_context(_caught(user_code))
    assert "in user_code" in text and "strictjson" not in text


def test_frames_of_ipython_are_left_out() -> None:
    namespace: dict[str, Any] = {"__name__": "IPython.core.interactiveshell"}
    exec("def run_cell(cell):\n    return cell()\n", namespace)

    def cell() -> None:
        raise KeyError("missing")

    text = traceback_context(_caught(namespace["run_cell"], cell))
    assert "in run_cell" not in text and "in cell" in text and "KeyError: 'missing'" in text


def test_a_module_level_frame_does_not_list_the_namespace() -> None:
    namespace: dict[str, Any] = {"__name__": "__main__", "password": "hunter2", "big": list(range(10))}
    code = compile("x = 1\nraise ValueError('at top')\n", "<cell-1>", "exec")
    text = traceback_context(_caught(exec, code, namespace))
    block = text.split("in <module>", 1)[1]
    assert "module level" in block and "hunter2" not in block and "big" not in block


def _recurse(n: int) -> int:
    if n == 0:
        raise RuntimeError("bottom")
    return _recurse(n - 1)


def test_only_the_innermost_frames_are_kept() -> None:
    text = traceback_context(_caught(_recurse, 50), max_frames=3)
    assert text.count("in _recurse") == 3 and "49 outer frames left out" in text
    assert "  n: int\n    0" in text  # the innermost frame is among them


@pytest.mark.parametrize("max_chars", [200, 600, 2000, 8000])
def test_the_whole_is_capped_and_keeps_the_error(max_chars: int) -> None:
    def heavy() -> None:
        rows = ["x" * 300 for _ in range(50)]
        more = {str(i): "y" * 300 for i in range(50)}
        _recurse(20 + len(rows) - len(more))

    text = traceback_context(_caught(heavy), max_chars=max_chars)
    assert len(text) <= max_chars
    if max_chars >= 600:
        assert text.rstrip().endswith("RuntimeError: bottom")
        assert "  n: int\n    0" in text


def test_a_secret_in_the_message_is_masked() -> None:
    key = "sk-" + "Zz9" * 10

    def call() -> None:
        raise PermissionError(f"bad key {key}")

    text = traceback_context(_caught(call))
    assert key not in text and "PermissionError: bad key <masked secret>" in text


def test_an_exception_without_a_traceback() -> None:
    assert traceback_context(ValueError("never raised")) == (
        "Traceback (most recent call last; 0 frames of the user's code):\n\nValueError: never raised"
    )


def test_the_exception_it_was_raised_from_is_named() -> None:
    def convert(text: str) -> int:
        try:
            return int(text)
        except ValueError as exc:
            raise RuntimeError("bad input") from exc

    text = traceback_context(_caught(convert, "x"))
    assert text.endswith(
        "RuntimeError: bad input\n(caused by ValueError: invalid literal for int() with base 10: 'x')"
    )


def test_a_huge_innermost_frame_is_cut_but_the_error_stays() -> None:
    def wide(a: str, b: str, c: str, d: str, e: str) -> None:
        raise IndexError("the end")

    text = traceback_context(_caught(wide, *["z" * 1000] * 5), max_frames=1, max_chars=700)
    assert len(text) <= 700 and "in wide" in text and text.endswith("IndexError: the end")
