"""``llmsock_widget.Chat`` against a real server in this process: sending, stopping, callbacks, limits.

The kernel-side behaviour (a cell's prompt streaming into a view, ``await chat.ask``) is in
tests/kernel/test_chat_handle.py; here are the parts a script sees the same way.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llmsock_widget
from llmsock_widget.errors import InvalidFrame, InvalidRequest, InvalidSessionId
from llmsock_widget.notebook import kernel
from llmsock_widget.notebook.chat import AnswerFailed, Chat, Results
from llmsock_widget.server.thread import ServerThread
from tests.conftest import TIMEOUT
from tests.integration.test_readme import python_block, run_sample

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def kernel_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerThread]:
    """This process's kernel runtime, fresh, with the builtin model at full speed; reset after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMSOCK_STORE", "memory")
    kernel.runtime.reset()
    try:
        yield kernel.get_server(model="builtin:0")
    finally:
        kernel.runtime.reset()


def test_send_returns_while_the_answer_streams_and_stop_ends_it(server: ServerThread) -> None:
    chat = Chat("held", server=server)
    pending = chat.send("/hold")  # three tokens, then waits until stopped
    assert not pending.done()
    assert pending.stop() is True
    answer = pending.result(TIMEOUT)
    assert answer.finish_reason == "aborted" and answer.session == "held"
    assert answer.message_id == pending.message_id
    assert pending.stop() is False  # nothing left to stop
    assert [m["status"] for m in chat.history] == ["complete", "aborted"]


def test_ask_times_out_and_stops_the_turn(server: ServerThread) -> None:
    chat = Chat("slow", server=server)
    with pytest.raises(TimeoutError, match="the turn was stopped"):
        asyncio.run(chat.ask("/hold", timeout=0.2))
    # Stopped, not left running: the chat takes the next prompt at once.
    assert asyncio.run(chat.ask("/echo next", timeout=TIMEOUT)) == "next"


def test_a_failed_answer_raises_with_the_answer(server: ServerThread) -> None:
    chat = Chat(server=server)
    with pytest.raises(AnswerFailed) as failed:
        asyncio.run(chat.ask("/error 2", timeout=TIMEOUT))
    assert failed.value.answer.finish_reason == "error"
    assert failed.value.answer.error.startswith("model_error:")


def test_what_is_refused_before_anything_is_sent(server: ServerThread) -> None:
    chat = Chat("checks", server=server)
    with pytest.raises(ValueError, match="non-whitespace"):
        chat.send("  ")
    with pytest.raises(InvalidFrame, match="temperature"):
        chat.send("hi", temperature=5)
    with pytest.raises(ValueError, match="system must be a string"):
        chat.system = "x" * 40_000
    with pytest.raises(ValueError, match="unknown chat event 'deltas'"):
        chat.on("deltas", print)
    with pytest.raises(ValueError, match="unknown export format"):
        chat.export("html")  # type: ignore[arg-type]
    with pytest.raises(InvalidSessionId):
        Chat("no spaces allowed", server=server)
    assert chat.history == []  # nothing reached the session


def test_clear_is_refused_while_an_answer_streams(server: ServerThread) -> None:
    chat = Chat("busy", server=server)
    pending = chat.send("/hold")
    with pytest.raises(InvalidRequest, match="abort it first"):
        chat.clear()
    pending.stop()
    pending.result(TIMEOUT)
    assert chat.clear() == 2


def test_waiting_on_the_servers_own_loop_is_refused(server: ServerThread) -> None:
    chat = Chat("loop", server=server)

    async def from_the_loop() -> Any:
        return chat.history

    with pytest.raises(RuntimeError, match="on the server's own loop"):
        server.submit(from_the_loop()).result(TIMEOUT)


