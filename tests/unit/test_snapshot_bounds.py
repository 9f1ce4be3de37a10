"""Snapshot integers stay within what a browser's numbers hold exactly (B5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from llmsock_widget.core import snapshot
from llmsock_widget.core.session import InteractionState, Message, new_state
from llmsock_widget.errors import CorruptSnapshot
from llmsock_widget.notebook import notebookfile
from llmsock_widget.stores import JsonFileStore
from llmsock_widget.stores.notebook import NotebookStore

HUGE = 10**22  # read exactly by Python, 1e22 in JavaScript: seq + 1 == seq there


def _state() -> InteractionState:
    state = new_state("default", ts=1_700_000_000_000, model="builtin")
    messages = (
        Message(id="m1", role="user", text="hi", turn_id="t1", ts=1_700_000_000_001),
        Message(
            id="t1:a",
            role="assistant",
            text="hello",
            turn_id="t1",
            ts=1_700_000_000_002,
            usage={"inputTokens": 3, "outputTokens": 1},
        ),
    )
    return InteractionState(**{**_fields(state), "messages": messages, "seq": 6, "revision": 2})


def _fields(state: InteractionState) -> dict[str, Any]:
    return {name: getattr(state, name) for name in state.__dataclass_fields__}


def _planted(path: tuple[str | int, ...], value: int) -> dict[str, Any]:
    """Return the snapshot of the test state with ``value`` at ``path``."""
    data = snapshot.encode(_state())
    where: Any = data
    for step in path[:-1]:
        where = where[step]
    where[path[-1]] = value
    return data


FIELDS = [
    ("seq",),
    ("revision",),
    ("droppedTurns",),
    ("createdAt",),
    ("updatedAt",),
    ("messages", 0, "ts"),
    ("messages", 1, "usage", "outputTokens"),
]


@pytest.mark.parametrize("path", FIELDS, ids=lambda p: ".".join(map(str, p)))
def test_an_integer_past_what_javascript_holds_refuses_the_snapshot(path: tuple[Any, ...]) -> None:
    """A snapshot with an integer of 10**22 anywhere is refused as corrupt, not loaded into a dead chat."""
    with pytest.raises(CorruptSnapshot, match=r"out of range|from 0 to 9007199254740991"):
        snapshot.decode(_planted(path, HUGE))


def test_the_message_says_which_field_and_the_bound() -> None:
    """The refusal names the field and the largest value it may have, briefly even for a giant number."""
    with pytest.raises(CorruptSnapshot) as caught:
        snapshot.decode(_planted(("seq",), 10**300))
    assert "seq is out of range" in caught.value.message
    assert str(snapshot.MAX_COUNTER) in caught.value.message
    assert len(caught.value.message) < 200


def test_the_largest_allowed_values_still_load() -> None:
    """Timestamps up to 2**53 - 1 and counters up to 2**52 load unchanged."""
    data = _planted(("updatedAt",), snapshot.MAX_INTEGER)
    data["seq"] = data["revision"] = snapshot.MAX_COUNTER
    state = snapshot.decode(data)
    assert (state.seq, state.revision, state.updated_at) == (
        snapshot.MAX_COUNTER,
        snapshot.MAX_COUNTER,
        2**53 - 1,
    )
    assert snapshot.MAX_COUNTER + 2**52 <= 2**53  # room to count on, exactly


def test_a_notebook_with_a_huge_seq_reports_that_session_unreadable(tmp_path: Path) -> None:
    """The .ipynb reader skips a session whose seq is 10**22 and says why; the others still load."""
    nb = nbformat.v4.new_notebook()
    good = _fields(_state()) | {"session_id": "other"}
    nb.metadata["llmsock"] = {
        "version": 1,
        "sessions": {
            "default": _planted(("seq",), HUGE),
            "other": snapshot.encode(InteractionState(**good)),
        },
    }
    path = tmp_path / "planted.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    found = notebookfile.read_sessions(path)
    assert list(found.sessions) == ["other"]
    assert "seq is out of range" in found.unreadable["default"]


def test_the_chat_is_told_a_huge_seq_snapshot_was_not_restored(tmp_path: Path) -> None:
    """A view offering a notebook snapshot with seq 10**22 gets 'not restored', and the chat starts clean."""
    store = NotebookStore(tmp_path / ".llmsock" / "nb")
    outcome = store.offer("default", _planted(("seq",), HUGE))
    assert outcome.startswith("not restored: ") and "seq is out of range" in outcome


def test_a_file_with_a_huge_seq_is_refused_and_kept_aside(tmp_path: Path) -> None:
    """The file store refuses a snapshot file whose seq is 10**22 and moves it aside for inspection."""
    store = JsonFileStore(tmp_path, fsync=False)
    (tmp_path / "default.json").write_text(json.dumps(_planted(("seq",), HUGE)), encoding="utf-8")
    with pytest.raises(CorruptSnapshot, match="seq is out of range"):
        store.load_sync("default")
    assert (tmp_path / "default.json.corrupt-1").exists()
