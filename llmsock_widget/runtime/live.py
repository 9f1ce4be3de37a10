"""A session the hub holds in memory: its state, its turn machinery, and how it emits events."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import replace
from typing import Any, Callable

from ..core.events import Diagnostic, Level, ModelDelta, ModelReasoning, SessionEvent, Status, StatusChanged
from ..core.session import InteractionState, apply
from ..wire.protocol import SendPrompt

REPLAY_EVENTS = 4096  # events kept per session, so a client that reconnects can catch up


class LiveSession:
    """One live session.  Every event goes through :meth:`emit`: reduce, then publish.

    ``running`` is cleared while the session is paused: the turn holds the
    model where it is.  ``save_lock`` orders saves, so revisions never race.

    **Streamed text is joined lazily.**  The reducer appends each delta's text to the
    answer (``text + delta``), which copies the whole answer so far: O(reply length) per
    delta.  Instead, a delta that the reducer would accept (:meth:`_accepts`) only has its
    text kept in a list here, and its ``seq`` and ``ts`` noted; the pieces are folded into
    the state, in one join and one ``replace``, the next time :attr:`state` is read or a
    different event is emitted.  Reading :attr:`state` therefore always gives exactly what
    ``session.apply`` of every event would have given; the hot path reads only :attr:`seq`,
    :attr:`turn_id` and :meth:`stamp`, which never fold.
    """

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
        self.clock = clock
        self.queue: deque[SendPrompt] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.stream: asyncio.Task[None] | None = None
        self.active: SendPrompt | None = None  # the prompt whose turn runs now
        self.message_id = ""  # the user message id of the running turn
        self.aborting = False
        self.running = asyncio.Event()
        self.running.set()
        self.save_lock = asyncio.Lock()
        self.subscribers = 0
        self.saved_seq = saved_seq  # the seq of the last state the store accepted
        self.notes: list[tuple[str, str]] = notes if notes is not None else []  # diagnostics to tell
        self.tasks: set[asyncio.Task[None]] = set()
        self.recent: deque[SessionEvent] = deque(maxlen=REPLAY_EVENTS)
        self.state = state

    def __repr__(self) -> str:
        return f"<LiveSession {self.key} seq={self._seq} phase={self._state.phase}>"

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

    def _accepts(self, event: ModelDelta | ModelReasoning) -> bool:
        # Exactly the checks session.apply makes of a delta: anything else goes through apply.
        state = self._state
        return (
            event.seq == self._seq + 1
            and state.phase == "streaming"
            and event.session_id == state.session_id
            and event.turn_id == state.turn_id
        )

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
        return self.active is not None or self._state.phase != "idle" or bool(self.queue)

    @property
    def unsaved(self) -> bool:
        """Whether the store lacks the latest state."""
        return self._seq != self.saved_seq and self._seq > 0

    def stamp(self) -> dict[str, Any]:
        """Return the session id, next seq and time for the next event."""
        return {"session_id": self.key, "seq": self._seq + 1, "ts": self.clock()}

    # -- events --------------------------------------------------------------------------

    def emit(self, event: SessionEvent) -> None:
        """Apply ``event`` to the state, keep it for replay, and publish it to the subscribers."""
        if type(event) is ModelDelta and self._accepts(event):
            self._text.append(event.text)
            self._seq = event.seq
            self._updated_at = max(self._updated_at, event.ts)
        elif type(event) is ModelReasoning and self._accepts(event):
            self._reasoning.append(event.text)
            self._seq = event.seq
            self._updated_at = max(self._updated_at, event.ts)
        else:
            self.state = apply(self.state, event)
        self.recent.append(event)
        self.publish(self.key, event)

    def missed(self, after: int) -> list[SessionEvent] | None:
        """Return the events after seq ``after``, or None if some are gone or ``after`` is unknown."""
        if after == self._seq:
            return []
        if after > self._seq:  # a sequence this session never reached: another timeline
            return None
        if not self.recent or self.recent[0].seq > after + 1:
            return None
        return [event for event in self.recent if event.seq > after]

    def diagnose(self, level: Level, code: str, message: str) -> None:
        """Emit a diagnostic on this session."""
        self.emit(Diagnostic(**self.stamp(), turn_id=self.turn_id, level=level, code=code, message=message))

    def set_status(self, status: Status) -> None:
        """Emit a status change on this session."""
        self.emit(StatusChanged(**self.stamp(), turn_id=self.turn_id, status=status))

    def spawn(self, coro: Any, then: Callable[[], None] | None = None) -> None:
        """Run ``coro`` as a task this session keeps a reference to until it ends, then call ``then``."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if then is not None:
            task.add_done_callback(lambda _: then())
