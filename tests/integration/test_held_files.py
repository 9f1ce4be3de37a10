"""The notebook store's files held shut while a chat view may still connect the notebook plugin."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from llmsock_widget.core import snapshot
from llmsock_widget.core.session import InteractionState, Message, new_state
from llmsock_widget.notebook import storage
from llmsock_widget.notebook.storage import WAITING, HeldFiles
from llmsock_widget.stores.notebook import NotebookStore


def chat(text: str, revision: int = 1, session: str = "default") -> InteractionState:
    state = new_state(session, ts=1000, model="builtin")
    message = Message(id=f"t{revision}:u", role="user", text=text, turn_id=f"t{revision}", ts=1000)
    return replace(state, messages=(message,), seq=revision, revision=revision, updated_at=1000 + revision)


@pytest.fixture
def notebook_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NotebookStore:
    """The kernel's notebook store for ``tmp_path/analysis.ipynb`` (as Jupyter Server names it)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JPY_SESSION_NAME", "analysis.ipynb")
    store = storage.make_store("notebook")
    assert isinstance(store, NotebookStore) and isinstance(store.fallback, HeldFiles)
    return store


def hold(store: NotebookStore) -> HeldFiles:
    """Hold the notebook store's files shut (as a new chat widget does) and return them."""
    files = storage.held_files(store)
    assert files is not None
    files.hold()
    return files


def test_held_saves_write_nothing_and_the_store_says_it_waits(
    notebook_store: NotebookStore, tmp_path: Path
) -> None:
    hold(notebook_store)
    asyncio.run(notebook_store.save("default", chat("hello")))
    assert not (tmp_path / ".llmsock").exists()
    assert storage.describe_store(notebook_store) == WAITING
    # The kernel still has the chat.
    loaded = asyncio.run(notebook_store.load("default"))
    assert loaded is not None and loaded.messages[0].text == "hello"


def test_a_plugin_takes_every_held_chat_and_no_file_is_written(
    notebook_store: NotebookStore, tmp_path: Path
) -> None:
    files = hold(notebook_store)
    asyncio.run(notebook_store.save("default", chat("hello")))
    files.drop()
    got: dict[str, Any] = {}
    notebook_store.add_sink(lambda key, data: got.__setitem__(key, data))
    assert got["default"]["messages"][0]["text"] == "hello"
    assert not (tmp_path / ".llmsock").exists()
    assert storage.describe_store(notebook_store).startswith("notebook metadata (metadata.llmsock")


def test_release_writes_the_latest_state_of_each_held_chat(
    notebook_store: NotebookStore, tmp_path: Path
) -> None:
    files = hold(notebook_store)
    for revision in (1, 2, 3):
        asyncio.run(notebook_store.save("default", chat(f"turn {revision}", revision)))
    asyncio.run(notebook_store.save("other", chat("elsewhere", session="other")))
    files.release()
    folder = tmp_path / ".llmsock" / "analysis"
    assert sorted(p.name for p in folder.iterdir()) == ["default.json", "other.json"]
    kept = snapshot.loads((folder / "default.json").read_text(encoding="utf-8"))
    assert kept.revision == 3 and kept.messages[0].text == "turn 3"
    assert "files next to the notebook" in storage.describe_store(notebook_store)
    # Not held any more: the next save is written at once.
    asyncio.run(notebook_store.save("default", chat("turn 4", 4)))
    assert snapshot.loads((folder / "default.json").read_text(encoding="utf-8")).revision == 4


def test_drop_writes_only_what_it_is_told_to_keep(tmp_path: Path) -> None:
    files = HeldFiles(tmp_path / "chats")
    files.hold()
    files.save_sync("small", chat("hi", session="small"))
    files.save_sync("large", chat("x" * 100, session="large"))
    files.drop(keep=lambda state: len(state.messages[0].text) > 50)
    assert sorted(p.name for p in (tmp_path / "chats").iterdir()) == ["large.json"]


def test_a_save_while_held_states_are_written_waits_its_turn(tmp_path: Path) -> None:
    """A newer save that comes while the held ones are written is written after them, never under."""
    files = HeldFiles(tmp_path / "chats")
    files.hold()
    files.save_sync("default", chat("old", 1))
    files.stop_holding()
    files.save_sync("default", chat("new", 2))  # still queued: the held states are not written yet
    assert not (tmp_path / "chats").exists()
    files.write_held()
    kept = files.load_sync("default")
    assert kept is not None and kept.revision == 2 and kept.messages[0].text == "new"


def test_outside_a_notebook_the_default_store_is_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMSOCK_STORE", raising=False)
    assert storage.default_spec() == "memory"
    monkeypatch.setenv("LLMSOCK_STORE", "notebook")
    assert storage.default_spec() == "notebook"
