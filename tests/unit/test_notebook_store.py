"""The notebook store: snapshots go to the notebook's front end, or to files next to it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from llmsock_widget.core import snapshot
from llmsock_widget.core.session import InteractionState, Message, new_state
from llmsock_widget.errors import StoreConflict
from llmsock_widget.stores.notebook import NotebookStore


def _state(
    session_id: str = "s1", *, revision: int = 1, text: str = "hello", updated: int = 1000
) -> InteractionState:
    messages = (
        Message(id="t1:u", role="user", text=text, turn_id="t1", ts=updated),
        Message(id="t1:a", role="assistant", text=f"answer to {text}", turn_id="t1", ts=updated + 1),
    )
    return replace(
        new_state(session_id, ts=updated, model="builtin"),
        revision=revision,
        seq=4,
        messages=messages,
        updated_at=updated,
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class Sink:
    def __init__(self) -> None:
        self.got: list[tuple[str, Any]] = []

    def __call__(self, key: str, data: Any) -> None:
        self.got.append((key, data))


def test_with_a_plugin_view_saves_go_to_the_notebook_not_to_files(tmp_path: Path) -> None:
    store = NotebookStore(tmp_path / "side")
    sink = Sink()
    store.add_sink(sink)
    run(store.save("s1", _state()))
    assert [key for key, _ in sink.got] == ["s1"]
    assert snapshot.decode(sink.got[0][1]) == _state()
    assert not (tmp_path / "side").exists(), "no file when the notebook keeps the chat"
    assert "notebook metadata" in store.where


def test_without_a_plugin_view_saves_go_to_files_next_to_the_notebook(tmp_path: Path) -> None:
    store = NotebookStore(tmp_path / "side")
    run(store.save("s1", _state()))
    saved = json.loads((tmp_path / "side" / "s1.json").read_text())
    assert saved["messages"][0]["text"] == "hello"
    assert str(tmp_path / "side") in store.where and "no notebook plugin" in store.where
    # A new kernel (a new store) finds it there.
    assert run(NotebookStore(tmp_path / "side").load("s1")) == _state()


def test_a_view_that_connects_later_gets_what_was_saved_before(tmp_path: Path) -> None:
    store = NotebookStore(tmp_path / "side")
    run(store.save("s1", _state(text="early")))
    sink = Sink()
    store.add_sink(sink)
    assert [(k, d["messages"][0]["text"]) for k, d in sink.got] == [("s1", "early")]


def test_an_offered_snapshot_is_loaded_for_a_session_the_kernel_does_not_have(tmp_path: Path) -> None:
    store = NotebookStore(tmp_path / "side")
    assert store.offer("s1", snapshot.encode(_state(revision=7))) == "kept"
    assert run(store.load("s1")) == _state(revision=7)
    # The next save must be newer than what the notebook held.
    with pytest.raises(StoreConflict):
        run(store.save("s1", _state(revision=7)))
    run(store.save("s1", _state(revision=8, text="more")))
    assert run(store.load("s1")).messages[0].text == "more"


def test_the_kernels_copy_wins_over_a_later_offer(tmp_path: Path) -> None:
    store = NotebookStore(tmp_path / "side")
    run(store.save("s1", _state(revision=2, text="live")))
    assert store.offer("s1", snapshot.encode(_state(revision=9, text="stale view"))) == "ignored"
    assert run(store.load("s1")).messages[0].text == "live"
    # The first offer of a session wins over a second one (another view, another notebook).
    assert store.offer("s2", snapshot.encode(_state("s2", text="first"))) == "kept"
    assert store.offer("s2", snapshot.encode(_state("s2", text="second"))) == "ignored"
    assert run(store.load("s2")).messages[0].text == "first"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"schema": 99, "sessionId": "s1"}, "newer than this llmsock"),
        ({"schema": 1, "sessionId": "s1"}, "not restored"),
        ("not an object", "not a JSON object"),
    ],
)
def test_a_bad_offer_is_refused_with_a_reason_and_changes_nothing(
    tmp_path: Path, data: Any, expected: str
) -> None:
    store = NotebookStore(tmp_path / "side")
    outcome = store.offer("s1", data)
    assert outcome.startswith("not restored") and expected in outcome
    assert run(store.load("s1")) is None


def test_an_offer_for_another_session_id_is_refused(tmp_path: Path) -> None:
    store = NotebookStore(tmp_path / "side")
    assert "belongs to session 'other'" in store.offer("s1", snapshot.encode(_state("other")))


def test_load_takes_the_newer_of_the_file_and_the_saved_notebook(tmp_path: Path) -> None:
    side = tmp_path / "side"
    run(NotebookStore(side).save("s1", _state(text="in the file", updated=5000)))
    saved = {"s1": _state(text="in the ipynb", updated=9000)}
    store = NotebookStore(side, read_saved=saved.get)
    assert run(store.load("s1")).messages[0].text == "in the ipynb"
    saved["s1"] = _state(text="in the ipynb", updated=1000)
    store = NotebookStore(side, read_saved=saved.get)
    assert run(store.load("s1")).messages[0].text == "in the file"


def test_a_file_left_by_an_older_run_does_not_block_saving_a_restored_session(tmp_path: Path) -> None:
    side = tmp_path / "side"
    run(NotebookStore(side).save("s1", _state(revision=20, text="old file", updated=1)))
    store = NotebookStore(side)
    store.offer("s1", snapshot.encode(_state(revision=3, text="from the notebook", updated=5)))
    state = run(store.load("s1"))
    run(store.save("s1", replace(state, revision=4)))
    assert run(NotebookStore(side).load("s1")).messages[0].text == "from the notebook"


def test_delete_removes_from_the_notebook_and_the_file(tmp_path: Path) -> None:
    store = NotebookStore(tmp_path / "side")
    run(store.save("s1", _state()))
    sink = Sink()
    store.add_sink(sink)
    assert run(store.delete("s1")) is True
    assert sink.got[-1] == ("s1", None)
    assert run(store.load("s1")) is None


def test_snapshots_sent_to_the_notebook_are_capped(tmp_path: Path) -> None:
    store = NotebookStore(tmp_path / "side", max_chars=2000)
    sink = Sink()
    store.add_sink(sink)
    messages: tuple[Message, ...] = ()
    for turn in range(40):
        messages += (
            Message(id=f"t{turn}:u", role="user", text=f"question {turn} " * 5, turn_id=f"t{turn}", ts=turn),
            Message(id=f"t{turn}:a", role="assistant", text="answer " * 10, turn_id=f"t{turn}", ts=turn),
        )
    state = replace(_state(), messages=messages)
    run(store.save("s1", state))
    data = sink.got[-1][1]
    assert len(json.dumps(data, separators=(",", ":"), ensure_ascii=False)) <= 2000
    assert data["droppedTurns"] > 0 and data["messages"][-1]["id"] == "t39:a"
    # The kernel keeps the whole conversation; only the notebook's copy is cut.
    assert len(run(store.load("s1")).messages) == 80


def test_a_failing_sink_does_not_stop_the_save(tmp_path: Path) -> None:
    store = NotebookStore(tmp_path / "side")

    def broken(key: str, data: Any) -> None:
        raise RuntimeError("comm closed")

    good = Sink()
    store.add_sink(broken)
    store.add_sink(good)
    run(store.save("s1", _state()))
    assert [k for k, _ in good.got] == ["s1"]


def test_a_removed_sink_sends_saves_back_to_files(tmp_path: Path) -> None:
    store = NotebookStore(tmp_path / "side")
    handle = store.add_sink(Sink())
    store.remove_sink(handle)
    run(store.save("s1", _state()))
    assert (tmp_path / "side" / "s1.json").exists()


def test_a_session_loaded_from_a_file_is_the_kernels_own(tmp_path: Path) -> None:
    """Once loaded, a later (older) offer from a view does not replace it, even after eviction."""
    side = tmp_path / "side"
    run(NotebookStore(side).save("s1", _state(text="from the file", updated=9000)))
    store = NotebookStore(side)
    assert run(store.load("s1")).messages[0].text == "from the file"
    assert store.offer("s1", snapshot.encode(_state(text="older view", updated=10))) == "ignored"
    assert run(store.load("s1")).messages[0].text == "from the file"


def test_an_offer_older_than_the_file_loses(tmp_path: Path) -> None:
    """A chat continued without the plugin (in the file) is newer than the notebook's copy."""
    side = tmp_path / "side"
    run(NotebookStore(side).save("s1", _state(text="continued in VS Code", updated=9000)))
    store = NotebookStore(side)
    store.offer("s1", snapshot.encode(_state(text="in the notebook", updated=5000)))
    assert run(store.load("s1")).messages[0].text == "continued in VS Code"


def test_a_newer_schema_in_the_notebook_is_never_overwritten(tmp_path: Path) -> None:
    store = NotebookStore(tmp_path / "side")
    sink = Sink()
    store.add_sink(sink)
    outcome = store.offer("s1", {"schema": 99, "sessionId": "s1"})
    assert "left as it is" in outcome
    run(store.save("s1", _state()))
    assert sink.got == [], "the notebook's copy from a newer llmsock is not replaced"
    assert (tmp_path / "side" / "s1.json").exists(), "the chat is kept in a file instead"
