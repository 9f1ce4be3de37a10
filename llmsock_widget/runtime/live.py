"""A session the hub holds in memory: its state, its turn machinery, and how it emits events."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import AbstractSet, Any, Callable, Coroutine

from ..core import lifecycle
from ..core.events import (
    Diagnostic,
    Level,
    ModelDelta,
    ModelReasoning,
    SessionEvent,
    Status,
    StatusChanged,
    model_delta,
)
from ..core.session import InteractionState, apply, check
from ..errors import ClientError
from ..wire.protocol import SendPrompt
from .fanout import DeliverDelta
from .replay import REPLAY_EVENTS as REPLAY_EVENTS
from .replay import ReplayLog
from .sharing import Link

# Seconds between two cancels of an aborted turn's stream that has not ended: code under a model
# may lose a cancellation (asyncio.wait_for before Python 3.12 does, CPython gh-86296), and Stop
# must end the turn all the same.
ABORT_AGAIN_AFTER = 1.0
# What a session that never spawned a task holds as its tasks (an empty set is 216 bytes).
_NO_TASKS: frozenset[asyncio.Task[None]] = frozenset()

Refuse = Callable[[ClientError], None]
"""Tells the sender of a prompt that it was refused (an error reply to its connection)."""


@dataclass(frozen=True, slots=True)
class Waiting:
    """A prompt in a session's queue, and how to tell its sender if it is refused when its turn comes."""

    prompt: SendPrompt
    refuse: Refuse


