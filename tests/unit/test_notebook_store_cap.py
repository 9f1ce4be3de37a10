"""A chat larger than the notebook keeps is kept whole next to it, restored whole, and the chat is told."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from llmsock_widget.core import snapshot
from llmsock_widget.core.session import InteractionState, Message, new_state
from llmsock_widget.stores.notebook import Note, NotebookStore

CAP = 2000


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class Sink:
    """Records what the notebook plugin would write into the notebook's metadata."""

    def __init__(self) -> None:
        self.got: dict[str, Any] = {}

    def __call__(self, key: str, data: Any) -> None:
        self.got[key] = data


def _long_chat(turns: int = 40, *, revision: int = 1, updated: int = 1000) -> InteractionState:
    messages: tuple[Message, ...] = ()
    for turn in range(turns):
        messages += (
            Message(id=f"t{turn}:u", role="user", text=f"question {turn} " * 5, turn_id=f"t{turn}", ts=turn),
            Message(id=f"t{turn}:a", role="assistant", text="answer " * 10, turn_id=f"t{turn}", ts=turn),
        )
    return replace(
        new_state("s1", ts=1, model="builtin"),
        revision=revision,
        seq=4,
        messages=messages,
        updated_at=updated,
    )


def _side(tmp_path: Path) -> Path:
    return tmp_path / ".llmsock" / "analysis"


def _saved_in_notebook(tmp_path: Path, state: InteractionState) -> tuple[dict[str, Any], list[Note]]:
    """Save ``state`` in a kernel whose notebook has the plugin; return the notebook's copy and the notes."""
    store = NotebookStore(_side(tmp_path), max_chars=CAP)
    sink = Sink()
    store.add_sink(sink)
    run(store.save("s1", state))
    return sink.got["s1"], store.take_notes("s1")


def _restart(tmp_path: Path, data: dict[str, Any]) -> tuple[InteractionState, list[Note]]:
    """A new kernel: a view offers the notebook's copy, then the chat attaches."""
    store = NotebookStore(_side(tmp_path), max_chars=CAP)
    assert store.offer("s1", data) == "kept"
    state = run(store.load("s1"))
    return state, store.take_notes("s1")


def test_a_chat_over_the_cap_is_kept_whole_beside_the_notebook_and_linked(tmp_path: Path) -> None:
    data, notes = _saved_in_notebook(tmp_path, _long_chat())
    assert len(json.dumps(data, separators=(",", ":"), ensure_ascii=False)) <= CAP, "the link fits in the cap"
    assert data["droppedTurns"] > 0
    assert data["fullCopy"] == {"path": ".llmsock/analysis/s1.json", "revision": 1}
    whole = snapshot.loads((_side(tmp_path) / "s1.json").read_text(encoding="utf-8"))
    assert len(whole.messages) == 80 and whole.dropped_turns == 0
    assert notes == [
        Note(
            level="warning",
            code="history_kept_in_file",
            message="this chat is larger than the notebook keeps (2,000 characters); the whole chat is kept"
            " in .llmsock/analysis/s1.json beside the notebook",
        )
    ]


def test_the_chat_is_told_once_and_every_save_keeps_the_file_whole(tmp_path: Path) -> None:
    store = NotebookStore(_side(tmp_path), max_chars=CAP)
    sink = Sink()
    store.add_sink(sink)
    run(store.save("s1", _long_chat(40, revision=1)))
    assert [n.code for n in store.take_notes("s1")] == ["history_kept_in_file"]
    run(store.save("s1", _long_chat(41, revision=2)))
    assert store.take_notes("s1") == [], "told when the chat first passes the cap, not at every save"
    assert sink.got["s1"]["fullCopy"]["revision"] == 2
    assert len(snapshot.loads((_side(tmp_path) / "s1.json").read_bytes()).messages) == 82


def test_a_chat_under_the_cap_writes_no_file_and_no_link(tmp_path: Path) -> None:
    data, notes = _saved_in_notebook(tmp_path, _long_chat(2))
    assert "fullCopy" not in data and notes == []
    assert not _side(tmp_path).exists()


def test_a_restart_restores_the_whole_chat_from_its_file_and_says_so(tmp_path: Path) -> None:
    data, _ = _saved_in_notebook(tmp_path, _long_chat())
    state, notes = _restart(tmp_path, data)
    assert len(state.messages) == 80 and state.dropped_turns == 0
    assert [(n.level, n.code) for n in notes] == [("info", "history_restored")]
    assert (
        "all 80 messages were restored from .llmsock/analysis/s1.json beside the notebook" in notes[0].message
    )


