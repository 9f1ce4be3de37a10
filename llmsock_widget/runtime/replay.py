"""A session's last events, kept for clients that resume, without an object per delta.

A live session keeps its last :data:`REPLAY_EVENTS` events.  Kept as they come, every delta
would stay alive as an object of its own: with many sessions streaming, that is one object
the cycle collector must count, promote and walk per delta, and those that stay are what
starts its collections (a thousand paced sessions ran one full collection, 0.1 s of the
server thread, every 30,000 deltas).  :class:`ReplayLog` keeps a run of deltas (or reasoning)
of one message, one after the other, as one record holding two lists, their texts and their
times: a delta appended to a run adds to those lists and makes no object.  Other events
(a few per turn) are kept as they are.  Reading the log gives back events equal to the ones
appended, oldest first.
"""

from __future__ import annotations

from collections import deque
from typing import Iterator, Union

from ..core.events import ModelDelta, ModelReasoning, SessionEvent

REPLAY_EVENTS = 4096  # events kept per session, so a client that reconnects can catch up

Piece = Union[ModelDelta, ModelReasoning]
_PIECES = (ModelDelta, ModelReasoning)


class _Run:
    """Consecutive deltas (or reasoning) of one message: the first's ids, then each one's text and time."""

    __slots__ = (
        "first_seq",
        "kind",
        "message_id",
        "next_seq",
        "session_id",
        "stamps",
        "start",
        "texts",
        "turn_id",
    )

    def __init__(self, event: Piece) -> None:
        self.kind: type[Piece] = type(event)
        self.session_id = event.session_id
        self.turn_id = event.turn_id
        self.message_id = event.message_id
        self.first_seq = event.seq  # the seq of texts[0]; the ones after it follow by one
        self.next_seq = event.seq + 1  # the seq of the piece that would continue the run
        self.start = 0  # texts before it are dropped (the log was full)
        self.texts = [event.text]
        self.stamps = [event.ts]

    def __len__(self) -> int:
        return len(self.texts) - self.start

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1

    def drop_first(self) -> None:
        """Drop the oldest piece kept (the run must not be empty)."""
        self.start += 1
        if self.start * 2 > len(self.texts) and self.start >= 64:  # give back what was dropped
            del self.texts[: self.start], self.stamps[: self.start]
            self.first_seq += self.start
            self.start = 0

    def event(self, index: int) -> SessionEvent:
        return self.kind(
            session_id=self.session_id,
            seq=self.first_seq + index,
            ts=self.stamps[index],
            turn_id=self.turn_id,
            message_id=self.message_id,
            text=self.texts[index],
        )

    def events(self, after: int = 0) -> Iterator[SessionEvent]:
        """Yield the pieces kept whose seq is above ``after``, oldest first."""
        begin = max(self.start, after + 1 - self.first_seq)
        return map(self.event, range(begin, len(self.texts)))


# What an empty log holds until its first event: an empty deque keeps a block of 0.7 KiB, and a
# session is made for every connection, most of which never get an event.  Never appended to.
_NOTHING: deque[SessionEvent | _Run] = deque(maxlen=0)


class ReplayLog:
    """The last ``maxlen`` events of one session, oldest first: a bounded deque of events."""

    __slots__ = ("_count", "_items", "_maxlen")

    def __init__(self, maxlen: int = REPLAY_EVENTS) -> None:
        self._items: deque[SessionEvent | _Run] = _NOTHING  # its own deque from the first event
        self._count = 0
        self._maxlen = maxlen

    def append(self, event: SessionEvent) -> None:
        """Keep ``event``; once the log holds ``maxlen`` events, the oldest one goes."""
        if self._items is _NOTHING:
            self._items = deque()
        if isinstance(event, _PIECES):
            fields = (event.session_id, event.seq, event.ts, event.turn_id, event.message_id, event.text)
            if self.extend_run(type(event), *fields):  # the next piece of the run the log ends with
                return
            self._items.append(_Run(event))
        else:
            self._items.append(event)
        self._count += 1
        if self._count > self._maxlen:
            self._drop_first()

    def extend_run(
        self,
        kind: type[Piece],
        session_id: str,
        seq: int,
        ts: int,
        turn_id: str | None,
        message_id: str,
        text: str,
    ) -> bool:
        """Keep the piece of these fields if it continues the run the log ends with; say if it did.

        :meth:`append` of that ``kind`` of event, without the event (the answer's hot path);
        False (nothing kept) if the log does not end with that message's pieces up to ``seq - 1``.
        """
        items = self._items
        if not items:
            return False
        tail = items[-1]
        if (  # written out: this runs per delta
            type(tail) is not _Run
            or tail.next_seq != seq
            or tail.kind is not kind
            or tail.message_id != message_id
            or tail.turn_id != turn_id
            or tail.session_id != session_id
        ):
            return False
        tail.texts.append(text)
        tail.stamps.append(ts)
        tail.next_seq = seq + 1
        self._count += 1
        if self._count > self._maxlen:
            self._drop_first()
        return True

    def _drop_first(self) -> None:
        head = self._items[0]
        if type(head) is _Run and head.start + 1 < len(head.texts):  # more than one piece left
            head.drop_first()
        else:
            self._items.popleft()
        self._count -= 1

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __iter__(self) -> Iterator[SessionEvent]:
        return self._after(0)

    @property
    def first_seq(self) -> int:
        """The seq of the oldest event kept (the log must not be empty)."""
        head = self._items[0]
        return head.first_seq + head.start if isinstance(head, _Run) else head.seq

    @property
    def last_seq(self) -> int:
        """The seq of the newest event kept (the log must not be empty)."""
        tail = self._items[-1]
        return tail.last_seq if isinstance(tail, _Run) else tail.seq

    def after(self, seq: int) -> list[SessionEvent]:
        """Return the events kept whose seq is above ``seq``, oldest first."""
        return list(self._after(seq))

    def _after(self, seq: int) -> Iterator[SessionEvent]:
        for item in self._items:
            if isinstance(item, _Run):
                if item.last_seq > seq:
                    yield from item.events(seq)
            elif item.seq > seq:
                yield item
