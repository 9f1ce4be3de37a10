"""A chat larger than the notebook keeps survives a restart whole, and the chat is told where it is.

A real server on a real :class:`NotebookStore`; the notebook's front end is a sink, the plain
callable the notebook plugin's views register, recording what would be written into the
notebook's ``metadata.llmsock``.  A "restart" is a new store and server that are offered what
the sink holds (as a view does when the notebook is opened again) and read the same folder.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread
from llmsock_widget.stores.notebook import NotebookStore
from tests.conftest import TIMEOUT

from .conftest import MakeServer, is_turn_end, open_client

SESSION = "long"
PASTE = "x" * 300_000
PROMPTS = [f"short question {n}" for n in range(16)] + [PASTE, "and one more", "and the last one"]


class NotebookMetadata:
    """A sink: keeps the latest snapshot of each session, as the plugin keeps them in the notebook."""

    def __init__(self) -> None:
        self.sessions: dict[str, Any] = {}
        self._changed = threading.Condition()

    def __call__(self, key: str, data: dict[str, Any] | None) -> None:
        with self._changed:
            if data is None:
                self.sessions.pop(key, None)
            else:
                self.sessions[key] = json.loads(json.dumps(data))  # the plugin stores a copy
            self._changed.notify_all()

    def wait_for_messages(self, key: str, last_id: str) -> dict[str, Any]:
        """Wait until the notebook's copy of ``key`` ends with the complete message ``last_id``."""

        def done() -> bool:
            messages = self.sessions.get(key, {}).get("messages", [])
            return bool(messages) and messages[-1]["id"] == last_id and messages[-1]["status"] == "complete"

        with self._changed:
            assert self._changed.wait_for(done, TIMEOUT), f"the notebook never got {last_id}: {self.sessions}"
            return self.sessions[key]


def _start(make_server: MakeServer, store: NotebookStore) -> ServerThread:
    return make_server(model=BuiltinModel(tokens_per_second=None), store=store)


def _history_notes(seen: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Return the diagnostics about the chat's history (a prompt sent as an answer ends may be queued)."""
    events = [m["data"]["event"] for m in seen if m.get("name") == "interaction.diagnostic"]
    return [(e["level"], e["code"], e["message"]) for e in events if e["code"].startswith("history_")]


def _converse(run: Any, server: ServerThread, prompts: list[str]) -> tuple[list[dict[str, Any]], str]:
    """Send each prompt and wait for its answer; return everything received and the last answer's id."""

    async def scenario() -> tuple[list[dict[str, Any]], str]:
        client = await open_client(server, session=SESSION, dialect="envelope")
        await client.recv()  # ready
        last = ""
        for prompt in prompts:
            await client.send(prompt)
            end = (await client.recv_until(is_turn_end))[-1]
            last = f"{end['data']['meta']['turnId']}:a"
        await client.ws.close()
        return client.seen, last

    result: tuple[list[dict[str, Any]], str] = run(scenario())
    return result


def _reopen(run: Any, server: ServerThread) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Attach to the session again; return what came before the history, and the history's messages."""

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        client = await open_client(server, session=SESSION, dialect="envelope")
        await client.recv()  # ready
        await client.send({"type": "control", "id": "h", "data": {"type": "get_history"}})
        got = await client.recv_until(lambda m: m.get("name") == "interaction.control")
        await client.ws.close()
        return got[:-1], got[-1]["data"]["event"]["data"]["messages"]

    result: tuple[list[dict[str, Any]], list[dict[str, Any]]] = run(scenario())
    return result


def _first_run(run: Any, make_server: MakeServer, side: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Chat past the cap where the notebook has the plugin; return the notebook's copy, what the chat got."""
    store = NotebookStore(side)
    notebook = NotebookMetadata()
    store.add_sink(notebook)
    server = _start(make_server, store)
    seen, last = _converse(run, server, PROMPTS)
    kept = notebook.wait_for_messages(SESSION, last)
    server.stop()
    return kept, seen


def _restart(make_server: MakeServer, side: Path, kept: dict[str, Any]) -> ServerThread:
    store = NotebookStore(side)
    assert store.offer(SESSION, kept) == "kept"
    return _start(make_server, store)


def test_a_long_paste_and_two_prompts_come_back_whole_after_a_restart(
    tmp_path: Path, run: Any, make_server: MakeServer
) -> None:
    side = tmp_path / ".llmsock" / "analysis"
    kept, _ = _first_run(run, make_server, side)
    assert kept["droppedTurns"] > 0, "the notebook's copy is cut to its cap"
    assert kept["fullCopy"]["path"] == f".llmsock/analysis/{SESSION}.json"

    _, messages = _reopen(run, _restart(make_server, side, kept))
    assert len(messages) == 2 * len(PROMPTS) == 38
    assert [m["text"] for m in messages if m["role"] == "user"] == PROMPTS
    assert all(m["status"] == "complete" for m in messages)


def test_the_chat_is_told_when_it_passes_the_cap_and_when_it_is_restored_whole(
    tmp_path: Path, run: Any, make_server: MakeServer
) -> None:
    side = tmp_path / ".llmsock" / "analysis"
    kept, seen = _first_run(run, make_server, side)
    assert _history_notes(seen) == [
        (
            "warning",
            "history_kept_in_file",
            "this chat is larger than the notebook keeps (256 KiB); the whole chat is kept in"
            f" .llmsock/analysis/{SESSION}.json beside the notebook",
        )
    ]
    before, _ = _reopen(run, _restart(make_server, side, kept))
    assert _history_notes(before) == [
        (
            "info",
            "history_restored",
            "this chat is larger than the notebook keeps (256 KiB): all 38 messages were restored from"
            f" .llmsock/analysis/{SESSION}.json beside the notebook",
        )
    ]


def test_without_its_file_the_chat_comes_back_as_the_notebook_kept_it_with_a_warning(
    tmp_path: Path, run: Any, make_server: MakeServer
) -> None:
    side = tmp_path / ".llmsock" / "analysis"
    kept, _ = _first_run(run, make_server, side)
    (side / f"{SESSION}.json").unlink()  # the notebook was shared without its .llmsock folder

    before, messages = _reopen(run, _restart(make_server, side, kept))
    assert [m["text"] for m in messages] == [m["text"] for m in kept["messages"]]
    assert 0 < len(messages) < 38
    [(level, code, message)] = _history_notes(before)
    assert (level, code) == ("warning", "history_truncated")
    assert message.startswith(f"{kept['droppedTurns']} older turn(s) of this chat could not be restored")
    assert f"its whole copy, .llmsock/analysis/{SESSION}.json, is missing" in message
