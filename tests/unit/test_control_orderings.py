"""Prompts and controls sent back to back: every ordering ends as protocol section 9 says.

The hub handles each frame without awaiting, so frames handled one after another, with
no turn of the loop between them, are the worst case of frames that arrive together:
nothing of a turn has run yet when the next frame is taken.  A prompt taken on a
session with no open turn must be in its turn at once (section 9.1): the controls that
follow it see it.  The expected outcome of each frame is computed by :class:`Expect`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, get_args

from hypothesis import given, settings
from hypothesis import strategies as st

from llmsock_widget.core.events import (
    ControlResult,
    ErrorReply,
    Event,
    ModelDelta,
    ModelEnd,
    ModelError,
    ModelStart,
    SessionEvent,
)
from llmsock_widget.models import BuiltinModel
from llmsock_widget.runtime.hub import Hub
from llmsock_widget.stores import MemoryStore
from llmsock_widget.wire.protocol import Control, SendPrompt
from tests.conftest import TIMEOUT

PROMPT = "/long 12"
MAX_QUEUE = 2
ACTIONS = ("prompt", "abort", "pause", "resume", "clear_history", "get_status")


@dataclass
class Expect:
    """What the hub must answer to each frame of a burst, and how each prompt must end."""

    open: str | None = None  # the prompt whose turn is open (it stays open for the whole burst)
    aborting: bool = False
    held: bool = False  # the answer is held by a pause (an abort lets it go)
    paused: bool = False  # the status says so (an abort does not change it: the end comes first)
    queue: list[str] = field(default_factory=list)
    replies: dict[str, tuple[bool, str]] = field(default_factory=dict)  # request id -> (ok, message)
    ends: dict[str, str] = field(default_factory=dict)  # prompt id -> "stop", "aborted", "queue_full"
    statuses: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # id -> phase, status, queued

    def prompt(self, pid: str) -> None:
        if self.open is None and not self.queue:
            self.open, self.ends[pid] = pid, "stop"
        elif len(self.queue) >= MAX_QUEUE:
            self.ends[pid] = "queue_full"
        else:
            self.queue.append(pid)
            self.ends[pid] = "stop"

    def control(self, rid: str, action: str) -> None:
        opened = self.open is not None
        if action == "abort":
            if opened:
                self.aborting, self.held = True, False
                self.ends[self.open or ""] = "aborted"
            self.replies[rid] = (True, "turn aborted") if opened else (False, "nothing to abort: no turn")
        elif action == "pause":
            if not opened:
                self.replies[rid] = (False, "nothing to pause: no answer is streaming")
            elif self.aborting:
                self.replies[rid] = (False, "nothing to pause: the turn is ending")
            elif self.paused:
                self.replies[rid] = (False, "already paused")
            else:
                self.held = self.paused = True
                self.replies[rid] = (True, "paused")
        elif action == "resume":
            self.replies[rid] = (True, "resumed") if self.held else (False, "not paused")
            if self.held:
                self.held = self.paused = False
        elif action == "clear_history":
            refused = "cannot clear history while a turn is running; abort it first"
            self.replies[rid] = (False, refused) if opened or self.queue else (True, "history cleared")
        else:
            status = "paused" if self.paused else "generating" if opened else "idle"
            self.statuses[rid] = ("turn" if opened else "idle", status, len(self.queue))
            self.replies[rid] = (True, "")


async def play(actions: list[str]) -> tuple[list[Event], Expect, dict[str, Any]]:
    """Handle ``actions`` back to back on one session; return what it sent, what was expected, its status."""
    hub = Hub(store=MemoryStore(), model=BuiltinModel(tokens_per_second=None), max_queue=MAX_QUEUE)
    seen: list[Event] = []
    deliver = seen.append
    expect = Expect()
    key, detach, _ = await hub.attach("orderings", deliver)
    for n, action in enumerate(actions):
        if action == "prompt":
            expect.prompt(f"p{n}")
            hub.handle(key, SendPrompt(text=PROMPT, message_id=f"p{n}"), deliver)
        else:
            expect.control(f"c{n}", action)
            hub.handle(key, Control(action=action, request_id=f"c{n}"), deliver)
    if expect.held:  # a pause lasts until resume: let the answer go on
        expect.control("last", "resume")
        hub.handle(key, Control(action="resume", request_id="last"), deliver)
    await finished(hub, key)
    status = hub.status(key)
    await detach()
    return seen, expect, status


async def finished(hub: Hub, key: str) -> None:
    """Return once the session's worker has answered every prompt and its saves are made."""
    live = hub.sessions[key]
    if live.worker is not None:
        await asyncio.wait_for(asyncio.shield(live.worker), TIMEOUT)
    await asyncio.wait_for(asyncio.gather(*live.tasks), TIMEOUT)


