"""The client's pure parts: backoff, close policy, URLs, the cursor over a session, answer collection."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmsock_widget.client.answers import AnswerCollector
from llmsock_widget.client.core import Backoff, Cursor, ready_of, session_url, should_reconnect

# -- backoff -------------------------------------------------------------------------------


def test_ceiling_grows_by_the_factor_until_the_cap() -> None:
    """The longest delay doubles from the base and stops at the cap."""
    backoff = Backoff(base=0.25, factor=2.0, cap=10.0)
    assert [backoff.ceiling(n) for n in range(8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_huge_attempts_stay_at_the_cap() -> None:
    """An attempt count that would overflow a float still gives the cap."""
    assert Backoff().ceiling(10**6) == 10.0
    assert Backoff(factor=1.0, base=0.5).ceiling(10**6) == 0.5


@given(
    attempt=st.integers(min_value=0, max_value=10_000),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_jitter_stays_within_zero_and_the_ceiling(attempt: int, draw: float) -> None:
    """Full jitter: every delay lies in [0, ceiling), never above the cap."""
    backoff = Backoff(base=0.1, factor=3.0, cap=7.0)
    delay = backoff.delay(attempt, lambda: draw)
    assert 0.0 <= delay <= backoff.ceiling(attempt) <= 7.0
    assert delay == draw * backoff.ceiling(attempt)


def test_delays_are_deterministic_with_a_seeded_random() -> None:
    """The same seed gives the same schedule; another seed gives another."""

    def schedule(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [Backoff().delay(n, rng.random) for n in range(10)]

    assert schedule(7) == schedule(7) != schedule(8)


def test_a_random_source_out_of_range_is_clamped() -> None:
    """A random source outside [0, 1] cannot push the delay past the ceiling or below 0."""
    backoff = Backoff()
    assert backoff.delay(3, lambda: 5.0) == backoff.ceiling(3)
    assert backoff.delay(3, lambda: -1.0) == 0.0


@pytest.mark.parametrize(
    "options",
    [{"base": 0}, {"base": float("nan")}, {"factor": 0.5}, {"cap": 0.1}, {"max_attempts": 0}],
)
def test_bad_settings_are_refused(options: dict[str, Any]) -> None:
    """A schedule that cannot work is refused when it is made."""
    with pytest.raises(ValueError):
        Backoff(**options)


def test_max_attempts_ends_reconnecting() -> None:
    """gave_up counts consecutive failures against max_attempts; None never gives up."""
    assert Backoff(max_attempts=3).gave_up(3) and not Backoff(max_attempts=3).gave_up(2)
    assert not Backoff().gave_up(10**9)
    with pytest.raises(ValueError):
        Backoff().ceiling(-1)


# -- close policy and URLs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "again"),
    [
        *[(None, True), (1000, True), (1001, True), (1006, True), (1011, True), (4008, True)],
        *[(1008, False), (4400, False), (4001, False)],
    ],
)
def test_which_closes_are_followed_by_a_reconnect(code: int | None, again: bool) -> None:
    """Drops, going away, errors and 4008 reconnect; policy closes (1008, 4xxx but 4008) do not."""
    assert should_reconnect(code) is again


def test_session_url_adds_session_and_resume_and_refuses_secrets() -> None:
    """The URL gets session and resume (replacing old ones); a token or credentials are refused."""
    url = session_url("ws://127.0.0.1:9/ws?session=old&x=1", session="s1", resume="e-a:5")
    assert url == "ws://127.0.0.1:9/ws?x=1&session=s1&resume=e-a%3A5"
    assert session_url("ws://h:1", session=None, resume=None) == "ws://h:1/ws"
    for bad in ("http://h:1/ws", "ws://h:1/ws?token=x", "ws://h:1/ws?Api_Token=x", "ws://u:p@h:1/ws"):
        with pytest.raises(ValueError):
            session_url(bad, session=None, resume=None)


# -- the cursor ----------------------------------------------------------------------------


def ready(seq: int, epoch: str = "e-1", **fields: Any) -> dict[str, Any]:
    """Return an envelope ready announcement."""
    body = {"type": "ready", "sessionId": "s", "sequence": seq, "epoch": epoch, **fields}
    return {"name": "interaction.session", "data": {"kind": "session", "event": body, "meta": {}}}


def delta(seq: int, text: str = "x") -> dict[str, Any]:
    """Return an envelope text delta with ``seq``."""
    meta = {"sessionId": "s", "sequence": seq, "turnId": "t"}
    return {"name": "interaction.model", "data": {"event": {"type": "delta", "text": text}, "meta": meta}}


def attach(cursor: Cursor, message: dict[str, Any], *, reconnect: bool) -> list[dict[str, Any]]:
    """Feed a ready to ``cursor``; return what it delivers."""
    found = ready_of(message, cursor.dialect)
    assert found is not None
    step = cursor.on_ready(message, found, reconnect=reconnect, history_id="h1")
    return step.deliver


def test_cursor_drops_duplicates_and_resumes_from_the_last_applied() -> None:
    """Events at or below the last applied sequence are dropped; resume names epoch and last seq."""
    cursor = Cursor(dialect="envelope", session=None)
    assert attach(cursor, ready(4), reconnect=False) == [ready(4)]
    assert cursor.session == "s" and cursor.resume() == "e-1:4"
    delivered = [m for seq in (5, 6, 6, 5, 7) for m in cursor.on_message(delta(seq)).deliver]
    assert [m["data"]["meta"]["sequence"] for m in delivered] == [5, 6, 7]
    assert cursor.duplicates == 2 and cursor.resume() == "e-1:7"
    out = attach(cursor, ready(9, resumed=True, replayed=2), reconnect=True)
    assert out[1] == {
        "name": "client.reconnected",
        "data": {"resumed": True, "replayed": 2, "sequence": 9, "epoch": "e-1"},
    }


def test_cursor_reloads_when_the_server_cannot_resume() -> None:
    """resumed: false asks for get_history, holds live events, then hands over history and the rest."""
    cursor = Cursor(dialect="envelope", session="s")
    attach(cursor, ready(3), reconnect=False)
    found = ready_of(ready(10, epoch="e-2", resumed=False), "envelope")
    assert found is not None
    step = cursor.on_ready(ready(10, epoch="e-2"), found, reconnect=True, history_id="h1")
    assert json.loads(step.send[0]) == {"type": "control", "id": "h1", "data": {"type": "get_history"}}
    assert cursor.resume() is None  # a drop now must not resume from the old numbering
    assert cursor.on_message(delta(11)).deliver == [] and cursor.on_message(delta(12)).deliver == []
    history = {"messages": [], "current": None, "sequence": 11, "status": "generating"}
    result = {"type": "result", "action": "get_history", "ok": True, "data": history, "requestId": "h1"}
    out = cursor.on_message({"name": "interaction.control", "data": {"event": result, "meta": {}}}).deliver
    assert out[0]["name"] == "client.reloaded"
    assert out[0]["data"] == {"history": history, "sequence": 11, "epoch": "e-2", "restarted": True}
    assert out[1:] == [delta(12)] and cursor.resume() == "e-2:12"


def test_typed_tool_result_frames_share_a_sequence() -> None:
    """Both seed-004 frames of a tool result pass; a drop between them resumes one event early."""
    cursor = Cursor(dialect="typed", session="s")
    hello = {"type": "status", "id": "ready", "data": {"sessionId": "s", "sequence": 5, "epoch": "e"}}
    attach(cursor, hello, reconnect=False)
    meta = {"sessionId": "s", "sequence": 6}
    outcome = {"type": "tool_call", "id": "u", "data": {"status": "complete"}, "metadata": meta}
    result = {"type": "tool_result", "id": "u", "data": {"success": True}, "metadata": meta}
    assert cursor.on_message(outcome).deliver == [outcome]
    assert cursor.resume() == "e:5"
    assert cursor.on_message(outcome).deliver == []  # replayed first half: a duplicate
    assert cursor.on_message(result).deliver == [result]
    assert cursor.on_message(result).deliver == [] and cursor.resume() == "e:6"


# -- answers -------------------------------------------------------------------------------


def envelope(name: str, body: dict[str, Any], **meta: Any) -> dict[str, Any]:
    """Return an envelope frame."""
    return {"name": name, "data": {"event": body, "meta": meta}}


def test_collector_follows_the_turn_of_its_message_id() -> None:
    """Deltas of the prompt's turn add up; another turn's are ignored; end gives the Answer."""
    collector = AnswerCollector("m1", dialect="envelope")
    frames = [
        envelope("interaction.user", {"type": "message", "messageId": "m1"}, turnId="t1", sequence=1),
        envelope("interaction.model", {"type": "delta", "text": "Hel"}, turnId="t1", sequence=2),
        envelope("interaction.model", {"type": "delta", "text": "other"}, turnId="t0", sequence=3),
        envelope("interaction.model", {"type": "delta", "reasoning": "hmm"}, turnId="t1", sequence=4),
        envelope("interaction.model", {"type": "delta", "text": "lo"}, turnId="t1", sequence=5),
    ]
    assert [collector.feed(f) for f in frames] == [None] * 5 and collector.text == "Hello"
    end = {"type": "end", "text": "Hello", "finishReason": "stop"}
    answer = collector.feed(envelope("interaction.model", end, turnId="t1", sequence=6))
    assert answer is not None and (answer.text, answer.finish_reason, answer.error) == ("Hello", "stop", None)


def test_collector_picks_the_answer_up_from_a_reloaded_history() -> None:
    """After a reload the collector takes the current text, or the finished message, from the history."""
    collector = AnswerCollector("m1", dialect="envelope")
    user = {"id": "m1", "role": "user", "text": "hi", "turnId": "t1"}
    streaming = {"history": {"messages": [user], "current": {"turnId": "t1", "text": "Hal"}}}
    assert collector.feed({"name": "client.reloaded", "data": streaming}) is None
    assert collector.text == "Hal"
    failed = {"id": "t1:a", "role": "assistant", "text": "Half", "turnId": "t1", "status": "error"}
    failed["error"] = {"code": "model_error", "message": "boom"}
    done = {"history": {"messages": [user, failed], "current": None}}
    answer = collector.feed({"name": "client.reloaded", "data": done})
    assert answer is not None and (answer.text, answer.finish_reason) == ("Half", "error")
    assert answer.error == "model_error: boom"


def test_collector_reports_a_prompt_lost_in_a_restart() -> None:
    """A prompt that is nowhere in the history of a restarted server is reported lost."""
    collector = AnswerCollector("m9", dialect="typed")
    history = {"history": {"messages": [], "current": None}, "restarted": True}
    answer = collector.feed({"name": "client.reloaded", "data": history})
    assert answer is not None and answer.finish_reason == "error" and "restarted" in (answer.error or "")


def test_collector_in_typed_and_error_replies() -> None:
    """Seed-004 chunks add up to llm_complete; an error reply to the prompt ends it with the code."""
    collector = AnswerCollector("u1", dialect="typed")
    chunk = {"type": "llm_chunk", "id": "u1", "data": {"chunk": "Hi"}, "metadata": {"sequence": 4}}
    assert collector.feed(chunk) is None and collector.text == "Hi"
    complete = {"type": "llm_complete", "id": "u1", "data": {"fullText": "Hi", "finishReason": "length"}}
    answer = collector.feed({**complete, "metadata": {"sequence": 5}})
    assert answer is not None and answer.finish_reason == "length"
    refused = AnswerCollector("m2", dialect="envelope")
    reply = {"type": "error", "code": "queue_full", "message": "full", "requestId": "m2"}
    answer = refused.feed(envelope("interaction.error", reply))
    assert answer is not None and answer.error == "queue_full: full" and answer.text == ""
