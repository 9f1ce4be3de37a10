"""The sharing port: a session open on several servers at once, one of them running its turns.

A server that keeps its sessions to itself uses :class:`Alone` (the default): every command
acts here, at once, and every event goes to this server's fan-out. A networked implementation
(``stores.redisshare.RedisSharing``) keeps one series of events per session across servers:

* commands that change a session (prompts, Stop, pause, resume, approvals, clearing, notices)
  are handed to the one server that runs the session's turns now (:meth:`Link.submit`), which
  acts on them in the order they were handed over, whichever server they came from;
* that server's events go to every other server that has the session open, which applies them
  to its own copy of the state (:meth:`Member.follow`) and delivers them to its connections;
* when that server goes away mid-turn, another takes the session over (:meth:`Member.take_over`).

The hub sees only these three small interfaces: it never learns how servers talk.
"""

from __future__ import annotations

from typing import Callable, Protocol, Union

from ..core.commands import Notice
from ..core.events import Reply, SessionEvent
from ..wire.protocol import Command
from .fanout import Fanout

Submitted = Union[Command, Notice]
ReplyTo = Callable[[Reply], None]


class Member(Protocol):
    """The hub's side of one open session, as its :class:`Link` calls it."""

    @property
    def seq(self) -> int:
        """The seq of the last event applied here."""
        ...

    @property
    def turn_open(self) -> bool:
        """Whether this copy of the session shows a turn that has not ended."""
        ...

    def remember(self, events: list[SessionEvent]) -> None:
        """Keep events this copy already holds (up to its seq), for clients that resume here."""
        ...

    def recent_after(self, seq: int) -> list[SessionEvent]:
        """Return the events after ``seq`` that this copy still keeps (its last few thousand)."""
        ...

    def follow(self, event: SessionEvent) -> None:
        """Apply an event another server emitted, and deliver it to this server's connections."""
        ...

    def act(self, command: Submitted, reply: ReplyTo) -> None:
        """Act on a command handed to this server (it runs the session's turns now)."""
        ...

    async def take_over(self) -> None:
        """This server now runs a session whose last runner went away: end a turn it left open."""
        ...

    def busy(self) -> bool:
        """Whether a turn runs or waits here (the server must keep running the session)."""
        ...


class Link(Protocol):
    """One session's tie to the servers that share it."""

    @property
    def epoch(self) -> str:
        """The name of this series of the session's events: resume works within one epoch."""
        ...

    @property
    def runs_here(self) -> bool:
        """Whether this server runs the session's turns now (and may emit its events)."""
        ...

    def submit(self, command: Submitted, reply: ReplyTo) -> None:
        """Have the session's runner act on ``command``, in submission order; never blocks."""
        ...

    def publish(self, session_id: str, event: SessionEvent) -> None:
        """Deliver an event emitted here to this server's connections and to the other servers."""
        ...

    def settled(self) -> None:
        """Say that no turn runs or waits here any more: another server may run the next."""
        ...

    async def reach(self, seq: int) -> None:
        """Return once this copy holds the events up to ``seq`` (or soon, if it never will).

        A client that resumes here from another server may have seen events this copy has not.
        """
        ...

    def leave(self) -> None:
        """Stop sharing: the session left this server's memory; never blocks."""
        ...


class Sharing(Protocol):
    """How sessions are shared with other servers."""

    async def join(self, session_id: str, member: Member, fanout: Fanout) -> Link:
        """Tie an open session to the others' copies; return its link.

        On return ``member`` holds every event the others emitted so far (through
        :meth:`Member.follow`).

        Raises:
            StoreError: the shared service cannot be reached.
        """
        ...

    async def aclose(self) -> None:
        """Hand on what is still to be sent and let the sessions run here go (the server stops)."""
        ...


class Alone:
    """Sessions shared with nobody: commands act here, events go to this server's fan-out."""

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch
        # The fan-out's two publish methods, bound once for all links (a bound method is 64 bytes
        # and there is a session, so a link, per connection).
        self._bound: tuple[Fanout, Callable[..., None], Callable[..., None]] | None = None

    async def join(self, session_id: str, member: Member, fanout: Fanout) -> Link:
        """Return the link of a session that only this server has open."""
        bound = self._bound
        if bound is None or bound[0] is not fanout:
            bound = self._bound = (fanout, fanout.publish, fanout.publish_delta)
        return _AloneLink(self.epoch, member, bound[1], bound[2])

    async def aclose(self) -> None:
        """Nothing to hand on."""


class _AloneLink:
    __slots__ = ("_member", "epoch", "publish", "publish_delta")

    runs_here = True

    def __init__(
        self, epoch: str, member: Member, publish: Callable[..., None], publish_delta: Callable[..., None]
    ) -> None:
        self.epoch = epoch
        self._member = member
        self.publish = publish  # the fan-out's own: the streaming path calls the fan-out itself
        self.publish_delta = publish_delta

    def submit(self, command: Submitted, reply: ReplyTo) -> None:
        self._member.act(command, reply)

    def settled(self) -> None:
        pass

    async def reach(self, seq: int) -> None:
        pass

    def leave(self) -> None:
        pass
