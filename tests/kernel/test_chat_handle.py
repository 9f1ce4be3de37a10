"""``llmsock_widget.Chat`` in a real kernel: the session a chat widget shows, driven from cells.

A WebSocket client on the widget's session stands for an open view: what a cell sends
through the handle must stream into it live, and the handle must read, clear, export and
set up the same session the view shows.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from llmsock_widget.client import Client
from llmsock_widget.core import snapshot
from tests.conftest import TIMEOUT

from .conftest import Kernel, start_kernel, stop_kernel

SETUP = (
    "%load_ext llmsock\n"
    "%llmsock model builtin:0\n"
    "import llmsock_widget, threading\n"
    "from llmsock_widget import ChatWidget\n"
    "widget = ChatWidget(session='team')\n"
    "chat = llmsock_widget.Chat('team')"
)


@pytest.fixture
def team(tmp_path: Path) -> Any:
    """A kernel with the builtin model, a chat widget on session 'team' and ``chat = Chat('team')``."""
    kernel = start_kernel(tmp_path, LLMSOCK_STORE="memory")
    try:
        kernel.run(SETUP)
        yield kernel
    finally:
        stop_kernel(kernel)


def address(kernel: Kernel) -> tuple[str, str, str]:
    """Return the kernel's server URL, its token and the widget's session."""
    found = kernel.value(
        "[llmsock_widget.get_server().url, llmsock_widget.get_server().token, widget.session]"
    )
    return found[0], found[1], found[2]


async def watch_send(kernel: Kernel, prompt: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Open a view of the widget's session, send ``prompt`` from a cell; return what it saw, its history."""
    url, token, session = address(kernel)
    async with Client(url, token=token, session=session, dialect="typed") as view:
        events = view.events()
        sent = await asyncio.to_thread(kernel.run, f"pending = chat.send({prompt!r})")
        assert sent  # the cell ended at once; the answer streams on
        seen: list[dict[str, Any]] = []

        async def until_complete() -> None:
            async for frame in events:
                seen.append(frame)
                if frame.get("type") == "llm_complete":
                    return

        await asyncio.wait_for(until_complete(), TIMEOUT)
        history = await view.control("get_history")
    return seen, history


def test_a_cells_send_streams_live_into_the_widgets_session(team: Kernel) -> None:
    seen, history = asyncio.run(watch_send(team, "/echo hi from a cell"))
    kinds = [frame.get("type") for frame in seen]
    assert "user_message" in kinds and "llm_chunk" in kinds  # the prompt, then its answer, as it streams
    chunks = "".join(f["data"]["chunk"] for f in seen if f.get("type") == "llm_chunk")
    assert chunks == "hi from a cell"
    messages = [(m["role"], m["text"]) for m in history["data"]["messages"]]
    assert messages == [("user", "/echo hi from a cell"), ("assistant", "hi from a cell")]
    # The cell's handle has the answer too, and the same transcript.
    assert team.value("pending.result(10).text") == "hi from a cell"
    assert team.value("[(m['role'], m['text']) for m in chat.history]") == [list(m) for m in messages]


def test_await_ask_in_a_cell_returns_the_builtin_models_answer(team: Kernel) -> None:
    answer = team.value(f"await chat.ask('/echo awaited', timeout={TIMEOUT})")
    assert answer == "awaited"
    answer = team.value(f"await chat.ask('what is this?', timeout={TIMEOUT})")
    assert answer.startswith('You said: "what is this?". This is turn 2 of our conversation')


def test_delta_callbacks_get_every_delta_off_the_server_thread(team: Kernel) -> None:
    team.run(
        "deltas, threads, ended = [], set(), threading.Event()\n"
        "def on_delta(event):\n"
        "    deltas.append(event.text)\n"
        "    threads.add(threading.current_thread().name)\n"
        "stop_deltas = chat.on('delta', on_delta)\n"
        "chat.on('end', lambda event: ended.set())\n"
        "chat.on('message', lambda event: 1 / 0)  # logged, never raised; the others still run"
    )
    answer = team.value(f"(await chat.ask('/echo one two three', timeout={TIMEOUT}))")
    assert team.value(f"ended.wait({TIMEOUT})") is True
    assert team.value("''.join(deltas)") == answer == "one two three"
    assert team.value("sorted(threads)") == ["llmsock-chat-events"]
    # Unsubscribed: the next answer's deltas are not seen.
    team.run("stop_deltas(); deltas.clear(); ended.clear()")
    team.value(f"(await chat.ask('/echo more', timeout={TIMEOUT}))")
    assert team.value(f"ended.wait({TIMEOUT})") is True
    assert team.value("deltas") == []


def test_clear_empties_the_history_every_view_reads(team: Kernel) -> None:
    team.value(f"(await chat.ask('/echo keep me', timeout={TIMEOUT}))")
    assert team.value("len(chat.history)") == 2
    assert team.value("chat.clear()") == 2
    assert team.value("chat.history") == []

    async def history() -> list[Any]:
        url, token, session = address(team)
        async with Client(url, token=token, session=session) as view:
            reply = await view.control("get_history")
        return list(reply["data"]["messages"])

    assert asyncio.run(history()) == []


def test_export_round_trips(team: Kernel) -> None:
    team.value(f"(await chat.ask('/echo exported', timeout={TIMEOUT}))")
    exported = team.value("chat.export('json')")
    state = snapshot.loads(exported)
    assert state.session_id == "team"
    assert [(m.role, m.text) for m in state.messages] == [
        ("user", "/echo exported"),
        ("assistant", "exported"),
    ]
    assert json.loads(snapshot.dumps(state)) == json.loads(exported)
    markdown = team.value("chat.export('markdown')")
    assert markdown.startswith("# llmsock session `team`")
    assert "/echo exported" in markdown and "\nexported\n" in markdown


def test_the_system_prompt_reaches_the_model_and_the_session_keeps_it(team: Kernel) -> None:
    assert team.value("chat.system") is None
    team.run("chat.system = 'Answer like a pirate.'")
    answer = team.value(f"await chat.ask('hello', timeout={TIMEOUT})")
    assert 'System prompt: "Answer like a pirate."' in answer
    # Another handle on the session (and every view) reads what the session keeps.
    assert team.value("llmsock_widget.Chat('team').system") == "Answer like a pirate."
    answer = team.value(f"await llmsock_widget.Chat('team').ask('and now?', timeout={TIMEOUT})")
    assert 'System prompt: "Answer like a pirate."' in answer
    team.run("chat.system = None")
    answer = team.value(f"await chat.ask('plain', timeout={TIMEOUT})")
    assert "System prompt" not in answer