def test_a_failing_callback_is_logged_and_the_next_one_still_runs(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    chat = Chat("callbacks", server=server)
    ended = threading.Event()
    messages: list[str] = []
    chat.on("message", lambda event: 1 / 0)
    chat.on("message", lambda event: messages.append(event.text))
    chat.on("end", lambda event: ended.set())
    with caplog.at_level(logging.ERROR, logger="llmsock"):
        assert asyncio.run(chat.ask("/echo fine", timeout=TIMEOUT)) == "fine"
        assert ended.wait(TIMEOUT)
    assert messages == ["/echo fine"]
    assert any("a Chat callback failed on UserMessage" in r.getMessage() for r in caplog.records)


def test_callbacks_see_prompts_from_any_sender(server: ServerThread) -> None:
    watcher, sender = Chat("shared", server=server), Chat("shared", server=server)
    seen: list[str] = []
    ended = threading.Event()
    watcher.on("message", lambda event: seen.append(event.text))
    watcher.on("end", lambda event: ended.set())
    sender.send("/echo from the other handle").result(TIMEOUT)
    assert ended.wait(TIMEOUT)
    assert seen == ["/echo from the other handle"]


def test_callbacks_follow_the_kernels_server_when_it_restarts(kernel_server: ServerThread) -> None:
    chat = Chat("restarts")
    ended = threading.Event()
    chat.on("end", lambda event: ended.set())
    kernel.stop_server()
    restarted = kernel.get_server(model="builtin:0")
    assert restarted is not kernel_server
    assert asyncio.run(chat.ask("/echo again", timeout=TIMEOUT)) == "again"
    assert ended.wait(TIMEOUT)


class Frame:
    """A live object that is not JSON: the model gets its summary, the user the object."""

    def __repr__(self) -> str:
        return "<Frame of 3 rows>"


def test_results_give_the_object_a_tool_returned_read_only(server: ServerThread) -> None:
    made: list[Frame] = []

    def make_frame() -> Frame:
        """Make a frame."""
        made.append(Frame())
        return made[-1]

    server.tool(make_frame)
    chat = Chat("live", server=server)
    answer = asyncio.run(chat.ask("/tool make_frame {}", timeout=TIMEOUT))
    assert "<Frame of 3 rows>" in answer  # the model saw the summary
    call_id = chat.history[-1]["tools"][0]["id"]
    assert chat.results[call_id] is made[0] and call_id in chat.results
    with pytest.raises(TypeError):
        chat.results[call_id] = None  # type: ignore[index]


def test_approve_and_deny_a_waiting_call_from_a_callback(server: ServerThread) -> None:
    wiped: list[str] = []

    def wipe(path: str) -> str:
        """Wipe a path."""
        wiped.append(path)
        return f"wiped {path}"

    server.tool(wipe, approval=True)
    chat = Chat("approvals", server=server)
    decisions: list[tuple[str, bool]] = []

    def decide(event: Any) -> None:
        if type(event).__name__ == "ToolApproval":  # the user's decision: keep /tmp, nothing else
            assert chat.approve(event.call_id, approved=event.arguments == '{"path": "/tmp/x"}')
        else:
            decisions.append((event.reason, event.approved))

    ends: queue.SimpleQueue[Any] = queue.SimpleQueue()
    chat.on("approval", decide)
    chat.on("end", ends.put)  # callbacks run in event order: after a turn's end, its decisions are in
    assert "wiped /tmp/x" in asyncio.run(chat.ask('/tool wipe {"path": "/tmp/x"}', timeout=TIMEOUT))
    assert "denied" in asyncio.run(chat.ask('/tool wipe {"path": "/home"}', timeout=TIMEOUT))
    ends.get(timeout=TIMEOUT), ends.get(timeout=TIMEOUT)
    assert wiped == ["/tmp/x"]  # the denied call never ran
    assert [tool["approval"] for m in chat.history for tool in m.get("tools", ())] == ["approved", "denied"]
    assert decisions == [("user", True), ("user", False)]
    assert chat.approve("call_9_9") is False  # nothing waits for it


def test_the_package_exports_the_handle(kernel_server: ServerThread) -> None:
    assert llmsock_widget.Chat is Chat
    assert isinstance(llmsock_widget.results(), Results)
    assert repr(Chat("x")) == "Chat('x')"


def test_the_configuration_chat_samples_run_as_written(tmp_path: Path) -> None:
    """docs/configuration.md's Chat samples: in-process, and the same chat from another process."""
    document = ROOT / "docs" / "configuration.md"
    lines = run_sample(python_block(document, "#### `Chat`: a handle on one chat"), tmp_path)
    assert lines[0] == "hi from Python"
    assert lines[1].startswith('You said: "And now?". This is turn 2')
    assert lines[1].endswith('System prompt: "Answer in one line.".')
    assert lines[2:] == ["streamed: True", "4 messages", "cleared 4"]
    lines = run_sample(python_block(document, "#### The same chat from another process"), tmp_path)
    assert lines == ["stop hello from elsewhere", "['user', 'assistant']"]
