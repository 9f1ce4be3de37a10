"""The built-in ``calculate`` tool: arithmetic evaluated by walking the parsed expression.

Nothing is compiled or executed: ``ast.parse(..., mode="eval")`` only builds the
tree, and the walk knows numbers, ``+ - * / // % **``, unary ``+``/``-``, the
names in :data:`CONSTANTS` and calls to the functions in :data:`FUNCTIONS`;
every other node is refused.  Guards keep each accepted expression cheap:

* at most :data:`MAX_EXPRESSION_CHARS` characters and :data:`MAX_DEPTH` levels of nesting;
* an exponent's size at most :data:`MAX_EXPONENT`, and an integer power is refused
  *before* it is computed when its result could exceed :data:`MAX_INT_BITS`
  (so ``9**9**9`` fails at once);
* every intermediate integer has at most :data:`MAX_INT_BITS` bits and every float is finite.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any, Callable, Union

Number = Union[int, float]

MAX_EXPRESSION_CHARS = 500
MAX_DEPTH = 50
"""Bracket nesting, and nesting in the parsed tree (long ``a + b + c ...`` chains do not count)."""

MAX_EXPONENT = 1000
MAX_INT_BITS = 10_000
"""About 3,000 digits: far below Python's limit for turning an int into text."""

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


class CalculationError(ValueError):
    """The expression is not allowed or cannot be computed; the message says why."""


def calculate(expression: str) -> Number:
    """Evaluate an arithmetic expression and return its value.

    Args:
        expression: Numbers with + - * / // % ** (power) and parentheses, the names pi and e,
            and the functions sqrt, abs, round, min and max; at most 500 characters.
            For example "(2 + 3) * sqrt(16) / 7".

    Raises:
        CalculationError: the expression uses anything else, is too long, too deep or too
            large, or divides by zero.
    """
    if not isinstance(expression, str):
        raise CalculationError("the expression must be a string")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculationError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    if _bracket_depth(expression) > MAX_DEPTH:
        raise CalculationError(f"the expression is nested more than {MAX_DEPTH} levels deep")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise CalculationError(f"not a valid arithmetic expression: {exc.msg}") from None
    except (ValueError, MemoryError, RecursionError):  # null bytes; the parser's own limits
        raise CalculationError("not a valid arithmetic expression") from None
    return _evaluate(tree.body, 0)


def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    return deepest


def _evaluate(node: ast.expr, depth: int) -> Number:
    if depth > MAX_DEPTH:
        raise CalculationError(f"the expression is nested more than {MAX_DEPTH} levels deep")
    if isinstance(node, ast.Constant):
        return _number(node.value)
    if isinstance(node, ast.BinOp):
        # Walk a left-leaning chain (1 + 2 + 3 ...) in a loop, so a long sum is not "deep".
        chain: list[ast.BinOp] = []
        left: ast.expr = node
        while isinstance(left, ast.BinOp):
            chain.append(left)
            left = left.left
        value = _evaluate(left, depth + 1)
        for link in reversed(chain):
            value = _apply(link.op, value, _evaluate(link.right, depth + 1))
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        operand = _evaluate(node.operand, depth + 1)
        return operand if isinstance(node.op, ast.UAdd) else -operand
    if isinstance(node, ast.Name):
        return _constant(node.id)
    if isinstance(node, ast.Call):
        return _call(node, depth)
    raise CalculationError(f"{_describe(node)} not allowed in a calculation")


def _number(value: object) -> Number:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, (str, bytes)):
            what = "strings are"
        elif isinstance(value, complex):
            what = "complex numbers are"
        else:
            what = f"{value!r} is"
        raise CalculationError(f"{what} not allowed in a calculation")
    return _checked(value)


def _constant(name: str) -> Number:
    if name in CONSTANTS:
        return CONSTANTS[name]
    if name in FUNCTIONS:
        raise CalculationError(f"{name} is a function: call it, as in {name}(2)")
    raise CalculationError(f"unknown name {name[:40]!r}; the only names are {', '.join(CONSTANTS)}")