def replies_of(seen: list[Event]) -> dict[str, tuple[bool, str]]:
    """Return each control's outcome by request id: ``(ok, message)``."""
    out: dict[str, tuple[bool, str]] = {}
    for event in seen:
        if isinstance(event, ControlResult) and event.request_id:
            out[event.request_id] = (event.ok, event.message)
        elif isinstance(event, ErrorReply) and event.refused == "control" and event.request_id:
            out[event.request_id] = (False, event.message)
    return out


def ends_of(seen: list[Event]) -> dict[str, list[str]]:
    """Return every end each prompt got, by prompt id."""
    out: dict[str, list[str]] = {}
    for event in seen:
        if isinstance(event, ModelEnd):
            out.setdefault(event.message_id or "", []).append(event.finish_reason)
        elif isinstance(event, ModelError):
            out.setdefault(event.message_id or "", []).append("error")
        elif isinstance(event, ErrorReply) and event.refused == "user_message":
            out.setdefault(event.request_id or "", []).append(event.code)
    return out


def check(seen: list[Event], expect: Expect, status: dict[str, Any]) -> None:
    """Assert the invariants of section 9 over everything one burst produced."""
    # Every prompt ends exactly once, as expected: the one an abort follows ends aborted.
    assert ends_of(seen) == {pid: [end] for pid, end in expect.ends.items()}
    # Each control answered as section 9 says, right when it was read; no other refusal.
    assert replies_of(seen) == expect.replies
    stray = [e for e in seen if isinstance(e, ErrorReply) and e.code not in ("queue_full", "invalid_request")]
    assert stray == []
    for event in seen:
        if isinstance(event, ControlResult) and event.request_id in expect.statuses:
            data = event.data
            assert (data["phase"], data["status"], data["queued"]) == expect.statuses[event.request_id]
    # The session's events are numbered without a gap.
    seqs = [e.seq for e in seen if isinstance(e, get_args(SessionEvent))]
    assert seqs == list(range(1, len(seqs) + 1))
    # An aborted prompt never reached its model; a finished one got its whole answer.
    answers: dict[str, list[str]] = {}
    for event in seen:
        if isinstance(event, ModelDelta):
            answers.setdefault(event.message_id or "", []).append(event.text)
    finished = [e for e in seen if isinstance(e, ModelEnd)]
    for end in finished:
        streamed = "".join(answers.get(end.message_id or "", []))
        assert end.text == streamed
        if end.finish_reason == "aborted":
            assert streamed == ""
    assert all(e.text for e in finished if e.finish_reason == "stop")
    started = {e.message_id for e in seen if isinstance(e, ModelStart)}
    assert started == {pid for pid, end in expect.ends.items() if end == "stop"}
    # The session ends at rest.
    assert (status["phase"], status["status"], status["queued"]) == ("idle", "idle", 0)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=9))
def test_any_ordering_of_frames_ends_as_documented(actions: list[str]) -> None:
    """Prompts, aborts, pauses, resumes, clears and status requests back to back end as section 9 says."""
    check(*asyncio.run(play(actions)))


def test_an_abort_right_after_a_prompt_ends_it_aborted() -> None:
    """The case the property covers first: a prompt, then at once an abort."""
    seen, expect, status = asyncio.run(play(["prompt", "abort"]))
    check(seen, expect, status)
    assert ends_of(seen) == {"p0": ["aborted"]}
    assert replies_of(seen) == {"c1": (True, "turn aborted")}


def test_a_pause_right_after_a_prompt_holds_the_answer_until_resume() -> None:
    """A pause taken with the prompt holds the model at its first chunk; resume gives the whole answer."""

    async def scenario() -> tuple[list[Event], list[Event]]:
        hub = Hub(store=MemoryStore(), model=BuiltinModel(tokens_per_second=None))
        seen: list[Event] = []
        key, detach, _ = await hub.attach("pause", seen.append)
        hub.handle(key, SendPrompt(text=PROMPT, message_id="p"), seen.append)
        hub.handle(key, Control(action="pause", request_id="c"), seen.append)
        live = hub.sessions[key]

        async def model_started() -> None:
            while live.stream is None:
                await asyncio.sleep(0)

        await asyncio.wait_for(model_started(), TIMEOUT)
        for _ in range(50):  # unpaced, the whole answer would stream in these turns of the loop
            await asyncio.sleep(0)
        held = list(seen)
        hub.handle(key, Control(action="resume", request_id="r"), seen.append)
        await finished(hub, key)
        await detach()
        return held, seen

    held, seen = asyncio.run(scenario())
    alone, _, _ = asyncio.run(play(["prompt"]))  # the same prompt, never paused
    assert any(isinstance(e, ModelStart) for e in held)
    assert not any(isinstance(e, ModelDelta) for e in held)
    assert replies_of(seen) == {"c": (True, "paused"), "r": (True, "resumed")}
    end = next(e for e in seen if isinstance(e, ModelEnd))
    whole = next(e for e in alone if isinstance(e, ModelEnd))
    assert (end.finish_reason, end.text) == ("stop", whole.text)
    assert end.text == "".join(e.text for e in seen if isinstance(e, ModelDelta)) != ""
