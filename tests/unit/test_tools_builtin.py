"""Tests for the built-in tools: the safe calculator and get_current_time."""

from __future__ import annotations

import ast
import datetime as dt
import math
import re
import time
from pathlib import Path

import pytest

from llmsock_widget.tools import CalculationError, calculate, get_current_time
from llmsock_widget.tools import calculator as calculator_module
from tests.conftest import TIMEOUT

# -- calculate: results ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("2 * (3 + (4 - 1)) / 3", 4.0),
        ("10 - 4 - 3", 3),
        ("-3", -3),
        ("+3", 3),
        ("--3", 3),
        ("-3 ** 2", -9),
        ("(-3) ** 2", 9),
        ("2 ** 3 ** 2", 512),
        ("2 ** -1", 0.5),
        ("2 ** 0.5", math.sqrt(2)),
        ("7 / 2", 3.5),
        ("6 / 3", 2.0),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7.5 // 2", 3.0),
        ("7 % 3", 1),
        ("-7 % 3", 2),
        ("5.5 % 2", 1.5),
        ("1_000 + 0.5", 1000.5),
        ("1e3", 1000.0),
        (" 1 + 1 ", 2),
        ("pi", math.pi),
        ("2 * e", 2 * math.e),
        ("sqrt(16)", 4.0),
        ("abs(-2.5)", 2.5),
        ("round(2.567, 2)", 2.57),
        ("round(2.5)", 2),
        ("min(3, 1, 2)", 1),
        ("max(1, 2 * 3)", 6),
        ("sqrt(abs(-9)) + max(1, min(5, 2))", 5.0),
        ("2 ** 1000 // 2 ** 999", 2),
    ],
)
def test_calculate_results(expression: str, expected: float) -> None:
    """Precedence, parentheses, unary signs, each operator and the whitelisted names compute as in Python."""
    result = calculate(expression)
    assert result == expected
    assert type(result) is type(expected)


def test_calculate_long_flat_sum_is_not_deep() -> None:
    """A long chain like 1 + 1 + ... (120 terms) is fine: only real nesting counts."""
    assert calculate(" + ".join(["1"] * 120)) == 120


# -- calculate: refusals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os')", "unknown function '__import__'"),
        ("__import__('os').system('true')", "only these functions"),
        ("x + 1", "unknown name 'x'"),
        ("__builtins__", "unknown name"),
        ("(1).real", "attribute access"),
        ("pi.real", "attribute access"),
        ("print(1)", "unknown function 'print'"),
        ("eval('1')", "unknown function 'eval'"),
        ("sqrt", "is a function"),
        ("sqrt(x=4)", "plain arguments"),
        ("max(*[1, 2])", "plain arguments"),
        ("min()", "1 to"),
        ("sqrt(1, 2)", "takes 1 arguments"),
        ("'a' * 3", "strings"),
        ("f'{1}'", "strings"),
        ("b'1'", "strings"),
        ("lambda: 1", "lambda"),
        ("(lambda: 1)()", "only these functions"),
        ("[x for x in range(3)]", "comprehensions"),
        ("sum(x for x in [1])", "unknown function"),
        ("[1, 2]", "lists"),
        ("(1, 2)", "tuples"),
        ("{1: 2}", "dicts"),
        ("1 < 2", "comparisons"),
        ("1 and 2", "and/or"),
        ("not 1", "not and ~"),
        ("~1", "not and ~"),
        ("1 if 1 else 2", "if/else"),
        ("(y := 2)", "assignment"),
        ("[1][0]", "indexing"),
        ("2 ^ 3", "**"),
        ("1 << 2", "<<"),
        ("True + 1", "True"),
        ("None", "None"),
        ("1j", "complex"),
        ("", "not a valid"),
        ("1 +", "not a valid"),
        ("1; 2", "not a valid"),
        ("import os", "not a valid"),
        ("1\x00", "not a valid"),
    ],
)
def test_calculate_refuses(expression: str, reason: str) -> None:
    """Names, calls outside the whitelist, attributes, strings and other syntax are refused with a reason."""
    with pytest.raises(CalculationError, match=re.escape(reason)):
        calculate(expression)