def _call(node: ast.Call, depth: int) -> Number:
    allowed = ", ".join(FUNCTIONS)
    if not isinstance(node.func, ast.Name):
        raise CalculationError(f"only these functions can be called: {allowed}")
    name = node.func.id
    if name not in FUNCTIONS:
        raise CalculationError(f"unknown function {name[:40]!r}; the functions are {allowed}")
    function, fewest, most = FUNCTIONS[name]
    if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
        raise CalculationError(f"{name}() takes plain arguments only")
    if not fewest <= len(node.args) <= most:
        count = str(fewest) if fewest == most else f"{fewest} to {most}"
        raise CalculationError(f"{name}() takes {count} arguments")
    args = [_evaluate(arg, depth + 1) for arg in node.args]
    try:
        return _checked(function(*args))
    except OverflowError:
        raise CalculationError("the result is too large") from None


def _apply(op: ast.operator, left: Number, right: Number) -> Number:
    function = _BINARY.get(type(op))
    if function is None:
        symbol = _OTHER_OPERATORS.get(type(op), type(op).__name__)
        raise CalculationError(f"the operator {symbol} is not allowed in a calculation")
    try:
        return _checked(function(left, right))
    except ZeroDivisionError:
        raise CalculationError("division by zero") from None
    except OverflowError:
        raise CalculationError("the result is too large") from None


def _power(base: Number, exponent: Number) -> Number:
    if abs(exponent) > MAX_EXPONENT:
        raise CalculationError(f"the exponent {_brief(exponent)} is too large (at most {MAX_EXPONENT})")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        # The result has at most bit_length * exponent bits: refuse before computing it.
        if abs(base).bit_length() * exponent > MAX_INT_BITS:
            raise CalculationError("the result is too large")
    result: Number = base**exponent
    return result


def _checked(value: Number | complex) -> Number:
    if isinstance(value, complex):
        raise CalculationError("the result is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculationError(
            "the result is not a number" if math.isnan(value) else "the result is too large"
        )
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculationError("the result is too large")
    return value


def _brief(value: Number) -> str:
    text = str(value) if not isinstance(value, int) or value.bit_length() < 200 else "(a huge number)"
    return text[:40]


def _sqrt(value: Number) -> float:
    if value < 0:
        raise CalculationError("sqrt() of a negative number")
    return math.sqrt(value)


def _round(value: Number, digits: Number | None = None) -> Number:
    if digits is None:
        return round(value)
    if not isinstance(digits, int) or abs(digits) > MAX_EXPONENT:
        # int.__round__ computes 10 ** -digits: a huge negative count would never finish.
        raise CalculationError(f"round() takes a whole number of digits, at most {MAX_EXPONENT} in size")
    return round(value, digits)


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _power,
}
_OTHER_OPERATORS: dict[type[ast.operator], str] = {
    ast.BitXor: "^ (write ** for a power)",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
}

FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int]] = {
    "sqrt": (_sqrt, 1, 1),
    "abs": (abs, 1, 1),
    "round": (_round, 1, 2),
    "min": (lambda *args: min(args), 1, MAX_EXPRESSION_CHARS),
    "max": (lambda *args: max(args), 1, MAX_EXPRESSION_CHARS),
}
"""The functions an expression may call: name -> (function, fewest arguments, most arguments)."""

_NODE_NAMES: dict[type[ast.AST], str] = {
    ast.Lambda: "lambda is",
    ast.ListComp: "comprehensions are",
    ast.SetComp: "comprehensions are",
    ast.DictComp: "comprehensions are",
    ast.GeneratorExp: "comprehensions are",
    ast.Attribute: "attribute access is",
    ast.Subscript: "indexing is",
    ast.Compare: "comparisons are",
    ast.BoolOp: "and/or are",
    ast.IfExp: "if/else is",
    ast.NamedExpr: "assignment is",
    ast.JoinedStr: "strings are",
    ast.List: "lists are",
    ast.Tuple: "tuples are",
    ast.Set: "sets are",
    ast.Dict: "dicts are",
    ast.UnaryOp: "not and ~ are",
    ast.Await: "await is",
    ast.Yield: "yield is",
    ast.YieldFrom: "yield is",
    ast.Starred: "* is",
}


def _describe(node: ast.AST) -> str:
    return _NODE_NAMES.get(type(node), f"{type(node).__name__} is")
