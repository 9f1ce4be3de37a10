"""Run a model's code in the user's namespace as a cell would: statements, then the last expression's value.

Only :func:`execute` runs code; the ``run_code`` tool calls it inside the cell gate
(:mod:`.gate`).  Output is captured with ``contextlib.redirect_stdout`` and
``redirect_stderr``, which replace ``sys.stdout``/``sys.stderr`` for the whole process, not
for one thread: that is safe only because the gate keeps every cell (the main thread's
writer) out while the code runs.  A thread of the user's that prints meanwhile is captured
too.
"""

from __future__ import annotations

import ast
import io
import itertools
import linecache
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Any

from ..context import mask_text

MAX_OUTPUT_CHARS = 8000
"""Characters of stdout (and of stderr) the model gets: the start and the end, the middle cut."""

_runs = itertools.count(1)


@dataclass(frozen=True)
class Ran:
    """What one run printed, and the value of its last expression (``has_value``: there was one)."""

    value: Any
    has_value: bool
    stdout: str
    stderr: str


def execute(code: str, namespace: dict[str, Any]) -> Ran:
    """Run ``code`` in ``namespace``: every statement, then the last one's value if it is an expression.

    What the code assigns before an exception stays assigned, as in a cell.

    Raises:
        SyntaxError: ``code`` is not Python (nothing ran).
        Exception: whatever the code raised, as it raised it (what it printed is dropped).
    """
    filename = f"<run_code {next(_runs)}>"
    tree = ast.parse(code, filename, "exec")
    last = tree.body[-1] if tree.body else None
    if isinstance(last, ast.Expr):
        tree.body.pop()
    else:
        last = None
    body = compile(tree, filename, "exec")
    expression = compile(ast.Expression(last.value), filename, "eval") if last is not None else None
    # Kept like a cell's source: tracebacks show the lines, get_source finds what the code defines.
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    out, err = io.StringIO(), io.StringIO()
    value: Any = None
    with redirect_stdout(out), redirect_stderr(err):
        exec(body, namespace)  # the user approved this code; it runs as a cell would
        if expression is not None:
            value = eval(expression, namespace)
    return Ran(
        value=value,
        has_value=expression is not None and value is not None,
        stdout=_shown(out.getvalue()),
        stderr=_shown(err.getvalue()),
    )


def _shown(text: str) -> str:
    """Return ``text`` masked, its middle cut to keep :data:`MAX_OUTPUT_CHARS` characters."""
    if len(text) > MAX_OUTPUT_CHARS:
        half = MAX_OUTPUT_CHARS // 2
        cut = len(text) - 2 * half
        text = f"{text[:half]}\n…[{cut:,} characters cut]…\n{text[-half:]}"
    return mask_text(text)[0]
