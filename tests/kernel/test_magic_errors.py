"""A mistake in ``%llmsock`` / ``%%llmsock`` is one line (what went wrong and what to do), no traceback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import TIMEOUT

from .conftest import Kernel, start_kernel, stop_kernel


@pytest.fixture(scope="module")
def magics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """One kernel with the extension loaded, no OpenAI key, and no openai package to import."""
    kernel = start_kernel(tmp_path_factory.mktemp("magics"), LLMSOCK_STORE="memory")
    try:
        kernel.run("%load_ext llmsock")
        kernel.run(
            "import os, sys\n"
            "for _name in ('OPENAI_API_KEY', 'OPENAI_BASE_URL', 'LLMSOCK_TEST_UNSET_KEY'):\n"
            "    os.environ.pop(_name, None)"
        )
        yield kernel
    finally:
        stop_kernel(kernel)


def outcome(kernel: Kernel, code: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Run ``code``; return the lines it wrote to stderr and its error outputs (tracebacks)."""
    msg_id = kernel.submit(code)
    messages = kernel.collect(msg_id)
    reply = kernel.client.get_shell_msg(timeout=TIMEOUT)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kernel.client.get_shell_msg(timeout=TIMEOUT)
    assert reply["content"]["status"] == "error"  # the cell failed: Run All stops there
    stderr = "".join(
        m["content"]["text"]
        for m in messages
        if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"
    )
    errors = [m["content"] for m in messages if m["msg_type"] == "error"]
    return stderr.splitlines(), errors


def test_a_model_whose_package_is_missing_is_one_line_that_says_what_to_install(magics: Kernel) -> None:
    """The issue's case: ``%llmsock model openai:gpt-4o-mini`` without the openai package."""
    magics.run("sys.modules['openai'] = None  # import openai now fails, as where it is not installed")
    try:
        lines, errors = outcome(magics, "%llmsock model openai:gpt-4o-mini")
    finally:
        magics.run("del sys.modules['openai']")
    assert errors == []
    assert len(lines) == 1, lines
    assert "openai package" in lines[0] and "pip install 'llmsock[openai]'" in lines[0]
    assert "Traceback" not in lines[0] and "ValueError" not in lines[0]


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("%llmsock model openai:gpt-4o-mini", ["no OpenAI API key", "OPENAI_API_KEY", "--api-key-env"]),
        ("%llmsock model gpt-5", ["unknown model 'gpt-5'", "openai:<model>"]),
        ("%llmsock model builtin:fast", ["bad builtin pace", "builtin:<tokens per second>"]),
        ("%llmsock model openai:m --base", ["unknown or incomplete option '--base'", "--base-url URL"]),
        (
            "%llmsock model openai:m --api-key-env LLMSOCK_TEST_UNSET_KEY",
            ["LLMSOCK_TEST_UNSET_KEY is not set", "--api-key-env"],
        ),
        ("%llmsock sessoins", ["unknown %llmsock command 'sessoins'", "try: status, chat"]),
        ("%llmsock store redis", ["unknown llmsock store 'redis'", "use notebook, memory, file"]),
        ("%llmsock chat 'unclosed", ["no closing quotation", "close the quote"]),
        ("%%llmsock ../etc\nhello", ["invalid sessionId '../etc'", "use 1-128 characters"]),
    ],
    ids=[
        "no-key",
        "unknown-model",
        "bad-pace",
        "bad-option",
        "unset-key-variable",
        "unknown-command",
        "unknown-store",
        "unclosed-quote",
        "bad-session-id",
    ],
)
def test_every_mistake_is_one_line_without_a_traceback(magics: Kernel, code: str, says: list[str]) -> None:
    lines, errors = outcome(magics, code)
    assert errors == []
    assert len(lines) == 1, lines
    assert lines[0].startswith("UsageError: %llmsock: ")
    for words in says:
        assert words in lines[0]


def test_the_kernel_goes_on_after_a_mistake(magics: Kernel) -> None:
    """A mistake changes nothing: the model and the server are as they were."""
    outcome(magics, "%llmsock model gpt-5")
    assert magics.value("__import__('llmsock_widget').get_server().model.name") == "builtin"


def test_a_bug_of_ours_still_shows_its_traceback(magics: Kernel) -> None:
    """Only mistakes are shortened: an unexpected exception keeps its traceback, to be reported."""
    magics.run(
        "from llmsock_widget.notebook import extension as _ext\n"
        "_status = _ext.Status\n"
        "def _broken(*args):\n"
        "    raise RuntimeError('a bug')\n"
        "_ext.Status = _broken"
    )
    try:
        _, errors = outcome(magics, "%llmsock")
    finally:
        magics.run("_ext.Status = _status")
    assert [e["ename"] for e in errors] == ["RuntimeError"]
    assert len(errors[0]["traceback"]) > 1