def test_the_saved_ipynb_copy_is_restored_whole_from_its_file_too(tmp_path: Path) -> None:
    """After a restart with no view yet (the notebook as saved on disk), the file wins as well."""
    data, _ = _saved_in_notebook(tmp_path, _long_chat())
    on_disk = {"s1": snapshot.decode(data)}
    store = NotebookStore(_side(tmp_path), max_chars=CAP, read_saved=on_disk.get)
    assert len(run(store.load("s1")).messages) == 80
    assert [n.code for n in store.take_notes("s1")] == ["history_restored"]


def test_a_missing_whole_copy_restores_what_the_notebook_kept_with_a_warning(tmp_path: Path) -> None:
    data, _ = _saved_in_notebook(tmp_path, _long_chat())
    (_side(tmp_path) / "s1.json").unlink()  # the notebook was shared without its .llmsock folder
    state, notes = _restart(tmp_path, data)
    assert len(state.messages) == len(data["messages"]) < 80
    assert [(n.level, n.code) for n in notes] == [("warning", "history_truncated")]
    dropped = data["droppedTurns"]
    assert notes[0].message == (
        f"{dropped} older turn(s) of this chat could not be restored (its whole copy,"
        " .llmsock/analysis/s1.json, is missing);"
        f" it goes on from its latest {len(state.messages)} message(s)"
    )


def test_an_older_whole_copy_is_not_used_and_the_chat_is_told(tmp_path: Path) -> None:
    _saved_in_notebook(tmp_path, _long_chat(40, revision=1, updated=1000))
    kept = (_side(tmp_path) / "s1.json").read_bytes()
    data, _ = _saved_in_notebook(tmp_path, _long_chat(45, revision=2, updated=2000))
    (_side(tmp_path) / "s1.json").write_bytes(kept)  # an older copy of the folder came with the notebook
    state, notes = _restart(tmp_path, data)
    assert state.messages[-1].id == "t44:a" and len(state.messages) == len(data["messages"])
    assert [(n.level, n.code) for n in notes] == [("warning", "history_truncated")]
    assert "is older than the notebook's" in notes[0].message


def test_a_whole_copy_that_cannot_be_written_leaves_no_link_and_warns_once(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _side(tmp_path).parent.mkdir()
    _side(tmp_path).symlink_to(elsewhere)  # a planted link: never written through
    store = NotebookStore(_side(tmp_path), max_chars=CAP)
    sink = Sink()
    store.add_sink(sink)
    run(store.save("s1", _long_chat(40, revision=1)))
    run(store.save("s1", _long_chat(41, revision=2)))
    assert "fullCopy" not in sink.got["s1"], "no link to a file that was not written"
    assert list(elsewhere.iterdir()) == []
    notes = store.take_notes("s1")
    assert [(n.level, n.code) for n in notes] == [("warning", "history_truncated")]
    assert "its whole copy could not be saved (.llmsock/analysis is a symlink; refusing" in notes[0].message
    assert notes[0].message.endswith("after a restart only its latest turns come back")


def test_a_view_that_connects_after_the_saves_gets_the_link(tmp_path: Path) -> None:
    store = NotebookStore(_side(tmp_path), max_chars=CAP)
    run(store.save("s1", _long_chat()))  # no plugin yet: saved whole in the file
    sink = Sink()
    store.add_sink(sink)
    assert sink.got["s1"]["fullCopy"] == {"path": ".llmsock/analysis/s1.json", "revision": 1}


@pytest.mark.parametrize(
    "link",
    [
        None,
        "x.json",
        {"path": "", "revision": 1},
        {"path": "a", "revision": -1},
        {"path": "a", "revision": True},
    ],
)
def test_a_malformed_link_is_ignored_and_the_snapshot_still_loads(link: Any) -> None:
    data = snapshot.encode(_long_chat(2))
    data["fullCopy"] = link
    assert snapshot.full_copy_of(data) is None
    assert snapshot.decode(data) == _long_chat(2)


def test_the_link_round_trips() -> None:
    copy = snapshot.FullCopy(path=".llmsock/nb/s1.json", revision=7)
    data = snapshot.encode_linked(_long_chat(), copy, max_chars=CAP)
    assert snapshot.full_copy_of(data) == copy
    assert len(json.dumps(data, separators=(",", ":"), ensure_ascii=False)) <= CAP
