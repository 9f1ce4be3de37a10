"""The fan-out port: how a session's events reach every connection watching it.

:class:`LocalFanout` keeps subscribers in this process: the connections of this server.
Other servers that have a session open are reached through the sharing port
(:mod:`.sharing`), which applies their events to this server's copy and then publishes
them here.  ``subscribe`` is async and returns an async ``unsubscribe``; ``publish``
must not block — it hands the event on in order and returns.  What is published is a
session event, or (rarely) an error reply for every connection of the session: a notice
of this server's own that has no place in the session's series (the sharing's
``sharing_unavailable`` when this server lost its link to the others).
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Protocol

from ..core.events import Event, model_delta

log = logging.getLogger("llmsock")

Deliver = Callable[[Event], None]
DeliverDelta = Callable[[str, int, int, "str | None", str, str], None]
"""``(session_id, seq, ts, turn_id, message_id, text)``: a :class:`ModelDelta` given as its fields."""
Unsubscribe = Callable[[], Awaitable[None]]


class Fanout(Protocol):
    """Deliver each session's events, in order, to everyone subscribed to it."""

    async def subscribe(
        self, session_id: str, deliver: Deliver, delta: DeliverDelta | None = None
    ) -> Unsubscribe:
        """Call ``deliver(event)`` for every event published on ``session_id`` from now on.

        A subscriber that gives ``delta`` gets the deltas of :meth:`publish_delta` as their
        fields, without an event made for it.
        """
        ...

    def publish(self, session_id: str, event: Event) -> None:
        """Hand ``event`` to every subscriber of ``session_id``; never block."""
        ...

    def publish_delta(
        self, session_id: str, seq: int, ts: int, turn_id: str | None, message_id: str, text: str
    ) -> None:
        """Publish the :class:`ModelDelta` of these fields (the answer's hot path); never block."""
        ...

    def count(self, session_id: str) -> int:
        """Return how many subscribers this process has on ``session_id``."""
        ...


class LocalFanout:
    """In-process fan-out: subscribers are called directly, in subscription order."""

    def __init__(self) -> None:
        # Tuples, replaced on (un)subscribe: publish, which runs per delta, iterates without copying,
        # and a subscriber added or removed during a publish takes effect from the next event.
        self._subscribers: dict[str, tuple[tuple[Deliver, DeliverDelta | None], ...]] = {}

    async def subscribe(
        self, session_id: str, deliver: Deliver, delta: DeliverDelta | None = None
    ) -> Subscription:
        """Add ``deliver`` (and ``delta``) to the session's subscribers."""
        entry = (deliver, delta)
        self._subscribers[session_id] = (*self._subscribers.get(session_id, ()), entry)
        return Subscription(self, session_id, entry)

    def _unsubscribe(self, subscription: Subscription) -> None:
        """Remove ``subscription``'s subscriber (nothing if it is gone already)."""
        session_id, entry = subscription.session_id, subscription.entry
        subscribers = list(self._subscribers.get(session_id, ()))
        if entry in subscribers:
            subscribers.remove(entry)
        if subscribers:
            self._subscribers[session_id] = tuple(subscribers)
        else:
            self._subscribers.pop(session_id, None)

    def publish(self, session_id: str, event: Event) -> None:
        """Call every subscriber; one that raises is logged and the rest still get the event."""
        for deliver, _ in self._subscribers.get(session_id, ()):
            try:
                deliver(event)
            except Exception:  # one broken connection must not starve the others
                log.exception("llmsock: a subscriber of session %s failed", session_id)

    def publish_delta(
        self, session_id: str, seq: int, ts: int, turn_id: str | None, message_id: str, text: str
    ) -> None:
        """As :meth:`publish` of that ModelDelta; made only if a subscriber takes no fields (made once)."""
        event = None
        for deliver, delta in self._subscribers.get(session_id, ()):
            try:
                if delta is not None:
                    delta(session_id, seq, ts, turn_id, message_id, text)
                    continue
                if event is None:
                    event = model_delta(session_id, seq, ts, turn_id, message_id, text)
                deliver(event)
            except Exception:  # one broken connection must not starve the others
                log.exception("llmsock: a subscriber of session %s failed", session_id)

    def count(self, session_id: str) -> int:
        """Return how many subscribers are on ``session_id``."""
        return len(self._subscribers.get(session_id, ()))


Observer = Callable[[str, Deliver, bool], None]


class ObservedFanout(LocalFanout):
    """A LocalFanout that tells ``observe(session_id, deliver, attached)`` of each (un)subscription.

    A subscriber is a connection attached to a session, so this is where the server
    learns who comes and goes, whatever the transport.  ``publish`` is LocalFanout's
    own: the streaming path pays nothing for it.  ``observe`` runs on the loop and must
    not block; one that raises is logged.
    """

    def __init__(self, observe: Observer) -> None:
        super().__init__()
        self._observe = observe
        # Told attached, not yet told gone (a dict: all_left tells them in the order they came).
        self._attached: dict[Subscription, None] = {}

    async def subscribe(
        self, session_id: str, deliver: Deliver, delta: DeliverDelta | None = None
    ) -> Subscription:
        """Add ``deliver`` to the session's subscribers and tell the observer."""
        subscription = await super().subscribe(session_id, deliver, delta)
        self._attached[subscription] = None
        self._tell(session_id, deliver, True)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        super()._unsubscribe(subscription)
        if self._attached.pop(subscription, False) is None:  # told once, however often it is called
            self._tell(subscription.session_id, subscription.entry[0], False)

    def all_left(self) -> None:
        """Tell the observer that every subscriber not yet told gone has left (the server stopped).

        A stopping server may cancel a connection's unsubscribe before it runs.
        """
        attached, self._attached = self._attached, {}
        for subscription in attached:
            self._tell(subscription.session_id, subscription.entry[0], False)

    def _tell(self, session_id: str, deliver: Deliver, attached: bool) -> None:
        try:
            self._observe(session_id, deliver, attached)
        except Exception:  # an observer's bug must not refuse the connection
            log.exception("llmsock: the fan-out's observer failed")


class Subscription:
    """One subscriber of a :class:`LocalFanout`: awaiting it unsubscribes (the ``Unsubscribe``).

    An object with three slots rather than a closure: a connection keeps it as long as it is
    attached, and a closure and its cells took three times the memory.
    """

    __slots__ = ("_fanout", "entry", "session_id")

    def __init__(
        self, fanout: LocalFanout, session_id: str, entry: tuple[Deliver, DeliverDelta | None]
    ) -> None:
        self._fanout = fanout
        self.session_id = session_id
        self.entry = entry

    async def __call__(self) -> None:
        self._fanout._unsubscribe(self)
