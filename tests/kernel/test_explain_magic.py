"""``%llmsock explain`` in a real kernel: the model gets the failing frame, its source and masked locals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmsock_widget.core import snapshot
from tests.conftest import TIMEOUT

from .conftest import Kernel, start_kernel, stop_kernel, text_of

SECRET = "sk-live-0123456789abcdef"
FAILING = (
    "def load_rows(path):\n"
    f"    api_key = {SECRET!r}\n"
    "    rows = [3, 1, 2]\n"
    "    return rows[path]\n"
    "\n"
    "load_rows('first')\n"
)


def outcome(kernel: Kernel, code: str) -> tuple[str, list[dict[str, Any]]]:
    """Run ``code``; return its reply's status and its IOPub messages."""
    msg_id = kernel.submit(code)
    messages = kernel.collect(msg_id)
    reply = kernel.client.get_shell_msg(timeout=TIMEOUT)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kernel.client.get_shell_msg(timeout=TIMEOUT)
    return str(reply["content"]["status"]), messages


def stderr_of(messages: list[dict[str, Any]]) -> str:
    return "".join(
        m["content"]["text"]
        for m in messages
        if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"
    )


def prompts(chats: Path, session: str) -> list[str]:
    """Return the user messages of ``session`` as the store keeps them: what the model received."""
    kept = snapshot.loads((chats / f"{session}.json").read_text())
    return [m.text for m in kept.messages if m.role == "user"]


def test_explain_sends_the_failing_frame_with_masked_locals(tmp_path: Path) -> None:
    chats = tmp_path / "chats"
    kernel = start_kernel(tmp_path, LLMSOCK_STORE=f"file:{chats}")
    try:
        kernel.run("%load_ext llmsock")
        kernel.run("%llmsock model builtin:0")
        # Before any failed cell: one line that says what to do, no traceback; again the second
        # time (the first refusal is not an error to explain).
        for _ in range(2):
            status, messages = outcome(kernel, "%llmsock explain")
            assert status == "error" and not [m for m in messages if m["msg_type"] == "error"]
            assert "%llmsock: no error to explain yet: run a cell that fails first" in stderr_of(messages)

        status, _ = outcome(kernel, FAILING)
        assert status == "error"
        kernel.run("x = 1")  # a cell that succeeds in between: the last error is still the one above
        assert outcome(kernel, "%llmsock clean")[0] == "error"  # and a mistyped magic does not hide it
        shown = text_of(kernel.run("%llmsock explain"))
        assert shown.strip()  # the answer streamed into the cell's output

        [prompt] = prompts(chats, "default")
        assert prompt.startswith("Explain this error and how to fix it.")
        assert "in load_rows" in prompt
        assert "->    4 |     return rows[path]" in prompt
        assert "rows: list, len 3" in prompt and "path: str" in prompt
        assert "TypeError: list indices must be integers or slices, not str" in prompt
        assert "api_key: <masked" in prompt
        assert SECRET not in prompt and SECRET not in shown

        # From Python, on another session: the same prompt, and the Answer back.
        answer = kernel.value(
            "(lambda a: [a.session, a.finish_reason])"
            "(__import__('llmsock_widget').explain(session='debug', display=False))"
        )
        assert answer == ["debug", "stop"]
        assert prompts(chats, "debug") == [prompt]
        # --session names the session, as %%llmsock SESSION does.
        kernel.run("%llmsock explain --session other")
        assert prompts(chats, "other") == [prompt]
        status, messages = outcome(kernel, "%llmsock explain other")
        assert status == "error"
        assert "usage: %llmsock explain [--session NAME]" in stderr_of(messages)
    finally:
        stop_kernel(kernel)