@pytest.mark.parametrize(
    "expression",
    ["1 / 0", "1 // 0", "1 % 0", "1.0 / 0.0", "0 ** -1", "5 / (3 - 3)"],
)
def test_calculate_division_by_zero(expression: str) -> None:
    """Dividing by zero is a clear CalculationError."""
    with pytest.raises(CalculationError, match="division by zero"):
        calculate(expression)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("9**9**9", "exponent"),
        ("2 ** 100000", "exponent"),
        ("10 ** -1001", "exponent"),
        ("999999 ** 1000", "too large"),
        ("(2 ** 1000) ** 1000", "too large"),
        ("10.0 ** 400", "too large"),
        ("1e308 * 10", "too large"),
        ("1e999", "too large"),
        ("10 ** 999 * 10 ** 999 * 10 ** 999 * 10 ** 999", "too large"),
        ("sqrt(10 ** 400)", "too large"),
        ("10 ** 400 / 3", "too large"),
        ("round(5, -10 ** 6)", "digits"),
        ("(-8) ** 0.5", "not a real number"),
        ("sqrt(-1)", "negative"),
    ],
)
def test_calculate_refuses_huge_or_unreal_results(expression: str, reason: str) -> None:
    """Exponents, integer sizes and floats are bounded; complex results are refused."""
    with pytest.raises(CalculationError, match=reason):
        calculate(expression)


def test_calculate_refuses_tower_of_powers_fast() -> None:
    """9**9**9 is refused before anything large is computed."""
    started = time.perf_counter()
    with pytest.raises(CalculationError):
        calculate("9**9**9")
    assert time.perf_counter() - started < TIMEOUT / 10


@pytest.mark.parametrize(
    "expression",
    ["(" * 60 + "1" + ")" * 60, "-" * 200 + "1", "2 ** " * 60 + "1", "sqrt(" * 55 + "4" + ")" * 55],
    ids=["brackets", "unary", "power tower", "calls"],
)
def test_calculate_refuses_deep_nesting(expression: str) -> None:
    """Nesting deeper than MAX_DEPTH is refused (brackets, unary chains, powers, calls)."""
    with pytest.raises(CalculationError, match="nested"):
        calculate(expression)


def test_calculate_refuses_long_expressions() -> None:
    """An expression over 500 characters is refused."""
    calculate("1" + " + 1" * 124)  # 497 characters: fine
    with pytest.raises(CalculationError, match="longer than 500"):
        calculate("1" + " + 1" * 125)


def test_calculate_refuses_non_strings() -> None:
    """Only a string is an expression."""
    with pytest.raises(CalculationError, match="string"):
        calculate(3)  # type: ignore[arg-type]


def test_calculator_never_runs_code() -> None:
    """The calculator's source calls no eval, exec, compile or __import__."""
    source = Path(calculator_module.__file__).read_text(encoding="utf-8")
    called = {
        node.func.id
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not called & {"eval", "exec", "compile", "__import__", "getattr"}


# -- get_current_time ------------------------------------------------------------------------------


def test_current_time_is_iso_utc_by_default() -> None:
    """The default is UTC, in ISO 8601 with seconds and an offset, and is the current time."""
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    text = get_current_time()
    after = dt.datetime.now(dt.timezone.utc)
    when = dt.datetime.fromisoformat(text)
    assert text.endswith("+00:00")
    assert len(text) == len("2024-05-01T12:00:00+00:00")
    assert before <= when <= after


@pytest.mark.parametrize(
    ("zone", "offset"),
    [
        ("Asia/Kolkata", dt.timedelta(hours=5, minutes=30)),
        ("Asia/Tokyo", dt.timedelta(hours=9)),
        ("UTC", dt.timedelta()),
    ],
)
def test_current_time_respects_the_zone(zone: str, offset: dt.timedelta) -> None:
    """The time is given in the asked zone (zones without daylight saving have a fixed offset)."""
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    when = dt.datetime.fromisoformat(get_current_time(zone))
    assert when.utcoffset() == offset
    assert before <= when <= dt.datetime.now(dt.timezone.utc)


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus", "", "../../etc/passwd", "/etc/localtime", "x" * 500, "Europe/"]
)
def test_current_time_refuses_unknown_zones(zone: str) -> None:
    """An unknown or path-like zone is a ValueError saying so."""
    with pytest.raises(ValueError, match="unknown time zone"):
        get_current_time(zone)
