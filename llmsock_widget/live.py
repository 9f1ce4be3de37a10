"""A session the hub holds in memory: its state, its turn machinery, and how it emits events."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from .events import Diagnostic, Level, SessionEvent, Status, StatusChanged
from .protocol import SendPrompt
from .session import InteractionState, apply

REPLAY_EVENTS = 4096  # events kept per session, so a client that reconnects can catch up


@dataclass(eq=False)
class LiveSession:
    """One live session.  Every event goes through :meth:`emit`: reduce, then publish.

    ``running`` is cleared while the session is paused: the turn holds the
    model where it is.  ``save_lock`` orders saves, so revisions never race.
    """

    key: str
    state: InteractionState
    publish: Callable[[str, SessionEvent], None]
    clock: Callable[[], int]
    queue: deque[SendPrompt] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None
    stream: asyncio.Task[None] | None = None
    active: SendPrompt | None = None  # the prompt whose turn runs now
    message_id: str = ""  # the user message id of the running turn
    aborting: bool = False
    running: asyncio.Event = field(default_factory=asyncio.Event)
    save_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    subscribers: int = 0
    saved_seq: int = 0  # the seq of the last state the store accepted
    notes: list[tuple[str, str]] = field(default_factory=list)  # diagnostics waiting for a listener
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    recent: deque[SessionEvent] = field(default_factory=lambda: deque(maxlen=REPLAY_EVENTS))

    def __post_init__(self) -> None:
        self.running.set()

    @property
    def in_turn(self) -> bool:
        """Whether a prompt is being answered or waits to be."""
        return self.active is not None or self.state.phase != "idle" or bool(self.queue)

    @property
    def unsaved(self) -> bool:
        """Whether the store lacks the latest state."""
        return self.state.seq != self.saved_seq and self.state.seq > 0

    def stamp(self) -> dict[str, Any]:
        """Return the session id, next seq and time for the next event."""
        return {"session_id": self.key, "seq": self.state.seq + 1, "ts": self.clock()}

    def emit(self, event: SessionEvent) -> None:
        """Apply ``event`` to the state, keep it for replay, and publish it to the subscribers."""
        self.state = apply(self.state, event)
        self.recent.append(event)
        self.publish(self.key, event)

    def missed(self, after: int) -> list[SessionEvent] | None:
        """Return the events after seq ``after``, or None if some are gone or ``after`` is unknown."""
        if after == self.state.seq:
            return []
        if after > self.state.seq:  # a sequence this session never reached: another timeline
            return None
        if not self.recent or self.recent[0].seq > after + 1:
            return None
        return [event for event in self.recent if event.seq > after]

    def diagnose(self, level: Level, code: str, message: str) -> None:
        """Emit a diagnostic on this session."""
        self.emit(
            Diagnostic(**self.stamp(), turn_id=self.state.turn_id, level=level, code=code, message=message)
        )

    def set_status(self, status: Status) -> None:
        """Emit a status change on this session."""
        self.emit(StatusChanged(**self.stamp(), turn_id=self.state.turn_id, status=status))

    def spawn(self, coro: Any, then: Callable[[], None] | None = None) -> None:
        """Run ``coro`` as a task this session keeps a reference to until it ends, then call ``then``."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if then is not None:
            task.add_done_callback(lambda _: then())