class LiveSession:
    """One live session.  Every event goes through :meth:`emit`: reduce, then publish.

    The hub and the turns change it only through its methods: :meth:`start_worker`,
    :meth:`take`, :meth:`begin_turn`, :meth:`start_stream`, :meth:`pause`,
    :meth:`resume`, :meth:`abort`, :meth:`approve`, :meth:`mark_saved` and the like; what it holds
    they read through read-only properties.  Whether a pause, a resume or an abort
    applies is the lifecycle table's answer (:mod:`llmsock_widget.core.lifecycle`).

    While the session is paused, the ``running`` event is cleared: the turn holds the
    model where it is (:meth:`unpaused`).  ``save_lock`` orders saves, so revisions
    never race.

    **Streamed text is joined lazily.**  The reducer appends each delta's text to the
    answer (``text + delta``), which copies the whole answer so far: O(reply length) per
    delta.  Instead, a delta that the reducer would accept (``session.check``) only has
    its text kept in a list here, and its ``seq`` and ``ts`` noted; the pieces are folded
    into the state, in one join and one ``replace``, the next time :attr:`state` is read
    or a different event is emitted.  Reading :attr:`state` therefore always gives exactly
    what ``session.apply`` of every event would have given; the hot path reads only
    :attr:`seq`, :attr:`turn_id` and :meth:`stamp`, which never fold.
    """

    # Slots: a session is made for every connection, and a dict of its 25 attributes took more.
    __slots__ = (
        "_aborting",
        "_active",
        "_allowed",
        "_approvals",
        "_message_id",
        "_notes",
        "_paused",
        "_reasoning",
        "_recent",
        "_save_lock",
        "_saved_seq",
        "_seq",
        "_state",
        "_stream",
        "_subscribers",
        "_text",
        "_updated_at",
        "_worker",
        "clock",
        "key",
        "link",
        "publish",
        "publish_delta",
        "queue",
        "tasks",
    )

    def __init__(
        self,
        *,
        key: str,
        state: InteractionState,
        publish: Callable[[str, SessionEvent], None],
        clock: Callable[[], int],
        saved_seq: int = 0,
        notes: list[tuple[str, str]] | None = None,
    ) -> None:
        self.key = key
        self.publish = publish
        # The fan-out's publish of a delta as its fields (set by the hub when the link has one).
        self.publish_delta: DeliverDelta | None = None
        self.clock = clock
        # Lists, and an event made only while paused: a session per idle connection, and an empty
        # deque or asyncio.Event keeps 0.5 to 0.8 KiB.
        self.queue: list[Waiting] = []
        self._save_lock: asyncio.Lock | None = None  # made by the first save (see save_lock)
        self.tasks: AbstractSet[asyncio.Task[None]] = _NO_TASKS  # a set of its own from the first spawn
        self._worker: asyncio.Task[None] | None = None
        self._stream: asyncio.Task[None] | None = None
        self._active: SendPrompt | None = None  # the prompt whose turn runs now
        self._message_id = ""  # the user message id of the running turn
        self._aborting = False
        self._paused: asyncio.Event | None = None  # while paused: set (and dropped) when it ends
        self._subscribers = 0
        self._saved_seq = saved_seq  # the seq of the last state the store accepted
        self._notes: list[tuple[str, str]] = notes if notes is not None else []  # diagnostics to tell
        self._recent = ReplayLog(REPLAY_EVENTS)
        # The state (and kind of event) the lifecycle last allowed a delta in: see _keep.
        self._allowed: tuple[InteractionState, type] | None = None
        # Tool calls of the running turn that wait for the user's approval: call id -> decision.
        self._approvals: dict[str, asyncio.Future[bool]] = {}
        self.link: Link  # set by the hub as it opens the session (runtime.sharing)
        self.state = state

    def __repr__(self) -> str:
        return f"<LiveSession {self.key} seq={self._seq} phase={self._state.phase}>"

    @property
    def save_lock(self) -> asyncio.Lock:
        """The lock that orders this session's saves (made when first asked for: most never save)."""
        lock = self._save_lock
        if lock is None:
            lock = self._save_lock = asyncio.Lock()
        return lock

    # -- state -------------------------------------------------------------------------

    @property
    def state(self) -> InteractionState:
        """The session's state after every event emitted so far."""
        if self._text or self._reasoning:
            self._fold()
        return self._state

    @state.setter
    def state(self, state: InteractionState) -> None:
        self._state = state
        self._text: list[str] = []  # deltas' text not folded into _state yet
        self._reasoning: list[str] = []  # likewise for reasoning
        self._seq = state.seq
        self._updated_at = state.updated_at

    @property
    def seq(self) -> int:
        """The seq of the last event emitted (``state.seq``, without folding)."""
        return self._seq

    @property
    def turn_id(self) -> str | None:
        """The running turn's id (``state.turn_id``, without folding: deltas do not change it)."""
        return self._state.turn_id

    def _allows(self, event_kind: str) -> bool:
        # Phase and status never change by a delta, so the unfolded state has the right ones.
        return lifecycle.allows(self._state.phase, self._state.status, event_kind)

    def _fold(self) -> None:
        state = self._state
        current = state.current
        assert current is not None  # pieces are only kept while streaming
        text, reasoning = self._text, self._reasoning
        current = replace(
            current,
            text=current.text + "".join(text) if text else current.text,
            reasoning=current.reasoning + "".join(reasoning) if reasoning else current.reasoning,
        )
        self.state = replace(state, current=current, seq=self._seq, updated_at=self._updated_at)

    @property
    def in_turn(self) -> bool:
        """Whether a prompt is being answered or waits to be."""
        return self._active is not None or self._state.phase != "idle" or bool(self.queue)

    @property
    def unsaved(self) -> bool:
        """Whether the store lacks the latest state."""
        return self._seq != self._saved_seq and self._seq > 0

    @property
    def saved_seq(self) -> int:
        """The seq of the last state the store accepted."""
        return self._saved_seq

    def mark_saved(self, state: InteractionState, base: InteractionState) -> None:
        """Note that the store took ``state`` (a copy of this session's state with a new revision).

        ``base`` is the state ``state`` was copied from: if nothing was emitted since, ``state``
        itself becomes the session's state (one copy of the state fewer per save).
        """
        if self._state is base and not (self._text or self._reasoning):
            self.state = state
        else:
            self.state = replace(self.state, revision=state.revision)
        self._saved_seq = state.seq

    def adopt_revision(self, revision: int) -> None:
        """Take the store's revision of this session (another server saved it meanwhile)."""
        self.state = replace(self.state, revision=revision)

    def stamp(self) -> dict[str, Any]:
        """Return the session id, next seq and time for the next event."""
        return {"session_id": self.key, "seq": self._seq + 1, "ts": self.clock()}

    # -- who listens ---------------------------------------------------------------------

    @property
    def subscribers(self) -> int:
        """How many connections are attached to this session."""
        return self._subscribers

    def add_subscriber(self) -> None:
        """Count one more attached connection."""
        self._subscribers += 1

    def remove_subscriber(self) -> None:
        """Count one attached connection fewer."""
        self._subscribers -= 1

    @property
    def notes(self) -> list[tuple[str, str]]:
        """What loading found, as ``(code, message)`` diagnostics not told yet."""
        return self._notes

    def take_notes(self) -> list[tuple[str, str]]:
        """Return the diagnostics not told yet, and forget them (they are told once)."""
        notes, self._notes = self._notes, []
        return notes

    @property
    def recent(self) -> ReplayLog:
        """The last :data:`REPLAY_EVENTS` events, oldest first, for clients that resume."""
        return self._recent

    def restore_recent(self, events: ReplayLog) -> None:
        """Take ``events`` (kept while the session was out of memory) if they lead exactly here."""
        if events and events.last_seq == self._seq:
            self._recent = events

    # -- turns -------------------------------------------------------------------------

    @property
    def worker(self) -> asyncio.Task[None] | None:
        """The task that runs this session's turns one after another, or None between them."""
        return self._worker

    @property
    def active(self) -> SendPrompt | None:
        """The prompt whose turn runs now (taken, maybe not yet echoed), or None."""
        return self._active

    @property
    def stream(self) -> asyncio.Task[None] | None:
        """The task that streams the running turn's model steps, or None."""
        return self._stream

    @property
    def message_id(self) -> str:
        """The user message id of the running turn (or of the last one)."""
        return self._message_id

    @property
    def aborting(self) -> bool:
        """Whether the running turn was asked to end as aborted."""
        return self._aborting

    @property
    def held(self) -> bool:
        """Whether the turn is holding the model (paused, and not aborted since)."""
        return self._paused is not None

    def start_worker(self, first: SendPrompt, work: Coroutine[Any, Any, None]) -> None:
        """Take ``first`` now (so a burst of prompts counts the queue right) and run ``work`` for it."""
        self._active = first
        self._worker = asyncio.get_running_loop().create_task(work)

    def take(self, prompt: SendPrompt | None) -> None:
        """Note ``prompt`` as the one whose turn runs now (None: no turn runs)."""
        self._active = prompt

    def worker_done(self) -> None:
        """Note that the worker has ended: no turn runs and none is taken."""
        self._active = None
        self._worker = None

    def begin_turn(self, message_id: str) -> None:
        """Reset the turn machinery for a new turn whose user message is ``message_id``."""
        self._message_id = message_id
        self._aborting = False
        self._unhold()  # a pause does not carry over to the next turn

    def start_stream(self, steps: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run the turn's model ``steps`` in their own task (so abort can cancel them); return it."""
        self._stream = asyncio.get_running_loop().create_task(steps)
        return self._stream

    def stream_done(self) -> None:
        """Forget the stream task: it has ended."""
        self._stream = None

    def pause(self) -> bool:
        """Hold the running answer and say so (``paused``); return False if no answer may pause now."""
        if self._aborting or not self._allows(lifecycle.PAUSE):  # an aborted turn only ends
            return False
        if self._paused is None:
            self._paused = asyncio.Event()
        self.set_status("paused")
        return True

    def resume(self) -> bool:
        """Let a held answer go on and say so (``generating``); return False if none is held."""
        if not self.held or not self._allows(lifecycle.RESUME):
            return False
        self.set_status("generating")
        self._unhold()
        return True

    def abort(self) -> bool:
        """Ask the running turn to end now, marked aborted; return False if none runs."""
        if not self._allows(lifecycle.END):
            return False
        self._aborting = True
        self.release()
        if self._stream is not None:
            self._cancel_stream(self._stream)
        return True

    def _cancel_stream(self, stream: asyncio.Task[None]) -> None:
        """Cancel ``stream``, and again every :data:`ABORT_AGAIN_AFTER` s until it has ended."""
        if stream.done() or stream is not self._stream:
            return
        stream.cancel()
        asyncio.get_running_loop().call_later(ABORT_AGAIN_AFTER, self._cancel_stream, stream)

    def release(self) -> None:
        """Stop holding the model (the turn is ending: nothing may wait on a pause any more)."""
        self._unhold()

    def _unhold(self) -> None:
        paused, self._paused = self._paused, None
        if paused is not None:
            paused.set()  # wakes every unpaused() waiting on this pause

    async def unpaused(self) -> None:
        """Return once the session is not paused (at once if it is not)."""
        paused = self._paused
        if paused is not None:
            await paused.wait()

    # -- approvals -----------------------------------------------------------------------

    def expect_approval(self, call_id: str) -> asyncio.Future[bool]:
        """Return the future that the user's decision on tool call ``call_id`` will settle."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._approvals[call_id] = future
        return future

    def forget_approval(self, call_id: str) -> None:
        """Stop waiting for a decision on ``call_id`` (decided, timed out, or the turn stopped)."""
        future = self._approvals.pop(call_id, None)
        if future is not None and not future.done():
            future.cancel()

    def approve(self, call_id: str, approved: bool) -> bool:
        """Settle the decision on tool call ``call_id``; return False if it does not wait for one.

        The first answer wins: a second one (from any client of the session) finds nothing waiting.
        """
        future = self._approvals.pop(call_id, None)
        if future is None or future.done():
            return False
        future.set_result(approved)
        return True

    @property
    def waiting_approval(self) -> tuple[str, ...]:
        """The ids of the tool calls that wait for the user's approval now."""
        return tuple(self._approvals)

    # -- events --------------------------------------------------------------------------

    def emit(self, event: SessionEvent) -> None:
        """Apply ``event`` to the state, keep it for replay, and publish it to the subscribers."""
        if type(event) is ModelDelta:
            self._keep(event, self._text)
        elif type(event) is ModelReasoning:
            self._keep(event, self._reasoning)
        else:
            self.state = apply(self.state, event)
        self._recent.append(event)
        self.publish(self.key, event)

    def emit_delta(self, text: str) -> None:
        """Emit the running message's next piece of answer text: :meth:`emit` of a ModelDelta.

        The answer's hot path (one call per delta): the event is made here, from what the
        session already knows, with the checks :meth:`_keep` makes of every delta.
        """
        state = self._state
        seq = self._seq + 1
        ts = self.clock()
        allowed = self._allowed
        publish_delta = self.publish_delta
        if (
            publish_delta is not None
            and allowed is not None
            and allowed[0] is state
            and allowed[1] is ModelDelta
            and self._recent.extend_run(ModelDelta, self.key, seq, ts, state.turn_id, self._message_id, text)
        ):
            # The next delta of the message streaming: _keep's work, for a delta whose session,
            # turn and seq are right by construction; kept and published as its fields.
            self._text.append(text)
            self._seq = seq
            if ts > self._updated_at:
                self._updated_at = ts
            publish_delta(self.key, seq, ts, state.turn_id, self._message_id, text)
            return
        event = model_delta(self.key, seq, ts, state.turn_id, self._message_id, text)
        self._keep(event, self._text)  # the message's first delta: the full check
        self._recent.append(event)
        self.publish(self.key, event)

    def follow(self, event: SessionEvent) -> None:
        """Apply an event another server emitted (and saves): as :meth:`emit`, but nothing to save."""
        self.emit(event)
        self._saved_seq = self._seq

    def _keep(self, event: ModelDelta | ModelReasoning, pieces: list[str]) -> None:
        # The reducer's own checks, without folding: a delta it would refuse raises the same error.
        # Phase, status and turn are the unfolded state's, which a delta never replaces: once the
        # lifecycle allowed this kind of delta in this state, the next ones only need the checks
        # that do change (their seq, session and turn); any doubt goes through the full check.
        state = self._state
        allowed = self._allowed
        if (
            allowed is None
            or allowed[0] is not state
            or allowed[1] is not type(event)
            or event.seq != self._seq + 1
            or event.session_id != state.session_id
            or event.turn_id != state.turn_id
        ):
            check(state, event, seq=self._seq)
            self._allowed = (state, type(event))
        pieces.append(event.text)
        self._seq = event.seq
        self._updated_at = max(self._updated_at, event.ts)

    def missed(self, after: int) -> list[SessionEvent] | None:
        """Return the events after seq ``after``, or None if some are gone or ``after`` is unknown."""
        if after == self._seq:
            return []
        if after > self._seq:  # a sequence this session never reached: another timeline
            return None
        if not self._recent or self._recent.first_seq > after + 1:
            return None
        return self._recent.after(after)

    def diagnose(self, level: Level, code: str, message: str) -> None:
        """Emit a diagnostic on this session."""
        self.emit(Diagnostic(**self.stamp(), turn_id=self.turn_id, level=level, code=code, message=message))

    def set_status(self, status: Status) -> None:
        """Emit a status change on this session."""
        self.emit(StatusChanged(**self.stamp(), turn_id=self.turn_id, status=status))

    def spawn(self, coro: Any, then: Callable[[], None] | None = None) -> None:
        """Run ``coro`` as a task this session keeps a reference to until it ends, then call ``then``."""
        task = asyncio.get_running_loop().create_task(coro)
        tasks = self.tasks
        if not isinstance(tasks, set):
            tasks = self.tasks = set()
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if then is not None:
            task.add_done_callback(lambda _: then())
