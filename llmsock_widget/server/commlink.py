"""CommLink: a view's connection to a session carried over the widget's comm, not a socket.

The last rung of the transport ladder (docs/deployment.md): when the browser
cannot reach the server's port, the chat view asks the kernel, through the
widget's comm, to attach to the session on its behalf.  The link speaks the
envelope dialect, frame for frame as on ``/ws``, with two differences:

* Events are batched: the link sends at most one comm message per
  ``interval`` (40 ms), and runs of deltas of one message are merged into
  one delta carrying the run's last sequence number.  Jupyter Server drops
  IOPub messages past 1,000 per second, so one message per delta would lose
  text; 25 messages a second never does.
* Commands from the browser arrive as comm messages.  Front ends that send
  comm messages to a kernel subshell (JupyterLab 4.4+ and Notebook 7.4+ with
  ipykernel 7+, by default) have them handled on a subshell thread while a
  cell runs, so Stop ends an answer during a busy cell.  Elsewhere (ipykernel
  6, the setting turned off, front ends without subshells) they wait on the
  shell channel until the cell is done; the stream keeps flowing meanwhile
  (it leaves on IOPub).  The socket transports never wait.

Everything here runs on the server's loop: the widget's comm handler, on
whatever thread the kernel calls it, only hands messages to that loop
(``server.call_soon``).  ``send`` is the widget's comm send, which may be
called from that thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from ..core.events import Event, ModelDelta, joined_deltas
from ..errors import ClientError, LlmsockError
from ..wire import protocol
from ..wire.codes import CLOSE_GOING_AWAY, CLOSE_SESSION_REFUSED, CLOSE_TRY_LATER, CLOSE_UNAVAILABLE
from .connection import ServerContext, act_on_frame, at_capacity
from .limits import ConnectionStats, RateLimiter

log = logging.getLogger("llmsock")

INTERVAL = 0.04  # seconds between two batches: 25 comm messages a second at most, per link


class CommLink:
    """One view's attachment to one session, its frames batched into comm messages.

    Args:
        server: the running server (its hub, stats and connection set are used).
        link_id: the view's name for this link, echoed in every message.
        send: sends one comm message (a JSON-ready dict) to the views.
        interval: seconds between batches.
    """

    transport = "comm"

    def __init__(
        self,
        server: ServerContext,
        link_id: str,
        send: Callable[[dict[str, Any]], None],
        *,
        interval: float = INTERVAL,
    ) -> None:
        self.server = server
        self.link_id = link_id
        self._send_message = send
        self.interval = interval
        self.session_id: str | None = None
        self._detach: Callable[[], Any] | None = None
        self._pending: list[Event] = []
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.counters = ConnectionStats(transport=self.transport)
        self.limiter = RateLimiter(server.limits.messages_per_second, server.limits.message_burst)

    async def open(self, session: str | None, resume: tuple[str, int] | None) -> None:
        """Attach to ``session`` (resuming after ``resume`` if given), then say ``linked``."""
        if at_capacity(self.server):
            self._end(
                CLOSE_TRY_LATER,
                f"the server holds its maximum of {self.server.limits.max_connections} connections",
            )
            return
        self.server.stats.connections_total += 1
        try:
            key, detach, ready = await self.server.hub.attach(
                session, self._deliver, resume=resume, max_replay=self.server.outbound_limit // 2
            )
        except ClientError as exc:
            self._end(CLOSE_SESSION_REFUSED, exc.message)
            return
        except LlmsockError as exc:
            log.warning("llmsock: cannot open session: %s", exc)
            self._end(CLOSE_UNAVAILABLE, f"{exc.code}: {exc.message}")
            return
        self.server.stats.count_resume(ready)
        self.counters.resumed, self.counters.replayed = ready.resumed, ready.replayed
        if self._closed:  # unlinked while the session loaded
            await detach()
            return
        self.session_id, self._detach = key, detach
        self.server.connections.add(self)
        self._post({"kind": "linked", "link": self.link_id, "session": key})
        self._schedule()

    def command(self, frame: str) -> None:
        """Act on one client frame (text, envelope dialect), as ``/ws`` would."""
        stats = self.server.stats
        stats.messages_in += 1
        stats.bytes_in += len(frame)
        self.counters.messages_in += 1
        self.counters.bytes_in += len(frame)
        if self.session_id is None or self._closed:
            return
        act_on_frame(
            self.server, self.session_id, frame, "envelope", self.limiter, self.counters, self._deliver
        )

    def close(self, code: int = CLOSE_GOING_AWAY, reason: str = "") -> None:
        """End the link (the server stops, or the view unlinked): flush, detach, say ``unlinked``."""
        if self._closed:
            return
        self._flush()
        self._end(code, reason)

    # -- outbound ----------------------------------------------------------------------

    def _deliver(self, event: Event) -> None:
        if self._closed:
            return
        self._pending.append(event)
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is None and self._pending and not self._closed:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._flush)

    def _flush(self) -> None:
        self._timer = None
        if not self._pending:
            return
        events, self._pending = coalesce(self._pending), []
        frames = [frame for event in events for frame in protocol.frames(event, "envelope")]
        # Counted before they go: the view may read them, and ask for the counters, at once.
        size = sum(len(f) for f in frames)
        stats = self.server.stats
        stats.messages_out += len(frames)
        stats.bytes_out += size
        self.counters.messages_out += len(frames)
        self.counters.bytes_out += size
        self._post({"kind": "frames", "link": self.link_id, "frames": frames})

    def _post(self, message: dict[str, Any]) -> None:
        try:
            self._send_message(message)
        except Exception:  # the comm is gone (the widget was closed): end quietly
            log.warning("llmsock: the widget's comm could not send; closing its link", exc_info=True)
            self._end(CLOSE_GOING_AWAY, "", tell=False)

    def _end(self, code: int, reason: str, *, tell: bool = True) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending = []
        self.server.connections.discard(self)
        if self._detach is not None:
            detach, self._detach = self._detach, None
            asyncio.get_running_loop().create_task(detach())
        if tell:
            try:
                self._send_message({"kind": "unlinked", "link": self.link_id, "code": code, "reason": reason})
            except Exception:
                pass


def coalesce(events: list[Event]) -> list[Event]:
    """Merge each run of deltas of one message into one delta with the run's text and last sequence.

    Nothing else changes: other events keep their place and order.
    """
    out: list[Event] = []
    run: list[ModelDelta] = []

    def close_run() -> None:
        if run:
            out.append(joined_deltas(run))
        run.clear()

    for event in events:
        if isinstance(event, ModelDelta):
            if run and (run[-1].message_id != event.message_id or run[-1].turn_id != event.turn_id):
                close_run()
            run.append(event)
        else:
            close_run()
            out.append(event)
    close_run()
    return out
