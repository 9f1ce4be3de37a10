"""Post-mortem help: the last error of this kernel as a prompt (``%llmsock explain``, ``explain()``).

The prompt is a short instruction plus ``traceback_context``: the user's frames of the last
traceback with their source lines and local variables, summarized and masked as mentions are.
"""

from __future__ import annotations

import sys
from typing import Any

from ..context import traceback_context

INSTRUCTION = "Explain this error and how to fix it."
NO_ERROR = "no error to explain yet: run a cell that fails first"


class NoErrorToExplain(ValueError):
    """No cell of this kernel has failed yet."""

    def __init__(self) -> None:
        super().__init__(NO_ERROR)


# The last cell error seen by ``remember`` (registered on IPython's post_run_cell by %load_ext).
_remembered: list[BaseException] = []


def remember(result: Any) -> None:
    """Keep a failed cell's exception (IPython's ExecutionResult), unless it is a magic's usage error."""
    exc = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
    if isinstance(exc, BaseException) and not _usage_error(exc):
        _remembered[:] = [exc]


def last_error(shell: Any = None) -> BaseException:
    """Return the last exception a cell of this kernel raised; raise NoErrorToExplain if none did.

    A magic's usage error (``%llmsock explain`` itself when nothing failed, a mistyped command)
    is not an error to explain.  What ``remember`` kept comes first; then IPython's record of
    the last cell (``shell``, the running one by default); then what IPython leaves in ``sys``
    after showing a traceback (errors from before ``%load_ext llmsock``).
    """
    if shell is None:
        shell = _running_shell()
    result = getattr(shell, "last_execution_result", None)
    for exc in (
        *_remembered,
        getattr(result, "error_in_exec", None),
        getattr(result, "error_before_exec", None),
        getattr(sys, "last_exc", None),  # Python 3.12 and later
        getattr(sys, "last_value", None),
    ):
        if isinstance(exc, BaseException) and not _usage_error(exc):
            return exc
    raise NoErrorToExplain()


def _usage_error(exc: BaseException) -> bool:
    return type(exc).__name__ == "UsageError" and type(exc).__module__.startswith("IPython.")


def explain_prompt(exc: BaseException) -> str:
    """Return the prompt that asks the model to explain ``exc``: the instruction and its traceback."""
    return f"{INSTRUCTION}\n\n{traceback_context(exc)}"


def _running_shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: only what ``sys`` keeps
        return None
    return get_ipython()
