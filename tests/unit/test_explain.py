"""Which error ``%llmsock explain`` picks, and the prompt it builds from it."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from llmsock_widget.notebook import explain


class UsageError(Exception):
    """Named and placed as IPython's: a magic's usage error."""


UsageError.__module__ = "IPython.core.error"


@pytest.fixture(autouse=True)
def no_error_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("last_exc", "last_value", "last_type", "last_traceback"):
        monkeypatch.delattr(sys, name, raising=False)
    monkeypatch.setattr(explain, "_remembered", [])


def failed(exc: BaseException | None = None) -> SimpleNamespace:
    """An IPython ExecutionResult as a cell leaves it."""
    return SimpleNamespace(error_in_exec=exc, error_before_exec=None)


def test_no_error_yet_says_what_to_do() -> None:
    with pytest.raises(ValueError, match=r"^no error to explain yet: run a cell that fails first$"):
        explain.last_error(SimpleNamespace(last_execution_result=failed()))


def test_the_remembered_error_outlives_a_usage_error() -> None:
    cell = KeyError("rows")
    explain.remember(failed(cell))
    explain.remember(failed(UsageError("%llmsock: unknown command")))
    explain.remember(failed())
    shell = SimpleNamespace(last_execution_result=failed(UsageError("again")))
    assert explain.last_error(shell) is cell


def test_without_the_extension_ipython_and_sys_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    before = ZeroDivisionError("from sys")
    monkeypatch.setattr(sys, "last_value", before, raising=False)
    assert explain.last_error(SimpleNamespace(last_execution_result=failed())) is before
    cell = NameError("from the last cell")
    assert explain.last_error(SimpleNamespace(last_execution_result=failed(cell))) is cell


def test_the_prompt_holds_the_frame_and_masks_secrets() -> None:
    def charge(amount: int) -> float:
        password = "hunter2-very-secret"  # noqa: F841 (a local the summary must mask)
        return amount / 0

    try:
        charge(5)
    except ZeroDivisionError as exc:
        prompt = explain.explain_prompt(exc)
    assert prompt.startswith("Explain this error and how to fix it.\n\n")
    assert "in charge" in prompt and "return amount / 0" in prompt
    assert "amount: int" in prompt and "ZeroDivisionError: division by zero" in prompt
    assert "hunter2" not in prompt
