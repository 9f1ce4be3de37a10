"""Merging a session saved by two writers keeps every message of both (B11).  Pure."""

from __future__ import annotations

from dataclasses import replace

from llmsock_widget.core import snapshot
from llmsock_widget.core.session import InteractionState, Message, new_state


def _turn(turn: str, text: str, ts: int) -> tuple[Message, Message]:
    return (
        Message(id=f"m-{turn}", role="user", text=text, turn_id=turn, ts=ts),
        Message(id=f"{turn}:a", role="assistant", text=f"re: {text}", turn_id=turn, ts=ts + 1),
    )


def _state(*turns: tuple[Message, Message], revision: int, seq: int, updated: int) -> InteractionState:
    base = new_state("shared", ts=100, model="builtin")
    messages = tuple(m for pair in turns for m in pair)
    return replace(base, messages=messages, revision=revision, seq=seq, updated_at=updated)


COMMON = _turn("t-common", "hello", 1_000)
THEIRS = _turn("t-theirs", "from the other process", 2_000)
OURS = _turn("t-ours", "from this process", 3_000)


def test_diverged_histories_keep_both_sides() -> None:
    """Two writers that each added a turn after a common start end up with all three turns, theirs first."""
    stored = _state(COMMON, THEIRS, revision=7, seq=12, updated=2_001)
    ours = _state(COMMON, OURS, revision=5, seq=9, updated=3_001)
    merged, foreign = snapshot.merge(stored, ours)
    assert [m.text for m in merged.messages if m.role == "user"] == [
        "hello",
        "from the other process",
        "from this process",
    ]
    assert foreign == 2  # the other process's prompt and answer
    assert (merged.revision, merged.seq, merged.updated_at) == (8, 12, 3_001)


def test_a_stored_prefix_of_ours_is_simply_extended() -> None:
    """When the file holds an earlier part of our chat, the result is our chat, nothing brought in."""
    stored = _state(COMMON, revision=9, seq=4, updated=1_001)
    ours = _state(COMMON, OURS, revision=3, seq=9, updated=3_001)
    merged, foreign = snapshot.merge(stored, ours)
    assert merged.messages == ours.messages and foreign == 0
    assert merged.revision == 10


def test_merging_again_adds_nothing_twice() -> None:
    """A second save of the same lagging copy over the merged file duplicates no message."""
    stored = _state(COMMON, THEIRS, revision=7, seq=12, updated=2_001)
    ours = _state(COMMON, OURS, revision=5, seq=9, updated=3_001)
    once, _ = snapshot.merge(stored, ours)
    twice, foreign = snapshot.merge(once, replace(ours, revision=6))
    assert twice.messages == once.messages and foreign == 2
    assert snapshot.decode(snapshot.encode(twice)) == twice


def test_overlapping_turns_keep_each_answer_after_its_prompt() -> None:
    """A turn whose prompt was saved by one side while the other answered keeps its answer next to it."""
    prompt, answer = THEIRS
    stored = _state(COMMON, OURS, revision=9, seq=12, updated=3_001)
    stored = replace(stored, messages=(*COMMON, prompt, *OURS))  # their prompt landed before our turn
    theirs = _state(COMMON, THEIRS, revision=4, seq=8, updated=2_001)
    merged, foreign = snapshot.merge(stored, theirs)
    assert merged.messages == (*COMMON, prompt, answer, *OURS)
    assert foreign == 2  # our prompt and answer, which their copy lacks
