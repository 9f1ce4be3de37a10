"""``/sse``: a session's events as Server-Sent Events, for clients that cannot open a WebSocket.

GET follows a session; POST sends one prompt (or command) in its body and streams
events until the turn it started ends.  A client that stops reading is dropped after
:data:`~.limits.SSE_MAX_QUEUED` events rather than let memory grow.

Each session event's ``id:`` is ``<epoch>:<sequence>``, the value of a WebSocket's
``resume`` parameter, so an ``EventSource`` that reconnects (sending it back as
``Last-Event-ID``) gets exactly what it missed, or a ``ready`` that tells it to reload
(docs/protocol.md, sections 1.2 and 4.1).
"""

from __future__ import annotations

import asyncio
import logging
import secrets

import tornado.iostream

from ..core.events import ControlResult, ErrorReply, Event, ModelEnd, ModelError, Pong, SessionReady
from ..errors import ClientError, InvalidFrame, LlmsockError
from ..wire import protocol
from .http import GuardedHandler
from .limits import SSE_MAX_QUEUED

log = logging.getLogger("llmsock")


class SseHandler(GuardedHandler):
    """``/sse``: GET follows a session's events; POST sends a prompt (or command) and streams its turn."""

    transport = "sse"  # what /status and the server's listeners call this connection
    dialect: protocol.Dialect = "envelope"
    _resume: tuple[str, int] | None = None

    async def get(self) -> None:
        try:
            self.dialect = self._dialect_arg()
            resume = self._last_event_id() or self.resume_arg()
        except ClientError as exc:
            self.send_json(400, {"error": {"code": exc.code, "message": exc.message}})
            return
        await self._stream(command=None, resume=resume)

    async def post(self) -> None:
        try:
            self.dialect = self._dialect_arg()
            body = self.request.body.decode("utf-8")
            command = protocol.decode(body, self.dialect)
        except UnicodeDecodeError:
            self.send_json(400, {"error": {"code": "invalid_message", "message": "the body is not UTF-8"}})
            return
        except ClientError as exc:
            self.send_json(400, {"error": {"code": exc.code, "message": exc.message}})
            return
        await self._stream(command=command, resume=None)

    def _dialect_arg(self) -> protocol.Dialect:
        """Return the dialect ``?dialect=`` names (envelope by default; SSE has no typed events).

        Raises:
            InvalidFrame: an unknown name, or ``typed``.
        """
        dialect = self.dialect_arg() or "envelope"
        if dialect == "typed":
            raise InvalidFrame("/sse speaks the envelope and llmcore dialects")
        return dialect

    def _last_event_id(self) -> tuple[str, int] | None:
        """Return the ``Last-Event-ID`` header as ``(epoch, sequence)``, or None if absent or empty.

        An ``EventSource`` sends it when it reconnects: the ``id:`` of the last event it received.

        Raises:
            InvalidFrame: a value that is not ``<epoch>:<sequence>``.
        """
        value = self.request.headers.get("Last-Event-ID", "").strip()
        return protocol.parse_resume(value) if value else None

    async def _stream(self, command: protocol.Command | None, resume: tuple[str, int] | None) -> None:
        self._outbox: asyncio.Queue[Event | None] = asyncio.Queue()
        self._resume = resume
        message_id = f"sse-{secrets.token_urlsafe(9)}"
        if isinstance(command, protocol.SendPrompt):
            command = protocol.SendPrompt(text=command.text, message_id=message_id, options=command.options)
        try:
            key, detach, ready = await self.server.hub.attach(
                self.session_arg(),
                self._deliver,
                resume=resume,
                # The replay is queued at once; past this it is a reload, as on /ws (section 4.1).
                max_replay=self.server.outbound_limit // 2,
            )
        except LlmsockError as exc:
            status = 400 if isinstance(exc, ClientError) else 503
            self.send_json(status, {"error": {"code": exc.code, "message": exc.message}})
            return
        self.server.stats.count_resume(ready)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.server.stats.sse_open += 1
        try:
            if command is not None:
                self.server.hub.handle(key, command, self._deliver)
            while True:
                event = await self._outbox.get()
                if event is None:  # the client went away, or fell too far behind
                    return
                self._write_event(event)
                await self.flush()
                if command is not None and _ends(event, message_id):
                    break
        except tornado.iostream.StreamClosedError:
            return
        finally:
            self.server.stats.sse_open -= 1
            await detach()
        self.finish()

    def _deliver(self, event: Event) -> None:
        if getattr(self, "_dropped", False):
            return
        if self._outbox.qsize() >= SSE_MAX_QUEUED:
            # The client stopped reading: close its connection, which also ends the pending write.
            log.warning("llmsock: ending an SSE stream whose client stopped reading")
            self._dropped = True
            self.server.stats.slow_consumers_dropped += 1
            self._outbox.put_nowait(None)
            if self.request.connection is not None:
                self.request.connection.close()  # type: ignore[attr-defined]
            return
        self._outbox.put_nowait(event)

    def _write_event(self, event: Event) -> None:
        # never raises: an unencodable event becomes an error
        message = protocol.sse_message(event, self.dialect, self._event_id(event))
        if message is not None:
            self.write(message)
            self.server.stats.messages_out += 1

    def _event_id(self, event: Event) -> str | None:
        """Return the ``id:`` of ``event``: where a client that received it resumes from (None: a reply).

        A ``ready`` names the position the stream continues from: the resume point when the
        missed events follow it, else the session's sequence (a client told to reload, or a new one).
        """
        epoch = self.server.hub.epoch
        if isinstance(event, SessionReady):
            position = self._resume[1] if event.resumed and self._resume is not None else event.seq
            return f"{epoch}:{position}"
        seq = getattr(event, "seq", None)  # only session events have one
        return f"{epoch}:{seq}" if type(seq) is int else None

    def on_connection_close(self) -> None:
        outbox = getattr(self, "_outbox", None)
        if outbox is not None:
            outbox.put_nowait(None)


def _ends(event: Event, message_id: str) -> bool:
    """Whether ``event`` ends what a POST to /sse asked for."""
    if isinstance(event, (ModelEnd, ModelError)):
        return event.message_id == message_id
    return isinstance(event, (ErrorReply, ControlResult, Pong))
